use observe::observe;

#[observe(handler, max_queries = 0)]
fn list() {}

#[observe(handler, max_queries = "20")]
fn show() {}

fn main() {}
