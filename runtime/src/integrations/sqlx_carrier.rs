//! Scope carriers: how a statement that sqlx runs on its SQLite worker thread finds the scope that sent it,
//! without a tracing span per scope.
//!
//! sqlx sends `Span::current()` to its worker thread with every command and enters it there, and wraps each
//! row stream in it. With a span per scope, each of these steps goes through the registry and every
//! per-layer filter (a dozen atomic operations each, several times per statement). [`CarryScopes`] wraps the
//! subscriber and answers `Span::current()` inside a scope with a *carrier* instead: a registry span that
//! observe keeps open and lends to one scope at a time. Entering, leaving, cloning and dropping a carrier never
//! reach the registry or its layers: a thread-local stack and one atomic count.
//!
//! A carrier is lent to a scope the first time anything asks for the current span inside it or creates a span
//! in it (sqlx does, for every statement), and goes back to the pool once the scope has ended and no clone of
//! it is left (the worker may still hold one for a moment, a span created in the scope may hold it longer).
//! Statements the worker runs under a carrier wait in the carrier until the scope ends and takes them; those
//! that arrive after it ended count as unscoped at once, never for the next borrower.

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::span::{Attributes, Current, Id, Record};
use tracing_core::subscriber::{Interest, Subscriber};
use tracing_core::{Event, Kind, Level, LevelFilter, Metadata};

use tracing_subscriber::registry::LookupSpan;

use crate::scope::Frame;
use crate::site::Site;
use crate::trace_id::TraceId;

/// Wraps a subscriber so that sqlx's SQLite worker threads find observe scopes without a span per scope.
/// Made by [`carry_scopes`](crate::sqlx::carry_scopes); `observe::init()` installs it for you.
///
/// Everything but the carriers goes to the wrapped subscriber unchanged. Inside a scope, `Span::current()` is
/// the innermost span created inside that scope if one is entered (so recording a field on "the current span"
/// in a handler still reaches your span, and a statement sent there runs inside it, as without the wrapper);
/// otherwise it is the scope's carrier, which stands for the span that was current around the scope when the
/// carrier was lent (a tower-http request span, or the scope's own span if your subscriber enables it; the
/// carrier keeps it open until the scope ends):
///
/// - it has that span's metadata, and `Span::current().record(..)` records on that span, until the scope ends
///   (after, the fields are dropped);
/// - a span created with it as explicit parent (`info_span!(parent: &Span::current(), ..)`) gets that span as
///   parent (a root if there was none); so does an event (`info!(parent: &Span::current(), ..)`), sent again with
///   its fields copied: numbers, booleans and text as they are, other values formatted once with `Debug` (an
///   error's `source()` chain, `{:#?}` formatting and bytes as bytes are not kept);
/// - a [`TraceContext`](crate::TraceContext) captured in the scope carries the span current in the wrapped
///   subscriber, not the carrier. Work run in that context elsewhere (`observe::spawn`, a blocking task) is no
///   longer the scope's: its SQLite statements count as unscoped, as every database's statements do there;
/// - a statement sent under the carrier writes its `sqlx::query` line on the worker thread with the scope's
///   `trace_id` (and `scope` in JSON), not nested in the spans entered around the scope.
///
/// Limits: code that looks a span up by ID in the registry (`Span::current().id()`, the context that
/// `tracing-opentelemetry` attaches to a span) sees the carrier there, a root span named `observe.carrier` at
/// `TRACE` level. Take such a context from a span you create in the handler (`#[tracing::instrument]` or
/// `info_span!`), which stays `Span::current()` while entered, or build your subscriber without this wrapper
/// (scopes then open a span each, see [`sqlx`](crate::sqlx)). A carrier's raw ID kept past its scope names
/// nothing stable (the carrier may be lent again): a span created with it as parent gets the span the carrier
/// stands for then, or none. Carriers are spans of the `Registry`, created by it directly (your layers never see
/// them created); with a subscriber that has no `Registry`, they go through the whole subscriber, and a layer
/// that asks for the current span from inside `on_event` or `on_new_span` is then lent a pooled carrier, never
/// a new one (creating one there would disturb the per-layer filters of the call in progress).
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let subscriber = observe::sqlx::carry_scopes(
///     tracing_subscriber::registry()
///         .with(observe::layer().with_filter(tracing_subscriber::EnvFilter::new("info")))
///         .with(observe::sqlx::layer()),
/// );
/// tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
/// ```
///
/// Install it outermost, with every layer inside it (it does not implement `LookupSpan`, so a layer cannot be
/// added around it: such a layer would meet carriers where it expects its own spans).
///
/// Carriers are process-wide: the first wrapper installed (turned into a dispatcher, by `set_global_default`,
/// `with_default` or `init()`) lends them, and any later one passes everything through to its subscriber (its
/// scopes' worker-thread statements then count as unscoped); one whose installation failed before it lent any
/// carrier gives the role up. Install one. A `Subscriber` of your own around it must forward
/// `on_register_dispatch`, which is how the wrapper learns it is installed (without it, it never lends: scopes
/// then open a span each).
pub struct CarryScopes<S> {
    inner: S,
    /// Whether this wrapper lends the carriers (the first one installed in the process).
    lends: AtomicBool,
    /// The generation of its lender role, when it took one.
    generation: AtomicU64,
}

/// The dispatcher of the wrapper that lends carriers (carrier span IDs are its registry's, meaningless to any
/// other), also used to let go of the spans carriers stood for (a scope may end where another dispatcher is the
/// default). A later wrapper takes the role over only from a lender whose dispatcher is gone without having made
/// a carrier (one installed with `set_global_default` when another subscriber was already set).
static LENDER_DISPATCH: Mutex<Option<(u64, tracing_core::dispatcher::WeakDispatch)>> = Mutex::new(None);
/// Numbers each taking of the lender role: a lender gone for good clears the role only if it still holds it.
static LENDER_GENERATION: AtomicU64 = AtomicU64::new(0);
/// Set with `LENDER_DISPATCH`: a load per loan instead of upgrading the weak dispatcher.
static LENDER_REGISTERED: AtomicBool = AtomicBool::new(false);

impl<S> CarryScopes<S> {
    pub(crate) fn new(inner: S) -> CarryScopes<S> {
        tracing_core::callsite::register(&CARRIER_CALLSITE);
        CarryScopes {
            inner,
            lends: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    /// The carrier whose span ID is `id`, if this wrapper lends carriers and `id` is one.
    #[inline]
    fn lookup(&self, id: &Id) -> Option<&'static Carrier> {
        if self.lends.load(Ordering::Relaxed) {
            lookup(id)
        } else {
            None
        }
    }
}

impl<S> Drop for CarryScopes<S> {
    fn drop(&mut self) {
        // A lender gone without having made a carrier (its installation failed, or it was installed for a
        // moment and never lent): the role is free again, and scopes open their spans as before.
        if self.lends.load(Ordering::Acquire) {
            let mut lender = LENDER_DISPATCH.lock().unwrap_or_else(|p| p.into_inner());
            let mine = lender
                .as_ref()
                .is_some_and(|(generation, _)| *generation == self.generation.load(Ordering::Relaxed));
            if mine && RESERVED.load(Ordering::Acquire) == 0 {
                *lender = None;
                LENDER_REGISTERED.store(false, Ordering::Relaxed);
                CARRYING.store(false, Ordering::Release);
                // Callsite interests were last asked with carriers about to be used (scope spans: never).
                INTEREST_MAY_BE_STALE.store(true, Ordering::Release);
            }
        }
    }
}

/// Set once a lender gave the role up (see `Drop for CarryScopes`): scope spans' cached interest may say never
/// where the filters now say yes.
static INTEREST_MAY_BE_STALE: AtomicBool = AtomicBool::new(false);

/// Whether callsite interests may need asking again (see [`rebuild_stale_interest`]).
#[inline]
pub(crate) fn stale_interest() -> bool {
    INTEREST_MAY_BE_STALE.load(Ordering::Relaxed)
}

/// Asks every callsite's interest again, once, if a lender resigned, and says whether it did. Not from inside a
/// dispatcher call: there, with scoped dispatchers in use, tracing finds no subscriber and would cache "never"
/// for every callsite (the flag waits for the next scope outside one).
#[cold]
#[inline(never)]
pub(crate) fn rebuild_stale_interest() -> bool {
    let inside_a_dispatch =
        tracing_core::dispatcher::get_default(|current| current.is::<tracing_core::subscriber::NoSubscriber>());
    if inside_a_dispatch || !INTEREST_MAY_BE_STALE.swap(false, Ordering::AcqRel) {
        return false;
    }
    tracing_core::callsite::rebuild_interest_cache();
    true
}

/// Set once a [`CarryScopes`] lends carriers: scopes then never need a span of their own for sqlx.
static CARRYING: AtomicBool = AtomicBool::new(false);

/// Whether scope carriers are in use (the sqlx layer then leaves scope spans off).
pub(crate) fn carrying() -> bool {
    CARRYING.load(Ordering::Relaxed)
}

struct CarrierCallsite;

static CARRIER_CALLSITE: CarrierCallsite = CarrierCallsite;

static CARRIER_META: Metadata<'static> = tracing_core::metadata! {
    name: "observe.carrier",
    target: "observe::carrier",
    level: Level::TRACE,
    fields: &[],
    callsite: &CARRIER_CALLSITE,
    kind: Kind::SPAN,
};

impl Callsite for CarrierCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &CARRIER_META
    }
}

