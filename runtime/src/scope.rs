//! Scopes: one execution of an observed function, its place in the current-scope chain, and how it ends.
//!
//! The hot path (enter, exit) reads the clock twice, touches one thread-local and bumps one atomic bucket: no
//! allocation, no lock, no syscall, no formatting. The trace ID is generated only when something asks for it
//! (a log event, [`current_trace_id`]).

use std::cell::Cell;
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tracing::Span;

use crate::query::QueryState;
use crate::site::{Outcome, Site};
use crate::testing::CaptureLog;
use crate::trace_id::TraceId;

/// One entry of the current-scope chain. Lives inside a [`Scope`]; linked to the frame below it only while it
/// is entered (during one `in_scope` call on one thread).
pub(crate) struct Frame {
    /// The observed function; `None` for a frame that only gathers (a test capture).
    pub(crate) site: Option<&'static Site>,
    pub(crate) trace_id: Cell<Option<TraceId>>,
    /// The W3C trace flags of the trace this frame continues (`01`, sampled, unless the caller said otherwise):
    /// passed on with the trace ID, so that an upstream decision not to sample holds downstream.
    pub(crate) flags: Cell<u8>,
    parent: Cell<*const Frame>,
    /// The queries of this execution (and of the scopes nested in it).
    pub(crate) queries: QueryState,
    /// For a test capture frame: where to log scopes and queries. Null otherwise.
    pub(crate) capture: *const CaptureLog,
    /// The sqlx scope carrier lent to this execution, if sqlx asked for one (see `sqlx_carrier`); null if
    /// none, `sqlx_carrier::ENDED` once the scope has ended. Opaque here so that the field exists whatever the
    /// features.
    pub(crate) carrier: Cell<*const ()>,
}

impl Frame {
    pub(crate) fn new(site: Option<&'static Site>, capture: *const CaptureLog) -> Frame {
        Frame {
            site,
            trace_id: Cell::new(None),
            flags: Cell::new(SAMPLED),
            parent: Cell::new(ptr::null()),
            queries: QueryState::new(),
            capture,
            carrier: Cell::new(ptr::null()),
        }
    }

    /// A capture frame has no trace ID of its own: scopes inside it are roots of their own traces.
    fn transparent(&self) -> bool {
        self.site.is_none() && !self.capture.is_null()
    }

    #[inline]
    pub(crate) fn capture_query(&self, statement: &str, nanos: u64) {
        /// Out of line: only tests capture, and the time's conversion stays off every other query's path.
        #[cold]
        #[inline(never)]
        fn capture(log: &CaptureLog, statement: &str, nanos: u64) {
            log.query(statement, std::time::Duration::from_nanos(nanos));
        }
        // SAFETY: a capture pointer is set only by `testing`, to a log that outlives the frame.
        if let Some(log) = unsafe { self.capture.as_ref() } {
            capture(log, statement, nanos);
        }
    }
}

// SAFETY: `parent` is non-null only while the frame is entered, which starts and ends within one `in_scope`
// call on one thread; between entries it is null and never read. The other fields are plain data.
unsafe impl Send for Frame {}

/// The W3C `sampled` trace flag, the flags of a trace that starts here.
const SAMPLED: u8 = 1;

thread_local! {
    static CURRENT: Cell<*const Frame> = const { Cell::new(ptr::null()) };
}

/// One execution of an observed function. Created by the code `#[observe]` generates; records its outcome and
/// duration into its site when it ends, on every path: return, `?`, panic, or a future dropped early.
#[doc(hidden)]
pub struct Scope {
    frame: Frame,
    start: u64,
    span: Span,
    finished: bool,
}

