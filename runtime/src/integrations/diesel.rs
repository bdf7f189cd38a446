//! diesel: an `Instrumentation` (diesel 2.2+) that records every query a connection
//! runs into the current scope.
//!
//! ```
//! use diesel::connection::{Connection, SimpleConnection};
//!
//! // For every connection opened from now on:
//! observe::diesel::instrument_all_connections().unwrap();
//!
//! let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
//! // Or for one connection: conn.set_instrumentation(observe::diesel::instrumentation());
//!
//! #[observe::observe(task)]
//! fn migrate(conn: &mut diesel::SqliteConnection) {
//!     conn.batch_execute("CREATE TABLE t (id INTEGER)").unwrap();
//! }
//! let ((), captured) = observe::testing::capture(|| migrate(&mut conn));
//! assert_eq!(captured.scope("migrate").unwrap().queries, 1);
//! ```

use std::cell::RefCell;
use std::fmt::{self, Write};

use diesel::connection::{Instrumentation, InstrumentationEvent};

/// The instrumentation: time each query from `StartQuery` to `FinishQuery` and record it.
///
/// ```
/// let instrumentation = observe::diesel::instrumentation();
/// # drop(instrumentation);
/// ```
#[derive(Debug, Default)]
pub struct QueryInstrumentation {
    /// The clock's raw reading at `StartQuery`.
    started: Option<u64>,
}

/// A new [`QueryInstrumentation`], for `Connection::set_instrumentation`.
///
/// ```
/// use diesel::connection::Connection;
/// let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
/// conn.set_instrumentation(observe::diesel::instrumentation());
/// ```
pub fn instrumentation() -> QueryInstrumentation {
    QueryInstrumentation::default()
}

/// Makes observe's instrumentation the default of every diesel connection established from now on (diesel's
/// `set_default_instrumentation`). Fails only if diesel's global lock is poisoned.
///
/// ```
/// observe::diesel::instrument_all_connections().expect("diesel's instrumentation lock");
/// ```
pub fn instrument_all_connections() -> diesel::QueryResult<()> {
    diesel::connection::set_default_instrumentation(|| Some(Box::new(instrumentation())))
}

impl Instrumentation for QueryInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(crate::clock::now()),
            InstrumentationEvent::FinishQuery { query, .. } => {
                let elapsed = self.started.take().map(crate::clock::since).unwrap_or_default();
                with_sql(&query, |sql| crate::query::record(sql, elapsed));
            }
            _ => {}
        }
    }
}

/// diesel shows a query as `<sql> -- binds: [..]`. Only the SQL is wanted: formatting stops at the binds, so
/// parameters are never formatted, let alone recorded. The buffer is reused: no allocation once warm.
fn with_sql(query: &dyn fmt::Display, f: impl FnOnce(&str)) {
    thread_local! {
        static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
    }
    const BINDS: &str = " -- binds: ";
    struct UpToBinds<'a>(&'a mut String);
    impl Write for UpToBinds<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.push_str(s);
            if self.0.ends_with(BINDS) {
                let len = self.0.len() - BINDS.len();
                self.0.truncate(len);
                return Err(fmt::Error);
            }
            Ok(())
        }
    }
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            let _ = write!(UpToBinds(&mut buffer), "{query}");
            f(&buffer);
        }
        // Re-entered (a query run from inside a query's Display?): use a fresh buffer.
        Err(_) => {
            let mut fresh = String::new();
            let _ = write!(UpToBinds(&mut fresh), "{query}");
            f(&fresh);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(&'static str, &'static str);
    impl fmt::Display for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} -- binds: {}", self.0, self.1)
        }
    }

    #[test]
    fn binds_are_never_formatted() {
        let mut seen = String::new();
        with_sql(
            &Fake("SELECT * FROM users WHERE email = ?", "[\"ada@example.com\"]"),
            |sql| seen = sql.to_owned(),
        );
        assert_eq!(seen, "SELECT * FROM users WHERE email = ?");
    }
}
