use observe::observe;

struct Secret(u64);

#[observe(fields(id, secret))]
fn get(id: u64, secret: Secret) -> u64 {
    id + secret.0
}

fn main() {}
