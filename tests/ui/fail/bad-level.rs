use observe::observe;

#[observe(level = "verbose")]
fn get() {}

fn main() {}
