//! Micro benchmarks of the pieces of observe's hot path: the trace ID (generated on first use) and the clock.
//!
//! `trace_id/*` run with observe's metrics on, like the `per_call` group; `clock/*` tell whether quanta reads
//! the TSC here (a few ns per read) or falls back to the OS clock (the cost of `Instant::now`); `floor/*` is what
//! ending a scope cannot avoid with observe's design (two clock reads, relaxed atomic increments).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use observe_bench::{executions, observe_with_metrics, work};

const INPUT: u64 = 0x0123_4567_89AB_CDEF;

/// A scope whose body never asks for its trace ID: no ID is generated.
#[observe::observe]
#[inline(never)]
fn scope_without_id(x: u64) -> u64 {
    work(x)
}

/// A scope whose body asks for its trace ID once: the first ask generates it.
#[observe::observe]
#[inline(never)]
fn scope_with_id(x: u64) -> u64 {
    let id = observe::current_trace_id().expect("inside a scope");
    work(x) ^ (id.as_u128() as u64)
}

/// A scope that asks for its ID, then calls a nested scope that asks again: the nested one inherits it.
#[observe::observe]
#[inline(never)]
fn outer_with_id(x: u64) -> u64 {
    let id = observe::current_trace_id().expect("inside a scope");
    inner_with_id(black_box(x)) ^ (id.as_u128() as u64)
}

#[observe::observe]
#[inline(never)]
fn inner_with_id(x: u64) -> u64 {
    let id = observe::current_trace_id().expect("inside a scope");
    work(x) ^ (id.as_u128() as u64)
}

fn trace_id(c: &mut Criterion) {
    let metrics = observe_with_metrics();
    let mut group = c.benchmark_group("trace_id");
    group.bench_function("scope_without_trace_id", |b| {
        b.iter(|| scope_without_id(black_box(INPUT)))
    });
    group.bench_function("scope_with_current_trace_id", |b| {
        b.iter(|| scope_with_id(black_box(INPUT)));
        assert!(executions("scope_with_id") > 0, "observe recorded the calls");
    });
    group.bench_function("nested_scopes_with_current_trace_id", |b| {
        b.iter(|| outer_with_id(black_box(INPUT)))
    });
    group.bench_function("current_trace_id_outside_scope", |b| b.iter(observe::current_trace_id));
    group.bench_function("trace_id_generate", |b| b.iter(observe::TraceId::generate));
    group.finish();
    drop(metrics);
}

fn clock(c: &mut Criterion) {
    let quanta_clock = quanta::Clock::new();
    // quanta's `Clock` shows which source it picked: `Counter(..)` is the TSC, `Monotonic(..)` the OS clock.
    let source = format!("{quanta_clock:?}");
    let source = source.split_once("inner: ").map_or(source.as_str(), |(_, inner)| inner);
    eprintln!("quanta clock source: {}", source.split('(').next().unwrap_or(source));
    let mut group = c.benchmark_group("clock");
    group.bench_function("quanta_raw", |b| b.iter(|| quanta_clock.raw()));
    group.bench_function("quanta_now", |b| b.iter(|| quanta_clock.now()));
    group.bench_function("std_instant_now", |b| b.iter(Instant::now));
    group.finish();

    // The floor of a scope's hot path: what ending a scope cannot avoid with this design (two clock reads and
    // the delta; one relaxed `fetch_add` per atomic counter bumped), without observe around it.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut group = c.benchmark_group("floor");
    group.bench_function("two_quanta_raw_reads_and_delta", |b| {
        b.iter(|| {
            let start = quanta_clock.raw();
            quanta_clock.delta_as_nanos(start, quanta_clock.raw())
        })
    });
    group.bench_function("atomic_fetch_add_relaxed", |b| {
        b.iter(|| COUNTER.fetch_add(black_box(1), Ordering::Relaxed))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = trace_id, clock
}
criterion_main!(benches);