impl Scope {
    /// Starts an execution of `site`: starts the clock and opens the site's tracing span if a subscriber
    /// wants it. The scope is not entered yet: see [`Scope::in_scope`].
    // Always inlined: built in place in the caller's frame rather than in a temporary copied out (the scope is
    // a few hundred bytes; the copy was a `memcpy` call on every execution).
    #[inline(always)]
    pub fn new(site: &'static Site) -> Scope {
        site.ensure_registered();
        let span = Self::span_if_wanted(site);
        let mut scope = MaybeUninit::<Scope>::uninit();
        let place = scope.as_mut_ptr();
        // SAFETY: every field is written before `assume_init`; the frame's fingerprint table is `MaybeUninit`
        // and written only as entries are used (see `QueryState::init_in_place`).
        unsafe {
            ptr::addr_of_mut!((*place).frame.site).write(Some(site));
            ptr::addr_of_mut!((*place).frame.trace_id).write(Cell::new(None));
            ptr::addr_of_mut!((*place).frame.flags).write(Cell::new(SAMPLED));
            ptr::addr_of_mut!((*place).frame.parent).write(Cell::new(ptr::null()));
            QueryState::init_in_place(ptr::addr_of_mut!((*place).frame.queries));
            ptr::addr_of_mut!((*place).frame.capture).write(ptr::null());
            ptr::addr_of_mut!((*place).frame.carrier).write(Cell::new(ptr::null()));
            ptr::addr_of_mut!((*place).span).write(span);
            ptr::addr_of_mut!((*place).finished).write(false);
            ptr::addr_of_mut!((*place).start).write(crate::clock::now());
            scope.assume_init()
        }
    }

    /// Does not compile when a field is added to `Scope` or `Frame` without being written in [`Scope::new`]
    /// (which builds the scope field by field, in place).
    #[allow(dead_code)]
    fn every_field_is_written_by_new(self) {
        let Scope {
            frame:
                Frame {
                    site: _,
                    trace_id: _,
                    flags: _,
                    parent: _,
                    queries: _,
                    capture: _,
                    carrier: _,
                },
            start: _,
            span: _,
            finished: _,
        } = self;
    }

    /// The site's span if a subscriber wants it, else none.
    #[inline]
    fn span_if_wanted(site: &'static Site) -> Span {
        Self::wanted_span(site).unwrap_or_else(Span::none)
    }

    /// The site's span, opened, if the subscriber wants it.
    #[inline]
    fn wanted_span(site: &'static Site) -> Option<Span> {
        if site.span_enabled() {
            return Some(Self::open_span(site));
        }
        // A wrapped subscriber gave up lending carriers (its installation failed) after every callsite's interest
        // was asked with carriers about to be used: scope spans may be cached as never where the filters now
        // want them. Asked again once, by the first scope that meets it outside any subscriber call.
        #[cfg(feature = "sqlx")]
        if crate::sqlx_carrier::stale_interest() && crate::sqlx_carrier::rebuild_stale_interest() && site.span_enabled()
        {
            return Some(Self::open_span(site));
        }
        None
    }

    #[cold]
    fn open_span(site: &'static Site) -> Span {
        let meta = site.span_metadata();
        Span::new(meta, &meta.fields().value_set(&[]))
    }

    /// Opens the span now if it was not wanted when the scope started but is now (sqlx's layer switches scope
    /// spans on when it first meets a SQLite worker thread). Called before each poll of an async scope.
    #[inline]
    pub(crate) fn open_span_if_wanted(&mut self) {
        if let (true, Some(site)) = (self.span.is_none(), self.frame.site) {
            // Assigned only when opened: most polls find it still unwanted, and a `Span::none()` written over
            // the old one would be built and dropped for nothing.
            if let Some(span) = Self::wanted_span(site) {
                self.span = span;
            }
        }
    }

    /// Whether the scope's tracing span is recording (so that `fields(..)` are worth formatting).
    #[inline]
    pub fn span_enabled(&self) -> bool {
        !self.span.is_disabled()
    }

    /// Records one of the `fields(..)` named in the attribute on the scope's span.
    pub fn record_field(&self, name: &str, value: &dyn tracing::Value) {
        self.span.record(name, value);
    }

