//! Shared helpers for observe's integration tests: a StatsD receiver on a real UDP socket and a log capture.

use std::io;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A StatsD server stand-in: a UDP socket on loopback that collects every line it receives.
pub struct StatsdReceiver {
    socket: UdpSocket,
}

impl StatsdReceiver {
    /// Binds `127.0.0.1:0`.
    pub fn bind() -> io::Result<StatsdReceiver> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(StatsdReceiver { socket })
    }

    /// The `host:port` to configure observe with.
    pub fn addr(&self) -> String {
        self.socket.local_addr().expect("bound socket").to_string()
    }

    /// Every datagram received until none arrives for 50 ms (or 5 s pass), as raw packets.
    pub fn packets(&self) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut packets = Vec::new();
        let mut buffer = vec![0u8; 65536];
        while Instant::now() < deadline {
            match self.socket.recv(&mut buffer) {
                Ok(n) => packets.push(buffer[..n].to_vec()),
                Err(_) => break,
            }
        }
        packets
    }

    /// Every line received (see [`StatsdReceiver::packets`]), parsed.
    pub fn lines(&self) -> Vec<Line> {
        self.packets()
            .iter()
            .flat_map(|p| {
                String::from_utf8(p.clone())
                    .expect("metric packets are UTF-8")
                    .lines()
                    .map(|l| Line::parse(l).unwrap_or_else(|| panic!("malformed StatsD line {l:?}")))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// One StatsD / DogStatsD line: `name:value|type|@rate|#tag:value,...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub value: f64,
    pub kind: String,
    pub rate: f64,
    pub tags: Vec<(String, String)>,
    pub raw: String,
}

impl Line {
    /// Parses one line; `None` if it is not valid StatsD.
    pub fn parse(raw: &str) -> Option<Line> {
        let (name, rest) = raw.split_once(':')?;
        let mut parts = rest.split('|');
        let value = parts.next()?.parse().ok()?;
        let kind = parts.next()?.to_owned();
        let mut rate = 1.0;
        let mut tags = Vec::new();
        for part in parts {
            if let Some(r) = part.strip_prefix('@') {
                rate = r.parse().ok()?;
            } else if let Some(t) = part.strip_prefix('#') {
                for tag in t.split(',') {
                    let (k, v) = tag.split_once(':')?;
                    tags.push((k.to_owned(), v.to_owned()));
                }
            } else {
                return None;
            }
        }
        Some(Line {
            name: name.to_owned(),
            value,
            kind,
            rate,
            tags,
            raw: raw.to_owned(),
        })
    }

    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// How many samples the line stands for (`1 / rate`).
    pub fn weight(&self) -> f64 {
        1.0 / self.rate
    }
}

/// Sum of the `calls` counts for one scope and outcome.
pub fn calls(lines: &[Line], scope: &str, outcome: &str) -> u64 {
    lines
        .iter()
        .filter(|l| {
            l.name.ends_with(".scope.calls") && l.tag("scope") == Some(scope) && l.tag("outcome") == Some(outcome)
        })
        .map(|l| l.value as u64)
        .sum()
}

/// The lines of `metric` (full name) tagged with `scope`.
pub fn lines_for<'a>(lines: &'a [Line], metric: &str, scope: &str) -> Vec<&'a Line> {
    lines
        .iter()
        .filter(|l| l.name == metric && l.tag("scope") == Some(scope))
        .collect()
}

/// The `(value, weight)` pairs of a distribution for one scope, sorted by value.
pub fn distribution(lines: &[Line], metric: &str, scope: &str) -> Vec<(f64, f64)> {
    let mut values: Vec<(f64, f64)> = lines_for(lines, metric, scope)
        .iter()
        .map(|l| (l.value, l.weight()))
        .collect();
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    values
}

/// A subscriber with observe's pretty format writing into `capture`, for a test that sets it as its thread's
/// default (when another test of the binary owns the global one).
pub fn capturing_subscriber(capture: &Capture) -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .event_format(observe::EventFormat::new(observe::LogFormat::Pretty))
            .with_writer(capture.clone())
            .with_ansi(false),
    )
}

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Clone, Default)]
pub struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.buffer.lock().unwrap().clone()).expect("log lines are UTF-8")
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }
}

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// observe's metric pipeline is one per process: tests of one binary that start it take turns through this.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// observe started for a test: metrics to a fresh [`StatsdReceiver`], log lines (pretty, `info`) into a
/// [`Capture`], the global subscriber installed. One per test binary (the subscriber is global).
pub struct Started {
    /// Where the metric packets arrive.
    pub receiver: StatsdReceiver,
    /// The log lines.
    pub capture: Capture,
    /// Drop it (or call `observe::flush()`) before reading what was sent.
    pub guard: observe::Guard,
}

/// Starts observe as [`Started`] describes.
pub fn start() -> Started {
    let capture = Capture::default();
    let receiver = StatsdReceiver::bind().expect("a loopback UDP socket");
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .log_format(observe::LogFormat::Pretty)
        .log_writer(capture.clone())
        .log_filter("info")
        .init()
        .expect("observe starts");
    Started {
        receiver,
        capture,
        guard,
    }
}

/// A multi-threaded tokio runtime with `workers` threads, timers and I/O on.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// What sqlx's SQLite worker does with a statement: enter the span it was sent with, and report the statement
/// (`SELECT late`, 250 µs) as sqlx's `sqlx::query` event.
pub fn run_like_the_sqlx_worker(span: &tracing::Span) {
    let _entered = span.enter();
    let elapsed = std::time::Duration::from_micros(250);
    tracing::debug!(
        target: "sqlx::query",
        summary = "SELECT late",
        db.statement = "",
        rows_affected = 0u64,
        rows_returned = 1u64,
        ?elapsed,
        elapsed_secs = elapsed.as_secs_f64(),
    );
}
