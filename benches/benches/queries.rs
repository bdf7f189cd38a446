//! Per-query cost of observe's recording, measured against the same work without it, in one run:
//!
//! - `observe::query::record` inside a scope (count, time, fingerprint of the statement), for a short and a
//!   typical statement, and outside any scope (the unscoped counter);
//! - rusqlite: a cached `SELECT` without a hook, with SQLite's trace events going to a callback that does
//!   nothing (the floor of any hook), and with `observe::rusqlite::instrument`;
//! - diesel: the same with and without observe's `Instrumentation`;
//! - sqlx: the `sqlx::query` tracing event as sqlx emits it, with observe's layer vs a layer that enables the
//!   same events and does nothing (the difference is what observe adds to what the event itself costs), and
//!   vs a layer that reads the event's fields into a visitor that keeps nothing (tracing's share of that).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use diesel::connection::{Connection, SimpleConnection};
use diesel::RunQueryDsl;

const SHORT: &str = "SELECT 1";
const TYPICAL: &str = "SELECT id, order_id, sku, quantity, price_cents FROM items WHERE order_id = $1 AND deleted_at IS NULL ORDER BY id LIMIT 50";

#[observe::observe]
fn scope_for(f: impl FnOnce()) {
    f();
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("query_record");
    let elapsed = Duration::from_micros(250);
    group.bench_function("in_scope_short", |b| {
        scope_for(|| b.iter(|| observe::query::record(black_box(SHORT), black_box(elapsed))));
    });
    group.bench_function("in_scope_typical", |b| {
        scope_for(|| b.iter(|| observe::query::record(black_box(TYPICAL), black_box(elapsed))));
    });
    group.bench_function("unscoped_typical", |b| {
        b.iter(|| observe::query::record(black_box(TYPICAL), black_box(elapsed)));
    });
    // The fingerprint hash alone: what `record` computes per query, with no allocation.
    group.bench_function("fingerprint_hash_short", |b| {
        b.iter(|| observe::__private::fingerprint_hash(black_box(SHORT)));
    });
    group.bench_function("fingerprint_hash_typical", |b| {
        b.iter(|| observe::__private::fingerprint_hash(black_box(TYPICAL)));
    });
    group.finish();
}

fn rusqlite_hook(c: &mut Criterion) {
    let mut group = c.benchmark_group("rusqlite");
    let plain = rusqlite::Connection::open_in_memory().unwrap();
    let instrumented = rusqlite::Connection::open_in_memory().unwrap();
    observe::rusqlite::instrument(&instrumented);
    // The floor of any hook built on SQLite's tracing: the same events delivered to a callback that does
    // nothing (SQLite reads its own clock twice per statement once profile events are asked for).
    let noop = rusqlite::Connection::open_in_memory().unwrap();
    unsafe extern "C" fn nothing(
        _: std::ffi::c_uint,
        _: *mut std::ffi::c_void,
        _: *mut std::ffi::c_void,
        _: *mut std::ffi::c_void,
    ) -> std::ffi::c_int {
        0
    }
    // SAFETY: a valid handle for the life of `noop`, a callback without context.
    unsafe {
        rusqlite::ffi::sqlite3_trace_v2(
            noop.handle(),
            rusqlite::ffi::SQLITE_TRACE_STMT | rusqlite::ffi::SQLITE_TRACE_PROFILE,
            Some(nothing),
            std::ptr::null_mut(),
        );
    }
    for (name, conn) in [
        ("plain", &plain),
        ("noop_callback", &noop),
        ("instrumented", &instrumented),
    ] {
        group.bench_function(name, |b| {
            scope_for(|| {
                let mut statement = conn.prepare_cached("SELECT 1").unwrap();
                b.iter(|| statement.query_row([], |row| row.get::<_, i64>(0)).unwrap());
            });
        });
    }
    group.finish();
}

fn diesel_hook(c: &mut Criterion) {
    let mut group = c.benchmark_group("diesel");
    let mut plain = diesel::SqliteConnection::establish(":memory:").unwrap();
    let mut instrumented = diesel::SqliteConnection::establish(":memory:").unwrap();
    instrumented.set_instrumentation(observe::diesel::instrumentation());
    // What diesel's instrumentation costs by itself: its events delivered to a closure that ignores them, and
    // to one that only renders the query's text (what any hook that wants the statement must do).
    let mut noop = diesel::SqliteConnection::establish(":memory:").unwrap();
    noop.set_instrumentation(|_: diesel::connection::InstrumentationEvent<'_>| {});
    let mut render = diesel::SqliteConnection::establish(":memory:").unwrap();
    let mut text = String::new();
    render.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
        if let diesel::connection::InstrumentationEvent::FinishQuery { query, .. } = event {
            use std::fmt::Write;
            text.clear();
            let _ = write!(text, "{query}");
            black_box(&text);
        }
    });
    for (name, conn) in [
        ("plain", &mut plain),
        ("noop_instrumentation", &mut noop),
        ("render_only", &mut render),
        ("instrumented", &mut instrumented),
    ] {
        conn.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)").unwrap();
        group.bench_function(name, |b| {
            scope_for(|| b.iter(|| diesel::sql_query("SELECT 1 FROM t WHERE id = 1").execute(conn).unwrap()));
        });
    }
    group.finish();
}

fn sqlx_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("sqlx_event");
    let names = ["baseline_layer", "visiting_layer", "observe_layer"];
    for (name, dispatch) in names.into_iter().zip(observe_bench::sqlx::dispatches()) {
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(name, |b| scope_for(|| b.iter(observe_bench::sqlx::event)));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = record, rusqlite_hook, diesel_hook, sqlx_layer
}
criterion_main!(benches);
