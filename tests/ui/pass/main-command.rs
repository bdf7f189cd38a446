use observe::observe;

#[observe(command)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let value: u32 = "5".parse()?;
    assert_eq!(value, 5);
    Ok(())
}
