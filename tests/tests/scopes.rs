//! Scope semantics: trace IDs (lazy, shared by nested scopes, fresh per root), tracing spans (level, fields,
//! nesting, arguments never recorded unless asked), and `observe::sites()`.

use std::sync::{Arc, Mutex};

use observe::observe;
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[observe(handler)]
fn root() -> (observe::TraceId, observe::TraceId, Option<observe::TraceId>) {
    let mine = observe::current_trace_id().unwrap();
    let child = child();
    let from_thread = std::thread::spawn(observe::current_trace_id).join().unwrap();
    (mine, child, from_thread)
}

#[observe]
fn child() -> observe::TraceId {
    observe::current_trace_id().unwrap()
}

#[observe]
fn child_first_asks() -> observe::TraceId {
    grandchild()
}

#[observe]
fn grandchild() -> observe::TraceId {
    observe::current_trace_id().unwrap()
}

#[observe(handler)]
fn root_asks_after_child() -> (observe::TraceId, observe::TraceId) {
    // The ID is generated lazily, here by a nested scope first: the root must get the same one.
    let from_grandchild = child_first_asks();
    (from_grandchild, observe::current_trace_id().unwrap())
}

#[test]
fn nested_scopes_share_the_trace_id_and_roots_get_fresh_ones() {
    assert_eq!(observe::current_trace_id(), None);
    let (a, a_child, from_thread) = root();
    assert_eq!(a, a_child);
    assert_eq!(from_thread, None, "a plain thread does not inherit the scope");
    let (b, _, _) = root();
    assert_ne!(a, b);
    let (deep, top) = root_asks_after_child();
    assert_eq!(deep, top);
    assert_eq!(observe::current_trace_id(), None);
}

#[derive(Clone, Default)]
struct SpanLog(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanLog {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.name().to_owned())
            .unwrap_or_default();
        let mut fields = String::new();
        attrs.record(&mut |f: &tracing::field::Field, v: &dyn std::fmt::Debug| {
            fields.push_str(&format!(" {}={v:?}", f.name()));
        });
        let meta = attrs.metadata();
        self.0.lock().unwrap().push(format!(
            "new {} level={} parent={parent} declared={:?}{fields}",
            meta.name(),
            meta.level(),
            meta.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
        ));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let name = ctx.span(id).map(|s| s.name().to_owned()).unwrap_or_default();
        let mut fields = String::new();
        values.record(&mut |f: &tracing::field::Field, v: &dyn std::fmt::Debug| {
            fields.push_str(&format!(" {}={v:?}", f.name()));
        });
        self.0.lock().unwrap().push(format!("record {name}{fields}"));
    }
}

#[observe(handler, level = "info", fields(order_id, customer))]
fn get_order(order_id: u64, customer: &str, password: &str) -> usize {
    let _ = password;
    load_lines(order_id)
}

#[observe(level = "info")]
fn load_lines(order_id: u64) -> usize {
    order_id as usize
}

#[observe]
fn debug_level_by_default() {}

#[test]
fn scopes_open_spans_at_their_level_with_only_the_chosen_fields() {
    let log = SpanLog::default();
    let subscriber = tracing_subscriber::registry()
        .with(log.clone())
        .with(tracing_subscriber::filter::LevelFilter::INFO);
    tracing::subscriber::with_default(subscriber, || {
        assert_eq!(get_order(7, "ada", "hunter2"), 7);
        debug_level_by_default();
    });
    let log = log.0.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            "new get_order level=INFO parent= declared=[\"order_id\", \"customer\"]".to_owned(),
            "record get_order order_id=7".to_owned(),
            "record get_order customer=\"ada\"".to_owned(),
            "new load_lines level=INFO parent=get_order declared=[]".to_owned(),
        ],
        "the DEBUG span of debug_level_by_default is filtered out; the password is never recorded"
    );
}

#[test]
fn sites_list_every_function_that_ran() {
    load_lines(1);
    let site = observe::sites()
        .find(|s| s.name() == "scopes::load_lines")
        .expect("registered on first call");
    assert_eq!(site.kind(), observe::Kind::Function);
    assert_eq!(site.module_path(), "scopes");
    assert!(site.file().ends_with("scopes.rs"));
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scopes.rs")).unwrap();
    let line = source.lines().nth(site.line() as usize - 1).unwrap();
    assert!(
        line.contains("fn load_lines"),
        "the site's line is the fn's line: {line:?}"
    );
    let handlers: Vec<_> = observe::sites()
        .filter(|s| s.kind() == observe::Kind::Handler)
        .collect();
    assert!(handlers.iter().any(|s| s.name() == "scopes::root"));
}
