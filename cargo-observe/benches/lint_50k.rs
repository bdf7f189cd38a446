//! `cargo bench -p cargo-observe`: generates a workspace of 50,000+ lines (several crates, many modules, axum
//! routes, spawns, observed and unobserved entry points) and times the lint over it, end to end (the release
//! binary, `cargo metadata` included) and by phase in process. Fails when the lint takes 2 s or more.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CRATES: usize = 5;
const MODULES: usize = 20;
const BLOCKS: usize = 9;
const TARGET_LINES: usize = 50_000;

/// One block of a module: a type, handlers (one observed, one not), a task, a blocking job, routes, spawns.
fn block(out: &mut String, c: usize, m: usize, k: usize) {
    let _ = write!(
        out,
        r#"
/// An order of shop {c}, module {m}, variant {k}.
#[derive(Debug, Clone, PartialEq)]
pub struct Order{k} {{
    pub id: u64,
    pub items: Vec<u32>,
    pub note: Option<String>,
}}

impl Order{k} {{
    pub fn new(id: u64) -> Self {{
        Order{k} {{ id, items: Vec::new(), note: None }}
    }}

    pub fn total(&self) -> u64 {{
        self.items.iter().map(|item| u64::from(*item) * 3 + {k}).sum()
    }}
}}

#[observe(handler)]
pub async fn get_order_{k}(id: u64) -> Result<String, String> {{
    let order = Order{k}::new(id);
    if order.total() > 1_000 {{
        return Err(format!("order {{}} is too large", order.id));
    }}
    tracing::info!(id, "loaded order");
    Ok(format!("{{order:?}}"))
}}

pub async fn list_orders_{k}(page: u32) -> Vec<u64> {{
    let mut ids = Vec::with_capacity(16);
    for i in 0..16u64 {{
        match i % 3 {{
            0 => ids.push(i + u64::from(page)),
            1 => ids.push(i * 2),
            _ => continue,
        }}
    }}
    ids
}}

pub async fn refresh_cache_{k}(shard: u32) {{
    let _ = shard;
}}

fn compress_{k}(data: Vec<u8>) -> usize {{
    data.iter().filter(|b| **b != 0).count()
}}

pub fn routes_{k}() -> Router {{
    Router::new()
        .route("/shop{c}/m{m}/orders/{k}", get(get_order_{k}).post(list_orders_{k}))
        .route("/shop{c}/m{m}/health/{k}", get(health))
}}

#[observe(task)]
pub fn start_{k}() {{
    tokio::spawn(refresh_cache_{k}({k}));
    let _ = std::thread::spawn(move || compress_{k}(vec![1, 2, 3]));
}}
"#
    );
}

fn module(c: usize, m: usize) -> String {
    let mut out = format!(
        "//! Shop {c}, module {m}: generated for the benchmark.\n\n\
         use axum::routing::{{get, post}};\nuse axum::Router;\nuse observe::observe;\n\n\
         use crate::health;\n"
    );
    for k in 0..BLOCKS {
        block(&mut out, c, m, k);
    }
    out
}

fn generate(root: &Path) -> usize {
    let _ = std::fs::remove_dir_all(root);
    let mut members = Vec::new();
    let mut lines = 0;
    let write = |path: PathBuf, text: &str| {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create a directory");
        std::fs::write(&path, text).expect("write a generated file");
        text.lines().count()
    };
    for c in 0..CRATES {
        let name = format!("shop{c}");
        let dir = root.join(&name);
        members.push(format!("\"{name}\""));
        write(
            dir.join("Cargo.toml"),
            &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        );
        let mut lib = String::from("//! A generated shop.\n\nuse observe::observe;\n\n");
        for m in 0..MODULES {
            // Half the modules in `name/mod.rs` directories, with a child module each.
            let _ = writeln!(lib, "pub mod m{m};");
            if m % 2 == 0 {
                lines += write(dir.join(format!("src/m{m}.rs")), &module(c, m));
            } else {
                let text = module(c, m).replacen("\n\n", "\n\npub mod inner;\n", 1);
                lines += write(dir.join(format!("src/m{m}/mod.rs")), &text);
                lines += write(
                    dir.join(format!("src/m{m}/inner.rs")),
                    "pub fn helper() -> u32 {\n    7\n}\n",
                );
            }
        }
        lib.push_str("\n#[observe(handler)]\npub async fn health() -> &'static str {\n    \"ok\"\n}\n");
        lib.push_str("\npub fn main_router() -> axum::Router {\n    axum::Router::new()\n");
        for m in 0..MODULES {
            let _ = writeln!(lib, "        .merge(m{m}::routes_0())");
        }
        lib.push_str("}\n");
        lines += write(dir.join("src/lib.rs"), &lib);
        if c == 0 {
            lines += write(
                dir.join("src/main.rs"),
                "#[tokio::main]\nasync fn main() {\n    let _ = shop0::main_router();\n    shop0::m0::start_0();\n}\n",
            );
        }
    }
    write(
        root.join("Cargo.toml"),
        &format!("[workspace]\nresolver = \"2\"\nmembers = [{}]\n", members.join(", ")),
    );
    lines
}

fn main() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lint-50k");
    let lines = generate(&root);
    assert!(lines >= TARGET_LINES, "generated only {lines} lines");
    let manifest = root.join("Cargo.toml");
    println!(
        "lint_50k: generated {CRATES} crates, {} modules, {lines} lines in {}",
        CRATES * MODULES,
        root.display()
    );

    // End to end: the release binary, as `cargo observe lint` runs it.
    let mut times = Vec::new();
    let mut summary = String::new();
    for _ in 0..5 {
        let start = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_cargo-observe"))
            .args(["lint", "--message-format", "json", "--manifest-path"])
            .arg(&manifest)
            .output()
            .expect("the binary runs");
        times.push(start.elapsed());
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        summary = stdout.lines().last().unwrap_or_default().to_owned();
    }
    times.sort();
    let best = times[0];
    let median = times[times.len() / 2];
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("a JSON summary");
    println!(
        "lint_50k: cargo-observe lint (release, cargo metadata included): best {:.1} ms, median {:.1} ms, {:.0} lines/s",
        ms(best),
        ms(median),
        lines as f64 / median.as_secs_f64()
    );
    println!(
        "lint_50k: {} entry points, {} not observed, {} raw spawns, {} files, {} could not be analysed",
        summary["entry_points"],
        summary["not_observed"],
        summary["raw_spawns"],
        summary["files"],
        summary["unanalysed"].as_array().map_or(0, Vec::len)
    );

    // In process, by phase.
    let start = Instant::now();
    let workspace = cargo_observe::workspace::Workspace::load(Some(&manifest)).expect("cargo metadata");
    let metadata = start.elapsed();
    let start = Instant::now();
    let sources = cargo_observe::read_sources(&workspace);
    let parse = start.elapsed();
    let start = Instant::now();
    let analysis = cargo_observe::analyse::analyse(&workspace, &sources);
    let analyse = start.elapsed();
    let start = Instant::now();
    let report = cargo_observe::report::human(&analysis, &sources);
    let render = start.elapsed();
    println!(
        "lint_50k: in process: cargo metadata {:.1} ms, read + parse {:.1} ms ({} threads), analyse {:.1} ms, \
         report {:.1} ms ({} bytes)",
        ms(metadata),
        ms(parse),
        cargo_observe::load::threads(),
        ms(analyse),
        ms(render),
        report.len()
    );
    assert!(
        median < Duration::from_secs(2),
        "the lint over {lines} lines took {median:?}, over the 2 s budget"
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