/// Whether `meta` is the carriers' span metadata (which the sqlx layer's filter enables).
pub(crate) fn is_carrier(meta: &Metadata<'_>) -> bool {
    std::ptr::eq(meta, &CARRIER_META) || meta.callsite() == Identifier(&CARRIER_CALLSITE)
}

struct Carrier {
    /// A registry span, never closed: its ID is reserved for the carrier.
    id: Id,
    /// [`LENT`] while the borrowing scope runs, plus one for every clone of the carrier's `Span` alive anywhere
    /// (and every span created inside the scope, see [`InScope`]). Zero: in the pool. The scope's hold is a bit
    /// of its own so that no sequence of clones and closes (even of a raw ID kept from an earlier loan) can take
    /// it away: the carrier goes back to the pool only once the scope has ended and the count is zero.
    refs: AtomicUsize,
    /// Statements run under the carrier on another thread, waiting for the borrowing scope to end.
    pending: Mutex<Pending>,
    /// The borrowing scope's trace ID (high and low halves; 0 when unknown) and site, for log lines written on
    /// a thread that entered the carrier.
    trace_id: [AtomicU64; 2],
    site: AtomicPtr<Site>,
    /// The span the carrier stands for during its loan: the one current (in the wrapped subscriber) around the
    /// scope when the carrier was lent, with a reference held until the scope ends. `Span::current().record(..)`
    /// and spans with the carrier as explicit parent go to it.
    stands_for: Mutex<Option<(Id, &'static Metadata<'static>)>>,
    /// Its metadata (null: none), which the carrier wears in `Span::current()`.
    stands_for_meta: AtomicPtr<Metadata<'static>>,
}

/// The borrowing scope's hold on its carrier, in [`Carrier::refs`].
const LENT: usize = 1 << (usize::BITS - 1);

/// At most this many carriers exist (as many scopes at once inside sqlx); past it, scopes go without one and
/// their worker-thread statements count as unscoped.
const MAX_CARRIERS: usize = 4096;
/// The ID → carrier table: open addressing, insert-only (carriers live for the process), half full at most.
const TABLE_SLOTS: usize = 2 * MAX_CARRIERS;

