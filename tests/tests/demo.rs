//! The demo's scripted mode, checked against the work the script did: calls per scope, the N+1 warning on the
//! right handler, and a worker log line carrying the web request's trace ID.

use observe_examples::demo;
use observe_tests::Capture;

#[test]
fn the_demo_table_matches_what_the_script_did() {
    let capture = Capture::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(demo::run(demo::Options {
            serve: None,
            config: observe::Config::default()
                .log_writer(capture.clone())
                .log_filter("info"),
            database: std::env::temp_dir().join(format!("observe-demo-test-{}.db", std::process::id())),
        }))
        .unwrap();
    let script = &report.script;
    let view = &report.view;
    let row = |scope: &str| {
        view.row(scope)
            .unwrap_or_else(|| panic!("no row for {scope}:\n{}", report.table))
    };

    assert_eq!(
        row("observe_examples.demo.list_products").calls(),
        script.list_products as u64
    );
    assert_eq!(row("GET_/products").calls(), script.list_products as u64);
    let get_order = row("observe_examples.demo.get_order");
    assert_eq!(get_order.calls(), script.get_order as u64);
    assert_eq!(
        get_order.outcomes.get("error").copied(),
        Some(script.missing as u64),
        "404s are errors"
    );
    assert_eq!(
        row("GET_/orders/_id_").outcomes.get("error"),
        None,
        "but not server errors"
    );
    assert_eq!(
        row("observe_examples.demo.create_order").calls(),
        script.create_order as u64
    );
    assert_eq!(
        row("observe_examples.demo.send_confirmation").calls(),
        script.create_order as u64
    );
    assert_eq!(row("observe_examples.demo.daily_report").calls(), 1);
    assert_eq!(row("observe_examples.demo.daily_report").kind, "command");

    // The N+1 page: flagged once per execution, and only that page.
    let list_orders = row("observe_examples.demo.list_orders");
    assert_eq!(list_orders.calls(), script.list_orders as u64);
    assert_eq!(list_orders.n_plus_one, script.list_orders as u64);
    assert_eq!(list_orders.queries.quantile(0.5), Some(9.0), "1 + one per order shown");
    for (scope, row) in view.rows() {
        if scope != "observe_examples.demo.list_orders" && scope != "GET_/orders" {
            assert_eq!(row.n_plus_one, 0, "{scope}");
        }
    }
    assert!(report.table.contains("list_orders"), "{}", report.table);

    // Logs: the N+1 warning names the handler; the worker logs with the request's trace ID.
    let lines = capture.lines();
    let warning = lines
        .iter()
        .find(|l| l.contains("N+1 queries"))
        .expect("an N+1 warning");
    assert!(
        warning.contains("scope=\"observe_examples::demo::list_orders\""),
        "{warning}"
    );
    let trace = &script.first_order_trace;
    assert_eq!(trace.len(), 32);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("trace_id={trace}")) && l.contains("order created")),
        "the web request's line"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("trace_id={trace}")) && l.contains("confirmation email sent")),
        "the worker's line, same trace ID"
    );
}
