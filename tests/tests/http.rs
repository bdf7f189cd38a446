//! HTTP end to end on a real loopback socket: an axum app behind `observe::tower::ObserveLayer`, called by a
//! reqwest client with `observe::reqwest::TracePropagation`. 10,000 requests, each handler awaiting, spawning
//! a task and a blocking job and logging from each: every log line must carry its own request's trace ID.
//! Then hostile headers: each rejected, a fresh ID generated, no raw value in any log line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use observe::observe;
use observe_tests::{calls, Capture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|part| part.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

#[observe(handler)]
async fn get_order(Path(id): Path<u64>) -> Result<String, StatusCode> {
    tracing::info!(request = id, hop = "handler");
    tokio::time::sleep(Duration::from_micros(id % 500)).await;
    let task = observe::spawn(async move {
        tokio::task::yield_now().await;
        tracing::info!(request = id, hop = "task");
    });
    let job = observe::spawn_blocking(move || tracing::info!(request = id, hop = "blocking"));
    task.await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    job.await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    if id % 1000 == 999 {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok(format!("order {id}"))
}

async fn echo_trace() -> String {
    tracing::info!(hop = "echo");
    observe::current_trace_id().map(|id| id.to_string()).unwrap_or_default()
}

#[observe(handler)]
async fn carrier_of_request() -> String {
    observe::Carrier::current()
        .map(|carrier| carrier.to_string())
        .unwrap_or_default()
}

fn app() -> Router {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/echo", get(echo_trace))
        .route("/carrier", get(carrier_of_request))
        .route_layer(observe::tower::ObserveLayer::new())
}

/// The client side: every call is its own observed task, and the middleware sends its trace ID.
#[observe(task)]
async fn call(
    client: Arc<reqwest_middleware::ClientWithMiddleware>,
    base: Arc<str>,
    id: u64,
) -> (u64, String, u16, String) {
    let me = observe::current_trace_id().unwrap().to_string();
    let response = client.get(format!("{base}/orders/{id}")).send().await.unwrap();
    let status = response.status().as_u16();
    let echoed = response
        .headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .map(|v| v[3..35].to_owned())
        .unwrap_or_default();
    (id, me, status, echoed)
}

#[test]
fn ten_thousand_requests_keep_their_own_trace_ids() {
    let observe_tests::Started {
        receiver,
        capture,
        guard,
    } = observe_tests::start();
    let runtime = observe_tests::runtime(2);
    let results = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base: Arc<str> = format!("http://{}", listener.local_addr().unwrap()).into();
        let server = tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
        let client = Arc::new(
            reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(observe::reqwest::TracePropagation)
                .build(),
        );
        let limit = Arc::new(tokio::sync::Semaphore::new(256));
        let calls: Vec<_> = (0..10_000u64)
            .map(|id| {
                let (client, base, limit) = (client.clone(), base.clone(), limit.clone());
                tokio::spawn(async move {
                    let _permit = limit.acquire_owned().await.unwrap();
                    call(client, base, id).await
                })
            })
            .collect();
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            results.push(call.await.unwrap());
        }
        server.abort();
        results
    });
    observe::flush();
    let lines = receiver.lines();
    drop(guard);

    let mut expected: HashMap<u64, String> = HashMap::new();
    for (id, client_trace, status, echoed) in results {
        assert_eq!(status, if id % 1000 == 999 { 503 } else { 200 });
        assert_eq!(echoed, client_trace, "the response carries the trace the client sent");
        expected.insert(id, client_trace);
    }
    let mut hops: HashMap<u64, usize> = HashMap::new();
    for line in capture.lines() {
        let Some(request) = field(&line, "request") else {
            continue;
        };
        let request: u64 = request.parse().unwrap();
        let trace_id = field(&line, "trace_id").unwrap_or_else(|| panic!("no trace ID: {line}"));
        assert_eq!(trace_id, expected[&request], "{line}");
        *hops.entry(request).or_default() += 1;
    }
    assert_eq!(hops.len(), 10_000, "every request logged");
    assert!(hops.values().all(|n| *n == 3), "handler, task, blocking job");

    // Metrics: the route scope (never the raw URI) and the handler scope, outcomes from status and result.
    assert_eq!(calls(&lines, "GET_/orders/_id_", "ok"), 9_990);
    assert_eq!(calls(&lines, "GET_/orders/_id_", "error"), 10);
    assert_eq!(calls(&lines, "http.get_order", "ok"), 9_990);
    assert_eq!(calls(&lines, "http.get_order", "error"), 10);
    assert_eq!(calls(&lines, "http.call", "ok"), 10_000);
    assert!(
        lines.iter().all(|l| !l.tag("scope").unwrap_or("").contains("orders/1")),
        "no raw URI in a tag"
    );
    let http_calls: f64 = lines
        .iter()
        .filter(|l| l.name == "observe.scope.http_calls" && l.tag("scope") == Some("http.call"))
        .map(|l| l.value * l.weight())
        .sum();
    assert!(
        (http_calls - 10_000.0).abs() < 1e-6,
        "one outgoing call per client task: {http_calls}"
    );
}

