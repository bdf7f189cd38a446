//! Configuration, `init()`, the background flusher and `flush()`.

use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::logs::{layer_with, stdout_is_colour_terminal, LogFormat};
use crate::metrics::{Destination, Emitter, Flavor};
use crate::query::DEFAULT_N_PLUS_ONE_THRESHOLD;
use crate::site::Site;

const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Everything `observe` can be told: where metrics go and how they are named, and how logs are written.
///
/// [`Config::default()`] reads the environment; every method overrides one setting in code.
///
/// | setting | environment | default |
/// | --- | --- | --- |
/// | [`statsd_addr`](Config::statsd_addr) | `OBSERVE_STATSD_ADDR` (`host:port` or `unix:///path`), else `DD_DOGSTATSD_SOCKET`, else `DD_AGENT_HOST` + `DD_DOGSTATSD_PORT` | `127.0.0.1:8125` |
/// | [`flavor`](Config::flavor) | `OBSERVE_STATSD_FLAVOR` = `dogstatsd` \| `statsd` | `dogstatsd` |
/// | [`prefix`](Config::prefix) | `OBSERVE_METRIC_PREFIX` | `observe` |
/// | [`tag`](Config::tag) (DogStatsD only) | `DD_SERVICE`, `DD_ENV`, `DD_VERSION` become `service`, `env`, `version` | none |
/// | [`flush_interval`](Config::flush_interval) | | 5 s |
/// | [`max_queries`](Config::max_queries) | | no budget |
/// | [`n_plus_one_threshold`](Config::n_plus_one_threshold) | | 5 |
/// | [`log_format`](Config::log_format) | `OBSERVE_LOG` = `pretty` \| `json` | `pretty` |
/// | [`log_filter`](Config::log_filter) | `RUST_LOG` | `info` |
/// | [`log_writer`](Config::log_writer) | | standard output |
/// | [`install_subscriber`](Config::install_subscriber) | | `true` |
///
/// ```no_run
/// let _guard = observe::Config::default()
///     .prefix("shop")
///     .statsd_addr("127.0.0.1:8125")
///     .tag("team", "checkout")
///     .init()
///     .expect("observe starts");
/// ```
pub struct Config {
    prefix: String,
    destination: Result<Destination, InitError>,
    flavor: Result<Flavor, InitError>,
    tags: Vec<(String, String)>,
    flush_interval: Duration,
    log_format: Result<LogFormat, InitError>,
    log_writer: Option<BoxMakeWriter>,
    log_filter: Option<String>,
    install_subscriber: bool,
    max_queries: Option<u32>,
    n_plus_one_threshold: Option<u32>,
}

impl Default for Config {
    /// The configuration the environment describes (see the table on [`Config`]).
    fn default() -> Config {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let destination = if let Some(addr) = env("OBSERVE_STATSD_ADDR") {
            parse_destination(&addr).map_err(|e| e.naming("OBSERVE_STATSD_ADDR"))
        } else if let Some(socket) = env("DD_DOGSTATSD_SOCKET") {
            parse_destination(&format!("unix://{socket}")).map_err(|e| e.naming("DD_DOGSTATSD_SOCKET"))
        } else if let Some(host) = env("DD_AGENT_HOST") {
            let port = env("DD_DOGSTATSD_PORT").unwrap_or_else(|| "8125".to_owned());
            parse_destination(&format_host_port(&host, &port)).map_err(|e| e.naming("DD_AGENT_HOST/DD_DOGSTATSD_PORT"))
        } else {
            Ok(Destination::Udp("127.0.0.1:8125".to_owned()))
        };
        let flavor = match env("OBSERVE_STATSD_FLAVOR") {
            None => Ok(Flavor::DogStatsd),
            Some(text) => Flavor::parse(&text)
                .ok_or_else(|| InitError::invalid("OBSERVE_STATSD_FLAVOR", &text, "expected `dogstatsd` or `statsd`")),
        };
        let log_format = match env("OBSERVE_LOG") {
            None => Ok(LogFormat::Pretty),
            Some(text) => LogFormat::parse(&text)
                .ok_or_else(|| InitError::invalid("OBSERVE_LOG", &text, "expected `pretty` or `json`")),
        };
        let mut tags = Vec::new();
        for (variable, tag) in [("DD_SERVICE", "service"), ("DD_ENV", "env"), ("DD_VERSION", "version")] {
            if let Some(value) = env(variable) {
                tags.push((tag.to_owned(), value));
            }
        }
        Config {
            prefix: env("OBSERVE_METRIC_PREFIX").unwrap_or_else(|| "observe".to_owned()),
            destination,
            flavor,
            tags,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            log_format,
            log_writer: None,
            log_filter: None,
            install_subscriber: true,
            max_queries: None,
            n_plus_one_threshold: None,
        }
    }
}

