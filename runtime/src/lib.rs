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
//! What is sent, at most every few seconds (names under a configurable prefix, default `observe`):
//!
//! | metric | type | tags |
//! | --- | --- | --- |
//! | `observe.scope.calls` | count | `kind`, `scope`, `outcome`, global tags |
//! | `observe.scope.duration` | distribution, milliseconds | `kind`, `scope`, `outcome`, global tags |
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

/// Observes every call of a function as a scope. See the crate documentation.
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
