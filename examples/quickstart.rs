//! The quickstart: observed handlers, a task and a command, trace IDs in every log line, and the metrics they
//! produced, read back from a real UDP socket.
//!
//! Run it with `cargo run --example quickstart` (add `OBSERVE_LOG=json` for JSON lines).

use std::net::UdpSocket;
use std::time::Duration;

use observe::observe;

#[derive(Debug)]
struct NotFound(u64);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order {} not found", self.0)
    }
}

impl std::error::Error for NotFound {}

#[observe(handler)]
async fn get_order(id: u64) -> Result<String, NotFound> {
    tracing::info!(id, "loading order");
    tokio::time::sleep(Duration::from_millis(2)).await;
    let price = price_of(id).await;
    if id.is_multiple_of(4) {
        tracing::warn!(id, "order is missing");
        return Err(NotFound(id));
    }
    Ok(format!("order {id}: {price} EUR"))
}

#[observe]
async fn price_of(id: u64) -> u64 {
    tracing::debug!(id, "pricing");
    id * 10
}

#[observe(task)]
fn send_reminders(count: usize) {
    // `log` records get the trace ID too.
    log::info!("sending {count} reminders");
}

/// The command: everything it does, and the requests it serves, run inside its scope.
#[observe(command)]
fn run(statsd_addr: String) -> anyhow::Result<()> {
    let _guard = observe::Config::default().statsd_addr(statsd_addr).init()?;
    tracing::info!("the command's own lines carry its trace ID");

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // Stand-ins for requests from the network: a raw `tokio::spawn` starts each as a root of its own, with
        // its own trace ID. (In your code, `observe::spawn` keeps the caller's trace: see clippy.toml.)
        #[allow(clippy::disallowed_methods)]
        let requests: Vec<_> = (1..=8).map(|id| tokio::spawn(get_order(id))).collect();
        for request in requests {
            match request.await? {
                Ok(order) => tracing::info!(%order, "served"),
                Err(err) => tracing::info!(%err, "request failed"),
            }
        }
        anyhow::Ok(())
    })?;
    send_reminders(3);
    // What clippy.toml's `disallowed-methods` guards against: a plain thread loses the trace.
    #[allow(clippy::disallowed_methods)]
    let plain = std::thread::spawn(|| tracing::info!("a plain thread is outside any scope: no trace ID"));
    plain.join().ok();
    Ok(())
    // `_guard` drops here: observe sends the rest, and the command's own metrics once its scope ends.
}

fn main() -> anyhow::Result<()> {
    // A local UDP socket stands in for the StatsD / DogStatsD agent, so the example shows what it would receive.
    let agent = UdpSocket::bind("127.0.0.1:0")?;
    agent.set_read_timeout(Some(Duration::from_millis(300)))?;
    run(agent.local_addr()?.to_string())?;

    let mut lines = Vec::new();
    let mut buffer = [0u8; 65536];
    while let Ok(n) = agent.recv(&mut buffer) {
        lines.extend(String::from_utf8_lossy(&buffer[..n]).lines().map(str::to_owned));
    }
    println!(
        "\n{} metric lines received by the local agent, for example:",
        lines.len()
    );
    for line in lines.iter().filter(|l| l.contains("get_order")).take(3) {
        println!("  {line}");
    }
    println!(
        "\n{:<32} {:>9} {:>6} {:>10} {:>10}",
        "scope", "outcome", "calls", "mean ms", "max ms"
    );
    for row in summarize(&lines) {
        println!(
            "{:<32} {:>9} {:>6} {:>10.3} {:>10.3}",
            row.scope, row.outcome, row.calls, row.mean_ms, row.max_ms
        );
    }
    Ok(())
}

struct Row {
    scope: String,
    outcome: String,
    calls: u64,
    mean_ms: f64,
    max_ms: f64,
}

/// Folds DogStatsD lines (`name:value|type|@rate|#tags`) into one row per scope and outcome.
fn summarize(lines: &[String]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    for line in lines {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split('|');
        let value: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let (mut rate, mut scope, mut outcome) = (1.0, String::new(), String::new());
        for part in parts {
            if let Some(r) = part.strip_prefix('@') {
                rate = r.parse().unwrap_or(1.0);
            } else if let Some(tags) = part.strip_prefix('#') {
                for tag in tags.split(',') {
                    match tag.split_once(':') {
                        Some(("scope", v)) => scope = v.to_owned(),
                        Some(("outcome", v)) => outcome = v.to_owned(),
                        _ => {}
                    }
                }
            }
        }
        let index = match rows.iter().position(|r| r.scope == scope && r.outcome == outcome) {
            Some(i) => i,
            None => {
                rows.push(Row {
                    scope,
                    outcome,
                    calls: 0,
                    mean_ms: 0.0,
                    max_ms: 0.0,
                });
                weights.push(0.0);
                rows.len() - 1
            }
        };
        let row = &mut rows[index];
        if name.ends_with(".scope.calls") {
            row.calls += value as u64;
        } else if name.ends_with(".scope.duration") {
            let weight = 1.0 / rate;
            row.mean_ms = (row.mean_ms * weights[index] + value * weight) / (weights[index] + weight);
            weights[index] += weight;
            row.max_ms = row.max_ms.max(value);
        }
    }
    rows.sort_by(|a, b| (&a.scope, &a.outcome).cmp(&(&b.scope, &b.outcome)));
    rows
}
