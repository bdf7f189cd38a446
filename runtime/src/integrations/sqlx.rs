//! sqlx: a tracing layer that counts the statements sqlx reports (target `sqlx::query`, field `elapsed_secs`)
//! into the scope that ran them.
//!
//! ```no_run
//! // With `observe::init()`, the layer is installed for you when the `sqlx` feature is on. With your own
//! // subscriber, add it next to your formatting layer, and keep your filter on that layer only:
//! use tracing_subscriber::prelude::*;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::EnvFilter::from_default_env()))
//!     .with(observe::sqlx::layer())
//!     .init();
//! ```
//!
//! Two things make this work whatever your log level, and whichever thread sqlx runs the statement on:
//!
//! - The layer carries its own filter, enabling `sqlx::query` events (so sqlx builds them even under
//!   `RUST_LOG=info`) and observe's scope spans, for itself only: your log output does not change. A *global*
//!   filter (an `EnvFilter` added with `.with(filter)` rather than on your fmt layer) would switch both off for
//!   every layer, and the counting with them.
//! - sqlx's SQLite driver runs statements on a worker thread, which enters the span that was current when the
//!   statement was sent. Under `observe::init()`, or a subscriber wrapped with [`carry_scopes`], that span is a
//!   *carrier* that observe lends to the scope (see [`CarryScopes`]); otherwise it is the scope's own span. The
//!   layer finds the scope from it and hands the query over; the scope takes it in when it ends.
//!
//! Cost: nothing per scope until the layer has seen sqlx run a statement outside the async runtime, on a
//! worker thread (the SQLite driver does so when it connects: its `PRAGMA`s); with PostgreSQL or MySQL, whose
//! statements run on the caller's task inside the scope, never. From then on, with carriers, a scope borrows a
//! carrier the first time anything asks for the current span in it or creates a span in it (sqlx does so for
//! every statement; so does `.in_current_span()`, `#[instrument]` or a layer asking for `Span::current()`):
//! a lock on a small pool, once per scope. sqlx's steps of a statement (sending it, entering it on the worker,
//! polling its rows) then cost a table lookup each (and, on the worker, a thread-local push) instead of a trip
//! through the registry and its filters. Spans that are not carriers pay one lookup more (usually one load) when entered,
//! left, cloned or closed. Without carriers every scope opens a span (about 100 ns per
//! call, and more in sqlx, which enters it around every step: `BENCHMARKS.md` measures both). Without the
//! `sqlx` feature nothing changes.
//!
//! Without carriers, scopes still running when the first SQLite connection opens take up their span at their
//! next poll; a *synchronous* scope running then (an observed `fn main` that builds a runtime and connects
//! inside) cannot, and counts its worker-thread statements as unscoped: call [`follow_worker_threads`] before
//! it starts. With carriers, a scope borrows one whenever sqlx asks, so this does not arise.
//!
//! Limit: sqlx reports a statement when it finishes iterating its rows. A `fetch_one` / `fetch_optional`
//! whose scope ends within microseconds of the call can end before the worker's report arrives; that query is
//! then counted as unscoped (never lost). `fetch_all`, `execute` and streams that are read to the end are
//! always attributed.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

pub(crate) const TARGET: &str = "sqlx::query";

/// The layer, with its own filter. See the module documentation.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let subscriber = tracing_subscriber::registry().with(observe::sqlx::layer());
/// # drop(subscriber);
/// ```
pub fn layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    QueryLayer.with_filter(QueryFilter)
}

pub use crate::sqlx_carrier::CarryScopes;

/// Wraps `subscriber` so that statements sqlx runs on its SQLite worker threads find their scope without a
/// tracing span per scope (see [`CarryScopes`]). `observe::init()` does it for you; use it when you build your
/// own subscriber with [`layer`] in it, and install only the wrapped subscriber, with every layer inside it. Once
/// it is installed (turned into a dispatcher), the layer stops asking scopes for spans, for every subscriber in
/// the process.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let subscriber = observe::sqlx::carry_scopes(tracing_subscriber::registry().with(observe::sqlx::layer()));
/// # drop(subscriber);
/// ```
pub fn carry_scopes<S: Subscriber>(subscriber: S) -> CarryScopes<S> {
    CarryScopes::new(subscriber)
}

