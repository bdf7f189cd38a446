//! Runnable programs a new observe user starts from: `quickstart.rs`, `jobs.rs` and `demo.rs` next to this
//! crate. The demo's service lives here, as a library, so that a test can run its scripted mode.

pub mod demo;
