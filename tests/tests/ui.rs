//! Compile-time behaviour of `#[observe]`: every supported signature compiles and runs (`ui/pass`), every
//! misuse fails with an error spanned at the offending token (`ui/fail`, `.stderr` kept beside each case).
//!
//! The expected errors are those of the stable toolchain the project pins; regenerate them with
//! `TRYBUILD=overwrite cargo test -p observe-tests --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