/// Counts the statements of a sqlx SQLite connection with SQLite's own trace hook, timed on the worker thread
/// and attributed to the scope that sent them (through its carrier: install observe with `observe::init()` or
/// [`carry_scopes`]). Call it from the pool's `after_connect`. sqlx's per-statement log events are then not
/// needed for counting: switch them off with `log_statements(LevelFilter::Off)` on the connect options and
/// sqlx no longer builds them (their summary and text, on every statement); if you keep them for your logs,
/// they are not counted twice. Statements that ran before the hook (the connection's set-up `PRAGMA`s) are not
/// counted when sqlx's events are off.
///
/// ```no_run
/// use sqlx::ConnectOptions;
/// use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
/// # async fn open() -> Result<sqlx::SqlitePool, sqlx::Error> {
/// let pool = SqlitePoolOptions::new()
///     .after_connect(|conn, _| Box::pin(observe::sqlx::trace_sqlite(conn)))
///     .connect_with(
///         SqliteConnectOptions::new()
///             .filename("shop.db")
///             .log_statements(log::LevelFilter::Off),
///     )
///     .await?;
/// # Ok(pool)
/// # }
/// ```
#[cfg(feature = "sqlx-sqlite")]
pub async fn trace_sqlite(conn: &mut sqlx_sqlite::SqliteConnection) -> Result<(), sqlx_core::Error> {
    if cfg!(feature = "disabled") {
        // Observability compiled out: no hook (the A/B baseline).
        return Ok(());
    }
    // Statements are found through carriers, which are handed out once worker threads are followed.
    follow_worker_threads();
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the locked handle is the open connection, and the lock keeps sqlx's worker off it meanwhile.
    unsafe {
        crate::sqlite_trace::register(handle.as_raw_handle().as_ptr(), crate::sqlite_trace::Owner::Sqlx);
    }
    Ok(())
}

/// How many scope carriers exist: at most the number of loans at the same time. A scope borrows one when
/// something asks for the current span in it or creates a span in it (sqlx does, for every statement), and
/// the loan lasts until the scope has ended and every clone of its `Span::current()`, and every span created in
/// it, is gone. They are reused, and bounded at 4096; past that, worker-thread statements count as unscoped.
///
/// ```
/// // 0 until something asked for the current span inside a scope, with carriers installed.
/// let _ = observe::sqlx::carriers();
/// ```
pub fn carriers() -> usize {
    crate::sqlx_carrier::created()
}

/// Whether scopes open their span, for statements that sqlx runs on a worker thread (SQLite).
static WORKER_THREADS: AtomicBool = AtomicBool::new(false);

/// Makes every scope open its tracing span from now on, so that statements sqlx runs on its SQLite worker
/// threads are counted in the scope that sent them. The layer does it by itself when it first sees such a
/// statement (the `PRAGMA`s of the first SQLite connection); call this before a *synchronous* scope that opens
/// the first connection inside it (such as an observed `fn main` that builds its own runtime). Idempotent.
///
/// ```
/// observe::sqlx::follow_worker_threads();
/// assert!(observe::sqlx::following_worker_threads());
/// ```
pub fn follow_worker_threads() {
    if !WORKER_THREADS.swap(true, Ordering::AcqRel) {
        // The filter's answer for scope spans changes: ask it again for every callsite.
        tracing_core::callsite::rebuild_interest_cache();
    }
}

/// Whether scopes open their span for sqlx's worker threads (see [`follow_worker_threads`]).
///
/// ```
/// // False in a process that has not used SQLite through sqlx (or called `follow_worker_threads`).
/// let _ = observe::sqlx::following_worker_threads();
/// ```
pub fn following_worker_threads() -> bool {
    WORKER_THREADS.load(Ordering::Acquire)
}

/// Marks the spans of observe scopes in the registry.
struct ScopeSpan;

struct QueryLayer;

struct QueryFilter;

fn wanted(meta: &Metadata<'_>) -> bool {
    if meta.is_event() {
        return meta.target() == TARGET;
    }
    if crate::sqlx_carrier::carrying() {
        // Scopes need no span: sqlx's worker threads find them through carriers.
        return crate::sqlx_carrier::is_carrier(meta);
    }
    is_scope_span(meta) && following_worker_threads()
}