fn format_host_port(host: &str, port: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn parse_destination(text: &str) -> Result<Destination, InitError> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix("unix://") {
        #[cfg(unix)]
        {
            if path.is_empty() {
                return Err(InitError::invalid("statsd address", text, "empty socket path"));
            }
            return Ok(Destination::Unix(path.into()));
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            return Err(InitError::invalid(
                "statsd address",
                text,
                "Unix sockets need a Unix platform",
            ));
        }
    }
    let text = text.strip_prefix("udp://").unwrap_or(text);
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(InitError::invalid("statsd address", text, "expected `host:port`"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(InitError::invalid(
            "statsd address",
            text,
            "expected `host:port` with a port from 0 to 65535",
        ));
    }
    Ok(Destination::Udp(text.to_owned()))
}

impl Config {
    /// The prefix of every metric name (`<prefix>.scope.duration`, ...). Default `observe`.
    ///
    /// ```
    /// let config = observe::Config::default().prefix("shop");
    /// # drop(config);
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Config {
        self.prefix = prefix.into();
        self
    }

    /// Where metrics go: `host:port` for UDP, or `unix:///path/to/socket` for a Unix datagram socket (the
    /// Datadog agent's `dsd.socket`). An address that does not parse makes [`init`](Config::init) fail; one
    /// that does not resolve yet is looked up again at most once a second (metrics meanwhile are counted as
    /// dropped). Once resolved, the address is kept for the life of the process: an agent that moves to
    /// another IP address needs the app restarted (or a stable name: a Unix socket, a node-local address).
    ///
    /// ```
    /// let config = observe::Config::default().statsd_addr("127.0.0.1:9125");
    /// # drop(config);
    /// ```
    pub fn statsd_addr(mut self, addr: impl AsRef<str>) -> Config {
        self.destination = parse_destination(addr.as_ref());
        self
    }

    /// DogStatsD (distributions and tags, the default) or plain StatsD (timers, tags folded into the name).
    ///
    /// ```
    /// let config = observe::Config::default().flavor(observe::Flavor::Statsd);
    /// # drop(config);
    /// ```
    pub fn flavor(mut self, flavor: Flavor) -> Config {
        self.flavor = Ok(flavor);
        self
    }

    /// Adds a tag to every metric (DogStatsD only). Keep values low-cardinality: never an ID or user input.
    ///
    /// ```
    /// let config = observe::Config::default().tag("region", "eu-west-1");
    /// # drop(config);
    /// ```
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Config {
        let key = key.into();
        self.tags.retain(|(k, _)| *k != key);
        self.tags.push((key, value.into()));
        self
    }

    /// How often the background flusher sends what the scopes gathered. Default 5 seconds.
    ///
    /// ```
    /// let config = observe::Config::default().flush_interval(std::time::Duration::from_secs(2));
    /// # drop(config);
    /// ```
    pub fn flush_interval(mut self, interval: Duration) -> Config {
        self.flush_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// The query budget of every scope without its own `max_queries`: an execution that runs more queries
    /// logs a warning and counts in `observe.scope.over_budget` (and fails the test under
    /// [`testing::strict_budgets`](crate::testing::strict_budgets)). Default, and `0`: no budget. Takes effect
    /// at [`init`](Config::init).
    ///
    /// ```
    /// let config = observe::Config::default().max_queries(50);
    /// # drop(config);
    /// ```
    pub fn max_queries(mut self, max: u32) -> Config {
        self.max_queries = Some(max);
        self
    }

    /// How many times one statement fingerprint may run in one execution before it is reported as an N+1
    /// pattern (a warning, and `observe.scope.n_plus_one`): reported when it runs once more. Default 5. `0`
    /// reports every statement at its first run; `u32::MAX` never reports. Takes effect at
    /// [`init`](Config::init).
    ///
    /// ```
    /// let config = observe::Config::default().n_plus_one_threshold(10);
    /// # drop(config);
    /// ```
    pub fn n_plus_one_threshold(mut self, repeats: u32) -> Config {
        self.n_plus_one_threshold = Some(repeats);
        self
    }

    /// Pretty lines or JSON objects.
    ///
    /// ```
    /// let config = observe::Config::default().log_format(observe::LogFormat::Json);
    /// # drop(config);
    /// ```
    pub fn log_format(mut self, format: LogFormat) -> Config {
        self.log_format = Ok(format);
        self
    }

    /// Where log lines go (default: standard output). Anything `tracing_subscriber` can write to.
    ///
    /// ```
    /// let config = observe::Config::default().log_writer(std::io::stderr);
    /// # drop(config);
    /// ```
    pub fn log_writer<W>(mut self, writer: W) -> Config
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.log_writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// The log filter, in `RUST_LOG` syntax (`info,sqlx=warn`); overrides `RUST_LOG`. Default: `RUST_LOG`,
    /// else `info`. Directives that do not parse are skipped.
    ///
    /// ```
    /// let config = observe::Config::default().log_filter("info,hyper=warn");
    /// # drop(config);
    /// ```
    pub fn log_filter(mut self, directives: impl Into<String>) -> Config {
        self.log_filter = Some(directives.into());
        self
    }

    /// Whether [`init`](Config::init) installs the global tracing subscriber (with the `RUST_LOG` filter and
    /// observe's log format) and forwards `log` records. Turn it off when you build your own subscriber with
    /// [`layer()`](crate::layer); scope metrics work either way. Without it, add what the subscriber would
    /// have had yourself: `observe::sqlx::layer()` (and `observe::sqlx::carry_scopes` around your subscriber)
    /// for sqlx's query metrics; and [`log_format`](Config::log_format), [`log_filter`](Config::log_filter) and
    /// [`log_writer`](Config::log_writer) no longer apply (`layer()` reads `OBSERVE_LOG` and writes to standard
    /// output).
    ///
    /// ```
    /// let config = observe::Config::default().install_subscriber(false);
    /// # drop(config);
    /// ```
    pub fn install_subscriber(mut self, install: bool) -> Config {
        self.install_subscriber = install;
        self
    }

    /// Starts observe: installs the log subscriber (unless turned off) and the metric flusher. Keep the
    /// returned guard alive for the life of the program: dropping it sends what is left and stops the flusher.
    ///
    /// ```no_run
    /// fn main() -> Result<(), observe::InitError> {
    ///     let _guard = observe::Config::default().prefix("shop").init()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn init(self) -> Result<Guard, InitError> {
        let destination = self.destination?;
        let flavor = self.flavor?;
        let log_format = self.log_format?;
        let mut slot = emitter_slot();
        if slot.is_some() {
            return Err(InitError::already_running());
        }
        let emitter = Emitter::new(&destination, &self.prefix, flavor, &self.tags)
            .map_err(|e| InitError::io("opening the StatsD socket", e))?;
        if self.install_subscriber {
            let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
            let filter = match &self.log_filter {
                Some(directives) => builder.parse_lossy(directives),
                None => builder.from_env_lossy(),
            };
            let (writer, ansi) = match self.log_writer {
                Some(writer) => (writer, false),
                None => (BoxMakeWriter::new(std::io::stdout), stdout_is_colour_terminal()),
            };
            // The filter belongs to the log output only: other layers (the sqlx query counter) see what they
            // ask for whatever RUST_LOG says.
            let subscriber =
                tracing_subscriber::registry().with(layer_with(log_format, writer, ansi).with_filter(filter));
            fn install<S: tracing::Subscriber + Send + Sync + 'static>(subscriber: S) -> Result<(), InitError> {
                tracing::subscriber::set_global_default(subscriber).map_err(|_| InitError::subscriber_already_set())
            }
            // Compiled out, nothing counts queries: the A/B baseline pays for none of it.
            #[cfg(all(feature = "sqlx", not(feature = "disabled")))]
            {
                let subscriber = subscriber.with(crate::sqlx::layer());
                // The scope carriers' wrapper only where installing cannot fail for a subscriber set before:
                // once turned into a dispatcher, it is the process's carrier lender. When this thread cannot
                // tell (a scoped default is active here), scopes open a span each instead (slower, as correct).
                if tracing::dispatcher::get_default(|current| current.is::<tracing::subscriber::NoSubscriber>()) {
                    install(crate::sqlx::carry_scopes(subscriber))?;
                } else {
                    install(subscriber)?;
                }
            }
            #[cfg(not(all(feature = "sqlx", not(feature = "disabled"))))]
            install(subscriber)?;
            // A `log` logger set by someone else stays in place; its records then carry no trace ID.
            let _ = tracing_log::LogTracer::init();
        }
        // Stored whether set or not: what an earlier `init` (an earlier test) set must not outlive it.
        crate::query::DEFAULT_MAX_QUERIES.store(self.max_queries.unwrap_or(0), Ordering::Relaxed);
        crate::query::N_PLUS_ONE_THRESHOLD.store(
            self.n_plus_one_threshold.unwrap_or(DEFAULT_N_PLUS_ONE_THRESHOLD),
            Ordering::Relaxed,
        );
        *slot = Some(emitter);
        drop(slot);
        let (stop, stopped) = mpsc::channel::<()>();
        let interval = self.flush_interval;
        let flusher = std::thread::Builder::new()
            .name("observe-flusher".to_owned())
            .spawn(move || {
                // Until the guard says stop (or is gone): flush at every interval.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    flush();
                }
            })
            .map_err(|e| InitError::io("starting the flusher thread", e))?;
        Ok(Guard {
            stop: Some(stop),
            flusher: Some(flusher),
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("prefix", &self.prefix)
            .field("destination", &self.destination)
            .field("flavor", &self.flavor)
            .field("tags", &self.tags)
            .field("flush_interval", &self.flush_interval)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("install_subscriber", &self.install_subscriber)
            .field("max_queries", &self.max_queries)
            .field("n_plus_one_threshold", &self.n_plus_one_threshold)
            .finish_non_exhaustive()
    }
}

static EMITTER: Mutex<Option<Emitter>> = Mutex::new(None);

fn emitter_slot() -> MutexGuard<'static, Option<Emitter>> {
    EMITTER.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts observe with the configuration the environment describes: `observe::Config::default().init()`.
///
/// ```no_run
/// #[observe::observe(command)]
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let _guard = observe::init()?;
///     tracing::info!("this line carries the command's trace ID");
///     Ok(())
/// }
/// ```
pub fn init() -> Result<Guard, InitError> {
    Config::default().init()
}

/// Sends everything recorded so far and returns once it is handed to the socket. Does nothing before
/// [`init`] (scopes keep aggregating in memory, in fixed space).
///
/// ```
/// #[observe::observe(task)]
/// fn job() {}
///
/// job();
/// observe::flush();
/// ```
pub fn flush() {
    if let Some(emitter) = emitter_slot().as_mut() {
        emitter.flush();
    }
}

/// Keeps observe running; dropping it sends what is left and stops the background flusher.
///
/// ```no_run
/// let guard = observe::init().unwrap();
/// // ... the program runs ...
/// drop(guard); // last flush
/// ```
#[must_use = "dropping the guard stops the metric flusher"]
pub struct Guard {
    stop: Option<Sender<()>>,
    flusher: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        if let Some(root) = crate::scope::outermost_site() {
            // Dropped inside a scope, typically `let _guard = observe::init()?` in an observed `main`: that
            // scope has not ended yet. Send everything else now, and the rest when the outermost scope ends.
            flush();
            DEFERRED_SHUTDOWN.store(ptr::from_ref(root).cast_mut(), Ordering::Release);
        } else {
            shut_down();
        }
    }
}

