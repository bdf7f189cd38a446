use observe::observe;

#[observe(handler, colour = "blue", level = "loud", name = 7, fields(missing))]
const fn get() {}

fn main() {}
