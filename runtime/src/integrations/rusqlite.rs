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
    // The callback is registered with SQLite directly rather than through `Connection::trace_v2`, whose
    // trampoline converts the statement's text on every start event: the start only needs the statement's
    // address, and the text is read once, borrowed, at the end.
    // SAFETY: the handle is open for as long as `conn` is, and `conn` (not `Sync`) is not used elsewhere during
    // the call.
    unsafe { crate::sqlite_trace::register(conn.handle(), crate::sqlite_trace::Owner::Rusqlite) }
}
