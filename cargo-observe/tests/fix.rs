//! `cargo observe lint --fix` over a copy of the worker fixture: the fixed workspace still compiles, and a
//! second run finds nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::{copy_fixture, run_in};

#[test]
fn fix_then_build_then_nothing_left() {
    let dir = copy_fixture("worker", "fix-worker");
    // The copy is elsewhere: point it at the runtime by an absolute path, and build with the workspace's
    // versions (its Cargo.lock) and its target directory, offline.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("the manifest");
    let runtime = workspace.join("runtime");
    let manifest = manifest.replace(
        "\"../../../../runtime\"",
        &format!("{:?}", runtime.to_str().expect("UTF-8 path")),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write the manifest");
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");

    let fixed = run_in(&dir, &["lint", "--fix"]);
    assert_eq!(fixed.status, 0, "{}{}", fixed.stdout, fixed.stderr);
    assert!(
        fixed
            .stderr
            .contains("observe: fixed 6 attributes, 5 spawns, 2 imports in 2 files"),
        "{}",
        fixed.stderr
    );

    let main = std::fs::read_to_string(dir.join("src/main.rs")).expect("main.rs");
    assert!(
        main.contains(
            "use jobs::Worker;\nuse observe::observe;\n\n#[tokio::main]\n#[observe(command)]\nasync fn main() {"
        ),
        "{main}"
    );
    assert!(
        main.contains("let poller = observe::spawn(jobs::poll_queue(rx));"),
        "{main}"
    );
    assert!(
        main.contains("let compressed = observe::spawn_blocking(move || jobs::compress(vec![1, 2, 3]));"),
        "{main}"
    );
    assert!(
        main.contains("let heartbeat = observe::thread::spawn(jobs::heartbeat);"),
        "{main}"
    );
    let jobs = std::fs::read_to_string(dir.join("src/jobs.rs")).expect("jobs.rs");
    assert!(
        jobs.starts_with(
            "use tokio::sync::mpsc::Receiver;\nuse observe::observe;\n\n#[observe(task)]\npub async fn poll_queue("
        ),
        "{jobs}"
    );
    assert!(
        jobs.contains(
            "/// Compresses, as well as anything that does nothing can.\n#[inline]\n#[observe(task)]\npub fn compress("
        ),
        "{jobs}"
    );
    assert!(jobs.contains("    let _ = observe::spawn(audit()).await;"), "{jobs}");

    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("fixture-check");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let check = Command::new(cargo)
        .args(["check", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        check.status.success(),
        "the fixed worker does not build:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let again = run_in(&dir, &["lint", "--message-format", "json"]);
    assert_eq!(again.status, 0);
    let (findings, summary) = again.json();
    assert!(findings.is_empty(), "{}", again.stdout);
    assert_eq!(summary["entry_points"], 6);
    assert_eq!(summary["observed"], 6);
    let _ = std::fs::remove_dir_all(&dir);
}
