//! The cost per call of `#[observe]` against a bare call and against its peers, all in one benchmark group
//! (`per_call`) so that they are measured in the same run on the same machine.
//!
//! Every function does the same tiny amount of work ([`observe_bench::work`]), so what differs between the
//! cases is the instrumentation. The cases run in this order on purpose: `tracing_instrument` installs a
//! (scoped) tracing subscriber, and once a subscriber has ever been registered, tracing's global max level
//! stays raised; observe's cases run before it so that they measure observe with no subscriber around
//! (metrics on, span off), as requested.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use observe_bench::{block_on, executions, observe_with_metrics, work};
use tracing_subscriber::layer::SubscriberExt;

const INPUT: u64 = 0x0123_4567_89AB_CDEF;

// ---- a. the baseline -------------------------------------------------------------------------------------

#[inline(never)]
fn bare(x: u64) -> u64 {
    work(x)
}

#[inline(never)]
fn bare_outer(x: u64) -> u64 {
    bare(black_box(x))
}

#[inline(never)]
async fn bare_async(x: u64) -> u64 {
    work(x)
}

// ---- b, c. observe ---------------------------------------------------------------------------------------

#[observe::observe]
#[inline(never)]
fn observed(x: u64) -> u64 {
    work(x)
}

#[observe::observe]
#[inline(never)]
fn observed_outer(x: u64) -> u64 {
    observed_inner(black_box(x))
}

#[observe::observe]
#[inline(never)]
fn observed_inner(x: u64) -> u64 {
    work(x)
}

#[observe::observe]
#[inline(never)]
async fn observed_async(x: u64) -> u64 {
    work(x)
}

// ---- d. tracing ------------------------------------------------------------------------------------------

#[tracing::instrument(skip_all)]
#[inline(never)]
fn instrumented(x: u64) -> u64 {
    work(x)
}

// ---- e. fastrace -----------------------------------------------------------------------------------------

#[fastrace::trace]
#[inline(never)]
fn traced(x: u64) -> u64 {
    work(x)
}

/// Counts the spans fastrace reports, and drops them.
struct CountingReporter(Arc<AtomicU64>);

impl fastrace::collector::Reporter for CountingReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        self.0.fetch_add(spans.len() as u64, Ordering::Relaxed);
    }
}

/// Calls per fastrace root span. A root collects at most 10 240 local spans (fastrace's span queue); past
/// that, `#[trace]` does nothing, so a single root kept for the whole measurement would measure a no-op.
const CALLS_PER_ROOT: u64 = 100;

// ---- f. autometrics --------------------------------------------------------------------------------------

#[autometrics::autometrics]
#[inline(never)]
fn autometricsed(x: u64) -> u64 {
    work(x)
}

// ---- the group -------------------------------------------------------------------------------------------

fn per_call(c: &mut Criterion) {
    let metrics = observe_with_metrics();
    eprintln!("observe: metrics on, sent to udp://{}", metrics.addr);
    let autometrics_settings = autometrics::settings::AutometricsSettings::builder().init();
    let fastrace_spans = Arc::new(AtomicU64::new(0));
    fastrace::set_reporter(
        CountingReporter(fastrace_spans.clone()),
        fastrace::collector::Config::default(),
    );

    let mut group = c.benchmark_group("per_call");

    group.bench_function("bare", |b| b.iter(|| bare(black_box(INPUT))));
    group.bench_function("bare_async", |b| b.iter(|| block_on(bare_async(black_box(INPUT)))));
    group.bench_function("bare_nested", |b| b.iter(|| bare_outer(black_box(INPUT))));

    group.bench_function("observe_sync", |b| {
        b.iter(|| observed(black_box(INPUT)));
        assert!(executions("observed") > 0, "observe recorded the calls");
    });
    group.bench_function("observe_async", |b| {
        b.iter(|| block_on(observed_async(black_box(INPUT))));
        assert!(executions("observed_async") > 0, "observe recorded the calls");
    });
    group.bench_function("observe_nested", |b| {
        b.iter(|| observed_outer(black_box(INPUT)));
        assert!(executions("observed_inner") > 0, "observe recorded the calls");
    });

    group.bench_function("fastrace_trace", |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let calls = left.min(CALLS_PER_ROOT);
                let root = fastrace::Span::root("bench", fastrace::collector::SpanContext::random());
                let parent = root.set_local_parent();
                let start = Instant::now();
                for _ in 0..calls {
                    black_box(traced(black_box(INPUT)));
                }
                measured += start.elapsed();
                drop(parent);
                drop(root);
                left -= calls;
            }
            measured
        });
        fastrace::flush();
        assert!(fastrace_spans.load(Ordering::Relaxed) > 0, "fastrace reported spans");
    });

    group.bench_function("autometrics", |b| {
        b.iter(|| autometricsed(black_box(INPUT)));
        let mut exposition = String::new();
        prometheus_client::encoding::text::encode(&mut exposition, autometrics_settings.prometheus_client_registry())
            .expect("encoding autometrics' registry");
        assert!(
            exposition
                .lines()
                .any(|line| { line.starts_with("function_calls_total") && line.contains("autometricsed") }),
            "autometrics counted the calls:\n{exposition}"
        );
    });

    // Last: see the module documentation.
    let subscriber = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(subscriber, || {
        assert!(
            !tracing::info_span!("check").is_disabled(),
            "the fmt subscriber records spans"
        );
        group.bench_function("tracing_instrument", |b| b.iter(|| instrumented(black_box(INPUT))));
    });

    group.finish();

    eprintln!(
        "checked: observe recorded {} sync calls, fastrace reported {} spans",
        executions("observed"),
        fastrace_spans.load(Ordering::Relaxed)
    );
    drop(metrics);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = per_call
}
criterion_main!(benches);
