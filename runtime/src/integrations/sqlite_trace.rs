//! SQLite's own statement tracing (`sqlite3_trace_v2`), shared by the rusqlite hook and the sqlx SQLite hook:
//! each statement is timed from its start event to its profile event and recorded where it ran.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_uint, c_void, CStr};
use std::time::Duration;

use libsqlite3_sys as ffi;

/// Who registered the callback: the context pointer tells sqlx's connections (non-null) from rusqlite's.
#[derive(Clone, Copy)]
pub(crate) enum Owner {
    #[cfg_attr(not(feature = "rusqlite"), allow(dead_code))]
    Rusqlite,
    #[cfg_attr(not(feature = "sqlx-sqlite"), allow(dead_code))]
    Sqlx,
}

static SQLX_MARK: u8 = 0;

/// Registers the callback on `db`, replacing any `trace_v2` callback set before.
///
/// # Safety
/// `db` must be an open connection handle, not used by another thread during the call.
pub(crate) unsafe fn register(db: *mut ffi::sqlite3, owner: Owner) {
    let context = match owner {
        Owner::Rusqlite => std::ptr::null_mut(),
        Owner::Sqlx => std::ptr::from_ref(&SQLX_MARK).cast_mut().cast(),
    };
    // SAFETY: the caller's contract for `db`; the callback is a plain function valid for the life of the
    // process, its context a static, and SQLite drops both with the connection.
    unsafe {
        ffi::sqlite3_trace_v2(
            db,
            ffi::SQLITE_TRACE_STMT | ffi::SQLITE_TRACE_PROFILE,
            Some(on_trace),
            context,
        );
    }
}

thread_local! {
    /// Set on a thread once it ran a statement of a sqlx connection traced here (sqlx's SQLite worker).
    static SQLX_TRACED: Cell<bool> = const { Cell::new(false) };
}

fn mark_sqlx_thread() {
    let _ = SQLX_TRACED.try_with(|traced| traced.set(true));
}

/// Whether this thread runs a sqlx connection traced here: its `sqlx::query` events are then already counted.
#[cfg_attr(not(feature = "sqlx-sqlite"), allow(dead_code))]
pub(crate) fn sqlx_thread_traced() -> bool {
    SQLX_TRACED.try_with(Cell::get).unwrap_or(false)
}

/// Records a statement in the current scope; on sqlx's worker thread, hands it to the scope whose carrier is
/// entered (the scope that sent it).
fn deliver(sql: &str, elapsed: Duration) {
    #[cfg(feature = "sqlx")]
    if !crate::scope::in_scope() && crate::sqlx_carrier::hand_over(sql, elapsed) {
        return;
    }
    crate::query::record(sql, elapsed);
}

const RUNNING: usize = 16;

/// A ring of `(statement, start)` and the index of the next slot.
type Started = ([(usize, Option<u64>); RUNNING], usize);

thread_local! {
    static STARTED: RefCell<Started> = const { RefCell::new(([(0, None); RUNNING], 0)) };
}

/// SQLite's trace callback (`sqlite3_trace_v2`): `statement` is the prepared statement; `detail` is the
/// unexpanded SQL text (or a `-- comment` for a trigger) for a start event, and a pointer to SQLite's elapsed
/// nanoseconds for a profile event.
unsafe extern "C" fn on_trace(
    event: c_uint,
    context: *mut c_void,
    statement: *mut c_void,
    detail: *mut c_void,
) -> c_int {
    let from_sqlx = !context.is_null();
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
            // rusqlite and sqlx only prepare UTF-8 text with `prepare_v2`/`v3`, which keep it: the other cases are
            // still counted, with what text there is.
            if from_sqlx {
                mark_sqlx_thread();
            }
            match text.map(CStr::to_str) {
                Some(Ok(sql)) => deliver(sql, elapsed),
                Some(Err(_)) => deliver(&text.map(CStr::to_string_lossy).unwrap_or_default(), elapsed),
                None => deliver("", elapsed),
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
