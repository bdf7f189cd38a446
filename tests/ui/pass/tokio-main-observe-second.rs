#[tokio::main(flavor = "current_thread")]
#[observe::observe(command)]
async fn main() -> anyhow::Result<()> {
    tokio::task::yield_now().await;
    assert!(observe::current_trace_id().is_some());
    Ok(())
}
