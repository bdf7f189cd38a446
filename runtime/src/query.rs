//! Database queries: recorded into the current scope (and every scope around it), reported once at the end of
//! each execution as distributions, with N+1 detection and query budgets.
//!
//! Integrations call [`record`]; so can your own code for any client observe has no hook for
//! (tokio-postgres, redis, an HTTP API you treat as a database):
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! #[observe::observe(handler)]
//! fn list_orders() {
//!     let started = Instant::now();
//!     // ... run the query ...
//!     observe::query::record("SELECT * FROM orders WHERE customer_id = $1", started.elapsed());
//!
//!     // or let observe time it:
//!     let rows = observe::query::time("SELECT count(*) FROM orders", || 42);
//!     assert_eq!(rows, 42);
//! }
//! list_orders();
//! ```
//!
//! The statement text is used only to compute a fingerprint (literals and lists normalised away); it never
//! becomes a metric tag, and parameters are never seen.

use std::cell::Cell;
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub use crate::fingerprint::fingerprint;
use crate::histogram::Histogram;
use crate::scope::{for_each_frame, Frame};

/// How many fingerprints one scope tracks; further distinct statements are counted but not fingerprinted.
const TRACKED: usize = 8;

/// How many runs of one fingerprint in one execution are not yet an N+1 pattern, unless `Config` says otherwise.
pub(crate) const DEFAULT_N_PLUS_ONE_THRESHOLD: u32 = 5;
pub(crate) static N_PLUS_ONE_THRESHOLD: AtomicU32 = AtomicU32::new(DEFAULT_N_PLUS_ONE_THRESHOLD);
pub(crate) static DEFAULT_MAX_QUERIES: AtomicU32 = AtomicU32::new(0);

pub(crate) static UNSCOPED_QUERIES: AtomicU64 = AtomicU64::new(0);
/// Unscoped queries not yet sent.
pub(crate) static UNSCOPED_PENDING: AtomicU64 = AtomicU64::new(0);
pub(crate) static UNSCOPED_TIME: Histogram = Histogram::new();

/// A fingerprint over the N+1 threshold: `(hash, normalised text)`.
type Flagged = (u64, String);

/// One tracked fingerprint of a scope.
#[derive(Clone, Copy)]
struct Entry {
    hash: u64,
    count: u32,
    /// A nested scope already warned about it: the enclosing scopes stay quiet.
    reported: bool,
}

/// What one execution gathered about its queries. Lives in the scope's frame, so it is created with every
/// scope: the fingerprint table is left uninitialised (only its first `used` entries are ever read), which
/// keeps creating a scope to a few stores. No allocation unless an N+1 pattern is found (then the
/// fingerprint's text is kept for the warning).
pub(crate) struct QueryState {
    pub(crate) count: Cell<u32>,
    pub(crate) nanos: Cell<u64>,
    /// Outgoing HTTP calls (recorded by the `reqwest` middleware or [`record_http`]).
    pub(crate) http_calls: Cell<u32>,
    pub(crate) http_nanos: Cell<u64>,
    /// How many entries of `entries` are initialised and in use.
    used: Cell<u8>,
    /// Where the next search for an entry to evict starts (see `add`).
    victim: Cell<u8>,
    entries: [Cell<MaybeUninit<Entry>>; TRACKED],
    /// Fingerprints over the threshold, with their text.
    flagged: Cell<Vec<Flagged>>,
    any_flagged: Cell<bool>,
}

impl QueryState {
    pub(crate) const fn new() -> QueryState {
        QueryState {
            count: Cell::new(0),
            nanos: Cell::new(0),
            http_calls: Cell::new(0),
            http_nanos: Cell::new(0),
            used: Cell::new(0),
            victim: Cell::new(0),
            entries: [const { Cell::new(MaybeUninit::uninit()) }; TRACKED],
            flagged: Cell::new(Vec::new()),
            any_flagged: Cell::new(false),
        }
    }

    /// Initialises the state at `place` without writing the fingerprint table (it is written only as entries
    /// are used): a scope starts without copying it.
    ///
    /// # Safety
    /// `place` must be valid for writes and aligned; the state there is overwritten without being dropped.
    #[inline(always)]
    pub(crate) unsafe fn init_in_place(place: *mut QueryState) {
        // SAFETY: the caller's contract; `entries` are `MaybeUninit` and need no initial value.
        unsafe {
            ptr::addr_of_mut!((*place).count).write(Cell::new(0));
            ptr::addr_of_mut!((*place).nanos).write(Cell::new(0));
            ptr::addr_of_mut!((*place).http_calls).write(Cell::new(0));
            ptr::addr_of_mut!((*place).http_nanos).write(Cell::new(0));
            ptr::addr_of_mut!((*place).used).write(Cell::new(0));
            ptr::addr_of_mut!((*place).victim).write(Cell::new(0));
            ptr::addr_of_mut!((*place).flagged).write(Cell::new(Vec::new()));
            ptr::addr_of_mut!((*place).any_flagged).write(Cell::new(false));
        }
    }

