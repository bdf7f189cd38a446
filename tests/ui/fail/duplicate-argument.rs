use observe::observe;

#[observe(name = "orders.get", name = "orders.fetch")]
fn get() {}

fn main() {}
