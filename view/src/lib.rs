//! A local StatsD / DogStatsD receiver for observe's metrics, and the per-scope table it builds from them.
//!
//! What the table shows comes from the real metric packets observe sent, so it is what a Datadog agent or a
//! StatsD server would receive. Used by the demo (`cargo run --example demo`) and by `cargo observe top`.
//!
//! ```
//! let mut view = observe_view::View::default();
//! view.ingest("observe.scope.calls:3|c|#kind:handler,scope:shop.get_order,outcome:ok");
//! view.ingest("observe.scope.duration:12.5|d|@0.333333|#kind:handler,scope:shop.get_order,outcome:ok");
//! view.ingest("observe.scope.queries:2|d|@0.333333|#kind:handler,scope:shop.get_order,outcome:ok");
//! let row = view.row("shop.get_order").unwrap();
//! assert_eq!(row.calls(), 3);
//! assert_eq!(row.duration.quantile(0.5), Some(12.5));
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// One metric line: `name:value[:value...]|type[|@rate][|#tag:value,...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    /// The metric name, prefix included.
    pub name: &'a str,
    /// The values (DogStatsD 1.1 packs several in one line).
    pub values: Vec<f64>,
    /// `c`, `d`, `ms`, `h`, `g`...
    pub kind: &'a str,
    /// The sample rate (1 when absent).
    pub rate: f64,
    /// The tags.
    pub tags: Vec<(&'a str, &'a str)>,
}

impl<'a> Line<'a> {
    /// Parses one line; `None` when it is not StatsD.
    ///
    /// ```
    /// let line = observe_view::Line::parse("a.b:1:2|d|@0.5|#k:v").unwrap();
    /// assert_eq!((line.values.len(), line.rate, line.tags[0]), (2, 0.5, ("k", "v")));
    /// ```
    pub fn parse(raw: &'a str) -> Option<Line<'a>> {
        let (name, rest) = raw.split_once(':')?;
        let mut parts = rest.split('|');
        let values = parts
            .next()?
            .split(':')
            .map(|v| v.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect::<Option<Vec<f64>>>()?;
        let kind = parts.next()?;
        let mut line = Line {
            name,
            values,
            kind,
            rate: 1.0,
            tags: Vec::new(),
        };
        for part in parts {
            if let Some(rate) = part.strip_prefix('@') {
                line.rate = rate.parse().ok().filter(|r: &f64| *r > 0.0 && *r <= 1.0)?;
            } else if let Some(tags) = part.strip_prefix('#') {
                line.tags = tags.split(',').filter_map(|t| t.split_once(':')).collect();
            }
        }
        Some(line)
    }

    fn tag(&self, key: &str) -> Option<&'a str> {
        self.tags.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// A weighted distribution of the values one metric received (bounded: observe sends bucket values).
#[derive(Debug, Clone, Default)]
pub struct Distribution {
    /// `value bits -> weight`.
    weights: BTreeMap<u64, f64>,
    total: f64,
}

impl Distribution {
    fn add(&mut self, value: f64, weight: f64) {
        // Non-negative finite values only: their bit patterns sort like the values.
        let value = value.max(0.0);
        *self.weights.entry(value.to_bits()).or_default() += weight;
        self.total += weight;
    }

    /// How many samples (the sum of the weights).
    ///
    /// ```
    /// assert_eq!(observe_view::Distribution::default().count(), 0.0);
    /// ```
    pub fn count(&self) -> f64 {
        self.total
    }

    /// The `q` quantile (0 to 1), `None` when empty.
    ///
    /// ```
    /// assert_eq!(observe_view::Distribution::default().quantile(0.5), None);
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total <= 0.0 {
            return None;
        }
        let target = (q.clamp(0.0, 1.0) * self.total).max(f64::MIN_POSITIVE);
        let mut seen = 0.0;
        for (bits, weight) in &self.weights {
            seen += weight;
            if seen + 1e-9 >= target {
                return Some(f64::from_bits(*bits));
            }
        }
        self.max()
    }

    /// The largest value.
    ///
    /// ```
    /// assert_eq!(observe_view::Distribution::default().max(), None);
    /// ```
    pub fn max(&self) -> Option<f64> {
        self.weights.keys().next_back().map(|bits| f64::from_bits(*bits))
    }

    /// The weighted mean.
    ///
    /// ```
    /// assert_eq!(observe_view::Distribution::default().mean(), None);
    /// ```
    pub fn mean(&self) -> Option<f64> {
        (self.total > 0.0).then(|| {
            self.weights
                .iter()
                .map(|(bits, w)| f64::from_bits(*bits) * w)
                .sum::<f64>()
                / self.total
        })
    }
}

/// Everything received for one scope.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// `handler`, `task`, `command`, `function`.
    pub kind: String,
    /// Calls per outcome (`ok`, `error`, `panic`, `cancelled`).
    pub outcomes: BTreeMap<String, u64>,
    /// Durations in milliseconds.
    pub duration: Distribution,
    /// Queries per execution.
    pub queries: Distribution,
    /// Query time per execution, milliseconds.
    pub query_time: Distribution,
    /// N+1 patterns reported.
    pub n_plus_one: u64,
    /// Executions over their query budget.
    pub over_budget: u64,
}

impl Row {
    /// All calls, whatever the outcome.
    ///
    /// ```
    /// assert_eq!(observe_view::Row::default().calls(), 0);
    /// ```
    pub fn calls(&self) -> u64 {
        self.outcomes.values().sum()
    }
}

/// The per-scope table built from metric lines.
#[derive(Debug, Clone, Default)]
pub struct View {
    rows: BTreeMap<String, Row>,
    /// Lines that were not StatsD, or not observe's.
    pub ignored: u64,
    /// Lines taken in.
    pub lines: u64,
}

impl View {
    /// Takes in one line (anything not from observe is counted in `ignored`).
    ///
    /// ```
    /// let mut view = observe_view::View::default();
    /// view.ingest("not statsd");
    /// assert_eq!(view.ignored, 1);
    /// ```
    pub fn ingest(&mut self, raw: &str) {
        let Some(line) = Line::parse(raw.trim()) else {
            self.ignored += 1;
            return;
        };
        let (Some(scope), Some(metric)) = (line.tag("scope"), line.name.split(".scope.").nth(1)) else {
            self.ignored += 1;
            return;
        };
        self.lines += 1;
        let row = self.rows.entry(scope.to_owned()).or_default();
        if let Some(kind) = line.tag("kind") {
            kind.clone_into(&mut row.kind);
        }
        let weight = 1.0 / line.rate;
        let outcome = line.tag("outcome").unwrap_or("ok");
        for value in &line.values {
            match metric {
                "calls" => *row.outcomes.entry(outcome.to_owned()).or_default() += value.round() as u64,
                "duration" => row.duration.add(*value, weight),
                "queries" => row.queries.add(*value, weight),
                "query_time" => row.query_time.add(*value, weight),
                "n_plus_one" => row.n_plus_one += value.round() as u64,
                "over_budget" => row.over_budget += value.round() as u64,
                _ => {}
            }
        }
    }