    /// Runs `f` with this scope as the current scope (and its span entered), then leaves it.
    /// If `f` panics, the scope ends with outcome `panic` and the panic goes on.
    #[inline]
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let frame: *const Frame = &self.frame;
        let parent = CURRENT.get();
        self.frame.parent.set(parent);
        if self.frame.trace_id.get().is_none() && !parent.is_null() && !self.frame.transparent() {
            // SAFETY: `parent` is the frame entered below us on this thread; it stays alive and entered until
            // we leave (frames are entered and left in strict LIFO order by `in_scope`).
            let (inherited, flags) = unsafe { ((*parent).trace_id.get(), (*parent).flags.get()) };
            self.frame.trace_id.set(inherited);
            self.frame.flags.set(flags);
        }
        CURRENT.set(frame);
        let leave = Leave {
            scope: self,
            returned: Cell::new(false),
        };
        let _entered = leave.scope.span.enter();
        let result = f();
        // Reached only when `f` returned: if it unwinds instead, `Leave` ends the scope as a panic. (No call to
        // `thread::panicking()` on the way: a flag is cheaper.)
        leave.returned.set(true);
        result
    }

    /// Ends the execution with `outcome` (used by generated code once the function has returned). Takes
    /// `&mut self`: the scope is not moved (it is a few hundred bytes), it is dropped where it lives.
    #[inline]
    pub fn finish(&mut self, outcome: Outcome) {
        self.end(outcome);
    }

    /// Continues the trace a job's carrier holds (`#[observe(carrier = expr)]`); `None` leaves the scope a root
    /// of its own.
    pub fn set_carrier(&mut self, carrier: Option<crate::Carrier>) {
        if let Some(carrier) = carrier {
            self.set_trace_id(carrier.trace_id());
            self.set_trace_flags(carrier.traceparent().flags);
        }
    }

    /// The W3C trace flags of the trace it continues (from an incoming `traceparent` or a job's carrier): `01`
    /// (sampled) unless set.
    pub fn set_trace_flags(&mut self, flags: u8) {
        self.frame.flags.set(flags);
    }

    /// Continues the trace `trace_id` (from an incoming request or a job's carrier).
    pub fn set_trace_id(&mut self, trace_id: TraceId) {
        self.frame.trace_id.set(Some(trace_id));
    }

    #[inline]
    pub(crate) fn end(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let nanos = crate::clock::nanos_between(self.start, crate::clock::now());
        let Some(site) = self.frame.site else {
            return;
        };
        #[cfg(feature = "sqlx")]
        {
            // From now on no carrier is lent to this frame (the query report below runs in it).
            let carrier = self.frame.carrier.replace(crate::sqlx_carrier::ENDED);
            if !carrier.is_null() {
                crate::sqlx_carrier::end_loan(&self.frame, carrier);
            }
        }
        if crate::query::handed_over() {
            self.take_handed_over();
        }
        let queries = &self.frame.queries;
        site.record(outcome, nanos, queries);
        // Both need queries: an execution without any skips the checks.
        let count = queries.count.get();
        let mut strict_overrun = None;
        if count > 0 && (queries.has_flagged() || site.max_queries().is_some_and(|max| count > max)) {
            strict_overrun = self.report_queries(site, outcome);
        }
        if crate::testing::capturing() {
            crate::testing::on_scope_end(&self.frame, site, outcome, nanos);
        }
        let deferred = crate::config::DEFERRED_SHUTDOWN.load(Ordering::Relaxed);
        if !deferred.is_null() && ptr::eq(deferred, site) && CURRENT.get().is_null() {
            crate::config::shut_down();
        }
        // Last: the scope is recorded (and captured) like any other before the test fails.
        if let Some(max) = strict_overrun {
            panic!(
                "observe: `{}` ran {count} queries, over its budget of {max} (strict budgets are on)",
                site.name()
            );
        }
    }

    /// Queries another thread ran for this scope (sqlx's SQLite worker), recorded as if run here.
    #[cold]
    fn take_handed_over(&self) {
        let Some(id) = self.span.id() else {
            return;
        };
        let queries = crate::query::take_handed_over(id.into_u64());
        if !queries.is_empty() {
            run_in_frame(&self.frame, || {
                for (statement, elapsed) in &queries {
                    crate::query::record(statement, *elapsed);
                }
            });
        }
    }

    /// N+1 warnings and budget overruns: rare, so out of line. The warnings are emitted with the scope's own
    /// frame entered, so that they carry its trace ID and scope name like any other line of the execution.
    /// Returns the budget when strict budgets make this overrun fail (the caller panics once the scope is
    /// recorded).
    #[cold]
    #[inline(never)]
    fn report_queries(&self, site: &'static Site, outcome: Outcome) -> Option<u32> {
        let stats = site.stats(outcome);
        let queries = &self.frame.queries;
        let found = queries.take_n_plus_one();
        let count = queries.count.get();
        let over = site.max_queries().filter(|max| count > *max);
        run_in_frame(&self.frame, || {
            for (hash, fingerprint, repeats) in &found {
                tracing::warn!(
                    target: "observe::n_plus_one",
                    scope = site.name(),
                    repeats,
                    fingerprint = fingerprint.as_str(),
                    "N+1 queries: one statement ran {repeats} times in one execution"
                );
                stats.n_plus_one.fetch_add(1, Ordering::Relaxed);
                // Enclosing scopes ran the same queries: one warning is enough.
                for_each_frame(|frame| frame.queries.mark_reported(*hash));
            }
            if let Some(max) = over {
                tracing::warn!(
                    target: "observe::budget",
                    scope = site.name(),
                    queries = count,
                    max_queries = max,
                    "query budget exceeded: {count} queries, budget {max}"
                );
                stats.over_budget.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Only on a normal return: never from the `Drop` of a cancelled future, never during a panic.
        let returned = matches!(outcome, Outcome::Ok | Outcome::Error);
        over.filter(|_| returned && !std::thread::panicking() && crate::testing::strict())
    }
}

/// Leaves the scope when `in_scope` returns or unwinds.
struct Leave<'a> {
    scope: &'a mut Scope,
    /// Set once the closure returned; still false in `drop` means it is unwinding.
    returned: Cell<bool>,
}

impl Drop for Leave<'_> {
    #[inline]
    fn drop(&mut self) {
        CURRENT.set(self.scope.frame.parent.get());
        self.scope.frame.parent.set(ptr::null());
        if !self.returned.get() {
            self.scope.end(Outcome::Panic);
        }
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            self.end_early();
        }
    }
}

