//! # observe: observability by default
//!
//! Put `#[observe]` on your web handlers, background tasks and CLI commands. From then on every execution is a
//! **scope** with a kind, a name and an outcome; every log line written during it carries its **trace ID**; and
//! its duration and outcome are aggregated in memory and sent to StatsD / DogStatsD as distributions by a
//! background flusher.
//!
//! ```no_run
//! use observe::observe;
//!
//! #[derive(Debug)]
//! struct AppError;
//!
//! #[observe(handler)]
//! async fn get_order(id: u64) -> Result<String, AppError> {
//!     tracing::info!(id, "loading order"); // this line carries trace_id=<32 hex digits>
//!     Ok(format!("order {id}"))
//! }
//!
//! #[observe(task)]
//! fn send_reminders() {
//!     tracing::info!("sending reminders");
//! }
//!
//! #[observe(command)]
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let _guard = observe::init()?;
//!     send_reminders();
//!     Ok(())
//! }
//! ```
//!
//! What is sent, at most every few seconds (names under a configurable prefix, default `observe`; with
//! DogStatsD every `observe.scope.*` metric is tagged `kind`, `scope`, `outcome` and the global tags, with plain
//! StatsD, which has no tags, `kind`, `scope` and `outcome` go into the name):
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `observe.scope.calls` | count | executions |
//! | `observe.scope.duration` | distribution (ms) | how long each execution took |
//! | `observe.scope.queries` | distribution | database queries per execution (zeros included), see [`query`] |
//! | `observe.scope.query_time` | distribution (ms) | time in queries per execution |
//! | `observe.scope.n_plus_one` | count | N+1 patterns found |
//! | `observe.scope.over_budget` | count | executions over their query budget (`max_queries`) |
//! | `observe.scope.http_calls` / `http_time` | distribution | outgoing HTTP calls per execution and their time (once the process made one) |
//! | `observe.unscoped.queries` / `query_time` | count / distribution | queries run outside any scope |
//!
//! Trace IDs, arguments and user input never become tags. Configuration: [`Config`].
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod clock;
mod config;
mod fingerprint;
mod histogram;
mod logs;
mod metrics;
mod propagate;
pub mod query;
mod scope;
mod site;
pub mod testing;
mod trace_id;
mod w3c;

#[cfg(feature = "diesel")]
#[path = "integrations/diesel.rs"]
pub mod diesel;
#[cfg(feature = "reqwest")]
#[path = "integrations/reqwest.rs"]
pub mod reqwest;
#[cfg(feature = "rusqlite")]
#[path = "integrations/rusqlite.rs"]
pub mod rusqlite;
#[cfg(any(feature = "rusqlite", feature = "sqlx-sqlite"))]
#[path = "integrations/sqlite_trace.rs"]
mod sqlite_trace;
#[cfg(feature = "sqlx")]
#[path = "integrations/sqlx.rs"]
pub mod sqlx;
#[cfg(feature = "sqlx")]
#[path = "integrations/sqlx_carrier.rs"]
mod sqlx_carrier;
#[cfg(feature = "tower")]
#[path = "integrations/tower.rs"]
pub mod tower;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use config::{flush, init, Config, Guard, InitError};
pub use logs::{layer, EventFormat, LogFormat};
pub use metrics::{diagnostics, Diagnostics, Flavor};
pub use propagate::{resume, thread, Carrier, FutureExt, ParseCarrierError, TraceContext, WithContext};
#[cfg(feature = "tokio")]
pub use propagate::{spawn, spawn_blocking};
pub use scope::current_trace_id;
pub use site::{sites, Kind, Outcome, Site};
pub use trace_id::{ParseTraceIdError, TraceId};
pub use w3c::{trace_id_from_request_id, valid_request_id, SpanId, TraceParent, MAX_REQUEST_ID_LEN};

/// Observes every call of a function as a scope (see the crate documentation for what a scope gives you).
///
/// | argument | meaning | default |
/// | --- | --- | --- |
/// | `handler` \| `task` \| `command` | the scope's kind (the `kind` tag) | `function` |
/// | `name = "orders.get"` | the scope's name (the `scope` tag) | the function's path, `module_path!()` + name |
/// | `level = "info"` | level of the scope's `tracing` span | `"debug"` |
/// | `fields(id, customer)` | arguments recorded on the span (with `Debug`) | none: arguments are never recorded unless named |
/// | `max_queries = 20` | the query budget of one execution | [`Config::max_queries`], else none |
/// | `carrier = expr` | resume the trace a job carries (a [`Carrier`], an `Option` of one, or its text) | a new trace |
/// | `crate = path` | where the runtime is, if you renamed or re-exported it | `::observe` |
///
/// It goes on sync and `async fn`s, methods, trait impl methods, `fn main` and `#[tokio::main]`; on an inline
/// `mod` or `impl` block it observes every function inside ([`skip`] leaves one out). The outcome is `error`
/// when the function returns `Err(..)`, `panic` when it panics, `cancelled` when its future is dropped before
/// completing, `ok` otherwise. Bad arguments are compile errors at the offending token.
///
/// ```
/// #[observe::observe(handler, name = "orders.get")]
/// fn get_order(id: u64) -> Result<u64, std::io::Error> {
///     Ok(id)
/// }
/// assert_eq!(get_order(7).unwrap(), 7);
/// ```
pub use observe_macros::observe;

/// Leaves a function out of the `#[observe(...)]` on its module or `impl` block.
///
/// ```
/// struct OrderService;
///
/// #[observe::observe(handler)]
/// impl OrderService {
///     fn create(&self) {}          // observed, as a handler
///     #[observe::skip]
///     fn validate(&self) {}        // not observed
/// }
/// OrderService.create();
/// OrderService.validate();
/// assert!(observe::sites().any(|s| s.name().ends_with("::create")));
/// assert!(!observe::sites().any(|s| s.name().ends_with("::validate")));
/// ```
pub use observe_macros::skip;
