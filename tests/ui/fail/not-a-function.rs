use observe::observe;

#[observe]
struct Orders {
    names: Vec<String>,
}

fn main() {}
