//! Metric emission: the packet sink under cadence, names and tags, and the flush of every site's aggregates.
//!
//! Nothing here runs on the scope enter/exit path: scopes only bump atomic buckets in their site, and the
//! flusher (a background thread, or [`flush`](crate::flush)) turns them into StatsD lines.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
#[cfg(unix)]
use std::os::unix::net::UnixDatagram;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cadence::prelude::*;
use cadence::{MetricSink, StatsdClient};

use crate::site::{sites, Outcome, Site};

/// The largest UDP payload we send: fits a 1500-byte Ethernet MTU with IP and UDP headers, as DogStatsD advises.
pub(crate) const UDP_PACKET_BYTES: usize = 1432;
/// The largest datagram we send on a Unix socket (the Datadog agent's default buffer).
pub(crate) const UNIX_PACKET_BYTES: usize = 8192;

/// Which dialect the metrics server speaks.
///
/// ```
/// let config = observe::Config::default().flavor(observe::Flavor::Statsd);
/// # drop(config);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// DogStatsD (the Datadog agent, and servers that accept its extensions, such as `statsd_exporter`):
    /// distributions (`|d`) and tags (`|#kind:handler,...`). The default.
    DogStatsd,
    /// Plain StatsD (Etsy statsd, Graphite-style servers): timers (`|ms`), no tags; the tags become part of the
    /// metric name instead (`observe.scope.duration.handler.shop.get_order.ok`). Such servers compute means and
    /// percentiles over lines, so a value goes out once per sample, up to about 100 lines per metric and flush;
    /// past that, in proportion to its count, with sample rates that keep the counts exact (the percentiles are
    /// then those of a sample, and the rarest values weigh at least one line).
    Statsd,
}

impl Flavor {
    pub(crate) fn parse(text: &str) -> Option<Flavor> {
        match text.trim().to_ascii_lowercase().as_str() {
            "dogstatsd" | "datadog" => Some(Flavor::DogStatsd),
            "statsd" => Some(Flavor::Statsd),
            _ => None,
        }
    }
}

/// Where metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// `host:port`, resolved when the emitter starts and, until it resolves, again at most once a second (the
    /// lines sent meanwhile are dropped and counted).
    Udp(String),
    /// A Unix datagram socket, such as the Datadog agent's `/var/run/datadog/dsd.socket`.
    #[cfg(unix)]
    Unix(PathBuf),
}

/// Counters of what the metric pipeline did, for health checks and tests.
///
/// ```
/// let d = observe::diagnostics();
/// assert!(d.metrics_sent >= d.packets_sent || d.packets_sent == 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnostics {
    /// StatsD lines handed to the socket successfully.
    pub metrics_sent: u64,
    /// StatsD lines lost: the server was unreachable, its address did not resolve, or the socket buffer was
    /// full (sends never block).
    pub metrics_dropped: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Flushes run (background and explicit).
    pub flushes: u64,
    /// Incoming `traceparent` / `X-Request-ID` headers that broke the rules and were ignored (a fresh trace ID
    /// was generated instead).
    pub rejected_trace_headers: u64,
}

pub(crate) struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    packets: AtomicU64,
    flushes: AtomicU64,
    pub(crate) rejected_headers: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    sent: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    packets: AtomicU64::new(0),
    flushes: AtomicU64::new(0),
    rejected_headers: AtomicU64::new(0),
};

/// What the metric pipeline has sent and dropped since the process started.
///
/// ```
/// let before = observe::diagnostics();
/// observe::flush();
/// assert!(observe::diagnostics().metrics_dropped >= before.metrics_dropped);
/// ```
pub fn diagnostics() -> Diagnostics {
    Diagnostics {
        metrics_sent: COUNTERS.sent.load(Ordering::Relaxed),
        metrics_dropped: COUNTERS.dropped.load(Ordering::Relaxed),
        packets_sent: COUNTERS.packets.load(Ordering::Relaxed),
        flushes: COUNTERS.flushes.load(Ordering::Relaxed),
        rejected_trace_headers: COUNTERS.rejected_headers.load(Ordering::Relaxed),
    }
}

/// How long an address that did not resolve is left alone before it is looked up again: a lookup can take
/// seconds, and one per packet would hold up a whole flush (and `observe::flush()`) that long.
const RESOLVE_RETRY: Duration = Duration::from_secs(1);

