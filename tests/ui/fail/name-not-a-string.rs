use observe::observe;

#[observe(name = orders_get)]
fn get() {}

fn main() {}
