//! Every log line written inside a scope carries that scope's trace ID, on a multi-threaded runtime with many
//! concurrent scopes, across `.await`s, in nested scopes, and for `log` records too. Lines outside any scope
//! have none. The lines are captured from the real subscriber `observe::init` installs.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use observe::observe;

#[observe(handler)]
async fn handle(request: u64) -> Result<(), String> {
    let expected = observe::current_trace_id().expect("inside a scope");
    tracing::info!(request, %expected, "start");
    tokio::time::sleep(Duration::from_millis(request % 3)).await;
    lookup(request).await;
    log::info!("from the log crate request={request} expected={expected}");
    tokio::task::yield_now().await;
    tracing::warn!(request, %expected, "end");
    Ok(())
}

#[observe]
async fn lookup(request: u64) {
    let expected = observe::current_trace_id().expect("inside a scope");
    tokio::task::yield_now().await;
    tracing::info!(request, %expected, nested = true, "child scope");
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|part| part.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

#[test]
fn every_line_in_a_scope_has_its_trace_id() {
    let observe_tests::Started { capture, guard, .. } = observe_tests::start();

    tracing::info!(outside = true, "before any scope");
    let runtime = observe_tests::runtime(4);
    runtime.block_on(async {
        let handles: Vec<_> = (0..300).map(|r| tokio::spawn(handle(r))).collect();
        for handle in handles {
            handle.await.unwrap().unwrap();
        }
    });
    tracing::info!(outside = true, "after every scope");
    // A value that tries to start a line of its own (log forging), in the message, a displayed field and a span
    // field: each stays on its line, escaped.
    let forged = "x\n2026-01-01T00:00:00.000000Z  INFO app: FORGED";
    tracing::info_span!("request", path = %forged).in_scope(|| {
        tracing::info!(outside = true, user = %forged, "hello {forged}\r");
    });
    drop(guard);

    let lines = capture.lines();
    let mut ids_by_request: HashMap<u64, HashSet<String>> = HashMap::new();
    let mut lines_by_request: HashMap<u64, usize> = HashMap::new();
    for line in &lines {
        if line.contains("outside=true") {
            assert!(
                !line.contains("trace_id="),
                "a line outside any scope has a trace ID: {line}"
            );
            continue;
        }
        let trace_id = field(line, "trace_id").unwrap_or_else(|| panic!("no trace_id in {line}"));
        assert_eq!(trace_id.len(), 32);
        assert!(trace_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let expected = field(line, "expected").unwrap_or_else(|| panic!("no expected in {line}"));
        assert_eq!(trace_id, expected, "wrong trace ID on {line}");
        let request: u64 = field(line, "request").unwrap().parse().unwrap();
        ids_by_request.entry(request).or_default().insert(trace_id.to_owned());
        *lines_by_request.entry(request).or_default() += 1;
    }
    assert_eq!(ids_by_request.len(), 300);
    for (request, ids) in &ids_by_request {
        assert_eq!(ids.len(), 1, "request {request} has several trace IDs: {ids:?}");
        assert_eq!(
            lines_by_request[request], 4,
            "request {request}: start, child, log crate, end"
        );
    }
    let distinct: HashSet<&String> = ids_by_request.values().flatten().collect();
    assert_eq!(distinct.len(), 300, "concurrent requests share no trace ID");
    assert!(
        lines.iter().any(|l| l.contains(" WARN trace_id=")),
        "level then trace ID"
    );
    assert!(
        lines.iter().any(|l| l.contains("from the log crate")),
        "log records are forwarded"
    );
    assert_eq!(lines.iter().filter(|l| l.contains("outside=true")).count(), 3);
    let forging: Vec<&String> = lines.iter().filter(|l| l.contains("FORGED")).collect();
    assert_eq!(
        forging.len(),
        1,
        "one line, however many newlines its values hold: {forging:?}"
    );
    assert_eq!(
        forging[0].matches("FORGED").count(),
        3,
        "message, field and span field: {}",
        forging[0]
    );
    assert!(
        forging[0].contains("\\n2026-01-01") && forging[0].contains("FORGED\\r"),
        "{}",
        forging[0]
    );
}
