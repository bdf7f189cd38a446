use observe::observe;

#[observe]
fn plain() -> u32 {
    1
}

#[observe(task)]
fn no_return() {}

#[observe(handler, name = "custom.name", level = "info")]
fn with_options(a: u32, b: &str) -> usize {
    a as usize + b.len()
}

fn main() {
    assert_eq!(plain(), 1);
    no_return();
    assert_eq!(with_options(1, "ab"), 3);
}