/// Whether `meta` is a scope span's metadata. Asked for every span created, so the answer for a callsite is
/// remembered per thread (a small direct-mapped cache keyed by the metadata's address) rather than scanning
/// the sites each time.
pub(crate) fn is_scope_span(meta: &Metadata<'_>) -> bool {
    const SLOTS: usize = 32;
    thread_local! {
        static KNOWN: [Cell<(usize, bool)>; SLOTS] = const { [const { Cell::new((0, false)) }; SLOTS] };
    }
    let key = std::ptr::from_ref(meta) as usize;
    let slot = (key >> 4) % SLOTS;
    KNOWN
        .try_with(|known| {
            let (cached, answer) = known[slot].get();
            if cached == key {
                return answer;
            }
            let answer = crate::site::is_scope_span(meta);
            known[slot].set((key, answer));
            answer
        })
        .unwrap_or_else(|_| crate::site::is_scope_span(meta))
}

impl<S> Filter<S> for QueryFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if wanted(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
}

impl<S> Layer<S> for QueryLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // The filter lets only scope spans (and carriers, which need nothing here) through to this layer.
        if crate::sqlx_carrier::is_carrier(attrs.metadata()) {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(ScopeSpan);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // The filter is not enough: under a global dispatcher, an event logged while another event is being
        // formatted (a field's `Debug` that logs) resets tracing-subscriber's per-layer filter state, and the
        // outer event then reaches every filtered layer. An application event with an `elapsed_secs` field
        // must not count as a query.
        if event.metadata().target() != TARGET {
            return;
        }
        // The fields are read into state reused by every event of this thread: no allocation once warm, and a
        // statement this thread saw lately is neither copied nor hashed again (see `Recent`).
        thread_local! {
            static FIELDS: RefCell<Fields> = RefCell::new(Fields::default());
        }
        let _ = FIELDS.try_with(|fields| {
            let Ok(mut fields) = fields.try_borrow_mut() else {
                return;
            };
            fields.clear();
            event.record(&mut *fields);
            let Some(nanos) = fields.elapsed else {
                return;
            };
            let (statement, fingerprint) = fields.statement();
            if crate::query::record_in_scope(statement, fingerprint, nanos) {
                return;
            }
            let elapsed = Duration::from_nanos(nanos);
            #[cfg(feature = "sqlx-sqlite")]
            if crate::sqlite_trace::sqlx_thread_traced() {
                // SQLite's trace hook counted it already (see `trace_sqlite`).
                return;
            }
            if !following_worker_threads() && tokio::runtime::Handle::try_current().is_err() {
                // A statement run outside the async runtime: sqlx's SQLite worker thread. From now on scopes
                // open their span so that the next ones are found. This one had no scope span to find.
                follow_worker_threads();
            }
            // Another thread (sqlx's SQLite worker): find the scope from the carrier or the span it re-entered.
            if crate::sqlx_carrier::hand_over(statement, elapsed) {
                return;
            }
            let scope_span = ctx
                .event_scope(event)
                .and_then(|mut spans| spans.find(|span| span.extensions().get::<ScopeSpan>().is_some()));
            match scope_span {
                Some(span) => crate::query::hand_over(span.id().into_u64(), statement, elapsed),
                None => crate::query::record_fingerprinted(statement, fingerprint, nanos),
            }
        });
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        // Queries handed to a scope that ended before they arrived: count them, unscoped.
        crate::query::abandon(id.into_u64());
    }
}

/// Where the statement of the event being read is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Found {
    /// Not seen (yet): an event without `summary` or `db.statement`, or with empty ones.
    #[default]
    Nothing,
    /// In slot `n` of [`Recent`], with its fingerprint.
    Recent(usize),
    /// Copied into `Fields::long` (a statement longer than [`Recent`] keeps).
    Long,
}

/// The longest time `elapsed_secs` can give, in seconds: its nanoseconds fit an `i64` (292 years).
const MAX_SECS: f64 = 9.2e9;

#[derive(Default)]
struct Fields {
    /// `elapsed_secs`, in nanoseconds.
    elapsed: Option<u64>,
    found: Found,
    long: String,
    recent: Recent,
}

