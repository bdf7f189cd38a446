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
    if id % 4 == 0 {
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

#[observe(command)]
fn main() -> anyhow::Result<()> {
    // A local UDP socket stands in for the StatsD / DogStatsD agent, so the example shows what it would receive.
    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    receiver.set_read_timeout(Some(Duration::from_millis(500)))?;
    let guard = observe::Config::default()
        .statsd_addr(receiver.local_addr()?.to_string())
        .init()?;
    tracing::info!("the command's own lines carry its trace ID");

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let requests = (1..=8).map(|id| tokio::spawn(get_order(id)));
        for request in requests {
            match request.await? {
                Ok(order) => tracing::info!(%order, "served"),
                Err(err) => tracing::info!(%err, "request failed"),
            }
        }
        anyhow::Ok(())
    })?;
    send_reminders(3);
    tracing::info!("outside any scope a line has no trace ID:");
    std::thread::spawn(|| tracing::info!("(this one, from a plain thread)")).join().ok();

    observe::flush();
    drop(guard);
    println!("\nmetrics received on {}:", receiver.local_addr()?);
    let mut buffer = [0u8; 65536];
    while let Ok(n) = receiver.recv(&mut buffer) {
        for line in String::from_utf8_lossy(&buffer[..n]).lines() {
            println!("  {line}");
        }
    }
    Ok(())
}
