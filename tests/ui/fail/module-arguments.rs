use observe::observe;

#[observe(handler, name = "api", fields(id))]
mod api {
    pub fn get(id: u64) -> u64 {
        id
    }
}

fn main() {}