enum Transport {
    Udp {
        socket: UdpSocket,
        host: String,
        addr: Option<SocketAddr>,
        /// When `host` was last looked up without success.
        failed_at: Option<Instant>,
        /// Lookups made (for the tests).
        lookups: u32,
    },
    #[cfg(unix)]
    Unix { socket: UnixDatagram, path: PathBuf },
}

impl Transport {
    fn open(destination: &Destination) -> io::Result<Transport> {
        match destination {
            Destination::Udp(host) => {
                let addr = resolve(host);
                Ok(Transport::Udp {
                    socket: udp_socket_for(addr)?,
                    host: host.clone(),
                    addr,
                    failed_at: addr.is_none().then(Instant::now),
                    lookups: 1,
                })
            }
            #[cfg(unix)]
            Destination::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                Ok(Transport::Unix {
                    socket,
                    path: path.clone(),
                })
            }
        }
    }

    fn max_packet(&self) -> usize {
        match self {
            Transport::Udp { .. } => UDP_PACKET_BYTES,
            #[cfg(unix)]
            Transport::Unix { .. } => UNIX_PACKET_BYTES,
        }
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Udp {
                socket,
                host,
                addr,
                failed_at,
                lookups,
            } => {
                if addr.is_none() && failed_at.is_none_or(|at| at.elapsed() >= RESOLVE_RETRY) {
                    *lookups += 1;
                    match resolve(host) {
                        Some(found) => {
                            // Bound for the other family (the host did not resolve at start, and now gives an
                            // IPv6 address): a socket of the right one.
                            if socket
                                .local_addr()
                                .is_ok_and(|bound| bound.is_ipv6() != found.is_ipv6())
                            {
                                match udp_socket_for(Some(found)) {
                                    Ok(other) => *socket = other,
                                    Err(err) => {
                                        *failed_at = Some(Instant::now());
                                        return Err(err);
                                    }
                                }
                            }
                            *addr = Some(found);
                            *failed_at = None;
                        }
                        None => *failed_at = Some(Instant::now()),
                    }
                }
                match addr {
                    Some(addr) => socket.send_to(packet, *addr),
                    None => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("StatsD address {host:?} does not resolve"),
                    )),
                }
            }
            #[cfg(unix)]
            Transport::Unix { socket, path } => socket.send_to(packet, &*path),
        }
    }
}

fn resolve(host: &str) -> Option<SocketAddr> {
    host.to_socket_addrs().ok()?.next()
}

/// A non-blocking UDP socket of the family of `addr` (IPv4 when not known yet).
fn udp_socket_for(addr: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let bind: SocketAddr = match addr {
        Some(SocketAddr::V6(_)) => "[::]:0".parse().expect("valid literal"),
        _ => "0.0.0.0:0".parse().expect("valid literal"),
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

struct PacketBuffer {
    transport: Transport,
    buffer: Vec<u8>,
    lines: u64,
}

impl PacketBuffer {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.lines);
        let result = self.transport.send(&self.buffer);
        self.buffer.clear();
        match result {
            Ok(_) => {
                COUNTERS.sent.fetch_add(lines, Ordering::Relaxed);
                COUNTERS.packets.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                COUNTERS.dropped.fetch_add(lines, Ordering::Relaxed);
                Err(err)
            }
        }
    }
}

/// A cadence sink that packs lines into datagrams of at most the transport's packet size and counts every line
/// it could not deliver. Sends never block: a full socket buffer drops the packet (and counts it).
#[derive(Clone)]
pub(crate) struct PacketSink {
    inner: Arc<Mutex<PacketBuffer>>,
}

