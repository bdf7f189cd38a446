//! `OBSERVE_LOG=json`: one JSON object a line, `trace_id` and `scope` top-level, fields top-level, escaping
//! that survives hostile text.

use observe::observe;
use observe_tests::{Capture, StatsdReceiver};

#[observe(handler, name = "orders.get")]
fn get_order(id: u64, note: &str) -> Result<u64, String> {
    tracing::info!(id, note, "loaded \"order\"\nsecond line");
    inner();
    if id == 0 {
        return Err("zero".into());
    }
    Ok(id)
}

#[observe(task)]
fn inner() {
    tracing::debug!("not shown at info");
    tracing::info!(message_count = 2u64, ratio = 0.5, ok = true, "inner");
}

#[test]
fn json_lines_have_top_level_trace_id() {
    // Set before anything reads the environment; this binary has one test.
    std::env::set_var("OBSERVE_LOG", "json");
    let capture = Capture::default();
    let receiver = StatsdReceiver::bind().unwrap();
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .log_writer(capture.clone())
        .log_filter("info")
        .init()
        .unwrap();
    get_order(7, "tab\there, quote \" and \u{1b}[31m escape").unwrap();
    tracing::warn!(outside = true, "no scope");
    drop(guard);

    let lines = capture.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let first = &parsed[0];
    let trace_id = first["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    assert_eq!(first["scope"], "orders.get");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["target"], "logs_json");
    assert_eq!(first["message"], "loaded \"order\"\nsecond line");
    assert_eq!(first["id"], 7);
    assert_eq!(first["note"], "tab\there, quote \" and \u{1b}[31m escape");
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));

    let second = &parsed[1];
    assert_eq!(second["trace_id"], trace_id, "a nested scope shares the trace ID");
    assert_eq!(second["scope"], "logs_json::inner");
    assert_eq!(second["message_count"], 2);
    assert_eq!(second["ratio"], 0.5);
    assert_eq!(second["ok"], true);

    let third = &parsed[2];
    assert!(third.get("trace_id").is_none());
    assert!(third.get("scope").is_none());
    assert_eq!(third["outside"], true);
}
