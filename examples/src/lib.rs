//! Examples live next to this crate: see `quickstart.rs`.
