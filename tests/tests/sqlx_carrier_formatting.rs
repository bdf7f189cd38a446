//! An event with `Span::current()` as explicit parent inside a scope, where the current span is a scope carrier:
//! it reaches the layers as a child of the span entered around the scope, with every field, so that formatters
//! that insist on their own fields on every span of an event's scope (`fmt().pretty()`, `fmt().json()`) never
//! meet the carrier (they would panic on it). Its own binary: the carrier is created here in ordinary code, not
//! in the middle of another event's filtering (where the registry would remember that event's verdicts for it).
//! A layer's `event_enabled` still decides for such an event.

use std::sync::{Arc, Mutex};

use observe::observe;
use tracing::level_filters::LevelFilter;
use tracing::Span;
use tracing_subscriber::prelude::*;

/// Where a formatter writes.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

/// Refuses, in `event_enabled`, every event with a field named `rejected`.
struct Reject;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Reject {
    fn event_enabled(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) -> bool {
        event.fields().all(|field| field.name() != "rejected")
    }
}

/// An event under a carrier that a layer's `event_enabled` refuses: no layer gets it.
#[observe(handler)]
fn rejected_event_with_current_parent() {
    tracing::info!(parent: &Span::current(), rejected = true, "refused event");
}

/// An event whose explicit parent is the current span (a carrier), with fields of every kind.
#[observe(handler)]
fn event_with_current_parent() {
    let error = std::io::Error::other("disk full");
    tracing::info!(
        parent: &Span::current(),
        count = 3u64,
        delta = -2i64,
        ratio = 0.5f64,
        ok = true,
        name = "tea",
        items = ?["a", "b"],
        error = &error as &dyn std::error::Error,
        "explicit parent"
    );
}

#[test]
fn events_under_a_carrier_are_children_of_the_span_around_the_scope() {
    let (pretty, json) = (Lines::default(), Lines::default());
    let subscriber = observe::sqlx::carry_scopes(
        tracing_subscriber::registry()
            .with(observe::sqlx::layer())
            .with(Reject)
            .with(
                tracing_subscriber::fmt::layer()
                    .pretty()
                    .with_ansi(false)
                    .with_writer(pretty.clone())
                    .with_filter(LevelFilter::INFO),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(json.clone())
                    .with_filter(LevelFilter::INFO),
            ),
    );
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    observe::sqlx::follow_worker_threads();

    let request = tracing::info_span!("request", user = 7);
    request.in_scope(event_with_current_parent);
    request.in_scope(rejected_event_with_current_parent);
    assert_eq!(observe::sqlx::carriers(), 1, "the event's parent was a carrier");

    let pretty = pretty.text();
    let event = &pretty[pretty.find("explicit parent").expect("the event was formatted")..];
    let event = &event[..event.find("\n\n").unwrap_or(event.len())];
    assert!(
        event.contains("in sqlx_carrier_formatting::request with user: 7"),
        "{event}"
    );
    for field in [
        "count: 3",
        "delta: -2",
        "ratio: 0.5",
        "ok: true",
        "name: \"tea\"",
        "items: [\"a\", \"b\"]",
        "error: disk full",
    ] {
        assert!(event.contains(field), "{field} missing: {event}");
    }

    let json = json.text();
    let line = json
        .lines()
        .find(|l| l.contains("explicit parent"))
        .expect("the event was written as JSON");
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(value["span"]["name"], "request", "{line}");
    assert_eq!(value["fields"]["count"], 3, "{line}");
    assert_eq!(value["fields"]["name"], "tea", "{line}");
    assert!(!pretty.contains("observe.carrier") && !json.contains("observe.carrier"));
    assert!(
        !pretty.contains("refused event") && !json.contains("refused event"),
        "a layer's event_enabled was not asked"
    );
}
