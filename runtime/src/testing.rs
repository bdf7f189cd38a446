//! Test helpers for your own application: capture the scopes and queries a piece of code runs, assert query
//! counts, and make query budgets fail tests.
//!
//! ```
//! use observe::testing;
//!
//! #[observe::observe(handler)]
//! fn list_orders() -> Vec<u32> {
//!     observe::query::record("SELECT * FROM orders", std::time::Duration::from_micros(100));
//!     vec![1, 2]
//! }
//!
//! let (orders, captured) = testing::capture(list_orders);
//! assert_eq!(orders.len(), 2);
//! let scope = captured.scope("list_orders").unwrap();
//! assert_eq!(scope.queries, 1);
//! assert_eq!(scope.outcome, observe::Outcome::Ok);
//!
//! // Fails with the list of statements when the count differs:
//! let orders = observe::assert_queries!(1, list_orders());
//! # drop(orders);
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::scope::{for_each_frame, run_in_frame, Frame};
use crate::site::{Kind, Outcome, Site};
use crate::trace_id::TraceId;

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static STRICT: AtomicBool = AtomicBool::new(false);

#[inline]
pub(crate) fn capturing() -> bool {
    ACTIVE.load(Ordering::Relaxed) > 0
}

thread_local! {
    /// How many [`strict_budgets`] calls are running on this thread.
    static STRICT_HERE: Cell<u32> = const { Cell::new(0) };
}

/// Whether a scope over its budget ending here must panic.
pub(crate) fn strict() -> bool {
    STRICT.load(Ordering::Relaxed) || STRICT_HERE.try_with(|n| n.get() > 0).unwrap_or(false)
}

/// Runs `f` with strict budgets on this thread: a scope that ends over its query budget on this thread while
/// `f` runs panics (with the scope's name, its count and its budget, after the scope is recorded and captured),
/// so that a budget regression fails the test that causes it. Other tests, running in parallel on other
/// threads, are not affected. Scopes that end on other threads meanwhile are not strict. In an async test,
/// wrap the future instead: [`strict_budgets_future`].
///
/// ```should_panic
/// #[observe::observe(max_queries = 1)]
/// fn chatty() {
///     observe::query::record("SELECT 1", std::time::Duration::ZERO);
///     observe::query::record("SELECT 2", std::time::Duration::ZERO);
/// }
/// observe::testing::strict_budgets(chatty); // panics: 2 queries, budget 1
/// ```
pub fn strict_budgets<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let _ = STRICT_HERE.try_with(|n| n.set(n.get().saturating_sub(1)));
        }
    }
    let _ = STRICT_HERE.try_with(|n| n.set(n.get().saturating_add(1)));
    let _leave = Leave;
    f()
}

/// [`strict_budgets`] for a future: strict while it is polled. Scopes that end in its polls (its own, and
/// those of the futures it awaits) panic when over budget; tasks it spawns are polled apart from it and are
/// not strict.
///
/// ```
/// # async fn run() {
/// #[observe::observe(handler, max_queries = 1)]
/// async fn chatty() {
///     observe::query::record("SELECT 1", std::time::Duration::ZERO);
///     observe::query::record("SELECT 2", std::time::Duration::ZERO);
/// }
/// // In a `#[tokio::test]`: `observe::testing::strict_budgets_future(chatty()).await` fails the test.
/// let handle = tokio::spawn(observe::testing::strict_budgets_future(chatty()));
/// assert!(handle.await.unwrap_err().is_panic());
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
/// ```
pub fn strict_budgets_future<F: Future>(future: F) -> StrictBudgets<F> {
    StrictBudgets { future }
}

/// The future returned by [`strict_budgets_future`].
///
/// ```
/// let future: observe::testing::StrictBudgets<_> = observe::testing::strict_budgets_future(async {});
/// # drop(future);
/// ```
#[derive(Debug)]
pub struct StrictBudgets<F> {
    future: F,
}

impl<F: Future> Future for StrictBudgets<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: never moved out of `self`, which is pinned.
        let future = unsafe { self.map_unchecked_mut(|this| &mut this.future) };
        strict_budgets(|| future.poll(cx))
    }
}

/// Makes every scope that runs over its query budget panic when it ends, on every thread, until switched off
/// again. Process-wide, so it reaches tests running in parallel too: prefer [`strict_budgets`], which is
/// scoped to a closure and a thread. Off by default.
///
/// ```should_panic
/// observe::testing::set_strict_budgets(true);
///
/// #[observe::observe(max_queries = 1)]
/// fn chatty() {
///     observe::query::record("SELECT 1", std::time::Duration::ZERO);
///     observe::query::record("SELECT 2", std::time::Duration::ZERO);
/// }
/// chatty(); // panics: 2 queries, budget 1
/// ```
pub fn set_strict_budgets(strict: bool) {
    STRICT.store(strict, Ordering::Relaxed);
}

