//! Load benchmark: the demo shop in two builds, every handler observed (the normal build) and observability
//! compiled out (`--features observe/disabled`), under the same load in the same run. Reports requests/s and
//! p99 latency for both, alternating rounds so that drift on a noisy machine hits both alike.
//!
//! `cargo bench -p observe-bench --bench load` (builds both demo binaries in release first, once).
//! Target: observed >= 98% of unobserved requests/s.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECTIONS: usize = 32;
const ROUND: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;
const PATHS: [&str; 2] = ["/products", "/orders/2"];

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is in the workspace")
        .to_owned()
}

/// Builds the demo into its own target directory (cached after the first run) and returns the binary.
fn build(name: &str, features: &[&str]) -> std::path::PathBuf {
    let root = workspace_root();
    let target = root.join("target").join(format!("load-{name}"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "observe-examples",
            "--example",
            "demo",
            "--target-dir",
        ])
        .arg(&target);
    for feature in features {
        command.args(["--features", feature]);
    }
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "building the {name} demo failed");
    target.join("release").join("examples").join("demo")
}

fn start(binary: &std::path::Path) -> Server {
    let mut child = Command::new(binary)
        .args(["--serve", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("the demo prints its address").expect("utf-8");
        if let Some(rest) = line.strip_prefix("the shop listens on http://") {
            break rest
                .split_whitespace()
                .next()
                .expect("an address")
                .parse()
                .expect("a socket address");
        }
    };
    // Keep draining stdout so that the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

/// One keep-alive connection sending requests until `deadline`; returns each request's latency.
async fn connection(addr: SocketAddr, deadline: Instant, offset: usize) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return latencies;
    };
    let _ = stream.set_nodelay(true);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut i = offset;
    while Instant::now() < deadline {
        let path = PATHS[i % PATHS.len()];
        i += 1;
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
        let started = Instant::now();
        if stream.write_all(request.as_bytes()).await.is_err() {
            break;
        }
        // Read the head, then the body by Content-Length.
        let mut filled = 0;
        let (head_end, length) = loop {
            match stream.read(&mut buffer[filled..]).await {
                Ok(0) | Err(_) => return latencies,
                Ok(n) => filled += n,
            }
            if let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while filled < head_end + length {
            match stream.read(&mut buffer[filled..]).await {
                Ok(0) | Err(_) => return latencies,
                Ok(n) => filled += n,
            }
        }
        latencies.push(started.elapsed());
    }
    latencies
}

fn round(runtime: &tokio::runtime::Runtime, addr: SocketAddr) -> (f64, Duration) {
    runtime.block_on(async {
        let deadline = Instant::now() + ROUND;
        let started = Instant::now();
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|c| tokio::spawn(connection(addr, deadline, c)))
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("a load task"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort();
        let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
        (all.len() as f64 / elapsed, p99)
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to read.
    let observed = build("observed", &[]);
    let unobserved = build("unobserved", &["observe/disabled"]);
    let observed = start(&observed);
    let unobserved = start(&unobserved);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // Warm-up: connections, SQLite caches, allocator.
    round(&runtime, observed.addr);
    round(&runtime, unobserved.addr);
    let mut results = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for r in 0..ROUNDS {
        // Alternate which build goes first.
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let addr = if which == 0 { observed.addr } else { unobserved.addr };
            let (rps, p99) = round(&runtime, addr);
            println!(
                "round {r} {:<10} {rps:>9.0} req/s  p99 {:>8.3} ms",
                ["observed", "unobserved"][which],
                p99.as_secs_f64() * 1e3
            );
            results[which].0.push(rps);
            results[which].1.push(p99);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let median_p99 = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut o_rps, mut o_p99) = std::mem::take(&mut results[0]);
    let (mut u_rps, mut u_p99) = std::mem::take(&mut results[1]);
    let (o, u) = (median(&mut o_rps), median(&mut u_rps));
    let (op, up) = (median_p99(&mut o_p99), median_p99(&mut u_p99));
    println!();
    println!(
        "| build | requests/s (median of {ROUNDS} rounds of {} s) | p99 latency |",
        ROUND.as_secs()
    );
    println!("| --- | --- | --- |");
    println!(
        "| observed (every handler, tower layer, sqlx counting) | {o:.0} | {:.3} ms |",
        op.as_secs_f64() * 1e3
    );
    println!(
        "| observability compiled out (`observe/disabled`) | {u:.0} | {:.3} ms |",
        up.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "observed / unobserved requests/s: {:.1}% (target >= 98%)",
        100.0 * o / u
    );
    println!(
        "{CONNECTIONS} keep-alive connections, GET {} alternately, RUST_LOG=warn",
        PATHS.join(" and GET ")
    );
}
