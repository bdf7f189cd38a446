use observe::observe;

#[derive(Debug)]
struct AppError;

#[observe]
fn parse(text: &str) -> Result<u32, AppError> {
    let value = text.parse::<u32>()?;
    Ok(value)
}

fn main() {}
