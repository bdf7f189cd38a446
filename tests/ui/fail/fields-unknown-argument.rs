use observe::observe;

#[observe(fields(id, user))]
fn get(id: u64, name: &str) -> usize {
    id as usize + name.len()
}

fn main() {}
