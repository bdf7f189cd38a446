//! An inner attribute at the top of the body (`#![allow(..)]`) stays there, sync and async.
use observe::observe;

#[observe]
fn sync() -> u8 {
    #![allow(unused_variables)]
    let unused = 1;
    2
}

#[observe]
async fn asynchronous() -> u8 {
    #![allow(unused_variables)]
    let unused = 1;
    2
}

fn main() {
    assert_eq!(sync(), 2);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(asynchronous()), 2);
}
