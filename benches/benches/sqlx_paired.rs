//! The `sqlx_event` comparison of `queries.rs`, measured in interleaved rounds instead of one case after the
//! other: on a noisy host the three cases of a criterion group can each land in a different minute, and the
//! few nanoseconds between them drown. Here every round times a batch of events under each of the three
//! subscribers in turn (rotating which goes first), and the report is the median over rounds of each case and of
//! the differences within a round.
//!
//! - `baseline`: a layer that enables the same events and does nothing with them;
//! - `visiting`: a layer that reads every field of each event into a visitor that keeps nothing (what tracing
//!   charges any reader of an event's fields);
//! - `observe`: observe's sqlx layer.
//!
//! `cargo bench -p observe-bench --bench sqlx_paired`. Target (issue 3): observe adds at most 20 ns over what
//! the event itself costs.

use std::time::Instant;

use tracing::Dispatch;

const ROUNDS: usize = 60;
const BATCH: u32 = 100_000;

fn batch(dispatch: &Dispatch) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        let started = Instant::now();
        for _ in 0..BATCH {
            observe_bench::sqlx::event();
        }
        started.elapsed().as_nanos() as f64 / f64::from(BATCH)
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn quartiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: usize| values[(values.len() - 1) * q / 4];
    (at(1), at(2), at(3))
}

/// Every batch runs inside one scope, as statements do in a handler.
#[observe::observe]
fn measure(cases: &[Dispatch; 3]) -> Vec<[f64; 3]> {
    // Warm-up: caches, the layer's per-thread state, the callsites' interest.
    for case in cases {
        batch(case);
    }
    (0..ROUNDS)
        .map(|round| {
            let mut times = [0.0; 3];
            for k in 0..3 {
                let i = (round + k) % 3;
                times[i] = batch(&cases[i]);
            }
            times
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that does not match skips the run (as criterion does).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"sqlx_paired".contains(f.as_str())) {
        return;
    }
    let cases = observe_bench::sqlx::dispatches();
    let rounds = measure(&cases);
    let column = |i: usize| rounds.iter().map(|r| r[i]).collect::<Vec<_>>();
    let names = ["baseline_layer", "visiting_layer", "observe_layer"];
    println!("sqlx_paired: {ROUNDS} rounds of {BATCH} events per case, ns per event (median over rounds)");
    for (i, name) in names.iter().enumerate() {
        println!("  {name:<16} {:8.2}", median(&mut column(i)));
    }
    let mut over_baseline: Vec<f64> = rounds.iter().map(|r| r[2] - r[0]).collect();
    let mut over_visiting: Vec<f64> = rounds.iter().map(|r| r[2] - r[1]).collect();
    let mut visiting: Vec<f64> = rounds.iter().map(|r| r[1] - r[0]).collect();
    for (label, values) in [
        ("observe - baseline", &mut over_baseline),
        ("observe - visiting", &mut over_visiting),
        ("visiting - baseline", &mut visiting),
    ] {
        let (q1, q2, q3) = quartiles(values);
        println!("  {label:<20} {q2:6.2} ns (quartiles {q1:.2} .. {q3:.2})");
    }
}