    /// Does not compile when a field is added without being written in [`QueryState::init_in_place`].
    #[allow(dead_code)]
    fn every_field_is_written_by_init_in_place(self) {
        let QueryState {
            count: _,
            nanos: _,
            http_calls: _,
            http_nanos: _,
            used: _,
            victim: _,
            entries: _,
            flagged: _,
            any_flagged: _,
        } = self;
    }

    /// Entry `i`, which must be below `used`.
    fn entry(&self, i: usize) -> Entry {
        debug_assert!(i < usize::from(self.used.get()));
        // SAFETY: entries below `used` were written by `add` before `used` was raised past them.
        unsafe { self.entries[i].get().assume_init() }
    }

    fn entries(&self) -> impl Iterator<Item = (usize, Entry)> + '_ {
        (0..usize::from(self.used.get())).map(|i| (i, self.entry(i)))
    }

    fn add(&self, hash: u64, statement: &str, nanos: u64) {
        self.count.set(self.count.get().saturating_add(1));
        self.nanos.set(self.nanos.get().saturating_add(nanos));
        let threshold = N_PLUS_ONE_THRESHOLD.load(Ordering::Relaxed);
        let count = match self.entries().find(|(_, e)| e.hash == hash) {
            Some((i, mut entry)) => {
                entry.count = entry.count.saturating_add(1);
                self.entries[i].set(MaybeUninit::new(entry));
                entry.count
            }
            None => {
                let used = usize::from(self.used.get());
                let entry = Entry {
                    hash,
                    count: 1,
                    reported: false,
                };
                if used < TRACKED {
                    self.entries[used].set(MaybeUninit::new(entry));
                    self.used.set(self.used.get() + 1);
                } else {
                    // Bounded: the table is full. A statement seen once so far (and not flagged) makes room, so
                    // that a loop starting after eight one-off statements is still found; if every tracked
                    // statement repeats, further ones are counted, not fingerprinted. The search starts after the
                    // last entry evicted: a loop of several statements must not take turns in one slot, each
                    // evicting the other before it is seen twice.
                    let start = usize::from(self.victim.get());
                    let Some(i) = (0..TRACKED).map(|k| (start + k) % TRACKED).find(|&i| {
                        let e = self.entry(i);
                        e.count == 1 && e.count <= threshold
                    }) else {
                        return;
                    };
                    self.entries[i].set(MaybeUninit::new(entry));
                    self.victim.set(((i + 1) % TRACKED) as u8);
                }
                1
            }
        };
        if count == threshold.saturating_add(1) {
            self.flag(hash, statement);
        }
    }

    #[cold]
    fn flag(&self, hash: u64, statement: &str) {
        let mut flagged = self.flagged.take();
        flagged.push((hash, fingerprint(statement)));
        self.flagged.set(flagged);
        self.any_flagged.set(true);
    }

    /// The N+1 fingerprints not already reported by a nested scope: `(hash, text, count)`.
    pub(crate) fn take_n_plus_one(&self) -> Vec<(u64, String, u32)> {
        self.any_flagged.set(false);
        self.flagged
            .take()
            .into_iter()
            .filter_map(|(hash, text)| {
                let (_, entry) = self.entries().find(|(_, e)| e.hash == hash)?;
                (!entry.reported).then_some((hash, text, entry.count))
            })
            .collect()
    }

    #[inline]
    pub(crate) fn has_flagged(&self) -> bool {
        self.any_flagged.get()
    }

    /// Marks a fingerprint as reported (by a nested scope).
    pub(crate) fn mark_reported(&self, hash: u64) {
        if let Some((i, mut entry)) = self.entries().find(|(_, e)| e.hash == hash) {
            entry.reported = true;
            self.entries[i].set(MaybeUninit::new(entry));
        }
    }
}

/// Records one query that took `elapsed` into the current scope and every scope around it.
///
/// Outside any scope the query is counted in `observe.unscoped.queries` / `observe.unscoped.query_time`
/// instead: never lost, never a panic.
///
/// ```
/// #[observe::observe(task)]
/// fn import() {
///     observe::query::record("INSERT INTO items VALUES ($1, $2)", std::time::Duration::from_micros(250));
/// }
/// import();
/// ```
pub fn record(statement: &str, elapsed: Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    record_fingerprinted(statement, None, nanos);
}