impl PacketSink {
    pub(crate) fn open(destination: &Destination) -> io::Result<PacketSink> {
        let transport = Transport::open(destination)?;
        let capacity = transport.max_packet();
        Ok(PacketSink {
            inner: Arc::new(Mutex::new(PacketBuffer {
                transport,
                buffer: Vec::with_capacity(capacity),
                lines: 0,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacketBuffer> {
        // A panic while holding the lock cannot leave the buffer inconsistent: keep using it.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MetricSink for PacketSink {
    fn emit(&self, metric: &str) -> io::Result<usize> {
        let mut state = self.lock();
        let max = state.transport.max_packet();
        if metric.len() > max {
            // No datagram can carry it whole (a scope name of kilobytes): dropped and counted, never sent
            // truncated or oversized.
            COUNTERS.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a metric line of {} bytes does not fit a packet of {max}", metric.len()),
            ));
        }
        let needed = metric.len() + usize::from(!state.buffer.is_empty());
        let mut result = Ok(());
        if state.buffer.len() + needed > max {
            result = state.send_buffer();
        }
        if !state.buffer.is_empty() {
            state.buffer.push(b'\n');
        }
        state.buffer.extend_from_slice(metric.as_bytes());
        state.lines += 1;
        result.map(|()| metric.len())
    }

    fn flush(&self) -> io::Result<()> {
        self.lock().send_buffer()
    }
}

/// Replaces what DogStatsD cannot carry inside a name or tag value (`:` `|` `,` `#`, `@`, whitespace, control
/// characters) with `_`. Rust paths keep their meaning: `shop::orders::get` becomes `shop.orders.get`.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.push('.');
            continue;
        }
        let ok = c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
        out.push(if ok { c } else { '_' });
    }
    out
}

/// Turns site aggregates into StatsD lines through a cadence client.
pub(crate) struct Emitter {
    client: StatsdClient,
    sink: PacketSink,
    flavor: Flavor,
    prefix: String,
    /// Plain StatsD: the timer values of the metric being flushed (full name, value, how many samples), sent
    /// together by [`Emitter::send_timers`].
    timers: std::cell::RefCell<Vec<(String, f64, u64)>>,
}

/// Plain StatsD: at most about this many `|ms` lines per metric and flush (see [`Emitter::send_timers`]).
const TIMER_LINES: u64 = 100;

impl Emitter {
    pub(crate) fn new(
        destination: &Destination,
        prefix: &str,
        flavor: Flavor,
        tags: &[(String, String)],
    ) -> io::Result<Emitter> {
        let sink = PacketSink::open(destination)?;
        // cadence drops a trailing dot from the prefix; so do the plain StatsD names written here.
        let prefix = sanitize(prefix).trim_end_matches('.').to_owned();
        let mut builder = StatsdClient::builder(&prefix, sink.clone()).with_error_handler(|_| {
            // Send failures are counted by the sink, line by line; nothing else can fail here.
        });
        if flavor == Flavor::DogStatsd {
            for (key, value) in tags {
                builder = builder.with_tag(sanitize(key), sanitize(value));
            }
        }
        Ok(Emitter {
            client: builder.build(),
            sink,
            flavor,
            prefix,
            timers: std::cell::RefCell::new(Vec::new()),
        })
    }

    /// Sends everything every site gathered since the last flush, then pushes out the last packet.
    pub(crate) fn flush(&mut self) {
        for site in sites() {
            self.flush_site(site);
        }
        self.flush_unscoped();
        let _ = self.client.flush();
        COUNTERS.flushes.fetch_add(1, Ordering::Relaxed);
    }

    fn flush_site(&self, site: &'static Site) {
        self.flush_site_metrics(site);
        self.send_timers();
    }

    fn flush_site_metrics(&self, site: &'static Site) {
        let mut scope = None;
        for outcome in Outcome::ALL {
            let Some(stats) = site.stats_if_any(outcome) else {
                continue;
            };
            let scope = scope.get_or_insert_with(|| sanitize(site.name()));
            let tags = Tags {
                kind: site.kind().as_str(),
                scope,
                outcome: outcome.as_str(),
            };
            let http = crate::query::http_used();
            let mut idle = 0;
            stats.idle.drain(|nanos, count| {
                idle += count;
                self.distribution(Some(&tags), "scope.duration", nanos as f64 / 1e6, count);
            });
            let mut busy = 0;
            if let Some(stats) = stats.busy.get() {
                stats.duration.drain(|nanos, count| {
                    busy += count;
                    self.distribution(Some(&tags), "scope.duration", nanos as f64 / 1e6, count);
                });
                stats.queries.drain(|queries, count| {
                    self.distribution(Some(&tags), "scope.queries", queries as f64, count);
                });
                stats.query_time.drain(|nanos, count| {
                    self.distribution(Some(&tags), "scope.query_time", nanos as f64 / 1e6, count);
                });
                // HTTP metrics only once the process made an outgoing call: no zeros for apps that never do.
                stats.http_calls.drain(|calls, count| {
                    if http {
                        self.distribution(Some(&tags), "scope.http_calls", calls as f64, count);
                    }
                });
                stats.http_time.drain(|nanos, count| {
                    if http {
                        self.distribution(Some(&tags), "scope.http_time", nanos as f64 / 1e6, count);
                    }
                });
            }
            if idle > 0 {
                // The executions without queries: zeros count too (the distribution of queries per request).
                self.distribution(Some(&tags), "scope.queries", 0.0, idle);
                self.distribution(Some(&tags), "scope.query_time", 0.0, idle);
                if http {
                    self.distribution(Some(&tags), "scope.http_calls", 0.0, idle);
                    self.distribution(Some(&tags), "scope.http_time", 0.0, idle);
                }
            }
            let calls = idle + busy;
            if calls > 0 {
                self.count(Some(&tags), "scope.calls", calls);
                site.add_flushed(calls);
            }
            for (name, counter) in [
                ("scope.n_plus_one", &stats.n_plus_one),
                ("scope.over_budget", &stats.over_budget),
            ] {
                let value = counter.swap(0, Ordering::Relaxed);
                if value > 0 {
                    self.count(Some(&tags), name, value);
                }
            }
        }
    }

    /// Queries recorded outside any scope: `<prefix>.unscoped.queries` and `<prefix>.unscoped.query_time`.
    fn flush_unscoped(&self) {
        let new = crate::query::UNSCOPED_PENDING.swap(0, Ordering::Relaxed);
        if new > 0 {
            self.count(None, "unscoped.queries", new);
        }
        crate::query::UNSCOPED_TIME.drain(|nanos, count| {
            self.distribution(None, "unscoped.query_time", nanos as f64 / 1e6, count);
        });
        self.send_timers();
    }

    /// One distribution value standing for `count` samples, with the scope's tags when there is a scope:
    /// DogStatsD, one line whose sample rate says so; plain StatsD, kept for [`Emitter::send_timers`].
    fn distribution(&self, tags: Option<&Tags<'_>>, name: &str, value: f64, count: u64) {
        match self.flavor {
            Flavor::DogStatsd => {
                let mut metric = with_scope_tags(self.client.distribution_with_tags(name, value), tags);
                if count > 1 {
                    metric = metric.with_sampling_rate(sample_rate(count));
                }
                metric.send();
            }
            Flavor::Statsd => {
                let name = statsd_name(&self.prefix, name, tags);
                self.timers.borrow_mut().push((name, value, count));
            }
        }
    }

    /// Plain StatsD: sends the timer values gathered for each metric. A StatsD server weighs a line's sample rate
    /// in its count only: its mean, median, percentiles and sum treat every line as one sample. So each value
    /// goes out as many times as it was seen, up to about [`TIMER_LINES`] lines per metric; past that, every
    /// value gets lines in proportion to its count (at least one), each with the sample rate that makes the count
    /// exact. (cadence's timers take whole milliseconds; sub-millisecond scopes need the fraction, so the lines
    /// are written here and handed to the same sink.)
    fn send_timers(&self) {
        let mut timers = self.timers.borrow_mut();
        // One metric's values together (the zeros of executions without queries come after the others).
        timers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut start = 0;
        while start < timers.len() {
            let name = &timers[start].0;
            let end = start + timers[start..].iter().take_while(|(other, ..)| other == name).count();
            let group = &timers[start..end];
            let total: u64 = group.iter().map(|(_, _, count)| count).sum();
            for (name, value, count) in group {
                let lines = if total <= TIMER_LINES {
                    *count
                } else {
                    // u128: no overflow whatever the counts.
                    let share =
                        (u128::from(*count) * u128::from(TIMER_LINES) + u128::from(total) / 2) / u128::from(total);
                    u64::try_from(share).unwrap_or(*count).clamp(1, *count)
                };
                let mut line = format!("{name}:{value}|ms");
                if lines < *count {
                    line.push_str(&format!("|@{}", sample_rate_for(*count, lines)));
                }
                for _ in 0..lines {
                    let _ = self.sink.emit(&line);
                }
            }
            start = end;
        }
        timers.clear();
    }

    fn count(&self, tags: Option<&Tags<'_>>, name: &str, value: u64) {
        match self.flavor {
            Flavor::DogStatsd => {
                with_scope_tags(self.client.count_with_tags(name, value), tags).send();
            }
            Flavor::Statsd => {
                let line = format!("{}:{}|c", statsd_name(&self.prefix, name, tags), value);
                let _ = self.sink.emit(&line);
            }
        }
    }
}

/// The sample rate that makes one line stand for `count` samples. The Datadog agent counts a line as
/// `uint(1 / rate)` samples, truncated: the rate is nudged down until `1 / rate` is at least `count` (`1.0 / 93.0`
/// alone gives 92.99..., counted as 92).
fn sample_rate(count: u64) -> f64 {
    sample_rate_for(count, 1)
}

/// The sample rate that makes `lines` lines stand for `count` samples (a server counts each as `1 / rate`).
fn sample_rate_for(count: u64, lines: u64) -> f64 {
    let per_line = count as f64 / lines as f64;
    let mut rate = 1.0 / per_line;
    while 1.0 / rate < per_line {
        rate = rate.next_down();
    }
    rate
}

struct Tags<'a> {
    kind: &'a str,
    scope: &'a str,
    outcome: &'a str,
}

/// DogStatsD: the scope's tags on a metric, when there is a scope.
fn with_scope_tags<'m, 'c, T>(
    metric: cadence::MetricBuilder<'m, 'c, T>,
    tags: Option<&Tags<'m>>,
) -> cadence::MetricBuilder<'m, 'c, T>
where
    T: cadence::Metric + From<String>,
{
    match tags {
        Some(tags) => metric
            .with_tag("kind", tags.kind)
            .with_tag("scope", tags.scope)
            .with_tag("outcome", tags.outcome),
        None => metric,
    }
}

/// Plain StatsD has no tags: they become part of the name, `prefix.scope.duration.<kind>.<scope>.<outcome>`.
fn statsd_name(prefix: &str, name: &str, tags: Option<&Tags<'_>>) -> String {
    let dot = if prefix.is_empty() { "" } else { "." };
    match tags {
        Some(tags) => format!("{prefix}{dot}{name}.{}.{}.{}", tags.kind, tags.scope, tags.outcome),
        None => format!("{prefix}{dot}{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_follows_dogstatsd_rules() {
        assert_eq!(sanitize("shop::orders::get_order"), "shop.orders.get_order");
        assert_eq!(sanitize("a:b|c,d#e@f g\nh"), "a_b_c_d_e_f_g_h");
        assert_eq!(sanitize("prod-eu/1.2.3"), "prod-eu/1.2.3");
        assert_eq!(sanitize("café"), "caf_");
    }

    fn listener(addr: &str) -> UdpSocket {
        let listener = UdpSocket::bind(addr).unwrap();
        listener.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        listener
    }

    #[test]
    fn an_address_that_does_not_resolve_is_not_looked_up_per_packet() {
        let mut transport = Transport::open(&Destination::Udp("statsd-agent.invalid:8125".to_owned())).unwrap();
        for _ in 0..20 {
            assert!(transport.send(b"a:1|c").is_err());
        }
        let Transport::Udp { lookups, addr, .. } = &transport else {
            unreachable!("a UDP destination")
        };
        assert!(addr.is_none());
        // The lookup at start, and at most one more if a lookup took a second.
        assert!(*lookups <= 2, "{lookups} lookups for 20 packets");
    }

    #[test]
    fn an_address_resolved_late_to_ipv6_gets_an_ipv6_socket() {
        let agent = listener("[::1]:0");
        // As `open` leaves it when the host did not resolve at start: an IPv4 socket, no address yet.
        let mut transport = Transport::Udp {
            socket: udp_socket_for(None).unwrap(),
            host: agent.local_addr().unwrap().to_string(),
            addr: None,
            failed_at: None,
            lookups: 0,
        };
        transport.send(b"late:1|c").unwrap();
        let mut buffer = [0; 64];
        let (n, _) = agent.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"late:1|c");
    }

    #[test]
    fn a_line_longer_than_a_packet_is_dropped_not_sent() {
        let agent = listener("127.0.0.1:0");
        let sink = PacketSink::open(&Destination::Udp(agent.local_addr().unwrap().to_string())).unwrap();
        let dropped = diagnostics().metrics_dropped;
        let long = format!("{}:1|c", "a".repeat(UDP_PACKET_BYTES));
        assert!(sink.emit(&long).is_err());
        assert!(diagnostics().metrics_dropped > dropped);
        sink.emit("short:1|c").unwrap();
        sink.flush().unwrap();
        let mut buffer = [0; 4096];
        let (n, _) = agent.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"short:1|c", "only the line that fits went out");
    }

