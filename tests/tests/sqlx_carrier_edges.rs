//! The edges of sqlx's scope carriers, with a subscriber of the user's own wrapped by `carry_scopes` and a layer
//! that asks for the current span from inside the subscriber (as some layers do):
//!
//! - a carrier created while an event is under way (a field that asks for the current span, a layer that asks in
//!   `on_event`) leaves the per-layer filter state of that event alone: a filtered layer never sees an event it
//!   filters out; and creating one never waits on the layers (no deadlock);
//! - a span created with the carrier as explicit parent takes no reference it does not give back (a carrier is
//!   never lent to two live scopes), and its parent is the span entered around the scope; a raw carrier ID kept
//!   past its scope and used as a parent, outside a scope or inside another one, does not put the carrier in the
//!   pool twice, nor deadlock when a layer asks for the current span meanwhile;
//! - `Span::current().record(..)` in a scope reaches the span entered around it (a tower-http request span), even
//!   while a span of the scope's own is entered, and a `TraceContext` captured in the scope carries that span,
//!   not the carrier;
//! - a statement run on another thread under a span created in a scope counts in the scope while it runs; one
//!   run under the same span after the scope ended counts as unscoped at once (it does not wait for the span);
//! - code that runs in a scope's frame after its end (the query report's warning) borrows no carrier.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use observe::observe;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Span, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Pairs of names the layer noted, shared with the test.
type Noted = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Asks for the current span whenever a span is created or an event written, and notes what it sees.
#[derive(Clone, Default)]
struct Curious {
    asked: Arc<AtomicUsize>,
    /// (span, its parent) for spans named "child".
    parents: Noted,
    /// (span, field) for every field recorded after creation.
    recorded: Arc<Mutex<Vec<(String, String)>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Curious {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        drop(Span::current());
        self.asked.fetch_add(1, Ordering::Relaxed);
        if attrs.metadata().name() == "child" {
            let span = ctx.span(id).expect("just created");
            let parent = span.parent().map(|p| p.name().to_owned());
            self.parents.lock().unwrap().push((span.name().to_owned(), parent));
        }
    }

    fn on_follows_from(&self, id: &Id, _: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a live span").name().to_owned();
        self.recorded.lock().unwrap().push((span, "follows_from".to_owned()));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        struct Names(Vec<String>);
        impl tracing::field::Visit for Names {
            fn record_debug(&mut self, field: &tracing::field::Field, _: &dyn std::fmt::Debug) {
                self.0.push(field.name().to_owned());
            }
        }
        let mut names = Names(Vec::new());
        values.record(&mut names);
        let span = ctx.span(id).expect("a live span").name().to_owned();
        let mut recorded = self.recorded.lock().unwrap();
        recorded.extend(names.0.into_iter().map(|field| (span.clone(), field)));
    }

