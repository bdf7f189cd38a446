//! rusqlite: every statement a connection runs is recorded into the current scope, timed by SQLite itself.
//!
//! ```
//! # fn main() -> rusqlite::Result<()> {
//! let conn = rusqlite::Connection::open_in_memory()?;
//! observe::rusqlite::instrument(&conn);
//!
//! #[observe::observe(handler)]
//! fn count(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
//!     conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
//! }
//! let ((), captured) = observe::testing::capture(|| { count(&conn).unwrap(); });
//! assert_eq!(captured.scope("count").unwrap().queries, 1);
//! # Ok(())
//! # }
//! ```

use std::cell::RefCell;

use std::time::Duration;

use rusqlite::trace::{TraceEvent, TraceEventCodes};

use crate::scope::clock;

/// Records every statement `conn` runs: the statement text with its placeholders (never the bound values),
/// timed from SQLite's start event to its profile event. (SQLite's own profile time has millisecond
/// granularity, too coarse for most queries; it is used only if the start was not seen.) Replaces any
/// `trace_v2` callback set before.
///
/// The callback runs on the thread that runs the statement, so it lands in that thread's current scope; a
/// statement run outside any scope is counted as unscoped.
///
/// ```
/// let conn = rusqlite::Connection::open_in_memory().unwrap();
/// observe::rusqlite::instrument(&conn);
/// ```
pub fn instrument(conn: &rusqlite::Connection) {
    conn.trace_v2(
        TraceEventCodes::SQLITE_TRACE_STMT | TraceEventCodes::SQLITE_TRACE_PROFILE,
        Some(on_trace),
    );
}

/// Statements started and not yet finished on this thread: `(statement key, start)`. Statements can
/// interleave (a loop that runs a query per row of another), so the finish is matched by statement, newest
/// first.
/// Bounded: the oldest entry gives way.
const RUNNING: usize = 16;

/// A ring of `(statement key, start)` and the index of the next slot.
type Started = ([(u64, Option<u64>); RUNNING], usize);

thread_local! {
    static STARTED: RefCell<Started> = const { RefCell::new(([(0, None); RUNNING], 0)) };
}

/// Identifies a statement between its start and profile events: the address and length of its SQL text,
/// which SQLite keeps in the prepared statement (no hashing of the text).
fn statement_key(sql: &str) -> u64 {
    (sql.as_ptr() as u64).rotate_left(16) ^ sql.len() as u64
}

fn on_trace(event: TraceEvent<'_>) {
    match event {
        // Trigger sub-programs report a `-- comment` here: not a statement of their own.
        TraceEvent::Stmt(statement, text) if !text.starts_with("--") => {
            let hash = statement_key(&statement.sql());
            let _ = STARTED.try_with(|started| {
                if let Ok(mut started) = started.try_borrow_mut() {
                    let (slots, next) = &mut *started;
                    slots[*next % RUNNING] = (hash, Some(clock().raw()));
                    *next = next.wrapping_add(1);
                }
            });
        }
        TraceEvent::Profile(statement, sqlite_elapsed) => {
            let sql = statement.sql();
            let hash = statement_key(&sql);
            let started = STARTED
                .try_with(|started| {
                    let mut started = started.try_borrow_mut().ok()?;
                    let (slots, next) = &mut *started;
                    (0..RUNNING)
                        .map(|back| (next.wrapping_sub(back + 1)) % RUNNING)
                        .find(|&i| slots[i].0 == hash && slots[i].1.is_some())
                        .and_then(|i| slots[i].1.take())
                })
                .ok()
                .flatten();
            let elapsed = started.map_or(sqlite_elapsed, |s| {
                Duration::from_nanos(clock().delta_as_nanos(s, clock().raw()))
            });
            crate::query::record(&sql, elapsed);
        }
        _ => {}
    }
}
