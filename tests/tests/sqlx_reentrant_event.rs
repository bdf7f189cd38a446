//! Under a global dispatcher (what `observe::init()` installs), an event logged while another event is being
//! formatted (a field whose `Debug` logs) resets tracing-subscriber's per-layer filter state, and the outer
//! event then reaches every filtered layer, the sqlx layer included. An application event with an
//! `elapsed_secs` field must still not count as a query. Its own binary: the global dispatcher is per process.

use std::fmt;

struct Noisy;

impl fmt::Debug for Noisy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::warn!("logged while another event is formatted");
        f.write_str("noisy")
    }
}

#[observe::observe(handler)]
fn handler() {
    tracing::info!(elapsed_secs = 2.0f64, value = ?Noisy, "done");
}

#[test]
fn an_application_event_with_elapsed_secs_is_not_a_query() {
    let _guard = observe::Config::default()
        .statsd_addr("127.0.0.1:9")
        .log_writer(std::io::sink)
        .init()
        .expect("observe starts");
    let ((), captured) = observe::testing::capture(handler);
    assert_eq!(captured.scope("handler").unwrap().queries, 0);
    assert!(captured.queries.is_empty(), "{:?}", captured.queries);
}
