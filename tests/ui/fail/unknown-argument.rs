use observe::observe;

#[observe(handler, timeout = 5)]
fn get() {}

fn main() {}
