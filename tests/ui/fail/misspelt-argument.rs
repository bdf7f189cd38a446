use observe::observe;

#[observe(field(id))]
fn get(id: u64) -> u64 {
    id
}

fn main() {}
