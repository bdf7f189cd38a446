use observe::observe;

#[observe(handler, task)]
fn get() {}

fn main() {}
