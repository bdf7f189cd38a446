//! Scope sites: one static per observed function, registered on its first call.

use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;

use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind as MetaKind;
use tracing_core::{Interest, Level, Metadata};

use crate::histogram::Histogram;

/// What an observed function is: the `kind` tag of its metrics.
///
/// ```
/// assert_eq!(observe::Kind::Handler.as_str(), "handler");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `#[observe]` with no kind: a plain function.
    Function,
    /// `#[observe(handler)]`: a web or RPC handler.
    Handler,
    /// `#[observe(task)]`: a background task or job.
    Task,
    /// `#[observe(command)]`: a CLI command or `main`.
    Command,
}

impl Kind {
    /// The tag value: `function`, `handler`, `task` or `command`.
    ///
    /// ```
    /// assert_eq!(observe::Kind::Command.as_str(), "command");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Function => "function",
            Kind::Handler => "handler",
            Kind::Task => "task",
            Kind::Command => "command",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one execution of a scope ended: the `outcome` tag of its metrics.
///
/// ```
/// assert_eq!(observe::Outcome::Cancelled.as_str(), "cancelled");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Returned normally (anything but an `Err`).
    Ok,
    /// Returned `Err(..)` from a `Result` (including `anyhow::Result`, `io::Result` and aliases).
    Error,
    /// Panicked; the panic went on after the scope recorded it.
    Panic,
    /// A future dropped before it completed (a timeout, a `select!` that took another branch, a client that
    /// went away).
    Cancelled,
}

impl Outcome {
    /// Every outcome, in tag order.
    ///
    /// ```
    /// assert_eq!(observe::Outcome::ALL.len(), 4);
    /// ```
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Error, Outcome::Panic, Outcome::Cancelled];

    /// The tag value: `ok`, `error`, `panic` or `cancelled`.
    ///
    /// ```
    /// assert_eq!(observe::Outcome::Error.as_str(), "error");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one (site, outcome) pair has gathered since the last flush.
///
/// Most executions run no query and no HTTP call: they cost one atomic add, in `idle`. The others go to `busy`,
/// allocated the first time one comes.
pub(crate) struct OutcomeStats {
    /// Durations (ns) of executions without queries or HTTP calls.
    pub(crate) idle: Histogram,
    /// Executions with queries or HTTP calls.
    pub(crate) busy: OnceLock<Box<BusyStats>>,
    /// N+1 fingerprints found.
    pub(crate) n_plus_one: AtomicU64,
    /// Executions over their query budget.
    pub(crate) over_budget: AtomicU64,
}

/// The executions that did run queries or HTTP calls.
pub(crate) struct BusyStats {
    /// Durations in nanoseconds.
    pub(crate) duration: Histogram,
    /// Queries per execution.
    pub(crate) queries: Histogram,
    /// Query time per execution, in nanoseconds.
    pub(crate) query_time: Histogram,
    /// Outgoing HTTP calls per execution.
    pub(crate) http_calls: Histogram,
    /// Time in outgoing HTTP calls per execution, in nanoseconds.
    pub(crate) http_time: Histogram,
}

impl BusyStats {
    fn new() -> BusyStats {
        BusyStats {
            duration: Histogram::new(),
            queries: Histogram::new(),
            query_time: Histogram::new(),
            http_calls: Histogram::new(),
            http_time: Histogram::new(),
        }
    }
}

impl OutcomeStats {
    fn new() -> OutcomeStats {
        OutcomeStats {
            idle: Histogram::new(),
            busy: OnceLock::new(),
            n_plus_one: AtomicU64::new(0),
            over_budget: AtomicU64::new(0),
        }
    }

    /// Executions recorded and not yet flushed.
    fn pending(&self) -> u64 {
        self.idle.count() + self.busy.get().map_or(0, |busy| busy.duration.count())
    }
}

const UNREGISTERED: u8 = 0;
const REGISTERING: u8 = 1;
const REGISTERED: u8 = 2;

