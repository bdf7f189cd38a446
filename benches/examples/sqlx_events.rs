//! Runs the `sqlx_event` benchmark's event many times inside one scope, for counting instructions under
//! callgrind (the benchmark host is too noisy for differences of a few nanoseconds):
//!
//! ```sh
//! cargo build --release -p observe-bench --example sqlx_events
//! valgrind --tool=callgrind target/release/examples/sqlx_events observe   # or: baseline, visiting
//! callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep observe_bench::sqlx::event
//! ```
//!
//! `baseline` delivers the events to a layer that does nothing; `visiting` to one that reads their fields into
//! a visitor that keeps nothing; `observe` to observe's sqlx layer (see `observe_bench::sqlx`). Compare the
//! inclusive counts of `observe_bench::sqlx::event`, divided by the event count: the totals also hold the
//! clock's calibration at start-up, which varies from run to run.

const EVENTS: u32 = 100_000;

#[observe::observe]
fn events(count: u32) {
    for _ in 0..count {
        observe_bench::sqlx::event();
    }
}

fn main() {
    let [baseline, visiting, observe] = observe_bench::sqlx::dispatches();
    let dispatch = match std::env::args().nth(1).as_deref() {
        Some("baseline") => baseline,
        Some("visiting") => visiting,
        Some("observe") => observe,
        _ => {
            eprintln!("usage: sqlx_events baseline|visiting|observe");
            std::process::exit(2);
        }
    };
    tracing::dispatcher::with_default(&dispatch, || events(EVENTS));
}