/// The span IDs of the table's carriers (0: empty), beside them so that a lookup reads no carrier it does not
/// return.
static KEYS: [AtomicU64; TABLE_SLOTS] = [const { AtomicU64::new(0) }; TABLE_SLOTS];
static TABLE: [AtomicPtr<Carrier>; TABLE_SLOTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; TABLE_SLOTS];
const RECENT_SLOTS: usize = 8;
static CREATED: AtomicUsize = AtomicUsize::new(0);
/// Carriers not lent to any scope.
static FREE: Mutex<Vec<&'static Carrier>> = Mutex::new(Vec::new());
/// Carriers created or being created: creation reserves its place here first (the table never holds more than
/// `MAX_CARRIERS`).
static RESERVED: AtomicUsize = AtomicUsize::new(0);
/// Held while a created carrier is inserted into the table (never while calling into the subscriber).
static INSERTING: Mutex<()> = Mutex::new(());

thread_local! {
    /// Carriers entered on this thread, innermost last, each with the span entered: the carrier's own, or a
    /// span created inside a scope entered on a thread outside any scope (sqlx's worker).
    static ENTERED: RefCell<Vec<(&'static Carrier, u64)>> = const { RefCell::new(Vec::new()) };
    /// Carriers this thread looked up lately, by span ID (0: empty).
    static RECENT: [Cell<(u64, *const Carrier)>; RECENT_SLOTS] =
        const { [const { Cell::new((0, std::ptr::null())) }; RECENT_SLOTS] };
    /// Set while this thread creates a carrier or bypasses them (see [`current_span_bypassing`]): a layer
    /// that asks for the current span or creates one meanwhile gets no carrier (no re-entry, no deadlock).
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// How deep this thread is in a call from the wrapper into the wrapped subscriber that runs its layers
    /// (`event`, `new_span`). A layer asking for the current span there may be lent a pooled carrier, but none
    /// is created: creating one would run every layer's filters again in the middle of the outer call, and
    /// reset the per-layer filter state that call is using.
    static DISPATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Counts a call into the wrapped subscriber in [`DISPATCHING`] for the life of the guard.
struct Dispatching;

impl Dispatching {
    fn enter() -> Dispatching {
        let _ = DISPATCHING.try_with(|depth| depth.set(depth.get().saturating_add(1)));
        Dispatching
    }
}

impl Drop for Dispatching {
    fn drop(&mut self) {
        let _ = DISPATCHING.try_with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Sets [`BUSY`] for the life of the guard; `None` if it was already set (a re-entered call).
struct Busy;

impl Busy {
    fn enter() -> Option<Busy> {
        BUSY.try_with(|busy| (!busy.replace(true)).then_some(Busy))
            .ok()
            .flatten()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = BUSY.try_with(|busy| busy.set(false));
    }
}

fn slot_of(id: u64) -> usize {
    (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % TABLE_SLOTS
}

/// The carrier whose span ID is `id`, if it is one. A carrier this thread met recently is found in a small
/// per-thread cache (the shared table is large and mostly cold while a request runs); any other span costs
/// usually one load of the table.
#[inline]
fn lookup(id: &Id) -> Option<&'static Carrier> {
    if CREATED.load(Ordering::Acquire) == 0 {
        return None;
    }
    let key = id.into_u64();
    let recent = (key as usize ^ (key >> 9) as usize) % RECENT_SLOTS;
    if let Ok(Some(carrier)) = RECENT.try_with(|cache| {
        let (cached, carrier) = cache[recent].get();
        // SAFETY: only leaked carriers are cached.
        (cached == key).then(|| unsafe { &*carrier })
    }) {
        return Some(carrier);
    }
    let found = lookup_table(key)?;
    // Only carriers are cached: their IDs are never closed, so never reused for another span.
    let _ = RECENT.try_with(|cache| cache[recent].set((key, std::ptr::from_ref(found))));
    Some(found)
}

fn lookup_table(key: u64) -> Option<&'static Carrier> {
    let mut slot = slot_of(key);
    loop {
        match KEYS[slot].load(Ordering::Acquire) {
            0 => return None,
            found if found == key => {
                // SAFETY: a key is published after its carrier (a leaked carrier, never freed).
                return unsafe { TABLE[slot].load(Ordering::Acquire).as_ref() };
            }
            _ => slot = (slot + 1) % TABLE_SLOTS,
        }
    }
}

/// How many carriers exist.
pub(crate) fn created() -> usize {
    CREATED.load(Ordering::Relaxed)
}

fn free_list() -> std::sync::MutexGuard<'static, Vec<&'static Carrier>> {
    FREE.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a frame's carrier pointer holds once its scope has ended: no carrier is lent to it any more (code that
/// runs in the frame after its end, such as the query report, would never give it back). Never a carrier's
/// address (carriers live on the heap; this is the first aligned address).
pub(crate) const ENDED: *const () = std::ptr::dangling::<u64>().cast();

/// The carrier held by a frame's pointer: `None` for null and [`ENDED`].
fn held(pointer: *const ()) -> Option<&'static Carrier> {
    if pointer == ENDED {
        return None;
    }
    // SAFETY: a frame's carrier pointer is null, `ENDED`, or a leaked carrier.
    unsafe { pointer.cast::<Carrier>().as_ref() }
}

/// The carrier lent to `frame`, lending one now if it has none. `None` once its scope ended, past
/// `MAX_CARRIERS`, or when called again while this thread creates a carrier.
fn carrier_of<S: Subscriber + for<'a> LookupSpan<'a>>(inner: &S, frame: &Frame) -> Option<&'static Carrier> {
    let pointer = frame.carrier.get();
    if let Some(carrier) = held(pointer) {
        return Some(carrier);
    }
    if pointer == ENDED || BUSY.try_with(Cell::get).unwrap_or(true) {
        return None;
    }
    let free = free_list().pop();
    let carrier = match free {
        Some(carrier) => carrier,
        None => create(inner)?,
    };
    // The carrier is ours alone until it reaches another thread in a `Span`, through sqlx's channel (which
    // orders these stores before anything that thread reads).
    pending(carrier).ended = false;
    carrier.refs.store(LENT, Ordering::Relaxed);
    // Only with the lender's dispatcher at hand, through which the scope's end lets the span go again.
    let current = inner.current_span();
    let registered = LENDER_REGISTERED.load(Ordering::Relaxed);
    if let (Some(id), Some(meta), true) = (current.id(), current.metadata(), registered) {
        let held = inner.clone_span(id);
        *stands_for(carrier) = Some((held, meta));
        carrier
            .stands_for_meta
            .store(std::ptr::from_ref(meta).cast_mut(), Ordering::Relaxed);
    }
    let trace_id = crate::scope::current_trace_id().map_or(0, TraceId::as_u128);
    carrier.trace_id[0].store((trace_id >> 64) as u64, Ordering::Relaxed);
    carrier.trace_id[1].store(trace_id as u64, Ordering::Relaxed);
    let site = frame
        .site
        .map_or(std::ptr::null_mut(), |site| std::ptr::from_ref(site).cast_mut());
    carrier.site.store(site, Ordering::Relaxed);
    frame.carrier.set(std::ptr::from_ref(carrier).cast());
    Some(carrier)
}

/// Creates a carrier: a span of the registry, kept open for good. Made by the `Registry` itself when the wrapped
/// subscriber has one (no layer sees it created, none would do anything with it, and no filtering pass runs:
/// creating one is safe anywhere, even while a field of an event is evaluated, between the filters' verdict and
/// the event's dispatch). Otherwise through the whole subscriber, never from inside one of its calls
/// ([`DISPATCHING`]), and with [`BUSY`] set against re-entry. No lock is held meanwhile.
fn create<S: Subscriber + for<'a> LookupSpan<'a>>(inner: &S) -> Option<&'static Carrier> {
    let _busy = Busy::enter()?;
    let subscriber: &dyn Subscriber = inner;
    // The `Registry` whose spans `inner` uses: checked by looking the new span up through `inner` (a layer could
    // hold a registry of its own and answer the downcast first).
    let registry = subscriber.downcast_ref::<tracing_subscriber::Registry>();
    if registry.is_none() && (DISPATCHING.try_with(Cell::get).unwrap_or(1) > 0 || !inner.enabled(&CARRIER_META)) {
        return None;
    }
    RESERVED
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |reserved| {
            (reserved < MAX_CARRIERS).then_some(reserved + 1)
        })
        .ok()?;
    let values = CARRIER_META.fields().value_set(&[]);
    let attributes = Attributes::new_root(&CARRIER_META, &values);
    let direct = registry
        .map(|registry| registry.new_span(&attributes))
        .filter(|id| inner.span(id).is_some_and(|span| is_carrier(span.metadata())));
    let id = match direct {
        Some(id) => id,
        None if DISPATCHING.try_with(Cell::get).unwrap_or(1) > 0 || !inner.enabled(&CARRIER_META) => {
            RESERVED.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        None => inner.new_span(&attributes),
    };
    let carrier: &'static Carrier = Box::leak(Box::new(Carrier {
        id,
        refs: AtomicUsize::new(0),
        pending: Mutex::new(Pending::default()),
        trace_id: [AtomicU64::new(0), AtomicU64::new(0)],
        site: AtomicPtr::new(std::ptr::null_mut()),
        stands_for: Mutex::new(None),
        stands_for_meta: AtomicPtr::new(std::ptr::null_mut()),
    }));
    let _inserting = INSERTING.lock().unwrap_or_else(|p| p.into_inner());
    let key = carrier.id.into_u64();
    let mut slot = slot_of(key);
    while KEYS[slot].load(Ordering::Relaxed) != 0 {
        slot = (slot + 1) % TABLE_SLOTS;
    }
    TABLE[slot].store(std::ptr::from_ref(carrier).cast_mut(), Ordering::Release);
    KEYS[slot].store(key, Ordering::Release);
    CREATED.fetch_add(1, Ordering::Release);
    Some(carrier)
}

