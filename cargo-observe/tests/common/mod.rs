//! Runs the `cargo-observe` binary over the fixture workspaces.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON lines of `--message-format json`: the findings, then the summary.
    pub fn json(&self) -> (Vec<Value>, Value) {
        let mut lines: Vec<Value> = self
            .stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .collect();
        let summary = lines.pop().expect("a summary line");
        assert_eq!(summary["type"], "summary", "{}", self.stdout);
        (lines, summary)
    }

    /// `(file, line, kind, function)` of every finding.
    pub fn findings(&self) -> Vec<(String, u64, String, String)> {
        self.json()
            .0
            .iter()
            .map(|f| {
                (
                    f["file"].as_str().unwrap_or_default().to_owned(),
                    f["line"].as_u64().unwrap_or_default(),
                    f["kind"].as_str().unwrap_or_default().to_owned(),
                    f["function"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-observe"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs");
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `cargo-observe lint <args>` over a fixture (by its manifest path, from this crate's directory).
pub fn lint(name: &str, args: &[&str]) -> Run {
    let manifest = fixture(name).join("Cargo.toml");
    let manifest = manifest.to_str().expect("UTF-8 path");
    let mut all = vec!["lint", "--manifest-path", manifest];
    all.extend_from_slice(args);
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), &all)
}

pub fn expected(rows: &[(&str, u64, &str, &str)]) -> Vec<(String, u64, String, String)> {
    rows.iter()
        .map(|(file, line, kind, function)| ((*file).to_owned(), *line, (*kind).to_owned(), (*function).to_owned()))
        .collect()
}

/// A fresh copy of a fixture in this crate's temporary directory.
pub fn copy_fixture(name: &str, tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&fixture(name), &dir);
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Every file under `dir` with its contents, sorted.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                files.push((path, text));
            }
        }
    }
    files.sort();
    files
}
