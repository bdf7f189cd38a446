use observe::observe;

#[observe(name = "")]
fn get() {}

fn main() {}
