//! Raw identifiers: the scope is named without `r#`, and `fields(..)` finds a raw-named argument.
#[observe::observe(fields(r#type, kind))]
fn r#match(r#type: u8, kind: u8) -> u8 {
    r#type + kind
}

fn main() {
    assert_eq!(r#match(3, 4), 7);
    let names: Vec<&str> = observe::sites().map(|site| site.name()).collect();
    assert!(names.iter().any(|name| name.ends_with("::match")), "{names:?}");
    assert!(!names.iter().any(|name| name.contains("r#")), "{names:?}");
}