/// Sends one raw HTTP/1.1 request and returns the response head.
async fn raw_request(addr: std::net::SocketAddr, header_lines: &[u8]) -> String {
    raw_get(addr, "/echo", header_lines).await
}

async fn raw_get(addr: std::net::SocketAddr, path: &str, header_lines: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n").into_bytes();
    request.extend_from_slice(header_lines);
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A caller's decision not to sample (`traceparent` flags `00`) holds for what the handler sends on: the
/// carrier taken in its `#[observe]` scope (nested in the tower layer's), and the `traceresponse`.
#[test]
fn an_unsampled_request_stays_unsampled_downstream() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let responses = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
        let mut responses = Vec::new();
        for flags in ["00", "01"] {
            let header = format!("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}\r\n");
            responses.push((flags, raw_get(addr, "/carrier", header.as_bytes()).await));
        }
        server.abort();
        responses
    });
    for (flags, response) in &responses {
        let body = response.rsplit("\r\n").next().unwrap_or_default();
        let carrier = observe::TraceParent::parse(body).unwrap_or_else(|| panic!("{flags}: {response}"));
        assert_eq!(carrier.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(carrier.flags, u8::from(*flags == "01"), "{flags}: {body}");
        let traceresponse = header(response, "traceresponse").unwrap();
        assert!(traceresponse.ends_with(flags), "{traceresponse}");
    }
}

#[test]
fn hostile_headers_are_rejected_and_never_logged() {
    let capture = Capture::default();
    // One thread for server and client, with this test's own subscriber as that thread's default (the other
    // test of this binary installs the global one).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let subscriber = observe_tests::capturing_subscriber(&capture);
    let _default = tracing::subscriber::set_default(subscriber);
    let long = "a".repeat(10 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bare CR in X-Request-ID", b"X-Request-ID: abc\rFORGED-1\r\n".to_vec()),
        ("10 KB X-Request-ID", format!("X-Request-ID: {long}\r\n").into_bytes()),
        ("non-ASCII X-Request-ID", "X-Request-ID: caf\u{e9}-FORGED-2\r\n".as_bytes().to_vec()),
        ("spaces and quotes", b"X-Request-ID: \"FORGED 3\" level=ERROR\r\n".to_vec()),
        (
            "uppercase traceparent",
            b"traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01\r\n".to_vec(),
        ),
        (
            "all-zero trace ID",
            b"traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n".to_vec(),
        ),
        (
            "version ff",
            b"traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n".to_vec(),
        ),
        ("10 KB traceparent", format!("traceparent: 00-{long}\r\n").into_bytes()),
        (
            "two traceparents",
            b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntraceparent: 00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n".to_vec(),
        ),
    ];
    let before = observe::diagnostics().rejected_trace_headers;
    let responses = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = app();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut responses = Vec::new();
        for (name, headers) in &cases {
            responses.push((*name, raw_request(addr, headers).await));
        }
        server.abort();
        responses
    });
    let mut rejected = 0;
    for (name, response) in &responses {
        if !response.starts_with("HTTP/1.1 200") {
            // The HTTP server itself refused the request (hyper rejects a bare CR): nothing reached observe.
            assert!(
                response.starts_with("HTTP/1.1 4") || response.is_empty(),
                "{name}: {response}"
            );
            continue;
        }
        rejected += 1;
        let request_id = header(response, "x-request-id").unwrap_or_else(|| panic!("{name}: {response}"));
        let body_trace = response.rsplit("\r\n").next().unwrap_or_default();
        assert_eq!(
            request_id.len(),
            32,
            "{name}: a fresh ID, not the hostile value: {request_id}"
        );
        assert!(
            request_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{name}"
        );
        assert_eq!(request_id, body_trace, "{name}: the handler saw the fresh ID");
        assert_ne!(request_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{name}");
        assert_ne!(request_id, "00000000000000000000000000000000", "{name}");
        let traceresponse = header(response, "traceresponse").unwrap();
        assert!(
            observe::TraceParent::parse(traceresponse).is_some(),
            "{name}: {traceresponse}"
        );
    }
    assert!(
        rejected >= 7,
        "most hostile requests reach the app and are answered with a fresh ID"
    );
    assert!(observe::diagnostics().rejected_trace_headers >= before + rejected as u64);
    let logged = capture.text();
    assert_eq!(logged.matches("hop=\"echo\"").count(), rejected, "{logged}");
    // (Not plain "caf": random hex trace IDs contain it; the non-ASCII value would show as "café" or "caf\u{fffd}".)
    for forged in [
        "FORGED",
        "aaaaaaaaaaaaaaaa",
        "4BF92F35",
        "level=ERROR",
        "caf\u{e9}",
        "caf\u{fffd}",
    ] {
        assert!(
            !logged.contains(forged),
            "a raw header value reached the log: {forged}\n{logged}"
        );
    }
}