const INTEREST_UNKNOWN: u8 = 0;
const INTEREST_NEVER: u8 = 1;
const INTEREST_SOMETIMES: u8 = 2;
const INTEREST_ALWAYS: u8 = 3;

/// The static description of one observed function: its kind, name and source location, and the metrics its
/// executions have gathered since the last flush.
///
/// `#[observe]` puts one in a `static` inside every function it annotates. The list of sites that have run at
/// least once is [`sites()`](crate::sites).
///
/// ```
/// #[observe::observe(task)]
/// fn send_reminders() {}
///
/// send_reminders();
/// let site = observe::sites().find(|s| s.name().ends_with("send_reminders")).unwrap();
/// assert_eq!(site.kind(), observe::Kind::Task);
/// ```
pub struct Site {
    kind: Kind,
    name: &'static str,
    meta: Metadata<'static>,
    state: AtomicU8,
    interest: AtomicU8,
    next: AtomicPtr<Site>,
    stats: [OnceLock<Box<OutcomeStats>>; 4],
    /// `#[observe(max_queries = N)]`; 0 for the global default.
    max_queries: u32,
    /// For a site created at run time (a route of the tower layer): the static site whose span it opens.
    span_site: Option<&'static Site>,
    /// Executions already flushed, all outcomes (see [`Site::executions`]).
    flushed: AtomicU64,
}

