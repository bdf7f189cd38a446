use std::future::Future;

use observe::observe;

#[observe(task)]
fn later(x: u32) -> impl Future<Output = u32> + Send {
    async move { x + 1 }
}

#[observe]
fn fallible() -> impl Future<Output = Result<(), String>> {
    std::future::ready(Err("no".to_owned()))
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        assert_eq!(assert_send(later(1)).await, 2);
        assert!(fallible().await.is_err());
    });
}
