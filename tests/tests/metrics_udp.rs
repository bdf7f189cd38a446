//! Metrics end to end: observed functions on a multi-threaded runtime, metric packets read back from a real
//! UDP socket on loopback, every outcome (ok, error, panic, cancelled), nested scopes, tags and packet sizes.

use std::time::Duration;

use observe::observe;
use observe_tests::{calls, serial, Line, StatsdReceiver};

#[derive(Debug)]
struct NotFound;

#[observe(handler)]
async fn get_order(id: u64) -> Result<u64, NotFound> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    load_price(id).await;
    if id.is_multiple_of(5) {
        return Err(NotFound);
    }
    Ok(id)
}

#[observe]
async fn load_price(id: u64) -> u64 {
    tokio::task::yield_now().await;
    id * 3
}

#[observe(handler)]
async fn slow_handler() {
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[observe(task)]
fn crashing_job(crash: bool) -> u8 {
    assert!(!crash, "job crashed");
    1
}

#[observe(command, name = "shop::cli|import,orders#1")]
fn import() -> std::io::Result<()> {
    std::thread::sleep(Duration::from_millis(20));
    Err(std::io::Error::other("disk full"))
}

#[test]
fn scopes_become_metric_packets_on_a_real_udp_socket() {
    let _serial = serial();
    let receiver = StatsdReceiver::bind().unwrap();
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .prefix("shop")
        .tag("team", "check|out")
        .install_subscriber(false)
        .flush_interval(Duration::from_secs(3600))
        .init()
        .unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let handles: Vec<_> = (1..=200).map(|id| tokio::spawn(get_order(id))).collect();
        let mut errors = 0;
        for handle in handles {
            if handle.await.unwrap().is_err() {
                errors += 1;
            }
        }
        assert_eq!(errors, 40);
        // Three requests that time out: their futures are dropped before completing.
        for _ in 0..3 {
            let timed_out = tokio::time::timeout(Duration::from_millis(5), slow_handler()).await;
            assert!(timed_out.is_err());
        }
    });
    for _ in 0..7 {
        assert_eq!(crashing_job(false), 1);
    }
    let panicked = std::panic::catch_unwind(|| crashing_job(true));
    assert!(panicked.is_err());
    assert!(import().is_err());

    observe::flush();
    let lines = receiver.lines();
    drop(guard);

    let scope = |name: &str| format!("metrics_udp.{name}");
    assert_eq!(calls(&lines, &scope("get_order"), "ok"), 160);
    assert_eq!(calls(&lines, &scope("get_order"), "error"), 40);
    assert_eq!(
        calls(&lines, &scope("load_price"), "ok"),
        200,
        "nested scopes are their own scopes"
    );
    assert_eq!(calls(&lines, &scope("slow_handler"), "cancelled"), 3);
    assert_eq!(calls(&lines, &scope("crashing_job"), "ok"), 7);
    assert_eq!(calls(&lines, &scope("crashing_job"), "panic"), 1);
    // The custom name keeps its meaning but loses the characters DogStatsD cannot carry.
    assert_eq!(calls(&lines, "shop.cli_import_orders_1", "error"), 1);

    for line in &lines {
        assert!(line.name.starts_with("shop.scope."), "{}", line.raw);
        assert_eq!(line.tag("team"), Some("check_out"), "{}", line.raw);
        let kind = line.tag("kind").unwrap();
        assert!(["function", "handler", "task", "command"].contains(&kind));
        assert!(line
            .tags
            .iter()
            .all(|(k, _)| ["kind", "scope", "outcome", "team"].contains(&k.as_str())));
    }

    // Every distribution stands for as many samples as the scope had calls.
    for (name, outcome, expected) in [
        (scope("get_order"), "ok", 160.0),
        (scope("get_order"), "error", 40.0),
        (scope("slow_handler"), "cancelled", 3.0),
        (scope("crashing_job"), "panic", 1.0),
    ] {
        let durations: Vec<&Line> = lines
            .iter()
            .filter(|l| {
                l.name == "shop.scope.duration"
                    && l.tag("scope") == Some(name.as_str())
                    && l.tag("outcome") == Some(outcome)
            })
            .collect();
        assert!(durations.iter().all(|l| l.kind == "d"), "distributions");
        let weight: f64 = durations.iter().map(|l| l.weight()).sum();
        assert!(
            (weight - expected).abs() < 1e-6,
            "{name} {outcome}: weight {weight}, expected {expected}"
        );
    }

    // Durations are in milliseconds and about right: handlers sleep at least 1 ms, cancelled ones 5 ms.
    let duration_of = |name: &str, outcome: &str| -> Vec<f64> {
        lines
            .iter()
            .filter(|l| {
                l.name == "shop.scope.duration" && l.tag("scope") == Some(name) && l.tag("outcome") == Some(outcome)
            })
            .map(|l| l.value)
            .collect()
    };
    assert!(duration_of(&scope("get_order"), "ok").iter().all(|ms| *ms >= 0.95));
    assert!(duration_of(&scope("slow_handler"), "cancelled")
        .iter()
        .all(|ms| *ms >= 4.5 && *ms < 30_000.0));
    assert!(duration_of("shop.cli_import_orders_1", "error")
        .iter()
        .all(|ms| *ms >= 19.0));

    // A second flush sends nothing new: aggregates are drained, not resent.
    observe::flush();
    assert!(receiver.lines().is_empty());
}

#[test]
fn packets_fit_the_udp_limit() {
    // Many scopes with long names: the sink must split lines across datagrams, none over 1432 bytes.
    let receiver = StatsdReceiver::bind().unwrap();
    let packets = {
        let _serial = serial();
        let guard = observe::Config::default()
            .statsd_addr(receiver.addr())
            .install_subscriber(false)
            .init()
            .unwrap();
        macro_rules! many {
            ($($name:ident)*) => {
                $(
                    #[observe(name = "a_rather_long_scope_name_to_fill_packets_quickly_in_this_test::with::a::deep::module::path")]
                    fn $name(x: u64) -> u64 { x.wrapping_mul(3) }
                    for i in 0..50u64 { std::hint::black_box($name(std::hint::black_box(i))); }
                )*
            };
        }
        many!(f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12);
        observe::flush();
        let packets = receiver.packets();
        drop(guard);
        packets
    };
    assert!(packets.len() > 1, "expected several packets, got {}", packets.len());
    for packet in &packets {
        assert!(packet.len() <= 1432, "packet of {} bytes", packet.len());
        assert!(!packet.ends_with(b"\n"));
        for line in String::from_utf8(packet.clone()).unwrap().lines() {
            assert!(Line::parse(line).is_some(), "{line:?}");
        }
    }
}