/// At most this many statements wait in a carrier with their text; past it, a scope's further worker-thread
/// statements are counted and timed but not fingerprinted (the memory a loan holds is bounded, whatever the
/// number of statements its scope runs).
const MAX_PENDING: usize = 256;

/// Statements waiting for the borrowing scope. The text buffers are kept from loan to loan: no allocation per
/// statement once warm.
#[derive(Default)]
struct Pending {
    statements: Vec<(String, Duration)>,
    used: usize,
    /// Statements past `MAX_PENDING`: how many, and their time.
    overflow: u32,
    overflow_elapsed: Duration,
    /// The borrowing scope has ended: statements arriving now are not its (they count as unscoped at once,
    /// even while a span created in the scope keeps the carrier from the pool).
    ended: bool,
}

impl Pending {
    fn push(&mut self, statement: &str, elapsed: Duration) {
        if self.used == MAX_PENDING {
            self.overflow = self.overflow.saturating_add(1);
            self.overflow_elapsed = self.overflow_elapsed.saturating_add(elapsed);
            return;
        }
        match self.statements.get_mut(self.used) {
            Some((text, time)) => {
                text.clear();
                text.push_str(statement);
                *time = elapsed;
            }
            None => self.statements.push((statement.to_owned(), elapsed)),
        }
        self.used += 1;
    }

    /// Records what waits into the current scope(s), or as unscoped, and empties the list (keeping its
    /// buffers).
    fn record(&mut self, unscoped: bool) {
        for (statement, elapsed) in &self.statements[..self.used] {
            if unscoped {
                crate::query::record_unscoped(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
            } else {
                crate::query::record(statement, *elapsed);
            }
        }
        if self.overflow > 0 {
            crate::query::record_without_statement(self.overflow, self.overflow_elapsed, unscoped);
        }
        self.used = 0;
        self.overflow = 0;
        self.overflow_elapsed = Duration::ZERO;
    }
}

fn pending(carrier: &Carrier) -> std::sync::MutexGuard<'_, Pending> {
    carrier.pending.lock().unwrap_or_else(|p| p.into_inner())
}