impl Scope {
    /// Drops what the scope runs (a future) with `drop`: if the scope has not ended (the future is dropped
    /// before completing: cancelled), inside the scope, as it would have ended had it completed. Scopes nested
    /// in it end before this one (an N+1 they report is not reported again by this one), and what its drop
    /// records (a query timed by `time_future`) is this scope's. Then the scope ends as `cancelled`, also when
    /// the drop happens while another panic unwinds past the future (a sibling in `join!`): this execution did
    /// not panic, it was given up. A panic in the drop itself ends it as `panic`.
    #[inline]
    pub(crate) fn drop_inside(&mut self, drop: impl FnOnce()) {
        if self.finished {
            drop();
        } else {
            self.in_scope(drop);
            self.end(Outcome::Cancelled);
        }
    }

    /// Dropped before it ended: a panic unwinding through it, or a future dropped before completing.
    #[cold]
    #[inline(never)]
    fn end_early(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Panic
        } else {
            Outcome::Cancelled
        };
        self.end(outcome);
    }
}

/// A future run as one scope: entered on every poll, ended when it completes (outcome from its output),
/// panics (`panic`) or is dropped before completing (`cancelled`).
#[doc(hidden)]
pub struct ScopeFuture<F: Future> {
    scope: Scope,
    classify: fn(&F::Output) -> Outcome,
    /// Dropped by hand, before the scope and inside it (see the `Drop` impl).
    future: std::mem::ManuallyDrop<F>,
}

impl<F: Future> ScopeFuture<F> {
    /// Wraps `future`; `classify` tells the outcome from its output.
    #[inline]
    pub fn new(scope: Scope, future: F, classify: fn(&F::Output) -> Outcome) -> Self {
        ScopeFuture {
            scope,
            classify,
            future: std::mem::ManuallyDrop::new(future),
        }
    }
}

// SAFETY: a `&ScopeFuture` gives access to nothing (no method takes `&self`; polling and dropping take it
// by `&mut`), so sharing one between threads cannot race on the scope's cells or on the future. Lets an
// observed future meet a `Sync` bound, as the unobserved one does. Keep it so: a `&self` method, a `Debug`
// that reads a field or a `pub` field would make this unsound.
unsafe impl<F: Future> Sync for ScopeFuture<F> {}

/// A panic in a poll ends the scope as `panic` before it unwinds out of `poll`: what is left is consistent.
impl<F: Future + std::panic::UnwindSafe> std::panic::UnwindSafe for ScopeFuture<F> {}

impl<F: Future> Drop for ScopeFuture<F> {
    fn drop(&mut self) {
        let ScopeFuture { scope, future, .. } = self;
        // SAFETY: `future` is dropped once, here, in place (it is pinned), and never used again.
        scope.drop_inside(|| unsafe { std::mem::ManuallyDrop::drop(future) });
    }
}

