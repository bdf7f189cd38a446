//! Load benchmark: the demo shop in two builds, every handler observed (the normal build) and observability
//! compiled out (`--features observe/disabled`), under the same load in the same run. Reports requests/s, p99
//! latency and the server's CPU time per request for both, alternating rounds so that drift on a noisy machine
//! hits both alike.
//!
//! The servers run on CPU 0 and the load generator on CPU 1 (when the machine has two): each server is then
//! saturated on one core, so its requests/s measures what a request costs it, and the load generator never
//! competes with it for a core.
//!
//! `cargo bench -p observe-bench --bench load` (builds both demo binaries in release first, once).
//! `OBSERVE_LOAD_OBSERVED=<demo binary>` replaces the observed build with another (an earlier commit's).
//! Target: observed >= 98% of unobserved requests/s.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECTIONS: usize = 32;
/// The load alternates between the two servers in short slices, many times: slow drift of the machine (other
/// tenants of the host, frequency changes) then hits both builds alike, and each pair of neighbouring slices
/// gives one observed/unobserved ratio.
const SLICE: Duration = Duration::from_millis(500);
const PAIRS: usize = 60;
/// Server processes per build, taken in turn by the pairs: runs of one binary against the same other binary
/// differed by up to five points from one start of the two servers to the next (where each process's memory
/// and threads land), so each run averages over several starts.
const INSTANCES: usize = 3;
/// The core the servers run on; the load generator takes the next one.
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;
const PATHS: [&str; 2] = ["/products", "/orders/2"];

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Ctrl-C first: the demo then closes its database and deletes the file; killed only if it hangs.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: a plain system call on our own child, which has not been waited for yet.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// Restricts the calling thread (and the threads and processes it starts afterwards) to one CPU.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: `set` is a plain bit set on the stack, sized as the call is told.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