fn lender_dispatch() -> Option<tracing_core::Dispatch> {
    let lender = LENDER_DISPATCH.lock().unwrap_or_else(|p| p.into_inner());
    lender.as_ref().and_then(|(_, weak)| weak.upgrade())
}

/// A reference of its own to the span `carrier` stands for (with its metadata, read together), taken under the
/// lock through the lender's dispatcher and given back by [`StoodFor`]'s drop, also through it (so that a
/// subscriber wrapping this one sees the span closed if this was its last reference). No lock is held while the
/// subscriber's layers run with it.
fn stood_for(carrier: &Carrier) -> Option<StoodFor> {
    let dispatch = lender_dispatch()?;
    let (id, meta) = {
        let stood = stands_for(carrier);
        let (id, meta) = stood.as_ref()?;
        (dispatch.clone_span(id), *meta)
    };
    Some(StoodFor { dispatch, id, meta })
}

struct StoodFor {
    dispatch: tracing_core::Dispatch,
    id: Id,
    meta: &'static Metadata<'static>,
}

impl Drop for StoodFor {
    fn drop(&mut self) {
        self.dispatch.try_close(self.id.clone());
    }
}

fn stands_for(carrier: &Carrier) -> std::sync::MutexGuard<'_, Option<(Id, &'static Metadata<'static>)>> {
    carrier.stands_for.lock().unwrap_or_else(|p| p.into_inner())
}

/// The metadata the carrier wears in `Span::current()`: that of the span it stands for, or its own.
fn worn_metadata(carrier: &Carrier) -> &'static Metadata<'static> {
    let meta = carrier.stands_for_meta.load(Ordering::Relaxed);
    // SAFETY: null or the `'static` metadata of a span.
    unsafe { meta.cast_const().as_ref() }.unwrap_or(&CARRIER_META)
}

/// Drops one reference from outside the borrowing scope; the last one ends the loan and the carrier goes back
/// to the pool. (The scope holds a reference until it ends and takes its statements, so nothing should wait
/// here then; if anything does, it counts as unscoped, never for the next borrower.)
fn release(carrier: &'static Carrier) {
    // Never below zero, never the scope's hold: a raw carrier ID cloned while the carrier was in the pool took
    // no reference (see `clone_span`), and gives none back.
    let before = carrier.refs.fetch_update(Ordering::AcqRel, Ordering::Acquire, |refs| {
        (refs & !LENT > 0).then(|| refs - 1)
    });
    if before == Ok(1) {
        pending(carrier).record(true);
        free_list().push(carrier);
    }
}

/// The scope of `frame` ends: no carrier is lent to it from now on; it takes in the statements run for it under
/// its carrier, if it had one (recorded as if run in it), then gives the carrier back (the pool takes it once no
/// clone is left).
/// `pointer` is what the frame held before its end set it to [`ENDED`].
pub(crate) fn end_loan(frame: &Frame, pointer: *const ()) {
    let Some(carrier) = held(pointer) else {
        return;
    };
    crate::scope::run_in_frame(frame, || {
        let mut pending = pending(carrier);
        pending.record(false);
        pending.ended = true;
    });
    // The span it stood for is let go (under its lock: a `record` on the carrier elsewhere never meets a
    // closed ID); the carrier wears its own metadata again.
    carrier.stands_for_meta.store(std::ptr::null_mut(), Ordering::Relaxed);
    let stood = stands_for(carrier).take();
    // The lender's dispatcher (a lock and an upgrade) only when there is a span to let go.
    if let Some((id, _)) = stood {
        if let Some(dispatch) = lender_dispatch() {
            dispatch.try_close(id);
        }
    }
    if carrier.refs.fetch_and(!LENT, Ordering::AcqRel) == LENT {
        free_list().push(carrier);
    }
}

/// Hands a statement that sqlx ran on this thread (its SQLite worker) to the scope whose carrier is entered
/// here (or counts it as unscoped if that scope has ended). False if no carrier is entered here.
pub(crate) fn hand_over(statement: &str, elapsed: Duration) -> bool {
    let Some(carrier) = entered() else {
        return false;
    };
    let mut pending = pending(carrier);
    if pending.ended {
        drop(pending);
        crate::query::record_unscoped(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    } else {
        pending.push(statement, elapsed);
    }
    true
}

/// The carrier entered innermost on this thread, if it is lent (an unpaired enter could leave a carrier here
/// after it went back to the pool: it must not collect statements for its next borrower).
fn entered() -> Option<&'static Carrier> {
    ENTERED
        .try_with(|entered| {
            entered
                .try_borrow()
                .ok()
                .and_then(|e| e.last().map(|(carrier, _)| *carrier))
        })
        .ok()
        .flatten()
        .filter(|carrier| carrier.refs.load(Ordering::Relaxed) > 0)
}

/// Whether anything is noted as entered on this thread (lent or not: a stale entry must not keep the ones below
/// it from being left).
fn any_entered() -> bool {
    ENTERED
        .try_with(|entered| entered.try_borrow().is_ok_and(|e| !e.is_empty()))
        .unwrap_or(false)
}

fn push_entered(carrier: &'static Carrier, span: u64) {
    let _ = ENTERED.try_with(|entered| {
        if let Ok(mut entered) = entered.try_borrow_mut() {
            entered.push((carrier, span));
        }
    });
}