impl Site {
    /// Used by `#[observe]`; not public API.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        this: &'static Site,
        kind: Kind,
        name: &'static str,
        span_name: &'static str,
        level: Level,
        fields: &'static [&'static str],
        module_path: &'static str,
        file: &'static str,
        line: u32,
    ) -> Site {
        Site {
            kind,
            name,
            meta: Metadata::new(
                span_name,
                module_path,
                level,
                Some(file),
                Some(line),
                Some(module_path),
                FieldSet::new(fields, Identifier(this)),
                MetaKind::SPAN,
            ),
            state: AtomicU8::new(UNREGISTERED),
            interest: AtomicU8::new(INTEREST_UNKNOWN),
            next: AtomicPtr::new(ptr::null_mut()),
            stats: [const { OnceLock::new() }; 4],
            max_queries: 0,
            span_site: None,
            flushed: AtomicU64::new(0),
        }
    }

    /// The site named `name` of kind `kind`, created at run time on first use (for scopes whose name is only
    /// known at run time, such as the routes of the tower layer). Keep names few: each one is kept for the
    /// life of the process, like a static site.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn dynamic(kind: Kind, name: &str, span_site: &'static Site) -> &'static Site {
        type Registry = std::sync::RwLock<std::collections::HashMap<(Kind, Box<str>), &'static Site>>;
        static DYNAMIC: OnceLock<Registry> = OnceLock::new();
        let registry = DYNAMIC.get_or_init(Default::default);
        let key = (kind, Box::<str>::from(name));
        if let Some(site) = registry.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return site;
        }
        let mut sites = registry.write().unwrap_or_else(|p| p.into_inner());
        sites.entry(key).or_insert_with(|| {
            let name: &'static str = Box::leak(Box::from(name));
            let mut site = Site::new(
                span_site,
                kind,
                name,
                span_site.meta.name(),
                *span_site.meta.level(),
                &[],
                span_site.module_path(),
                span_site.file(),
                span_site.line(),
            );
            site.span_site = Some(span_site);
            Box::leak(Box::new(site))
        })
    }
    /// Used by `#[observe(max_queries = N)]`; not public API.
    #[doc(hidden)]
    pub const fn with_max_queries(mut self, max_queries: u32) -> Site {
        self.max_queries = max_queries;
        self
    }

    /// The query budget of one execution: `#[observe(max_queries = N)]`, else the global default of
    /// [`Config::max_queries`](crate::Config::max_queries); `None` when there is none.
    ///
    /// ```
    /// #[observe::observe(max_queries = 3)]
    /// fn small() {}
    /// small();
    /// let site = observe::sites().find(|s| s.name().ends_with("::small")).unwrap();
    /// assert_eq!(site.max_queries(), Some(3));
    /// ```
    pub fn max_queries(&self) -> Option<u32> {
        let max = if self.max_queries > 0 {
            self.max_queries
        } else {
            crate::query::DEFAULT_MAX_QUERIES.load(Ordering::Relaxed)
        };
        (max > 0).then_some(max)
    }

    /// The scope's kind.
    ///
    /// ```
    /// #[observe::observe(handler)]
    /// fn get_order() {}
    /// get_order();
    /// assert!(observe::sites().any(|s| s.kind() == observe::Kind::Handler));
    /// ```
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The scope's name: the `scope` tag of its metrics. By default the function's path
    /// (`module_path!()` and the function name, like `shop::orders::get_order`).
    ///
    /// ```
    /// #[observe::observe(name = "orders.get")]
    /// fn get_order() {}
    /// get_order();
    /// assert!(observe::sites().any(|s| s.name() == "orders.get"));
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The module the function is defined in.
    ///
    /// ```
    /// # #[observe::observe] fn f() {}
    /// # f();
    /// for site in observe::sites() {
    ///     println!("{} in {}", site.name(), site.module_path());
    /// }
    /// ```
    pub fn module_path(&self) -> &'static str {
        self.meta.module_path().unwrap_or_default()
    }

    /// The source file of the function.
    ///
    /// ```
    /// # #[observe::observe] fn f() {}
    /// # f();
    /// assert!(observe::sites().all(|s| s.file().ends_with(".rs")));
    /// ```
    pub fn file(&self) -> &'static str {
        self.meta.file().unwrap_or_default()
    }

    /// The line of the function in its source file.
    ///
    /// ```
    /// # #[observe::observe] fn f() {}
    /// # f();
    /// assert!(observe::sites().all(|s| s.line() > 0));
    /// ```
    pub fn line(&self) -> u32 {
        self.meta.line().unwrap_or_default()
    }

    /// How many executions of this scope have ended since the process started.
    ///
    /// ```
    /// #[observe::observe]
    /// fn counted() {}
    /// counted();
    /// counted();
    /// let site = observe::sites().find(|s| s.name().ends_with("::counted")).unwrap();
    /// assert_eq!(site.executions(), 2);
    /// ```
    pub fn executions(&self) -> u64 {
        let pending: u64 = self
            .stats
            .iter()
            .filter_map(OnceLock::get)
            .map(|stats| stats.pending())
            .sum();
        self.flushed.load(Ordering::Relaxed) + pending
    }

    /// Registers the site on its first call: into the list behind [`sites()`](crate::sites), and as a tracing
    /// callsite so that subscribers can enable or disable its span.
    #[inline]
    pub(crate) fn ensure_registered(&'static self) {
        if self.state.load(Ordering::Acquire) != REGISTERED {
            self.register();
        }
    }

    #[cold]
    fn register(&'static self) {
        if self
            .state
            .compare_exchange(UNREGISTERED, REGISTERING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another thread is registering it: wait until it is in the list and a callsite (a few
            // microseconds, once per site), so that nothing sees a scope span whose site is not listed yet.
            // Bounded, in case the registering code itself calls back into this site on its own thread.
            for _ in 0..10_000 {
                if self.state.load(Ordering::Acquire) == REGISTERED {
                    break;
                }
                std::thread::yield_now();
            }
            return;
        }
        let me = self as *const Site as *mut Site;
        let mut head = SITES.load(Ordering::Acquire);
        loop {
            self.next.store(head, Ordering::Relaxed);
            match SITES.compare_exchange_weak(head, me, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        match self.span_site {
            // A run-time site opens the span of its static span site, which registers as a callsite instead.
            Some(span_site) => span_site.register_callsite(),
            None => tracing_core::callsite::register(self),
        }
        self.state.store(REGISTERED, Ordering::Release);
    }

    /// Registers a site used only for its span (by run-time sites) as a tracing callsite, once; it is not
    /// listed in [`sites()`].
    fn register_callsite(&'static self) {
        if self
            .state
            .compare_exchange(UNREGISTERED, REGISTERED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing_core::callsite::register(self);
        }
    }

    /// Whether the current subscriber wants this site's span (the same check `tracing::span!` makes).
    #[inline]
    pub(crate) fn span_enabled(&'static self) -> bool {
        if let Some(span_site) = self.span_site {
            return span_site.span_enabled();
        }
        if *self.meta.level() > tracing_core::LevelFilter::current() {
            return false;
        }
        match self.interest.load(Ordering::Relaxed) {
            INTEREST_NEVER => false,
            INTEREST_ALWAYS => true,
            _ => tracing_core::dispatcher::get_default(|d| d.enabled(&self.meta)),
        }
    }

    #[inline]
    pub(crate) fn stats(&self, outcome: Outcome) -> &OutcomeStats {
        self.stats[outcome.index()].get_or_init(|| Box::new(OutcomeStats::new()))
    }

    #[inline]
    pub(crate) fn record(&self, outcome: Outcome, nanos: u64, work: &crate::query::QueryState) {
        let stats = self.stats(outcome);
        let (queries, http_calls) = (work.count.get(), work.http_calls.get());
        if queries == 0 && http_calls == 0 {
            stats.idle.record(nanos);
            return;
        }
        let busy = stats.busy.get_or_init(|| Box::new(BusyStats::new()));
        busy.duration.record(nanos);
        busy.queries.record(u64::from(queries));
        busy.query_time.record(work.nanos.get());
        busy.http_calls.record(u64::from(http_calls));
        busy.http_time.record(work.http_nanos.get());
    }

    /// Counts executions the flusher sent (for [`Site::executions`]).
    pub(crate) fn add_flushed(&self, calls: u64) {
        self.flushed.fetch_add(calls, Ordering::Relaxed);
    }

    /// The stats gathered for `outcome`, if any execution ever ended with it.
    pub(crate) fn stats_if_any(&self, outcome: Outcome) -> Option<&OutcomeStats> {
        self.stats[outcome.index()].get().map(|b| &**b)
    }

    pub(crate) fn span_metadata(&'static self) -> &'static Metadata<'static> {
        match self.span_site {
            Some(span_site) => &span_site.meta,
            None => &self.meta,
        }
    }
}

impl Callsite for Site {
    fn set_interest(&self, interest: Interest) {
        let value = if interest.is_never() {
            INTEREST_NEVER
        } else if interest.is_always() {
            INTEREST_ALWAYS
        } else {
            INTEREST_SOMETIMES
        };
        self.interest.store(value, Ordering::Relaxed);
    }

    fn metadata(&self) -> &Metadata<'_> {
        &self.meta
    }
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("file", &self.file())
            .field("line", &self.line())
            .finish()
    }
}

static SITES: AtomicPtr<Site> = AtomicPtr::new(ptr::null_mut());

/// Whether `meta` is the span metadata of an observe scope (scans the registered sites: only called when a
/// subscriber registers a callsite or a scope span is created under a layer that asks).
#[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
pub(crate) fn is_scope_span(meta: &Metadata<'_>) -> bool {
    sites().any(|site| ptr::eq(site.span_metadata(), meta))
}

/// Every observed function that has run at least once in this process, most recently registered first.
///
/// ```
/// #[observe::observe(handler)]
/// fn list_orders() {}
///
/// list_orders();
/// let names: Vec<&str> = observe::sites().map(|s| s.name()).collect();
/// assert!(names.iter().any(|n| n.ends_with("list_orders")));
/// ```
pub fn sites() -> impl Iterator<Item = &'static Site> {
    let mut next = SITES.load(Ordering::Acquire);
    std::iter::from_fn(move || {
        // SAFETY: the list only ever holds pointers to `static` sites, pushed with Release and never removed.
        let site: &'static Site = unsafe { next.as_ref()? };
        next = site.next.load(Ordering::Acquire);
        Some(site)
    })
}
