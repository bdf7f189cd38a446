use observe::observe;

#[observe(crate = nonexistent_crate)]
fn get() -> u32 {
    1
}

fn main() {}
