use observe::observe;

#[observe(handler)]
async fn count(items: &[u32]) -> u32 {
    let total: u64 = items.iter().map(|&i| u64::from(i)).sum();
    total
}

fn main() {}
