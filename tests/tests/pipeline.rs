//! The metric pipeline's edges: plain StatsD, a Unix datagram socket, an unreachable server, and the guard
//! dropped inside an observed `main`.

use std::time::Duration;

use observe::observe;
use observe_tests::{calls, serial, Line, StatsdReceiver};

#[observe(handler, name = "edge.handler")]
fn handler(fail: bool) -> Result<(), ()> {
    if fail {
        Err(())
    } else {
        Ok(())
    }
}

#[test]
fn plain_statsd_gets_timers_and_no_tags() {
    let _serial = serial();
    let receiver = StatsdReceiver::bind().unwrap();
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .flavor(observe::Flavor::Statsd)
        .tag("team", "ignored-by-plain-statsd")
        .install_subscriber(false)
        .init()
        .unwrap();
    for i in 0..10 {
        let _ = handler(i % 2 == 0);
    }
    observe::flush();
    let lines = receiver.lines();
    drop(guard);
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line.tags.is_empty(), "plain StatsD cannot parse tags: {}", line.raw);
        assert!(line.kind == "ms" || line.kind == "c", "{}", line.raw);
    }
    let count = |name: &str| -> f64 { lines.iter().filter(|l| l.name == name).map(|l| l.value).sum() };
    assert_eq!(count("observe.scope.calls.handler.edge.handler.ok"), 5.0);
    assert_eq!(count("observe.scope.calls.handler.edge.handler.error"), 5.0);
    let timer_weight: f64 = lines
        .iter()
        .filter(|l| l.name == "observe.scope.duration.handler.edge.handler.ok")
        .map(Line::weight)
        .sum();
    assert!((timer_weight - 5.0).abs() < 1e-9);
}

#[cfg(unix)]
#[test]
fn unix_datagram_socket() {
    use std::os::unix::net::UnixDatagram;

    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("observe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dsd.socket");
    let _ = std::fs::remove_file(&path);
    let server = UnixDatagram::bind(&path).unwrap();
    server.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let guard = observe::Config::default()
        .statsd_addr(format!("unix://{}", path.display()))
        .install_subscriber(false)
        .init()
        .unwrap();
    for _ in 0..3 {
        let _ = handler(false);
    }
    observe::flush();
    let mut lines = Vec::new();
    let mut buffer = vec![0u8; 16384];
    while let Ok(n) = server.recv(&mut buffer) {
        assert!(n <= 8192, "a datagram over the agent's 8 KiB buffer");
        let text = String::from_utf8(buffer[..n].to_vec()).unwrap();
        lines.extend(text.lines().map(|l| Line::parse(l).unwrap()));
    }
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(calls(&lines, "edge.handler", "ok"), 3);
}

#[test]
fn an_unreachable_server_drops_and_counts_without_blocking() {
    let _serial = serial();
    // `.invalid` never resolves (RFC 2606): every flush fails to send.
    let guard = observe::Config::default()
        .statsd_addr("statsd.invalid:8125")
        .install_subscriber(false)
        .init()
        .expect("an address that does not resolve yet is not an init error");
    let before = observe::diagnostics();
    for _ in 0..4 {
        let _ = handler(true);
    }
    observe::flush();
    let after = observe::diagnostics();
    drop(guard);
    assert!(
        after.metrics_dropped >= before.metrics_dropped + 2,
        "{before:?} -> {after:?}"
    );
    assert!(after.flushes > before.flushes);
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let err = observe::Config::default().statsd_addr("localhost").init().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid statsd address \"localhost\": expected `host:port`"
    );
    let err = observe::Config::default()
        .statsd_addr("localhost:http")
        .init()
        .unwrap_err();
    assert!(err.to_string().contains("port from 0 to 65535"), "{err}");
}

/// A configuration that sends to `receiver` and installs no subscriber.
fn to_receiver(receiver: &StatsdReceiver) -> observe::Config {
    observe::Config::default()
        .statsd_addr(receiver.addr())
        .install_subscriber(false)
}

#[test]
fn init_twice_is_refused_while_the_first_guard_lives() {
    let _serial = serial();
    let receiver = StatsdReceiver::bind().unwrap();
    let config = || to_receiver(&receiver);
    let first = config().init().unwrap();
    let second = config().init().unwrap_err();
    assert!(second.to_string().contains("already running"), "{second}");
    drop(first);
    drop(config().init().expect("init works again once the guard is dropped"));
}

#[observe(command, name = "edge.main")]
fn observed_main(addr: String) -> Result<(), observe::InitError> {
    let _guard = observe::Config::default()
        .statsd_addr(addr)
        .install_subscriber(false)
        .init()?;
    handler(false).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    Ok(())
    // `_guard` drops here, before the command's scope ends: its metrics must still be sent.
}

#[test]
fn guard_dropped_inside_an_observed_main_still_sends_the_command() {
    let _serial = serial();
    let receiver = StatsdReceiver::bind().unwrap();
    observed_main(receiver.addr()).unwrap();
    let lines = receiver.lines();
    assert_eq!(calls(&lines, "edge.handler", "ok"), 1);
    assert_eq!(calls(&lines, "edge.main", "ok"), 1, "{lines:#?}");
    // And the pipeline is really shut down: a new init works.
    drop(
        observe::Config::default()
            .statsd_addr(receiver.addr())
            .install_subscriber(false)
            .init()
            .unwrap(),
    );
}

#[observe::observe]
fn three_queries() {
    for _ in 0..3 {
        observe::query::record("SELECT 1", std::time::Duration::ZERO);
    }
}

/// What one `init` set (a budget, an N+1 threshold) ends with it: the next `init` starts from the defaults,
/// as the documentation says, not from the previous test's settings.
#[test]
fn settings_do_not_outlive_their_init() {
    let _serial = serial();
    let receiver = StatsdReceiver::bind().unwrap();
    let config = || to_receiver(&receiver);
    let site = || {
        observe::sites()
            .find(|s| s.name().ends_with("::three_queries"))
            .expect("the site")
    };
    let n_plus_one = |receiver: &StatsdReceiver| -> f64 {
        receiver
            .lines()
            .iter()
            .filter(|l| l.name == "observe.scope.n_plus_one" && l.tag("scope") == Some("pipeline.three_queries"))
            .map(|l| l.value)
            .sum()
    };
    let guard = config().max_queries(2).n_plus_one_threshold(1).init().unwrap();
    three_queries(); // one statement three times: over a threshold of 1
    assert_eq!(site().max_queries(), Some(2));
    observe::flush();
    assert_eq!(n_plus_one(&receiver), 1.0);
    drop(guard);

    let guard = config().init().unwrap();
    assert_eq!(site().max_queries(), None, "no budget by default");
    // Strict budgets would fail an over-budget scope: with no budget, none is.
    observe::testing::strict_budgets(three_queries);
    observe::flush();
    assert_eq!(
        n_plus_one(&receiver),
        0.0,
        "three runs are under the default threshold of 5"
    );
    drop(guard);
}