/// How sqlx ends the summary of a statement longer than four words (its first four words), whose full text it
/// then gives in `db.statement`.
const ABBREVIATED: &str = " \u{2026}";

impl Fields {
    fn clear(&mut self) {
        self.elapsed = None;
        self.found = Found::Nothing;
    }

    /// The statement, and its fingerprint hash when it is already known.
    ///
    /// sqlx puts a short statement in `summary` and leaves `db.statement` empty; a long one is in full in
    /// `db.statement` and abbreviated in `summary`. The full statement wins whenever it is there, and a summary
    /// that looks abbreviated is not even looked at (telling it apart costs more than the rest of the event's
    /// reading). So a statement of four words or fewer that itself ends in " …" (`SELECT 1 -- …`, which sqlx
    /// sends as its own summary) is counted and timed, without its text.
    #[inline]
    fn statement(&self) -> (&str, Option<u64>) {
        match self.found {
            Found::Recent(slot) => {
                let (text, fingerprint) = self.recent.get(slot);
                (text, Some(fingerprint))
            }
            Found::Long => (&self.long, None),
            Found::Nothing => ("", None),
        }
    }

    /// Out of line: `record_str` stays small for the fields that are not the statement.
    #[inline(never)]
    fn take(&mut self, value: &str) {
        // The cache is keyed by the field as sent (a statement is trimmed once, when it is kept), and never holds
        // an empty one.
        if value.is_empty() {
            return;
        }
        if let Some(slot) = self.recent.find(value) {
            self.found = Found::Recent(slot);
            return;
        }
        // sqlx pads the full statement with ASCII newlines; other edge whitespace does not matter here.
        let text = value.trim_ascii();
        if text.is_empty() {
            return;
        }
        self.found = if value.len() <= Recent::LONGEST {
            Found::Recent(self.recent.insert(value))
        } else {
            text.clone_into(&mut self.long);
            Found::Long
        };
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // A time: not negative, not NaN (it fails both comparisons), less than 292 years (so that the
        // nanoseconds fit the cast, which then needs no clamping). Rounded to the nearest nanosecond (sqlx's
        // seconds are a `Duration` divided by 1e9), and cheaper than `Duration::from_secs_f64`.
        if field.name() == "elapsed_secs" && (0.0..MAX_SECS).contains(&value) {
            self.elapsed = Some((value * 1e9 + 0.5) as i64 as u64);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            // An abbreviated summary is not the statement: `db.statement` follows with it.
            "summary" if self.found == Found::Nothing && !value.ends_with(ABBREVIATED) => self.take(value),
            "db.statement" => self.take(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

/// The statements this thread's sqlx events named lately, with their fingerprint hashes. An application runs
/// the same few hundred statement texts again and again, so a repeated one is found by comparing its text
/// with at most two candidates (picked by its length and three of its words), instead of being copied out of
/// the event and hashed. A new one is copied once and fingerprinted. Bounded: 64 sets of two statements of at
/// most [`Recent::LONGEST`] bytes each (128 KiB of text at most; longer statements are copied every time), per
/// thread that runs sqlx statements.
struct Recent {
    slots: Vec<Slot>,
    /// Per set, the way used last (the other one is replaced on a miss).
    last: [u8; Recent::SETS],
}

/// A statement as its event's field gave it, where its trimmed text is in it, and its fingerprint hash.
#[derive(Clone, Default)]
struct Slot {
    field: String,
    text: std::ops::Range<usize>,
    fingerprint: u64,
}

impl Default for Recent {
    fn default() -> Recent {
        Recent {
            slots: vec![Slot::default(); Recent::SETS * 2],
            last: [0; Recent::SETS],
        }
    }
}

impl Recent {
    const SETS: usize = 64;
    const LONGEST: usize = 1024;

    /// The set a text may be in: its length and its first, middle and last eight bytes, mixed.
    fn set(text: &[u8]) -> usize {
        let n = text.len();
        let mixed = match text.first_chunk::<8>() {
            Some(&first) => {
                let word = |at: usize| {
                    text[at..]
                        .first_chunk::<8>()
                        .map_or(0, |&word| u64::from_le_bytes(word))
                };
                u64::from_le_bytes(first) ^ word(n / 2 - 4).rotate_left(21) ^ word(n - 8).rotate_left(42)
            }
            None => {
                let mut word = [0u8; 8];
                word[..n].copy_from_slice(text);
                u64::from_le_bytes(word)
            }
        };
        let mixed = (mixed ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 58) as usize % Recent::SETS
    }

    /// The slot of a field's value (never empty: an empty slot holds "").
    fn find(&mut self, field: &str) -> Option<usize> {
        let set = Recent::set(field.as_bytes());
        for way in 0..2 {
            let slot = set * 2 + way;
            if self.slots[slot].field == field {
                self.last[set] = way as u8;
                return Some(slot);
            }
        }
        None
    }

    /// Keeps a field's value (not empty, at most `LONGEST` bytes), and returns its slot.
    fn insert(&mut self, field: &str) -> usize {
        let trimmed = field.trim_ascii();
        let start = trimmed.as_ptr() as usize - field.as_ptr() as usize;
        // Fingerprinted first: the slot changes only once everything it will hold is known. Through the
        // fingerprint's own cache, which still knows a statement that alternates with others of its set here.
        let fingerprint = crate::fingerprint::hash(trimmed);
        let set = Recent::set(field.as_bytes());
        let way = 1 - usize::from(self.last[set]);
        self.last[set] = way as u8;
        let slot = set * 2 + way;
        let stored = &mut self.slots[slot];
        stored.field.clear();
        // Exact: a slot never holds more than `LONGEST` bytes, whatever it held before.
        stored.field.reserve_exact(field.len());
        stored.field.push_str(field);
        stored.text = start..start + trimmed.len();
        stored.fingerprint = fingerprint;
        slot
    }

    /// The trimmed statement of a slot, and its fingerprint hash.
    #[inline]
    fn get(&self, slot: usize) -> (&str, u64) {
        let stored = &self.slots[slot];
        // The range is the trimmed part of this very field: in bounds, on character boundaries (ASCII trim).
        (
            stored.field.get(stored.text.clone()).unwrap_or_default(),
            stored.fingerprint,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    /// Three statements of the same set (same length, same first, middle and last eight bytes).
    fn same_set() -> [String; 3] {
        let texts =
            ["a", "b", "c"].map(|c| format!("SELECT id, name, {c}x FROM items WHERE   owner_id = ? ORDER BY id"));
        assert!(texts
            .iter()
            .all(|t| Recent::set(t.as_bytes()) == Recent::set(texts[0].as_bytes())));
        texts
    }

    #[test]
    fn two_statements_of_one_set_stay_and_a_third_replaces_the_one_used_less_recently() {
        let [a, b, c] = same_set();
        let mut recent = Recent::default();
        assert_eq!(recent.find(&a), None);
        let slot_a = recent.insert(&a);
        let slot_b = recent.insert(&b);
        assert_ne!(slot_a, slot_b);
        assert_eq!(recent.find(&a), Some(slot_a));
        assert_eq!(recent.find(&b), Some(slot_b));
        // `b` was used last: `c` takes `a`'s place.
        assert_eq!(recent.insert(&c), slot_a);
        assert_eq!(recent.find(&a), None);
        assert_eq!(recent.find(&b), Some(slot_b));
        assert_eq!(recent.get(slot_b), (b.as_str(), crate::fingerprint::hash(&b)));
        assert_eq!(recent.get(slot_a), (c.as_str(), crate::fingerprint::hash(&c)));
        assert!(recent.slots.iter().all(|slot| slot.field.capacity() <= Recent::LONGEST));
    }

    #[test]
    fn texts_of_every_length_are_kept_and_found() {
        let mut recent = Recent::default();
        let text: String = (0..200u32).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
        for len in 1..=text.len() {
            let slot = recent.insert(&text[..len]);
            assert_eq!(recent.find(&text[..len]), Some(slot), "length {len}");
            assert_eq!(recent.get(slot).0, &text[..len]);
            // Padded as sqlx pads a full statement: found as sent, given back trimmed.
            let padded = format!("\n\n{}\n", &text[..len]);
            let slot = recent.insert(&padded);
            assert_eq!(recent.find(&padded), Some(slot), "length {len}");
            assert_eq!(recent.get(slot), (&text[..len], crate::fingerprint::hash(&text[..len])));
        }
    }
}
