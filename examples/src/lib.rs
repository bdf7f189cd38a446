//! Runnable programs a new observe user starts from: `quickstart.rs`, `jobs.rs` and `demo.rs` next to this
//! crate. The demo's service lives here, as a library, so that a test can run its scripted mode.

pub mod demo;

/// `crate = path` on a module whose functions see the runtime under another name: it must compile with
/// observability on and compiled out alike (`.ci/run` checks this crate both ways, warnings denied).
#[cfg(test)]
#[observe::observe(crate = obs)]
mod renamed_runtime {
    use observe as obs;

    fn four() -> u8 {
        4
    }

    #[test]
    fn runs() {
        assert_eq!(four(), 4);
    }
}
