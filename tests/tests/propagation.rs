//! One trace ID across awaits, spawned tasks, the blocking pool, threads, and a job queue (a channel-backed
//! worker and a SQLite job table), checked on the log lines of the real subscriber; and what a hop does not
//! carry (the spawning scope's query counts).

use std::collections::HashMap;
use std::time::Duration;

use observe::{observe, FutureExt};

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|part| part.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

#[observe(handler)]
async fn handle(request: u64, jobs: tokio::sync::mpsc::UnboundedSender<(u64, observe::Carrier)>) {
    let me = observe::current_trace_id().unwrap();
    tracing::info!(request, expected = %me, hop = "handler");
    let child = observe::spawn(async move {
        tokio::time::sleep(Duration::from_millis(request % 3)).await;
        tracing::info!(request, expected = %me, hop = "spawn");
        observed_child(request, me).await;
    });
    let blocking = observe::spawn_blocking(move || {
        tracing::info!(request, expected = %me, hop = "spawn_blocking");
    });
    let thread = observe::thread::spawn(move || {
        tracing::info!(request, expected = %me, hop = "thread");
    });
    let raw = tokio::spawn(
        async move {
            tokio::task::yield_now().await;
            tracing::info!(request, expected = %me, hop = "in_current_scope");
        }
        .in_current_scope(),
    );
    jobs.send((request, observe::Carrier::current().unwrap())).unwrap();
    child.await.unwrap();
    blocking.await.unwrap();
    raw.await.unwrap();
    thread.join().unwrap();
}

#[observe(task)]
async fn observed_child(request: u64, expected: observe::TraceId) {
    tokio::task::yield_now().await;
    tracing::info!(request, %expected, hop = "observed child task");
}

#[observe(task)]
async fn worker_job(request: u64, expected: observe::TraceId) {
    tracing::info!(request, %expected, hop = "worker");
}

#[test]
fn every_hop_keeps_the_trace_id() {
    let observe_tests::Started { capture, guard, .. } = observe_tests::start();
    let runtime = observe_tests::runtime(4);
    runtime.block_on(async {
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<(u64, observe::Carrier)>();
        // The worker: resumes each job's carrier; it runs outside any request.
        let worker = tokio::spawn(async move {
            while let Some((request, carrier)) = queue.recv().await {
                // Through the queue the carrier travels as a string map, as in a message's headers.
                let carrier = observe::Carrier::from_map(&carrier.to_map()).unwrap();
                observe::resume(&carrier, worker_job(request, carrier.trace_id())).await;
            }
        });
        let requests: Vec<_> = (0..200).map(|r| tokio::spawn(handle(r, jobs.clone()))).collect();
        for request in requests {
            request.await.unwrap();
        }
        drop(jobs);
        worker.await.unwrap();
    });
    drop(guard);

    let mut hops: HashMap<u64, Vec<String>> = HashMap::new();
    for line in capture.lines() {
        let Some(request) = field(&line, "request") else {
            continue;
        };
        let trace_id = field(&line, "trace_id").unwrap_or_else(|| panic!("no trace ID: {line}"));
        assert_eq!(Some(trace_id), field(&line, "expected"), "{line}");
        let hop = line.split("hop=").nth(1).unwrap().trim_matches('"').to_owned();
        hops.entry(request.parse().unwrap()).or_default().push(hop);
    }
    assert_eq!(hops.len(), 200);
    for (request, mut seen) in hops {
        seen.sort();
        assert_eq!(
            seen,
            [
                "handler",
                "in_current_scope",
                "observed child task",
                "spawn",
                "spawn_blocking",
                "thread",
                "worker"
            ],
            "request {request}"
        );
    }
}

#[observe(task)]
fn nested_carrier() -> Option<observe::Carrier> {
    observe::Carrier::current()
}

#[observe(task, carrier = job)]
fn resumed_job(job: observe::Carrier) -> (Option<observe::Carrier>, Option<observe::Carrier>) {
    (observe::Carrier::current(), nested_carrier())
}

/// An upstream decision not to sample (flags `00`) holds for everything sent on from the trace: carriers taken
/// in the resumed context, in a scope nested in it, in a job resumed with `carrier = ..`.
#[test]
fn an_unsampled_trace_stays_unsampled() {
    let unsampled: observe::Carrier = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        .parse()
        .unwrap();
    let (direct, nested) = unsampled
        .context()
        .in_scope(|| (observe::Carrier::current(), nested_carrier()));
    let (job, job_nested) = resumed_job(unsampled);
    for (hop, carrier) in [
        ("context", direct),
        ("nested", nested),
        ("job", job),
        ("job, nested", job_nested),
    ] {
        let carrier = carrier.unwrap_or_else(|| panic!("{hop}: no carrier"));
        assert_eq!(carrier.trace_id(), unsampled.trace_id(), "{hop}");
        assert!(!carrier.traceparent().sampled(), "{hop}: {carrier}");
    }
    let sampled: observe::Carrier = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    assert!(resumed_job(sampled).1.unwrap().traceparent().sampled());
    assert!(
        nested_carrier().unwrap().traceparent().sampled(),
        "a trace that starts here is sampled"
    );
}

#[test]
fn carrier_round_trips_through_serde_and_strings() {
    let carrier: observe::Carrier = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let json = serde_json::to_string(&carrier).unwrap();
    assert_eq!(
        json,
        r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#
    );
    let back: observe::Carrier = serde_json::from_str(&json).unwrap();
    assert_eq!(back, carrier);
    assert!(serde_json::from_str::<observe::Carrier>(r#"{"traceparent":"00-bad"}"#).is_err());
    assert!(serde_json::from_str::<observe::Carrier>(r#"{}"#).is_err());
    assert!(observe::Carrier::current().is_none(), "no carrier outside a trace");
}

#[observe(handler)]
async fn spawns_a_query() -> u32 {
    observe::spawn(async {
        observe::query::record("SELECT 1", std::time::Duration::from_micros(5));
    })
    .await
    .unwrap();
    0
}

/// A hop carries the trace, not the scope: a query in a spawned task is not the spawning scope's (it may have
/// ended by then), and without a scope of its own it counts as unscoped.
#[test]
fn spawned_queries_are_not_the_spawning_scopes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let before = observe::query::unscoped();
    let (_, captured) = runtime.block_on(observe::testing::capture_future(spawns_a_query()));
    assert_eq!(captured.scope("spawns_a_query").map(|s| s.queries), Some(0));
    assert_eq!(observe::query::unscoped(), before + 1);
}
