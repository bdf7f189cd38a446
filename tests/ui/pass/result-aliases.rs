use observe::observe;

type AppResult<T> = Result<T, String>;

#[observe]
fn io_result() -> std::io::Result<()> {
    Ok(())
}

#[observe]
fn anyhow_result() -> anyhow::Result<u8> {
    anyhow::bail!("nope")
}

#[observe]
fn alias() -> AppResult<()> {
    Err("bad".into())
}

#[observe]
fn diverges() -> ! {
    std::process::exit(0)
}

fn main() {
    io_result().unwrap();
    assert!(anyhow_result().is_err());
    assert!(alias().is_err());
    diverges();
}
