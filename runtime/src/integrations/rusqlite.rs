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
use std::ffi::{c_int, c_uint, c_void, CStr};
use std::time::Duration;

use rusqlite::ffi;

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
    // SAFETY: the handle is valid for as long as `conn` is; the callback is a plain function without context,
    // valid for the life of the process, and SQLite drops it with the connection.
    unsafe {
        ffi::sqlite3_trace_v2(
            conn.handle(),
            ffi::SQLITE_TRACE_STMT | ffi::SQLITE_TRACE_PROFILE,
            Some(on_trace),
            std::ptr::null_mut(),
        );
    }
}

/// Statements started and not yet finished on this thread: `(prepared statement address, start)`. Statements
/// can interleave (a loop that runs a query per row of another), so the finish is matched by statement, newest
/// first.
/// Bounded: the oldest entry gives way.
const RUNNING: usize = 16;

/// A ring of `(statement, start)` and the index of the next slot.
type Started = ([(usize, Option<u64>); RUNNING], usize);

thread_local! {
    static STARTED: RefCell<Started> = const { RefCell::new(([(0, None); RUNNING], 0)) };
}

/// SQLite's trace callback (`sqlite3_trace_v2`): `statement` is the prepared statement; `detail` is the
/// unexpanded SQL text (or a `-- comment` for a trigger) for a start event, and a pointer to SQLite's elapsed
/// nanoseconds for a profile event.
unsafe extern "C" fn on_trace(event: c_uint, _: *mut c_void, statement: *mut c_void, detail: *mut c_void) -> c_int {
    // Nothing below panics; if it ever did, the panic must not unwind into SQLite.
    let _ = std::panic::catch_unwind(|| match event {
        ffi::SQLITE_TRACE_STMT => {
            // SAFETY: for a start event, `detail` is a NUL-terminated string: its first byte is readable, and
            // the second when the first is not the terminator.
            let comment = unsafe {
                let text = detail.cast::<u8>();
                *text == b'-' && *text.add(1) == b'-'
            };
            // Trigger sub-programs report a `-- comment` here: not a statement of their own.
            if !comment {
                started(statement as usize);
            }
        }
        ffi::SQLITE_TRACE_PROFILE => {
            // SAFETY: for a profile event, `statement` is the prepared statement that finished and `detail`
            // points to its elapsed time (an i64 of nanoseconds); `sqlite3_sql` returns its text, NUL-terminated
            // and owned by the statement, alive for the rest of this callback.
            let (text, sqlite_nanos) = unsafe {
                let text = ffi::sqlite3_sql(statement.cast());
                ((!text.is_null()).then(|| CStr::from_ptr(text)), *detail.cast::<i64>())
            };
            let elapsed = match finished(statement as usize) {
                Some(start) => crate::clock::since(start),
                None => Duration::from_nanos(u64::try_from(sqlite_nanos).unwrap_or_default()),
            };
            // rusqlite only prepares UTF-8 text with `prepare_v2`/`v3`, which keep it: the other cases are
            // still counted, with what text there is.
            match text.map(CStr::to_str) {
                Some(Ok(sql)) => crate::query::record(sql, elapsed),
                Some(Err(_)) => crate::query::record(&text.map(CStr::to_string_lossy).unwrap_or_default(), elapsed),
                None => crate::query::record("", elapsed),
            }
        }
        _ => {}
    });
    0
}

fn started(statement: usize) {
    let _ = STARTED.try_with(|started| {
        if let Ok(mut started) = started.try_borrow_mut() {
            let (slots, next) = &mut *started;
            slots[*next % RUNNING] = (statement, Some(crate::clock::now()));
            *next = next.wrapping_add(1);
        }
    });
}

/// The start of `statement`, newest first, taken out of the ring.
fn finished(statement: usize) -> Option<u64> {
    STARTED
        .try_with(|started| {
            let mut started = started.try_borrow_mut().ok()?;
            let (slots, next) = &mut *started;
            (0..RUNNING)
                .map(|back| (next.wrapping_sub(back + 1)) % RUNNING)
                .find(|&i| slots[i].0 == statement && slots[i].1.is_some())
                .and_then(|i| slots[i].1.take())
        })
        .ok()
        .flatten()
}