/// One scope execution seen by a capture.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScopeRecord {
    /// The scope's name (the `scope` tag).
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it ran.
    pub duration: Duration,
    /// Queries it ran, its nested scopes' included.
    pub queries: u32,
    /// Time spent in those queries.
    pub query_time: Duration,
    /// Its trace ID (generated for the record if nothing asked for it during the execution).
    pub trace_id: TraceId,
}

/// One query seen by a capture.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueryRecord {
    /// The statement as recorded (placeholders, never parameters: observe is never given them).
    pub statement: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// Everything a capture saw, in order.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Captured {
    /// Scopes, in the order they ended (nested scopes before the scopes around them).
    pub scopes: Vec<ScopeRecord>,
    /// Queries, in the order they ran.
    pub queries: Vec<QueryRecord>,
}

impl Captured {
    /// The last scope whose name is `name` or ends with `::name`.
    ///
    /// ```
    /// #[observe::observe]
    /// fn job() {}
    /// let ((), captured) = observe::testing::capture(job);
    /// assert!(captured.scope("job").is_some());
    /// ```
    pub fn scope(&self, name: &str) -> Option<&ScopeRecord> {
        self.scopes
            .iter()
            .rev()
            .find(|s| s.name == name || s.name.strip_suffix(name).is_some_and(|p| p.ends_with("::")))
    }

    /// The statements run, one a line, numbered: what `assert_queries!` prints when the count is wrong.
    ///
    /// ```
    /// let ((), captured) = observe::testing::capture(|| observe::query::record("SELECT 1", Default::default()));
    /// assert_eq!(captured.statement_list(), "  1. SELECT 1\n");
    /// ```
    pub fn statement_list(&self) -> String {
        let mut out = String::new();
        for (i, query) in self.queries.iter().enumerate() {
            out.push_str(&format!("{:>3}. {}\n", i + 1, query.statement));
        }
        out
    }
}

/// Where a capture frame logs. Shared with the frames of scopes on other threads only through the chain of the
/// thread that runs the capture, so a `Mutex` is enough.
#[derive(Default)]
pub(crate) struct CaptureLog {
    captured: Mutex<Captured>,
}