    /// Takes in a datagram: one line or several, newline-separated.
    ///
    /// ```
    /// let mut view = observe_view::View::default();
    /// view.ingest_packet(b"observe.scope.calls:1|c|#scope:a,kind:task,outcome:ok\nobserve.scope.calls:2|c|#scope:b,kind:task,outcome:ok");
    /// assert_eq!(view.rows().count(), 2);
    /// ```
    pub fn ingest_packet(&mut self, packet: &[u8]) {
        for line in String::from_utf8_lossy(packet).lines() {
            self.ingest(line);
        }
    }

    /// The row of `scope` (the `scope` tag value, as sent).
    ///
    /// ```
    /// assert!(observe_view::View::default().row("x").is_none());
    /// ```
    pub fn row(&self, scope: &str) -> Option<&Row> {
        self.rows.get(scope)
    }

    /// Every row, by scope name.
    ///
    /// ```
    /// assert_eq!(observe_view::View::default().rows().count(), 0);
    /// ```
    pub fn rows(&self) -> impl Iterator<Item = (&str, &Row)> {
        self.rows.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The table as text: one line per scope, handlers first.
    ///
    /// ```
    /// let mut view = observe_view::View::default();
    /// view.ingest("observe.scope.calls:1|c|#kind:task,scope:jobs.send,outcome:ok");
    /// assert!(view.render().contains("jobs.send"));
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        // As wide as the longest scope name, within reason.
        let width = self
            .rows
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 48);
        let _ = writeln!(
            out,
            "{:<width$} {:<8} {:>6} {:>6} {:>5} {:>5}  {:>8} {:>8} {:>8}  {:>19} {:>9} {:>4}",
            "scope",
            "kind",
            "calls",
            "error",
            "panic",
            "cancl",
            "p50 ms",
            "p95 ms",
            "max ms",
            "queries p50/p95/max",
            "query ms",
            "N+1"
        );
        let order = |kind: &str| match kind {
            "handler" => 0,
            "task" => 1,
            "command" => 2,
            _ => 3,
        };
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| order(&a.1.kind).cmp(&order(&b.1.kind)).then(a.0.cmp(b.0)));
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        let n = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        for (scope, row) in rows {
            let outcome = |o: &str| row.outcomes.get(o).copied().unwrap_or(0);
            let queries = format!(
                "{}/{}/{}",
                n(row.queries.quantile(0.5)),
                n(row.queries.quantile(0.95)),
                n(row.queries.max())
            );
            let _ = writeln!(
                out,
                "{:<width$} {:<8} {:>6} {:>6} {:>5} {:>5}  {:>8} {:>8} {:>8}  {:>19} {:>9} {:>4}",
                truncate(scope, width),
                row.kind,
                row.calls(),
                outcome("error"),
                outcome("panic"),
                outcome("cancelled"),
                ms(row.duration.quantile(0.5)),
                ms(row.duration.quantile(0.95)),
                ms(row.duration.max()),
                queries,
                ms(row.query_time.mean()),
                row.n_plus_one,
            );
        }
        out
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let tail: String = text
        .chars()
        .rev()
        .take(width - 1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// A UDP receiver on its own thread, feeding a [`View`].
pub struct Receiver {
    addr: SocketAddr,
    view: Arc<Mutex<View>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Binds `addr` (`127.0.0.1:0` for any free port) and starts receiving.
    ///
    /// ```
    /// let receiver = observe_view::Receiver::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(receiver.view().rows().count(), 0);
    /// ```
    pub fn bind(addr: &str) -> io::Result<Receiver> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let view = Arc::new(Mutex::new(View::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (view, stop) = (view.clone(), stop.clone());
            std::thread::Builder::new().name("observe-view".into()).spawn(move || {
                let mut buffer = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buffer) {
                        lock(&view).ingest_packet(&buffer[..n]);
                    }
                }
            })?
        };
        Ok(Receiver {
            addr,
            view,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    ///
    /// ```
    /// let receiver = observe_view::Receiver::bind("127.0.0.1:0").unwrap();
    /// assert!(receiver.addr().port() > 0);
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The table so far (a copy).
    ///
    /// ```
    /// let receiver = observe_view::Receiver::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(receiver.view().lines, 0);
    /// ```
    pub fn view(&self) -> View {
        lock(&self.view).clone()
    }

    /// Waits until no packet has arrived for `quiet`, at most `limit`; then returns the table.
    ///
    /// ```
    /// use std::time::Duration;
    /// let receiver = observe_view::Receiver::bind("127.0.0.1:0").unwrap();
    /// let view = receiver.settle(Duration::from_millis(20), Duration::from_millis(100));
    /// assert_eq!(view.lines, 0);
    /// ```
    pub fn settle(&self, quiet: Duration, limit: Duration) -> View {
        let start = std::time::Instant::now();
        let mut last = lock(&self.view).lines;
        let mut since = std::time::Instant::now();
        while start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(10));
            let now = lock(&self.view).lines;
            if now != last {
                last = now;
                since = std::time::Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        self.view()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(view: &Mutex<View>) -> MutexGuard<'_, View> {
    view.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_weights() {
        let mut d = Distribution::default();
        d.add(1.0, 90.0);
        d.add(100.0, 10.0);
        assert_eq!(d.quantile(0.5), Some(1.0));
        assert_eq!(d.quantile(0.95), Some(100.0));
        assert_eq!(d.max(), Some(100.0));
        assert!((d.mean().unwrap() - 10.9).abs() < 1e-9);
    }

    #[test]
    fn real_observe_lines() {
        let mut view = View::default();
        for line in [
            "observe.scope.calls:6|c|#kind:handler,scope:quickstart.get_order,outcome:ok",
            "observe.scope.calls:2|c|#kind:handler,scope:quickstart.get_order,outcome:error",
            "observe.scope.duration:5.63|d|@0.25|#kind:handler,scope:quickstart.get_order,outcome:ok",
            "observe.scope.duration:3.2|d|@0.5|#kind:handler,scope:quickstart.get_order,outcome:ok",
            "observe.scope.n_plus_one:1|c|#kind:handler,scope:quickstart.get_order,outcome:ok",
            "garbage",
        ] {
            view.ingest(line);
        }
        let row = view.row("quickstart.get_order").unwrap();
        assert_eq!(row.calls(), 8);
        assert_eq!(row.outcomes["error"], 2);
        assert_eq!(row.duration.count(), 6.0);
        assert_eq!(row.n_plus_one, 1);
        assert_eq!(view.ignored, 1);
        assert!(view.render().contains("quickstart.get_order"));
    }

    #[test]
    fn hostile_lines_do_not_panic() {
        let mut view = View::default();
        for line in [
            "",
            ":",
            "a:|",
            "a:1|c|@0",
            "a:1|c|@nan",
            "a:inf|d|#scope:x",
            "é:1|c|#scope:é,kind:é",
            "a:1|d|#scope",
        ] {
            view.ingest(line);
        }
        assert_eq!(view.lines, 0);
    }
}