impl<F: Future> Future for ScopeFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`; `scope` and `classify` are
        // not pinned and only used through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut *this.future) };
        this.scope.open_span_if_wanted();
        let poll = this.scope.in_scope(|| future.poll(cx));
        if let Poll::Ready(output) = &poll {
            let outcome = (this.classify)(output);
            this.scope.end(outcome);
        }
        poll
    }
}

/// The trace ID of the current scope, if code is running inside one.
///
/// Generated on first use: a scope that nobody asks for its ID never pays for one. A nested scope shares the
/// ID of the scope it runs in.
///
/// ```
/// #[observe::observe(handler)]
/// fn handler() -> observe::TraceId {
///     observe::current_trace_id().expect("inside a scope")
/// }
///
/// assert!(observe::current_trace_id().is_none());
/// let id = handler();
/// assert_eq!(id.to_string().len(), 32);
/// ```
pub fn current_trace_id() -> Option<TraceId> {
    let top = CURRENT.get();
    if top.is_null() {
        return None;
    }
    // SAFETY: every pointer in the chain is a frame entered on this thread, alive until it is left, and frames
    // are left in LIFO order, after any code that runs on top of them.
    unsafe {
        let mut found = None;
        let mut any = false;
        let mut cursor = top;
        while let Some(frame) = cursor.as_ref() {
            if !frame.transparent() {
                any = true;
                if let Some(id) = frame.trace_id.get() {
                    found = Some(id);
                    break;
                }
            }
            cursor = frame.parent.get();
        }
        if !any {
            return None;
        }
        let id = found.unwrap_or_else(TraceId::generate);
        let mut cursor = top;
        while let Some(frame) = cursor.as_ref() {
            if !frame.transparent() {
                if frame.trace_id.get().is_some() {
                    break;
                }
                frame.trace_id.set(Some(id));
            }
            cursor = frame.parent.get();
        }
        Some(id)
    }
}

/// The W3C trace flags of the trace code runs in (that of the innermost frame holding the trace ID; `01`,
/// sampled, when none holds one yet: a trace that starts here).
pub(crate) fn current_trace_flags() -> u8 {
    let mut cursor = CURRENT.get();
    // SAFETY: as in `current_trace_id`.
    unsafe {
        while let Some(frame) = cursor.as_ref() {
            if !frame.transparent() && frame.trace_id.get().is_some() {
                return frame.flags.get();
            }
            cursor = frame.parent.get();
        }
    }
    SAMPLED
}

/// Whether code on this thread runs inside an observe scope.
#[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
#[inline]
pub(crate) fn in_scope() -> bool {
    with_innermost_scope(|_| ()).is_some()
}

/// Calls `f` on every frame entered on this thread, innermost first.
#[inline]
pub(crate) fn for_each_frame(mut f: impl FnMut(&Frame)) {
    let mut cursor = CURRENT.get();
    // SAFETY: as in `current_trace_id`.
    unsafe {
        while let Some(frame) = cursor.as_ref() {
            f(frame);
            cursor = frame.parent.get();
        }
    }
}

/// Runs `f` inside `frame`, which must stay where it is for the call (used by `testing`).
pub(crate) fn run_in_frame<R>(frame: &Frame, f: impl FnOnce() -> R) -> R {
    struct Leave<'a>(&'a Frame, *const Frame);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            CURRENT.set(self.1);
            self.0.parent.set(ptr::null());
        }
    }
    let parent = CURRENT.get();
    frame.parent.set(parent);
    CURRENT.set(frame);
    let _leave = Leave(frame, parent);
    f()
}

/// Calls `f` with the innermost frame of an observed function entered on this thread, if any.
#[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
#[inline]
pub(crate) fn with_innermost_scope<R>(f: impl FnOnce(&Frame) -> R) -> Option<R> {
    let mut cursor = CURRENT.get();
    // SAFETY: as in `current_trace_id`.
    unsafe {
        while let Some(frame) = cursor.as_ref() {
            if frame.site.is_some() {
                return Some(f(frame));
            }
            cursor = frame.parent.get();
        }
    }
    None
}

/// The site of the innermost current scope, if any.
pub(crate) fn current_site() -> Option<&'static Site> {
    let top = CURRENT.get();
    // SAFETY: as in `current_trace_id`.
    unsafe { top.as_ref().and_then(|frame| frame.site) }
}

/// The site of the outermost scope entered on this thread, if any.
pub(crate) fn outermost_site() -> Option<&'static Site> {
    let mut site = None;
    for_each_frame(|frame| site = frame.site.or(site));
    site
}