/// Takes `span` off this thread's entered carriers: the last one, almost always, else (when `search`) the
/// innermost entry for it. Inside a scope no search is made (a carrier entered there is not noted, and an entry
/// further down is one entered outside the scope, still entered).
fn pop_entered(span: u64, search: bool) {
    let _ = ENTERED.try_with(|entered| {
        if let Ok(mut entered) = entered.try_borrow_mut() {
            // Spans are left in the order they were entered, almost always: the last one.
            match entered.last() {
                None => {}
                Some((_, id)) if *id == span => {
                    entered.pop();
                }
                Some(_) if search => {
                    if let Some(at) = entered.iter().rposition(|(_, id)| *id == span) {
                        entered.remove(at);
                    }
                }
                Some(_) => {}
            }
        }
    });
}

/// The trace ID of the scope whose carrier is entered on this thread.
pub(crate) fn entered_trace_id() -> Option<TraceId> {
    let carrier = entered()?;
    let high = u128::from(carrier.trace_id[0].load(Ordering::Relaxed));
    let low = u128::from(carrier.trace_id[1].load(Ordering::Relaxed));
    TraceId::from_u128((high << 64) | low)
}

/// The site of the scope whose carrier is entered on this thread.
pub(crate) fn entered_site() -> Option<&'static Site> {
    let site = entered()?.site.load(Ordering::Relaxed);
    // SAFETY: sites are `'static`.
    unsafe { site.cast_const().as_ref() }
}

/// The callsite of the fields in `values` (`None` if empty).
fn fields_of(values: &Record<'_>) -> Option<Identifier> {
    struct First(Option<Identifier>);
    impl tracing_core::field::Visit for First {
        fn record_debug(&mut self, field: &tracing_core::Field, _: &dyn std::fmt::Debug) {
            if self.0.is_none() {
                self.0 = Some(field.callsite());
            }
        }
    }
    let mut first = First(None);
    values.record(&mut first);
    first.0
}

/// A field value copied out of an event, to dispatch it again.
enum Copied {
    F64(f64),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    Bool(bool),
    Str(String),
    /// A `Debug` (or error, or bytes) value, formatted once: written back as is.
    Formatted(String),
}

/// Writes a preformatted `Debug` value as it is.
struct AsFormatted<'a>(&'a str);

impl std::fmt::Debug for AsFormatted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Copies every field of an event, by field index.
struct CopyFields(Vec<Option<Copied>>);

impl CopyFields {
    fn put(&mut self, field: &tracing_core::Field, value: Copied) {
        if let Some(slot) = self.0.get_mut(field.index()) {
            *slot = Some(value);
        }
    }
}

impl tracing_core::field::Visit for CopyFields {
    fn record_f64(&mut self, field: &tracing_core::Field, value: f64) {
        self.put(field, Copied::F64(value));
    }
    fn record_i64(&mut self, field: &tracing_core::Field, value: i64) {
        self.put(field, Copied::I64(value));
    }
    fn record_u64(&mut self, field: &tracing_core::Field, value: u64) {
        self.put(field, Copied::U64(value));
    }
    fn record_i128(&mut self, field: &tracing_core::Field, value: i128) {
        self.put(field, Copied::I128(value));
    }
    fn record_u128(&mut self, field: &tracing_core::Field, value: u128) {
        self.put(field, Copied::U128(value));
    }
    fn record_bool(&mut self, field: &tracing_core::Field, value: bool) {
        self.put(field, Copied::Bool(value));
    }
    fn record_str(&mut self, field: &tracing_core::Field, value: &str) {
        self.put(field, Copied::Str(value.to_owned()));
    }
    fn record_error(&mut self, field: &tracing_core::Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Copied::Formatted(value.to_string()));
    }
    fn record_debug(&mut self, field: &tracing_core::Field, value: &dyn std::fmt::Debug) {
        self.put(field, Copied::Formatted(format!("{value:?}")));
    }
}

/// Dispatches `event` again through `dispatch`, with `parent` as its parent (a root if none): its fields copied
/// (numbers, booleans and text as they are; everything else formatted once with `Debug`).
fn reparented(event: &Event<'_>, parent: Option<Id>, dispatch: impl FnOnce(&Event<'_>)) {
    let meta = event.metadata();
    let fields = meta.fields();
    let mut copied = CopyFields((0..fields.len()).map(|_| None).collect());
    event.record(&mut copied);
    let formatted: Vec<Option<AsFormatted<'_>>> = copied
        .0
        .iter()
        .map(|value| match value {
            Some(Copied::Formatted(text)) => Some(AsFormatted(text)),
            _ => None,
        })
        .collect();
    let debug: Vec<Option<tracing_core::field::DebugValue<&AsFormatted<'_>>>> = formatted
        .iter()
        .map(|value| value.as_ref().map(tracing_core::field::debug))
        .collect();
    let values: Vec<Option<&dyn tracing_core::field::Value>> = copied
        .0
        .iter()
        .zip(&debug)
        .map(|(value, debug)| -> Option<&dyn tracing_core::field::Value> {
            match value.as_ref()? {
                Copied::F64(v) => Some(v),
                Copied::I64(v) => Some(v),
                Copied::U64(v) => Some(v),
                Copied::I128(v) => Some(v),
                Copied::U128(v) => Some(v),
                Copied::Bool(v) => Some(v),
                Copied::Str(v) => Some(v),
                Copied::Formatted(_) => debug.as_ref().map(|d| d as &dyn tracing_core::field::Value),
            }
        })
        .collect();
    let value_set = fields.value_set_all(&values);
    dispatch(&Event::new_child_of(parent, meta, &value_set));
}

/// `Span::current()` as the wrapped subscriber sees it, carriers aside: for a [`TraceContext`]
/// (crate::TraceContext) captured in a scope, which must keep the real span (entered on another thread, it is
/// the parent of the spans created there).
pub(crate) fn current_span_bypassing() -> tracing::Span {
    let _busy = Busy::enter();
    tracing::Span::current()
}