/// Set when the guard was dropped inside a scope: the end of that thread's outermost scope (whose site this
/// is) finishes the shutdown.
pub(crate) static DEFERRED_SHUTDOWN: AtomicPtr<Site> = AtomicPtr::new(ptr::null_mut());

/// The last flush, and the emitter's removal.
pub(crate) fn shut_down() {
    DEFERRED_SHUTDOWN.store(ptr::null_mut(), Ordering::Release);
    let mut slot = emitter_slot();
    if let Some(mut emitter) = slot.take() {
        emitter.flush();
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

/// Why [`init`] failed.
///
/// ```
/// let err = observe::Config::default().statsd_addr("no-port").init().unwrap_err();
/// assert!(err.to_string().contains("host:port"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    message: String,
}

impl InitError {
    fn invalid(what: &str, value: &str, expected: &str) -> InitError {
        // Show a bounded, escaped form of the value: it comes from the environment.
        let shown: String = value.chars().take(64).flat_map(char::escape_default).collect();
        InitError {
            message: format!("invalid {what} \"{shown}\": {expected}"),
        }
    }

    fn naming(mut self, variable: &str) -> InitError {
        self.message = format!("{} (from {variable})", self.message);
        self
    }

    fn io(what: &str, err: std::io::Error) -> InitError {
        InitError {
            message: format!("{what}: {err}"),
        }
    }

    fn already_running() -> InitError {
        InitError {
            message: "observe is already running: keep the first guard, or drop it before calling init again"
                .to_owned(),
        }
    }

    fn subscriber_already_set() -> InitError {
        InitError {
            message: "a global tracing subscriber is already set: use Config::install_subscriber(false) and add observe::layer() to yours".to_owned(),
        }
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InitError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        assert_eq!(
            parse_destination("localhost:8125"),
            Ok(Destination::Udp("localhost:8125".into()))
        );
        assert_eq!(
            parse_destination("udp://10.0.0.1:9125"),
            Ok(Destination::Udp("10.0.0.1:9125".into()))
        );
        assert_eq!(
            parse_destination("[::1]:8125"),
            Ok(Destination::Udp("[::1]:8125".into()))
        );
        #[cfg(unix)]
        assert_eq!(
            parse_destination("unix:///var/run/datadog/dsd.socket"),
            Ok(Destination::Unix("/var/run/datadog/dsd.socket".into()))
        );
        for bad in ["", "localhost", "host:port", ":8125", "host:99999", "unix://"] {
            assert!(parse_destination(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(format_host_port("::1", "8125"), "[::1]:8125");
    }

    #[test]
    fn errors_escape_the_value() {
        let err = parse_destination("evil\r\nvalue").unwrap_err();
        assert!(!err.to_string().contains('\n'));
        assert!(err.to_string().contains("\\r\\n"));
    }
}
