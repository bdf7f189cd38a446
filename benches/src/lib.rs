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