/// On a span created inside a scope (a user's `#[instrument]` span in a handler): the scope's carrier, held
/// until the span closes (the registry drops its extensions then), so that a statement sent inside the span is
/// attributed through it even if the span outlives the scope for a moment.
struct InScope(&'static Carrier);

impl Drop for InScope {
    fn drop(&mut self) {
        release(self.0);
    }
}

impl<S> CarryScopes<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// The carrier held by span `id`, if it was created inside a scope.
    fn carrier_held_by(&self, id: &Id) -> Option<&'static Carrier> {
        let span = self.inner.span(id)?;
        let extensions = span.extensions();
        extensions.get::<InScope>().map(|tag| tag.0)
    }

    /// `enter` for a span that is not a carrier. Out of line, so that a carrier's enter (sqlx's row streams
    /// enter theirs on every poll) saves the registers this path needs.
    #[inline(never)]
    fn enter_span(&self, span: &Id) {
        self.inner.enter(span);
        // A span created inside a scope, entered where no scope is (sqlx's worker running a statement sent
        // inside it): its scope's carrier counts as entered here too.
        if self.lends.load(Ordering::Relaxed)
            && CREATED.load(Ordering::Relaxed) > 0
            && crate::scope::with_innermost_scope(|_| ()).is_none()
        {
            if let Some(carrier) = self.carrier_held_by(span) {
                push_entered(carrier, span.into_u64());
            }
        }
    }

    /// `exit` for a span that is not a carrier (out of line, as [`Self::enter_span`]).
    #[inline(never)]
    fn exit_span(&self, span: &Id) {
        self.inner.exit(span);
        if any_entered() {
            pop_entered(span.into_u64(), true);
        }
    }

    /// Whether span `id` was created inside the scope of `frame`.
    fn created_in(&self, id: &Id, frame: &Frame) -> bool {
        self.inner.span(id).is_some_and(|span| {
            span.extensions()
                .get::<InScope>()
                .is_some_and(|tag| std::ptr::eq(std::ptr::from_ref(tag.0).cast(), frame.carrier.get()))
        })
    }
}

