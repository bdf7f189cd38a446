//! Runs the `sqlx_event` benchmark's event many times inside one scope, for counting instructions under
//! callgrind (the benchmark host is too noisy for differences of a few nanoseconds):
//!
//! ```sh
//! cargo build --release -p observe-bench --example sqlx_events
//! valgrind --tool=callgrind target/release/examples/sqlx_events observe   # or: baseline
//! ```
//!
//! `observe` installs observe's sqlx layer; `baseline` a layer that enables the same events and does nothing;
//! `visiting` one that reads their fields into a visitor that keeps nothing. Compare the inclusive count of
//! `sqlx_events::sqlx_event` (`callgrind_annotate --inclusive=yes`), divided by the event count: the totals also
//! hold the clock's calibration at start-up, which varies from run to run.

use std::time::Duration;

use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::prelude::*;

const EVENTS: u32 = 100_000;

struct SameEvents;

impl<S> Filter<S> for SameEvents {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.target() == "sqlx::query" || !meta.is_event()
    }
}

struct Nothing;

impl<S: tracing::Subscriber> Layer<S> for Nothing {}

/// Reads every field into a visitor that keeps nothing (tracing's share of reading an event).
struct Visiting;

struct Ignore;

impl tracing::field::Visit for Ignore {
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> Layer<S> for Visiting {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        event.record(&mut Ignore);
    }
}

#[inline(never)]
fn sqlx_event() {
    let elapsed = Duration::from_micros(250);
    tracing::debug!(
        target: "sqlx::query",
        summary = "SELECT id, order_id, sku …",
        db.statement = "\n\nSELECT id, order_id, sku, quantity FROM items WHERE order_id = $1\n",
        rows_affected = 0u64,
        rows_returned = 3u64,
        ?elapsed,
        elapsed_secs = elapsed.as_secs_f64(),
    );
}

#[observe::observe]
fn events(count: u32) {
    for _ in 0..count {
        sqlx_event();
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("observe") => {
            let subscriber = tracing_subscriber::registry().with(observe::sqlx::layer());
            tracing::subscriber::with_default(subscriber, || events(EVENTS));
        }
        Some("baseline") => {
            let subscriber = tracing_subscriber::registry().with(Nothing.with_filter(SameEvents));
            tracing::subscriber::with_default(subscriber, || events(EVENTS));
        }
        Some("visiting") => {
            let subscriber = tracing_subscriber::registry().with(Visiting.with_filter(SameEvents));
            tracing::subscriber::with_default(subscriber, || events(EVENTS));
        }
        _ => eprintln!("usage: sqlx_events observe|baseline|visiting"),
    }
}