fn start(binary: &std::path::Path, pin: bool) -> Server {
    let mut command = Command::new(binary);
    command
        .args(["--serve", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if pin {
        use std::os::unix::process::CommandExt;
        // SAFETY: runs in the forked child before exec; sched_setaffinity is a plain system call.
        unsafe {
            command.pre_exec(|| pin_to(SERVER_CPU));
        }
    }
    let mut child = command.spawn().expect("the demo starts");
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

/// CPU time in nanoseconds and times scheduled in.
type Usage = (u64, u64);

fn add(total: &mut Usage, (nanos, switches): Usage) {
    total.0 += nanos;
    total.1 += switches;
}

/// [`Usage`] (from each thread's `schedstat`) per thread name (`comm`) of process `pid`: where a build spends
/// its time. Threads that ended in between are not counted: the demo's threads live as long as the server.
fn cpu_by_thread(pid: u32) -> std::collections::BTreeMap<String, Usage> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.filter_map(Result::ok) {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().unwrap_or(0));
        let nanos = fields.next().unwrap_or(0);
        let switches = fields.nth(1).unwrap_or(0);
        // Numbered threads of one pool (sqlx's workers) share a line.
        let name = name.trim().trim_end_matches(|c: char| c.is_ascii_digit()).to_owned();
        add(by_name.entry(name).or_default(), (nanos, switches));
    }
    by_name
}

struct Round {
    rps: f64,
    p99: Duration,
    /// Server CPU time per request.
    cpu: Duration,
    /// Requests answered.
    requests: usize,
    /// The server's CPU time and times scheduled in during the round, per thread name.
    threads: std::collections::BTreeMap<String, Usage>,
}

fn round(runtime: &tokio::runtime::Runtime, server: &Server, length: Duration) -> Round {
    let addr = server.addr;
    let before = cpu_by_thread(server.child.id());
    let (rps, p99, requests) = runtime.block_on(async {
        let deadline = Instant::now() + length;
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
        (all.len() as f64 / elapsed, p99, all.len())
    });
    let mut threads = cpu_by_thread(server.child.id());
    for (name, (nanos, switches)) in &mut threads {
        let (nanos_before, switches_before) = before.get(name).copied().unwrap_or_default();
        *nanos = nanos.saturating_sub(nanos_before);
        *switches = switches.saturating_sub(switches_before);
    }
    let total: u64 = threads.values().map(|(nanos, _)| nanos).sum();
    let cpu = Duration::from_nanos(total / u64::try_from(requests.max(1)).unwrap_or(u64::MAX));
    Round {
        rps,
        p99,
        cpu,
        requests,
        threads,
    }
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to read.
    // `OBSERVE_LOAD_OBSERVED=<path to a demo binary>` measures another build (an earlier commit's, say) in
    // place of this tree's observed one, against the same compiled-out build.
    let observed = match std::env::var_os("OBSERVE_LOAD_OBSERVED") {
        Some(path) => std::path::PathBuf::from(path),
        None => build("observed", &[]),
    };
    let unobserved = build("unobserved", &["observe/disabled"]);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pin = cores >= 2 && pin_to(CLIENT_CPU).is_ok();
    let servers: [Vec<Server>; 2] =
        [&observed, &unobserved].map(|binary| (0..INSTANCES).map(|_| start(binary, pin)).collect());
    let names = ["observed", "unobserved"];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // Warm-up: connections, SQLite caches, allocator.
    for server in servers.iter().flatten() {
        round(&runtime, server, Duration::from_secs(1));
    }
    let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    for pair in 0..PAIRS {
        // Alternate which build goes first.
        let order = if pair % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            results[which].push(round(&runtime, &servers[which][pair % INSTANCES], SLICE));
        }
        let (o, u) = (&results[0][pair], &results[1][pair]);
        ratios.push(o.rps / u.rps);
        cpu_ratios.push(o.cpu.as_secs_f64() / u.cpu.as_secs_f64());
        if pair % 10 == 9 {
            println!(
                "pairs {:>2}..{:>2}: observed/unobserved requests/s {:>5.1}% (median so far)",
                pair - 9,
                pair,
                100.0 * median(ratios.clone())
            );
        }
    }
    let summary = |rounds: &[Round]| {
        (
            median(rounds.iter().map(|r| r.rps).collect()),
            median(rounds.iter().map(|r| r.p99).collect()),
            median(rounds.iter().map(|r| r.cpu).collect()),
        )
    };
    println!();
    println!(
        "| build | requests/s (median of {PAIRS} slices of {} ms) | p99 latency (median) | server CPU per request \
         (median) |",
        SLICE.as_millis()
    );
    println!("| --- | ---: | ---: | ---: |");
    for (which, label) in [
        "observed (every handler, tower layer, sqlx counting)",
        "observability compiled out (`observe/disabled`)",
    ]
    .into_iter()
    .enumerate()
    {
        let (rps, p99, cpu) = summary(&results[which]);
        println!(
            "| {label} | {rps:.0} | {:.3} ms | {:.1} us |",
            p99.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e6
        );
    }
    println!();
    println!("server CPU per request by thread, observed / unobserved (the loaded server of each round):");
    // Summed over every round of a build, divided by the requests those rounds answered.
    let by_thread = results.each_ref().map(|rounds| {
        let mut sum: std::collections::BTreeMap<&str, Usage> = std::collections::BTreeMap::new();
        for round in rounds {
            for (name, usage) in &round.threads {
                add(sum.entry(name.as_str()).or_default(), *usage);
            }
        }
        let requests = rounds.iter().map(|r| r.requests).sum::<usize>().max(1) as f64;
        (sum, requests)
    });
    let mut names_seen: Vec<&str> = by_thread.iter().flat_map(|(sum, _)| sum.keys().copied()).collect();
    names_seen.sort_unstable();
    names_seen.dedup();
    for name in names_seen {
        let per_request = |which: usize| {
            let (sum, requests) = &by_thread[which];
            let (nanos, switches) = sum.get(name).copied().unwrap_or_default();
            (nanos as f64 / requests / 1e3, switches as f64 / requests)
        };
        let ((cpu_o, runs_o), (cpu_u, runs_u)) = (per_request(0), per_request(1));
        println!("  {name:<20} {cpu_o:>6.2} / {cpu_u:>6.2} us, scheduled in {runs_o:>5.2} / {runs_u:>5.2} times");
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!();
    println!(
        "observed / unobserved requests/s, median of the {PAIRS} paired slices: {:.1}% (quartiles {:.1}% and \
         {:.1}%; target >= 98%)",
        100.0 * median(ratios),
        100.0 * sorted[PAIRS / 4],
        100.0 * sorted[PAIRS * 3 / 4]
    );
    println!(
        "server CPU per request, observed / unobserved, median of the pairs: {:.1}%",
        100.0 * median(cpu_ratios)
    );
    println!(
        "{CONNECTIONS} keep-alive connections, GET {} alternately, RUST_LOG=warn, {INSTANCES} server processes \
         per build taken in turn, {}; {} names the two builds",
        PATHS.join(" and GET "),
        if pin {
            "servers on CPU 0, load generator on CPU 1"
        } else {
            "not pinned (fewer than two CPUs)"
        },
        names.join("/")
    );
}