impl<S> Subscriber for CarryScopes<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing_core::Dispatch) {
        // The first wrapper turned into a dispatcher lends the carriers (one built and dropped does not), unless
        // that dispatcher is gone without having made any (its installation failed).
        let mut lender = LENDER_DISPATCH.lock().unwrap_or_else(|p| p.into_inner());
        let vacant = match lender.as_ref() {
            None => true,
            Some((_, weak)) => weak.upgrade().is_none() && RESERVED.load(Ordering::Acquire) == 0,
        };
        if vacant {
            let generation = LENDER_GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
            self.generation.store(generation, Ordering::Relaxed);
            *lender = Some((generation, subscriber.downgrade()));
            LENDER_REGISTERED.store(true, Ordering::Relaxed);
            self.lends.store(true, Ordering::Release);
            CARRYING.store(true, Ordering::Release);
        }
        drop(lender);
        self.inner.on_register_dispatch(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        // A carrier as explicit parent (`info_span!(parent: &Span::current(), ..)` in a scope): the registry
        // would keep it as the parent and close it through this wrapper, releasing a reference it never took.
        // The carrier stands for a span (see `current_span`): that span becomes the parent (none: a root).
        let parent_carrier = span.parent().and_then(|parent| self.lookup(parent));
        let id = {
            let _dispatching = Dispatching::enter();
            match parent_carrier {
                Some(carrier) => {
                    let (meta, values) = (span.metadata(), span.values());
                    match stood_for(carrier) {
                        Some(stood) => self
                            .inner
                            .new_span(&Attributes::child_of(stood.id.clone(), meta, values)),
                        None => self.inner.new_span(&Attributes::new_root(meta, values)),
                    }
                }
                None => self.inner.new_span(span),
            }
        };
        let meta = span.metadata();
        if self.lends.load(Ordering::Relaxed)
            && crate::sqlx::following_worker_threads()
            && !is_carrier(meta)
            && !crate::sqlx::is_scope_span(meta)
        {
            // Created inside a scope (or under its carrier): tag it, so that `Span::current()` may go on
            // returning it there (a user recording a field on their span) while statements sent inside it still
            // find the scope.
            let carrier = match parent_carrier {
                Some(parent) => {
                    let mine = crate::scope::with_innermost_scope(|frame| held(frame.carrier.get())).flatten();
                    if mine.is_some_and(|mine| std::ptr::eq(mine, parent)) {
                        // The carrier of the scope running here, whose reference the scope holds.
                        parent.refs.fetch_add(1, Ordering::Relaxed);
                        Some(parent)
                    } else {
                        // A carrier from elsewhere (a `Span` moved out of its scope, or a raw ID): counted up only
                        // if still lent; one back in the pool must not be.
                        parent
                            .refs
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |refs| {
                                (refs > 0).then_some(refs + 1)
                            })
                            .ok()
                            .map(|_| parent)
                    }
                }
                None => crate::scope::with_innermost_scope(|frame| carrier_of(&self.inner, frame))
                    .flatten()
                    .inspect(|carrier| {
                        carrier.refs.fetch_add(1, Ordering::Relaxed);
                    }),
            };
            if let Some(carrier) = carrier {
                let tagged = self.inner.span(&id).is_some_and(|created| {
                    let mut extensions = created.extensions_mut();
                    let untagged = extensions.get_mut::<InScope>().is_none();
                    if untagged {
                        extensions.insert(InScope(carrier));
                    }
                    untagged
                });
                if !tagged {
                    release(carrier);
                }
            }
        }
        id
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        match self.lookup(span) {
            None => self.inner.record(span, values),
            // `Span::current().record(..)` in a scope, where the current span is the carrier standing for the
            // span entered around the scope (a tower-http request span): the fields go to that span, as they
            // would without carriers, if they are its fields. Under the lock, so that the span stays open.
            Some(carrier) => {
                if let Some(stood) = stood_for(carrier) {
                    if fields_of(values) == Some(stood.meta.callsite()) {
                        self.inner.record(&stood.id, values);
                    }
                }
            }
        }
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        // A carrier stands for its span here too (none: the link is dropped).
        let stood = |id: &Id| match self.lookup(id) {
            Some(carrier) => stood_for(carrier).map(Some),
            None => Some(None),
        };
        if let (Some(span_stood), Some(follows_stood)) = (stood(span), stood(follows)) {
            let span = span_stood.as_ref().map_or(span, |s| &s.id);
            let follows = follows_stood.as_ref().map_or(follows, |s| &s.id);
            self.inner.record_follows_from(span, follows);
        }
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        // An event with a carrier as parent is asked about once it has its real parent (in `event`).
        if event.parent().and_then(|parent| self.lookup(parent)).is_some() {
            return true;
        }
        self.inner.event_enabled(event)
    }

    fn event(&self, event: &Event<'_>) {
        let _dispatching = Dispatching::enter();
        match event.parent().and_then(|parent| self.lookup(parent)) {
            // `info!(parent: &Span::current(), ..)` in a scope: the layers would meet the carrier as the event's
            // span (no fields of theirs on it; some formatters insist). The event goes out again, as a child of
            // the span the carrier stands for, or as a root.
            Some(carrier) => {
                // Held until the event is out: its reference keeps the parent open meanwhile.
                let stood = stood_for(carrier);
                reparented(event, stood.as_ref().map(|stood| stood.id.clone()), |event| {
                    if self.inner.event_enabled(event) {
                        self.inner.event(event);
                    }
                });
            }
            None => self.inner.event(event),
        }
    }

    fn enter(&self, span: &Id) {
        match self.lookup(span) {
            // Only where no scope is (sqlx's worker, a stream polled outside its scope) does the carrier tell
            // whose statements run here; inside a scope (sqlx polling its rows in the handler, many times per
            // statement), the scope's frame does, and there is nothing to note.
            Some(carrier) => {
                if !crate::scope::in_scope() {
                    push_entered(carrier, span.into_u64());
                }
            }
            None => self.enter_span(span),
        }
    }

    fn exit(&self, span: &Id) {
        match self.lookup(span) {
            // As in `enter`: noted only where no scope is (entering and leaving happen in the same scope).
            Some(_) => {
                if any_entered() {
                    pop_entered(span.into_u64(), !crate::scope::in_scope());
                }
            }
            None => self.exit_span(span),
        }
    }

    fn clone_span(&self, span: &Id) -> Id {
        match self.lookup(span) {
            Some(carrier) => {
                // A `Span` holds a reference, so the count is above zero; only a raw ID kept past its scope can
                // name a carrier back in the pool, which is not counted up.
                let _ = carrier.refs.fetch_update(Ordering::AcqRel, Ordering::Acquire, |refs| {
                    (refs > 0).then_some(refs + 1)
                });
                span.clone()
            }
            None => self.inner.clone_span(span),
        }
    }

    fn try_close(&self, span: Id) -> bool {
        match self.lookup(&span) {
            Some(carrier) => {
                release(carrier);
                false
            }
            None => self.inner.try_close(span),
        }
    }

    #[allow(deprecated)]
    fn drop_span(&self, span: Id) {
        if self.lookup(&span).is_none() {
            self.inner.drop_span(span);
        }
    }

    fn current_span(&self) -> Current {
        if self.lends.load(Ordering::Relaxed)
            && crate::sqlx::following_worker_threads()
            && !BUSY.try_with(Cell::get).unwrap_or(true)
        {
            // Inside a scope: the span entered there if there is one (it carries the scope's carrier, see
            // `new_span`), else the scope's carrier itself, whatever spans are entered around the scope. The
            // carrier wears the metadata of the span it stands for (the one entered around the scope), so that
            // `Span::current().record(..)` finds that span's fields, and `record` sends them there.
            let found = crate::scope::with_innermost_scope(|frame| {
                let current = self.inner.current_span();
                if let Some(id) = current.id() {
                    if self.created_in(id, frame) {
                        return Some(current);
                    }
                }
                carrier_of(&self.inner, frame).map(|carrier| Current::new(carrier.id.clone(), worn_metadata(carrier)))
            });
            if let Some(Some(current)) = found {
                return current;
            }
            // Outside any scope on this thread, but inside a carrier (a stream polled where its scope is not).
            let current = self.inner.current_span();
            if current.id().is_none() {
                if let Some(carrier) = entered() {
                    return Current::new(carrier.id.clone(), &CARRIER_META);
                }
            }
            return current;
        }
        self.inner.current_span()
    }

    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(std::ptr::from_ref(self).cast());
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.downcast_raw(id) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::prelude::*;

    use super::{rebuild_stale_interest, stale_interest, INTEREST_MAY_BE_STALE};

    /// Tries the rebuild from inside an event's dispatch.
    struct RebuildsOnEvent(Arc<AtomicBool>);

    impl<S: tracing_core::Subscriber> Layer<S> for RebuildsOnEvent {
        fn on_event(&self, _: &tracing_core::Event<'_>, _: Context<'_, S>) {
            self.0.store(rebuild_stale_interest(), Ordering::SeqCst);
        }
    }

    #[test]
    fn stale_interest_is_asked_again_once_and_never_inside_a_dispatch() {
        INTEREST_MAY_BE_STALE.store(true, Ordering::SeqCst);
        let rebuilt_inside = Arc::new(AtomicBool::new(true));
        let subscriber = tracing_subscriber::registry().with(RebuildsOnEvent(rebuilt_inside.clone()));
        tracing::subscriber::with_default(subscriber, || tracing::info!("an event"));
        assert!(!rebuilt_inside.load(Ordering::SeqCst), "rebuilt inside a dispatch");
        assert!(stale_interest(), "the flag waits for a scope outside any dispatch");
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            assert!(rebuild_stale_interest());
            assert!(!rebuild_stale_interest(), "once");
        });
        assert!(!stale_interest());
    }
}