/// [`record`], with the statement's fingerprint hash when the caller knows it already (`None`: computed here,
/// only if a scope is there to take it), and the time in nanoseconds.
pub(crate) fn record_fingerprinted(statement: &str, fingerprint: Option<u64>, nanos: u64) {
    let mut hash = fingerprint;
    let mut scoped = false;
    for_each_frame(|frame: &Frame| {
        let hash = *hash.get_or_insert_with(|| crate::fingerprint::hash(statement));
        frame.queries.add(hash, statement, nanos);
        scoped |= frame.site.is_some();
        frame.capture_query(statement, nanos);
    });
    if !scoped {
        record_unscoped(nanos);
    }
}

/// [`record_fingerprinted`] if an observed function's scope is entered on this thread; false (and nothing
/// recorded) if not.
#[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
#[inline]
pub(crate) fn record_in_scope(statement: &str, fingerprint: Option<u64>, nanos: u64) -> bool {
    if !crate::scope::in_scope() {
        return false;
    }
    record_fingerprinted(statement, fingerprint, nanos);
    true
}

/// Counts `count` queries that took `elapsed` in all, without their statements (no fingerprint): into the current
/// scope(s), or as unscoped.
#[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
pub(crate) fn record_without_statement(count: u32, elapsed: Duration, unscoped: bool) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    let mut scoped = false;
    if !unscoped {
        for_each_frame(|frame: &Frame| {
            frame.queries.count.set(frame.queries.count.get().saturating_add(count));
            frame.queries.nanos.set(frame.queries.nanos.get().saturating_add(nanos));
            scoped |= frame.site.is_some();
        });
    }
    if !scoped {
        // The histogram is of single queries: each counts at the average time.
        let each = nanos / u64::from(count.max(1));
        for _ in 0..count {
            record_unscoped(each);
        }
    }
}

/// Counts a query in the unscoped metrics, whatever scope the calling thread is in (a query whose own scope had
/// ended when it arrived).
pub(crate) fn record_unscoped(nanos: u64) {
    UNSCOPED_QUERIES.fetch_add(1, Ordering::Relaxed);
    UNSCOPED_PENDING.fetch_add(1, Ordering::Relaxed);
    UNSCOPED_TIME.record(nanos);
}

static HTTP_USED: AtomicBool = AtomicBool::new(false);

pub(crate) fn http_used() -> bool {
    HTTP_USED.load(Ordering::Relaxed)
}

/// Records one outgoing HTTP call (or any remote call) that took `elapsed` into the current scope and every
/// scope around it: `observe.scope.http_calls` and `observe.scope.http_time`. The `reqwest` middleware calls
/// it for you.
///
/// ```
/// #[observe::observe(handler)]
/// fn checkout() {
///     observe::query::record_http(std::time::Duration::from_millis(12));
/// }
/// checkout();
/// ```
pub fn record_http(elapsed: Duration) {
    HTTP_USED.store(true, Ordering::Relaxed);
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    for_each_frame(|frame: &Frame| {
        let work = &frame.queries;
        work.http_calls.set(work.http_calls.get().saturating_add(1));
        work.http_nanos.set(work.http_nanos.get().saturating_add(nanos));
    });
}

/// Runs `f`, recording it as one query named `statement`, timed.
///
/// ```
/// #[observe::observe]
/// fn cached() -> Option<String> {
///     observe::query::time("GET user:{id}", || None)
/// }
/// assert_eq!(cached(), None);
/// ```
pub fn time<R>(statement: &str, f: impl FnOnce() -> R) -> R {
    /// Records on the way out, also when `f` panics (the query ran all the same, as `time_future` counts one
    /// dropped part-way).
    struct Timed<'a>(&'a str, Instant);
    impl Drop for Timed<'_> {
        fn drop(&mut self) {
            record(self.0, self.1.elapsed());
        }
    }
    let _timed = Timed(statement, Instant::now());
    f()
}

/// Wraps a future so that it is recorded as one query when it completes (or is dropped part-way: the query
/// ran all the same).
///
/// ```
/// # async fn run() {
/// #[observe::observe(handler)]
/// async fn load() -> u64 {
///     observe::query::time_future("SELECT 1", async { 1 }).await
/// }
/// assert_eq!(load().await, 1);
/// # }
/// ```
pub fn time_future<F: Future>(statement: &str, future: F) -> TimedQuery<'_, F> {
    TimedQuery {
        statement,
        started: None,
        future,
    }
}

