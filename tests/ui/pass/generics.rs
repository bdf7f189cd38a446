use std::fmt::Debug;

use observe::observe;

#[observe]
fn largest<'a, T>(items: &'a [T]) -> Option<&'a T>
where
    T: Ord + Debug,
{
    items.iter().max()
}

#[observe]
fn describe(value: impl Debug, prefix: &str) -> String {
    format!("{prefix}{value:?}")
}

#[observe]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}

#[observe]
async fn generic_async<T: Clone + Send>(value: T) -> (T, T) {
    (value.clone(), value)
}

#[observe]
fn const_generic<const N: usize>(values: [u8; N]) -> usize {
    values.len()
}

fn main() {
    assert_eq!(largest(&[1, 3, 2]), Some(&3));
    assert_eq!(describe(5, "n="), "n=5");
    assert_eq!(evens(5).count(), 3);
    assert_eq!(const_generic([1, 2, 3]), 3);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(generic_async(1)), (1, 1));
}