    #[test]
    fn a_sample_rate_stands_for_its_count_at_the_agent() {
        // The agent counts a line as `uint(1 / rate)` samples, from the rate's text.
        for count in 2..20_000u64 {
            let text = format!("{}", sample_rate(count));
            let rate: f64 = text.parse().unwrap();
            assert_eq!((1.0 / rate) as u64, count, "count {count} sent as @{text}");
        }
    }

    #[test]
    fn a_prefix_with_a_trailing_dot_gives_one_dot_in_both_flavors() {
        for flavor in [Flavor::DogStatsd, Flavor::Statsd] {
            let agent = listener("127.0.0.1:0");
            let destination = Destination::Udp(agent.local_addr().unwrap().to_string());
            let emitter = Emitter::new(&destination, "shop.", flavor, &[]).unwrap();
            emitter.count(None, "unscoped.queries", 1);
            emitter.sink.flush().unwrap();
            let mut buffer = [0; 256];
            let (n, _) = agent.recv_from(&mut buffer).unwrap();
            let line = std::str::from_utf8(&buffer[..n]).unwrap();
            assert!(line.starts_with("shop.unscoped.queries:1|c"), "{flavor:?}: {line}");
        }
    }

    /// Plain StatsD weighs sample rates in its counts only: its mean and percentiles count lines. 999 fast calls
    /// and one slow one must not look like a median of 500 ms.
    #[test]
    fn plain_statsd_timers_keep_their_proportions() {
        let agent = listener("127.0.0.1:0");
        let destination = Destination::Udp(agent.local_addr().unwrap().to_string());
        let emitter = Emitter::new(&destination, "p", Flavor::Statsd, &[]).unwrap();
        let receive = |emitter: &Emitter| {
            emitter.send_timers();
            emitter.sink.flush().unwrap();
            let mut lines = Vec::new();
            agent.set_nonblocking(false).unwrap();
            let mut buffer = [0; 2048];
            loop {
                let (n, _) = agent.recv_from(&mut buffer).unwrap();
                lines.extend(std::str::from_utf8(&buffer[..n]).unwrap().lines().map(str::to_owned));
                agent.set_nonblocking(true).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                if agent.peek_from(&mut [0; 1]).is_err() {
                    return lines;
                }
            }
        };
        // Few samples: each its own line, no sample rate.
        emitter.distribution(None, "few", 5.0, 3);
        emitter.distribution(None, "few", 7.0, 2);
        let mut lines = receive(&emitter);
        lines.sort();
        assert_eq!(
            lines,
            ["p.few:5|ms", "p.few:5|ms", "p.few:5|ms", "p.few:7|ms", "p.few:7|ms"]
        );
        // Many: lines in proportion, the sample rates making the count exact.
        emitter.distribution(None, "many", 1.0, 999);
        emitter.distribution(None, "many", 1000.0, 1);
        let lines = receive(&emitter);
        let (mut fast, mut slow, mut counted) = (0, 0, 0.0);
        for line in &lines {
            let (value, rate) = match line.strip_prefix("p.many:").unwrap().split_once("|ms") {
                Some((value, "")) => (value, 1.0),
                Some((value, rate)) => (value, rate.strip_prefix("|@").unwrap().parse::<f64>().unwrap()),
                None => panic!("{line}"),
            };
            counted += 1.0 / rate;
            match value {
                "1" => fast += 1,
                "1000" => slow += 1,
                other => panic!("{other}"),
            }
        }
        assert_eq!((fast, slow), (TIMER_LINES, 1), "{lines:?}");
        assert!((counted - 1000.0_f64).abs() < 1e-6, "the server counts {counted}");
    }

    #[test]
    fn flavor_parse() {
        assert_eq!(Flavor::parse("DogStatsD"), Some(Flavor::DogStatsd));
        assert_eq!(Flavor::parse("statsd"), Some(Flavor::Statsd));
        assert_eq!(Flavor::parse("graphite"), None);
    }
}