/// The future returned by [`time_future`].
///
/// ```
/// let timed: observe::query::TimedQuery<'_, _> = observe::query::time_future("SELECT 1", async { 1 });
/// # drop(timed);
/// ```
pub struct TimedQuery<'a, F> {
    statement: &'a str,
    started: Option<Instant>,
    future: F,
}

impl<F: Future> Future for TimedQuery<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned and never moved; the other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let started = *this.started.get_or_insert_with(Instant::now);
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let poll = future.poll(cx);
        if poll.is_ready() {
            this.started = None;
            record(this.statement, started.elapsed());
        }
        poll
    }
}

impl<F> Drop for TimedQuery<'_, F> {
    fn drop(&mut self) {
        if let Some(started) = self.started.take() {
            record(self.statement, started.elapsed());
        }
    }
}

/// Queries another thread ran for a scope, waiting for that scope to end: `(span ID, statement, elapsed)`.
static HANDED_OVER: Mutex<Vec<(u64, String, Duration)>> = Mutex::new(Vec::new());
static HANDED_OVER_COUNT: AtomicUsize = AtomicUsize::new(0);

fn handed_over_list() -> std::sync::MutexGuard<'static, Vec<(u64, String, Duration)>> {
    HANDED_OVER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether any query waits for its scope (one relaxed load on the scope's exit path).
#[inline]
pub(crate) fn handed_over() -> bool {
    HANDED_OVER_COUNT.load(Ordering::Relaxed) > 0
}

/// Gives a query to the scope whose span is `span`; it takes it when it ends.
#[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
pub(crate) fn hand_over(span: u64, statement: &str, elapsed: Duration) {
    let mut list = handed_over_list();
    list.push((span, statement.to_owned(), elapsed));
    HANDED_OVER_COUNT.store(list.len(), Ordering::Relaxed);
}

pub(crate) fn take_handed_over(span: u64) -> Vec<(String, Duration)> {
    let mut list = handed_over_list();
    let taken = list
        .extract_if(.., |(id, _, _)| *id == span)
        .map(|(_, statement, elapsed)| (statement, elapsed))
        .collect();
    HANDED_OVER_COUNT.store(list.len(), Ordering::Relaxed);
    taken
}

/// The scope of `span` is gone: what was handed to it is counted as unscoped.
#[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
pub(crate) fn abandon(span: u64) {
    if !handed_over() {
        return;
    }
    for (_, elapsed) in take_handed_over(span) {
        record_unscoped(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Queries recorded outside any scope since the process started.
///
/// ```
/// let before = observe::query::unscoped();
/// observe::query::record("SELECT 1", std::time::Duration::ZERO);
/// assert_eq!(observe::query::unscoped(), before + 1);
/// ```
pub fn unscoped() -> u64 {
    UNSCOPED_QUERIES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scope's state whose fingerprint table is full of statements seen once each.
    fn full_of_one_off_statements() -> QueryState {
        let state = QueryState::new();
        for one_off in 0..TRACKED as u64 {
            state.add(1000 + one_off, "SELECT one_off", 1);
        }
        state
    }

    /// Enclosing scopes see every statement of the scopes nested in them: eight one-off statements must not
    /// hide a loop that starts after them.
    #[test]
    fn a_loop_after_eight_one_off_statements_is_flagged() {
        let state = full_of_one_off_statements();
        for _ in 0..100 {
            state.add(7, "SELECT * FROM items WHERE id = 1", 1);
        }
        assert!(state.has_flagged());
        let flagged = state.take_n_plus_one();
        assert_eq!(flagged.len(), 1);
        assert_eq!((flagged[0].0, flagged[0].2), (7, 100));
        assert_eq!(state.count.get(), TRACKED as u32 + 100);
    }

    /// The same with a loop of two statements (a row and its price): they must not evict each other.
    #[test]
    fn a_loop_of_two_statements_after_eight_one_off_statements_is_flagged() {
        let state = full_of_one_off_statements();
        for _ in 0..50 {
            state.add(7, "SELECT * FROM items WHERE order_id = 1", 1);
            state.add(8, "SELECT * FROM prices WHERE item_id = 1", 1);
        }
        let mut flagged: Vec<(u64, u32)> = state.take_n_plus_one().iter().map(|f| (f.0, f.2)).collect();
        flagged.sort();
        assert_eq!(flagged, [(7, 50), (8, 50)]);
    }

    #[test]
    fn a_timed_query_that_panics_is_still_recorded() {
        let (panicked, captured) =
            crate::testing::capture(|| std::panic::catch_unwind(|| time("SELECT 1", || panic!("the driver failed"))));
        assert!(panicked.is_err());
        assert_eq!(captured.queries.len(), 1);
    }
}
