#[observe::observe(command)]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tokio::task::yield_now().await;
    let n: u32 = "1".parse()?;
    assert_eq!(n, 1);
    Ok(())
}
