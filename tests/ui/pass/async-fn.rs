use observe::observe;

#[observe(handler)]
async fn get(id: u64) -> Result<u64, std::io::Error> {
    let doubled: u64 = "2".parse::<u64>().map_err(std::io::Error::other)? * id;
    Ok(doubled)
}

#[observe]
async fn nothing() {}

#[observe]
async fn borrowed<'a>(text: &'a str, extra: &str) -> &'a str {
    let _ = extra;
    &text[1..]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        assert_eq!(get(3).await.unwrap(), 6);
        nothing().await;
        assert_eq!(borrowed("abc", "x").await, "bc");
    });
}
