//! Helpers shared by the benchmarks in `benches/`; run them with `cargo bench -p observe-bench`.
//!
//! The benchmarks themselves are in `benches/benches/*.rs`; `BENCHMARKS.md` at the root of the workspace has
//! the latest results.

use std::future::Future;
use std::net::UdpSocket;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The work every benchmarked function does: a couple of arithmetic instructions, so that the call itself
/// dominates and the overhead of the instrumentation shows.
#[inline(always)]
pub fn work(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

/// Polls `future` to completion on this thread with a no-op waker: the cheapest possible executor, so that
/// the cost measured is the future's own. Meant for futures that are ready on their first poll; one that is
/// not is polled again in a busy loop.
#[inline]
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// observe running with metrics on: the StatsD flusher sends to a UDP socket bound on loopback that stays
/// open (nobody reads it; the kernel drops what does not fit) and no global tracing subscriber is installed.
/// Dropping it stops the flusher after a last flush.
pub struct MetricsOn {
    // Dropped first: the last flush still has somewhere to send to.
    _guard: observe::Guard,
    _socket: UdpSocket,
    /// Where the metrics go.
    pub addr: String,
}

/// Starts observe with metrics on (see [`MetricsOn`]). Panics if observe cannot start.
pub fn observe_with_metrics() -> MetricsOn {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket on loopback");
    let addr = socket.local_addr().expect("the socket's address").to_string();
    let guard = observe::Config::default()
        .statsd_addr(&addr)
        .install_subscriber(false)
        .init()
        .expect("observe starts");
    MetricsOn {
        _guard: guard,
        _socket: socket,
        addr,
    }
}

/// How many executions of the observed function whose name ends with `::<name>` have ended: used to check
/// that a benchmark really went through observe.
pub fn executions(name: &str) -> u64 {
    let suffix = format!("::{name}");
    observe::sites()
        .filter(|site| site.name().ends_with(&suffix))
        .map(|site| site.executions())
        .sum()
}

/// The `sqlx::query` event and the layers observe's sqlx layer is compared with (the `sqlx_event` group of the
/// `queries` benchmark, the `sqlx_paired` benchmark and the `sqlx_events` example for callgrind).
pub mod sqlx {
    use std::hint::black_box;
    use std::time::Duration;

    use tracing::subscriber::Interest;
    use tracing::{Dispatch, Metadata};
    use tracing_subscriber::layer::{Context, Filter, Layer};
    use tracing_subscriber::prelude::*;

    /// The event as sqlx-core 0.9 emits it for a statement longer than four words (same target, fields and
    /// order, the summary abbreviated and the full statement padded with newlines).
    #[inline(never)]
    pub fn event() {
        let elapsed = black_box(Duration::from_micros(250));
        tracing::debug!(
            target: "sqlx::query",
            summary = "SELECT id, order_id, sku \u{2026}",
            db.statement = "\n\nSELECT id, order_id, sku, quantity FROM items WHERE order_id = $1\n",
            rows_affected = 0u64,
            rows_returned = 3u64,
            ?elapsed,
            elapsed_secs = elapsed.as_secs_f64(),
        );
    }

    /// Enables `sqlx::query` events and every span, decided once per callsite as observe's own filter does
    /// (a filter that answers only per event makes tracing ask it again at every event: dearer, and unfair to
    /// the baselines' advantage).
    pub struct SameEvents;

    fn wanted(meta: &Metadata<'_>) -> bool {
        meta.target() == "sqlx::query" || !meta.is_event()
    }

    impl<S> Filter<S> for SameEvents {
        fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
            wanted(meta)
        }

        fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
            if wanted(meta) {
                Interest::always()
            } else {
                Interest::never()
            }
        }
    }

    /// Gets the events and does nothing with them: what delivering an event to a layer costs.
    pub struct Nothing;

    impl<S: tracing::Subscriber> Layer<S> for Nothing {}

    /// Reads every field of each event into a visitor that keeps nothing: what tracing charges any layer
    /// that reads an event's fields, observe's included.
    pub struct Visiting;

    struct Ignore;

    impl tracing::field::Visit for Ignore {
        fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
    }

    impl<S: tracing::Subscriber> Layer<S> for Visiting {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            event.record(&mut Ignore);
        }
    }

    /// The three subscribers compared: `[baseline (Nothing), visiting (Visiting), observe's layer]`.
    pub fn dispatches() -> [Dispatch; 3] {
        [
            Dispatch::new(tracing_subscriber::registry().with(Nothing.with_filter(SameEvents))),
            Dispatch::new(tracing_subscriber::registry().with(Visiting.with_filter(SameEvents))),
            Dispatch::new(tracing_subscriber::registry().with(observe::sqlx::layer())),
        ]
    }
}