impl CaptureLog {
    pub(crate) fn query(&self, statement: &str, elapsed: Duration) {
        let record = QueryRecord {
            statement: statement.to_owned(),
            fingerprint: crate::query::fingerprint(statement),
            elapsed,
        };
        self.lock().queries.push(record);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.captured.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn on_scope_end(frame: &Frame, site: &'static Site, outcome: Outcome, nanos: u64) {
    let trace_id = frame.trace_id.get().unwrap_or_else(|| {
        let id = crate::scope::current_trace_id().unwrap_or_else(TraceId::generate);
        frame.trace_id.set(Some(id));
        id
    });
    let record = ScopeRecord {
        name: site.name(),
        kind: site.kind(),
        outcome,
        duration: Duration::from_nanos(nanos),
        queries: frame.queries.count.get(),
        query_time: Duration::from_nanos(frame.queries.nanos.get()),
        trace_id,
    };
    for_each_frame(|f| {
        // SAFETY: capture pointers are set by `capture`/`capture_future` to logs that outlive their frames.
        if let Some(log) = unsafe { f.capture.as_ref() } {
            log.lock().scopes.push(record.clone());
        }
    });
}

struct Active;

impl Active {
    fn start() -> Active {
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `f` and returns what it did: every scope that ended and every query recorded inside it, on this thread.
///
/// ```
/// #[observe::observe(task)]
/// fn import() -> Result<(), String> {
///     observe::query::record("INSERT INTO t VALUES (1)", Default::default());
///     Err("disk full".into())
/// }
///
/// let (result, captured) = observe::testing::capture(import);
/// assert!(result.is_err());
/// let scope = captured.scope("import").unwrap();
/// assert_eq!((scope.outcome, scope.queries), (observe::Outcome::Error, 1));
/// assert_eq!(captured.queries[0].fingerprint, "INSERT INTO t VALUES (...)");
/// ```
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Captured) {
    let log = CaptureLog::default();
    let frame = Frame::new(None, &log);
    let active = Active::start();
    let result = run_in_frame(&frame, f);
    drop(active);
    drop(frame);
    let captured = std::mem::take(&mut *log.lock());
    (result, captured)
}

/// [`capture`] for a future: the capture is entered on every poll.
///
/// ```
/// # async fn run() {
/// #[observe::observe(handler)]
/// async fn handler() {
///     observe::query::record("SELECT 1", Default::default());
/// }
/// let ((), captured) = observe::testing::capture_future(handler()).await;
/// assert_eq!(captured.scope("handler").unwrap().queries, 1);
/// # }
/// ```
pub fn capture_future<F: Future>(future: F) -> CaptureFuture<F> {
    CaptureFuture {
        log: Box::new(CaptureLog::default()),
        frame: None,
        active: None,
        future: std::mem::ManuallyDrop::new(future),
        dropped: false,
    }
}

/// The future returned by [`capture_future`].
///
/// ```
/// let future: observe::testing::CaptureFuture<_> = observe::testing::capture_future(async {});
/// # drop(future);
/// ```
pub struct CaptureFuture<F> {
    // Boxed so that the frame's pointer to it stays valid while the future moves before its first poll.
    log: Box<CaptureLog>,
    frame: Option<Frame>,
    active: Option<Active>,
    /// Dropped by hand: once it completes, inside the capture (a scope it still holds, such as one a timeout
    /// cancelled, ends there and is captured); else with the capture.
    future: std::mem::ManuallyDrop<F>,
    dropped: bool,
}

impl<F> Drop for CaptureFuture<F> {
    fn drop(&mut self) {
        if !self.dropped {
            // SAFETY: not dropped yet (`dropped`), dropped in place (it is pinned), never used again.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.future) };
        }
    }
}

impl<F: Future> Future for CaptureFuture<F> {
    type Output = (F::Output, Captured);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned and never moved; the other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.dropped {
            // Polled again after completing: nothing more comes (the future is gone).
            return Poll::Pending;
        }
        this.active.get_or_insert_with(Active::start);
        let log: *const CaptureLog = &*this.log;
        let frame = this.frame.get_or_insert_with(|| Frame::new(None, log));
        let future = unsafe { Pin::new_unchecked(&mut *this.future) };
        let poll = run_in_frame(frame, || future.poll(cx));
        match poll {
            Poll::Ready(output) => {
                let future = &mut this.future;
                // Marked first: if its drop panics, `Drop` must not drop it again.
                this.dropped = true;
                // SAFETY: dropped once, in place, and marked so.
                run_in_frame(frame, || unsafe { std::mem::ManuallyDrop::drop(future) });
                this.active = None;
                this.frame = None;
                let captured = std::mem::take(&mut *this.log.lock());
                Poll::Ready((output, captured))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for CaptureFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureFuture").finish_non_exhaustive()
    }
}

/// Asserts that an expression runs exactly `n` queries, and returns its value. On failure, the message lists
/// the statements that ran. For a future, write `assert_queries!(n, async expr)` and `.await` the result.
/// Like [`capture`], it sees the thread (or task) it runs on: queries of work spawned elsewhere
/// (`observe::spawn`, another thread) are not counted. One exception: a synchronous capture around a
/// current-thread runtime's `block_on` also sees the tasks that runtime polls meanwhile (they run on this
/// thread, inside the capture); capture inside the runtime instead, with `assert_queries!(n, async ..)` or
/// [`capture_future`]. The same holds for a synchronous observed function that calls `block_on`: its scope
/// counts the queries of the tasks polled meanwhile.
///
/// ```
/// #[observe::observe]
/// fn two() -> u8 {
///     observe::query::record("SELECT a FROM t", Default::default());
///     observe::query::record("SELECT b FROM t", Default::default());
///     2
/// }
/// assert_eq!(observe::assert_queries!(2, two()), 2);
/// ```
///
/// ```should_panic
/// # #[observe::observe] fn two() { observe::query::record("SELECT a FROM t", Default::default()); observe::query::record("SELECT b FROM t", Default::default()); }
/// observe::assert_queries!(1, two()); // expected 1 query, ran 2: SELECT a FROM t, SELECT b FROM t
/// ```
#[macro_export]
macro_rules! assert_queries {
    ($expected:expr, async $($future:tt)+) => {
        async {
            let (value, captured) = $crate::testing::capture_future(async $($future)+).await;
            $crate::testing::__check_queries($expected, &captured, stringify!(async $($future)+));
            value
        }
    };
    ($expected:expr, $body:expr $(,)?) => {{
        let (value, captured) = $crate::testing::capture(|| $body);
        $crate::testing::__check_queries($expected, &captured, stringify!($body));
        value
    }};
}

#[doc(hidden)]
#[track_caller]
pub fn __check_queries(expected: usize, captured: &Captured, what: &str) {
    let ran = captured.queries.len();
    if ran != expected {
        panic!(
            "expected {expected} quer{} from `{what}`, but it ran {ran}:\n{}",
            if expected == 1 { "y" } else { "ies" },
            captured.statement_list()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Completes at once; its drop counts itself and panics.
    struct PanicsOnDrop(Arc<AtomicUsize>);

    impl Future for PanicsOnDrop {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
    }

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("the future's drop panics");
        }
    }

    /// A future whose drop panics once completed is dropped once: the capture must not drop it again.
    #[test]
    fn a_completed_future_is_dropped_once_even_if_its_drop_panics() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut capture = Box::pin(capture_future(PanicsOnDrop(Arc::clone(&drops))));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| capture.as_mut().poll(&mut cx)));
        assert!(polled.is_err(), "the drop's panic goes on");
        drop(capture);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