    fn on_event(&self, _: &Event<'_>, _: Context<'_, S>) {
        drop(Span::current());
        self.asked.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts the debug events it is given; its filter (`INFO`) leaves them out.
#[derive(Clone, Default)]
struct InfoOnly(Arc<AtomicUsize>);

impl<S: Subscriber> Layer<S> for InfoOnly {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::DEBUG {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[observe(handler)]
fn current_id() -> Option<Id> {
    Span::current().id()
}

/// Borrows a carrier and creates a span with it as explicit parent, then asks a nested scope for its carrier.
#[observe(handler)]
fn explicit_parent() -> (Option<Id>, Option<Id>) {
    let parent = Span::current();
    {
        let child = tracing::info_span!(parent: &parent, "child");
        child.in_scope(|| tracing::info!("in the child"));
    }
    let mine = parent.id();
    drop(parent);
    (mine, current_id())
}

#[observe(handler)]
fn nested_pair() -> (Option<Id>, Option<Id>) {
    (Span::current().id(), current_id())
}

#[observe(handler)]
fn record_on_current() -> (Option<Id>, observe::TraceContext) {
    let current = Span::current();
    current.record("user", 7);
    // Recorded while a span of the scope's own is entered: still the span the carrier stands for.
    let child = tracing::info_span!("child");
    child.in_scope(|| current.record("session", 8));
    // A link from the current span: it is the request span's.
    current.follows_from(&child);
    let context = observe::TraceContext::current();
    (current.id(), context)
}

/// A debug event in a scope with no carrier yet, one of whose fields asks for the current span (so a carrier is
/// created between the filters' verdict and the event's dispatch).
#[observe(handler)]
fn debug_in_scope() {
    tracing::debug!(current = ?Span::current().id(), "filtered out of the counting layer");
}

/// A span created with a raw carrier ID as parent, inside a scope (the layer asks for the current span then).
#[observe(handler)]
fn raw_parent_in_scope(raw: Id) {
    drop(tracing::info_span!(parent: raw, "late"));
}

/// Runs a statement under a span created here on another thread, and returns the span.
#[observe(handler)]
fn keeps_a_span() -> Span {
    let span = tracing::info_span!("kept");
    let worker_span = span.clone();
    std::thread::spawn(move || observe_tests::run_like_the_sqlx_worker(&worker_span))
        .join()
        .unwrap();
    span
}

/// Borrows a carrier, then closes a clone of a raw ID of it taken while it was in the pool: the scope keeps its
/// carrier (a nested scope gets another).
#[observe(handler)]
fn closes_a_raw_clone(clone: Id) -> (Option<Id>, Option<Id>) {
    let mine = Span::current().id();
    tracing::dispatcher::get_default(|dispatch| {
        dispatch.try_close(clone.clone());
    });
    (mine, current_id())
}

#[observe(handler)]
fn raw_id() -> Option<Id> {
    Span::current().id()
}

#[observe(handler, max_queries = 1)]
fn over_budget() {
    observe::query::record("SELECT 1", Duration::from_micros(10));
    observe::query::record("SELECT 2", Duration::from_micros(10));
}

#[test]
fn carriers_hold_at_their_edges() {
    // A wrapper built and dropped, never installed, lends nothing: the one installed below does.
    drop(observe::sqlx::carry_scopes(tracing_subscriber::registry()));
    let curious = Curious::default();
    let info_only = InfoOnly::default();
    let subscriber = observe::sqlx::carry_scopes(
        tracing_subscriber::registry()
            .with(observe::sqlx::layer())
            // Like a formatting layer whose filter leaves the scopes' own spans out: around a scope, the current
            // span is then the span entered around it (here `request`).
            .with(
                curious
                    .clone()
                    .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                        meta.is_event()
                            || ["request", "child", "kept", "late", "observe.carrier"].contains(&meta.name())
                    })),
            )
            .with(info_only.clone().with_filter(tracing::level_filters::LevelFilter::INFO)),
    );
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    observe::sqlx::follow_worker_threads();

    // The pool is empty: the event's field creates the first carrier while the event is under way, and the layer
    // asks again in `on_event`. The filtered layer still never sees the event.
    debug_in_scope();
    assert!(curious.asked.load(Ordering::Relaxed) > 0, "the layer saw the event");
    assert_eq!(
        info_only.0.load(Ordering::Relaxed),
        0,
        "a filtered-out event reached the layer"
    );
    assert_eq!(observe::sqlx::carriers(), 1);

    // A scope on another thread, with the layer asking for the current span on every span created: a deadlock
    // fails the test instead of hanging it.
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(current_id()).unwrap());
    let first = wait
        .recv_timeout(Duration::from_secs(30))
        .expect("creating a carrier deadlocked");
    assert!(first.is_some(), "a scope's current span is its carrier");
    assert_eq!(observe::sqlx::carriers(), 1, "the pooled carrier was reused");

