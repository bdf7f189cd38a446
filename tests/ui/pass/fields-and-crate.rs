mod renamed {
    pub use observe as obs;
}

#[observe::observe(handler, fields(id, name))]
fn with_fields(id: u64, name: &str, secret: &str) -> usize {
    let _ = secret;
    id as usize + name.len()
}

#[renamed::obs::observe(crate = renamed::obs)]
fn via_path() -> u8 {
    1
}

#[observe::observe(crate = "observe")]
fn via_string() -> u8 {
    2
}

fn main() {
    assert_eq!(with_fields(1, "ab", "hunter2"), 3);
    assert_eq!(via_path() + via_string(), 3);
}