    // An explicit carrier parent: the carrier stays lent to its scope (a nested scope gets another), and once
    // both scopes ended, two nested scopes still get two different carriers (none was pooled twice).
    let request = tracing::info_span!("request", user = tracing::field::Empty, session = tracing::field::Empty);
    let (mine, nested) = request.in_scope(explicit_parent);
    assert!(mine.is_some() && nested.is_some());
    assert_ne!(mine, nested, "a nested scope borrowed its parent's carrier");
    for _ in 0..3 {
        let (outer, inner) = nested_pair();
        assert_ne!(outer, inner, "one carrier lent to two live scopes");
    }
    assert_eq!(
        curious.parents.lock().unwrap().as_slice(),
        [("child".to_owned(), Some("request".to_owned()))],
        "the child's parent is the span entered around the scope"
    );

    // A raw carrier ID kept past its scope (the carrier back in the pool), then used as a parent: the carrier is
    // not pooled twice.
    let raw = raw_id().expect("a carrier");
    drop(tracing::info_span!(parent: raw.clone(), "late"));
    // The raw ID cloned and closed through the dispatcher: no reference counted for a pooled carrier, none given
    // back.
    tracing::dispatcher::get_default(|dispatch| {
        let clone = dispatch.clone_span(&raw);
        dispatch.try_close(clone.clone());
    });
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let request = tracing::info_span!("request");
        request.in_scope(|| raw_parent_in_scope(raw));
        done.send(()).unwrap();
    });
    wait.recv_timeout(Duration::from_secs(30))
        .expect("a raw carrier ID as parent in a scope deadlocked");
    for _ in 0..3 {
        let (outer, inner) = nested_pair();
        assert_ne!(
            outer, inner,
            "one carrier lent to two live scopes after a raw-ID parent"
        );
    }
    // A clone of a raw ID taken while the carrier is pooled, closed once the carrier is lent again.
    let raw = raw_id().expect("a carrier");
    let clone = tracing::dispatcher::get_default(|dispatch| dispatch.clone_span(&raw));
    let (mine, nested) = closes_a_raw_clone(clone);
    assert_eq!(mine.as_ref(), Some(&raw), "the pool lent that carrier again");
    assert_ne!(mine, nested, "a closed raw clone took the scope's hold on its carrier");
    for _ in 0..3 {
        let (outer, inner) = nested_pair();
        assert_ne!(outer, inner, "one carrier lent to two live scopes after a raw clone");
    }

    // Recording on the current span in a scope reaches the request span; a context captured there carries it.
    let (carrier, context) = request.in_scope(record_on_current);
    assert_ne!(carrier, request.id(), "inside a scope the current span is a carrier");
    for field in ["user", "session", "follows_from"] {
        assert!(
            curious
                .recorded
                .lock()
                .unwrap()
                .contains(&("request".to_owned(), field.to_owned())),
            "{field} did not reach the request span: {:?}",
            curious.recorded.lock().unwrap()
        );
    }
    let carried = std::thread::spawn(move || context.in_scope(|| Span::current().id()))
        .join()
        .unwrap();
    assert_eq!(carried, request.id(), "the context carries the request span");

    // A statement run under a span of the scope on another thread while the scope runs counts in the scope; one
    // run under it after the scope ended is unscoped at once.
    let before = observe::query::unscoped();
    let (kept, captured) = observe::testing::capture(keeps_a_span);
    assert_eq!(captured.scope("keeps_a_span").map(|s| s.queries), Some(1));
    assert_eq!(observe::query::unscoped(), before, "the statement in the scope");
    let worker_span = kept.clone();
    std::thread::spawn(move || observe_tests::run_like_the_sqlx_worker(&worker_span))
        .join()
        .unwrap();
    assert_eq!(
        observe::query::unscoped(),
        before + 1,
        "the late statement waited for the kept span"
    );
    drop(kept);
    assert_eq!(observe::query::unscoped(), before + 1, "counted once");

    // The budget report runs in the ended scope's frame and writes a warning, on which the layer asks for the
    // current span: no carrier is lent then (it would never come back).
    over_budget();
    let carriers = observe::sqlx::carriers();
    for _ in 0..5 {
        over_budget();
    }
    assert_eq!(
        observe::sqlx::carriers(),
        carriers,
        "carriers lent after their scope ended"
    );
}
