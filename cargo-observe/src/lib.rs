//! `cargo observe lint`: finds the entry points of a workspace (HTTP handlers, spawned tasks, `fn main` of
//! binaries, functions under configured modules) that are not `#[observe]`d, and raw spawns in observed code.
//!
//! The pipeline: [`workspace`] asks `cargo metadata` for the targets and reads the configuration; [`load`]
//! reads and parses every file reachable from the targets' roots (in parallel, each file once), reducing each
//! to a summary ([`extract`]); [`analyse`] links the summaries into module trees, resolves handler and task
//! names, and produces findings; [`report`] prints them; [`fix`] edits the files.

pub mod analyse;
pub mod extract;
pub mod fix;
pub mod load;
pub mod report;
pub mod top;
pub mod workspace;

use std::io::Write;
use std::path::{Path, PathBuf};

use analyse::Analysis;
use load::Sources;
use workspace::{Level, Workspace};

pub const USAGE: &str = "\
cargo observe lint: find the handlers, tasks and commands that are not observed
cargo observe top: a live per-scope table of the metrics observed apps send

Usage: cargo observe lint [OPTIONS]
       cargo observe top [--addr HOST:PORT] [--interval SECONDS] [--for SECONDS]

Options:
      --manifest-path <PATH>      Path to Cargo.toml (default: the workspace of the current directory)
      --message-format <FORMAT>   human (default) or json: one JSON object per finding, then a summary
      --fix                       Add the missing #[observe(kind)] attributes and replace raw spawns
      --deny                      Treat every finding as an error (exit status 1), whatever the configuration
  -h, --help                      Print this help

Configuration, in the workspace's root Cargo.toml:

  [workspace.metadata.observe.lint]
  require = [\"crate::handlers::*\", { path = \"crate::jobs::*\", kind = \"task\" }]
  ignore = [\"crate::handlers::internal\", \"src/generated/**\"]
  level = \"warn\"          # or \"deny\": exit status 1 when something is not observed
  raw-spawn = \"warn\"      # allow | warn | deny; the level of observe::raw-spawn (default: level)
  targets = [\"lib\", \"bin\", \"example\", \"test\", \"bench\"]

Exit status: 0 (nothing at level deny), 1 (a finding at level deny), 2 (the lint could not run).

top listens for StatsD / DogStatsD packets (default 127.0.0.1:8125, where observe sends by default) and redraws
the table every --interval seconds (default 2; into a pipe or file, each table follows the last); --for stops
after that many seconds and prints the table once (for scripts). Stop it with Ctrl-C. Exit status 2 when it
cannot listen (an agent already there: use --addr).
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub manifest_path: Option<PathBuf>,
    pub json: bool,
    pub fix: bool,
    pub deny: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Lint(Options),
    Top(top::TopOptions),
    Help,
    Version,
}

/// Reads the arguments after the program name: `lint ..`, or `observe lint ..` as cargo passes them.
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter().map(String::as_str).peekable();
    if args.peek() == Some(&"observe") {
        args.next();
    }
    match args.next() {
        Some("lint") => {}
        Some("top") => {
            let rest: Vec<&str> = args.collect();
            if rest.iter().any(|arg| matches!(*arg, "-h" | "--help")) {
                return Ok(Command::Help);
            }
            return top::parse(rest.into_iter()).map(Command::Top);
        }
        Some("-h" | "--help" | "help") | None => return Ok(Command::Help),
        Some("-V" | "--version") => return Ok(Command::Version),
        Some(other) => {
            return Err(format!(
                "unknown command `{other}` (the commands are `cargo observe lint` and `cargo observe top`)"
            ))
        }
    }
    let mut options = Options {
        manifest_path: None,
        json: false,
        fix: false,
        deny: false,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .map(str::to_owned)
                .or_else(|| args.next().map(str::to_owned))
                .ok_or_else(|| format!("`{name}` needs a value"))
        };
        match flag {
            "--manifest-path" => options.manifest_path = Some(PathBuf::from(value(flag)?)),
            "--message-format" => {
                options.json = match value(flag)?.as_str() {
                    "json" => true,
                    "human" | "short" => false,
                    other => return Err(format!("`--message-format` is `human` or `json`, not `{other}`")),
                }
            }
            "--fix" => options.fix = true,
            "--deny" | "-D" => options.deny = true,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    Ok(Command::Lint(options))
}

/// Reads the workspace: its metadata, configuration and sources.
pub fn load_workspace(manifest_path: Option<&Path>) -> Result<(Workspace, Sources), String> {
    let workspace = Workspace::load(manifest_path).map_err(|e| e.0)?;
    let sources = read_sources(&workspace);
    Ok((workspace, sources))
}

pub fn read_sources(workspace: &Workspace) -> Sources {
    let roots: Vec<PathBuf> = workspace.targets.iter().map(|t| t.root.clone()).collect();
    load::load(&workspace.root, &roots)
}

/// Loads and analyses a workspace, as `cargo observe lint` does without `--fix`.
pub fn lint(manifest_path: Option<&Path>) -> Result<(Workspace, Sources, Analysis), String> {
    let (workspace, sources) = load_workspace(manifest_path)?;
    let analysis = analyse::analyse(&workspace, &sources);
    Ok((workspace, sources, analysis))
}

/// Runs the command; returns the exit status.
pub fn run(args: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let options = match parse_args(args) {
        Ok(Command::Lint(options)) => options,
        Ok(Command::Top(options)) => return top::run(&options, stdout, stderr),
        Ok(Command::Help) => {
            let _ = stdout.write_all(USAGE.as_bytes());
            return 0;
        }
        Ok(Command::Version) => {
            let _ = writeln!(stdout, "cargo-observe {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(message) => {
            let _ = writeln!(stderr, "error: {message}");
            return 2;
        }
    };
    match lint_command(&options, stdout, stderr) {
        Ok(status) => status,
        Err(message) => {
            let _ = writeln!(stderr, "error: {message}");
            2
        }
    }
}

fn lint_command(options: &Options, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<i32, String> {
    let (mut workspace, mut sources) = load_workspace(options.manifest_path.as_deref())?;
    for warning in &workspace.config.warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    if options.deny {
        workspace.config.level = Level::Deny;
        if workspace.config.raw_spawn != Level::Allow {
            workspace.config.raw_spawn = Level::Deny;
        }
    }
    let mut analysis = analyse::analyse(&workspace, &sources);
    if options.fix {
        // A fix can make a function observed, and with it the raw spawns in its body: fix again.
        let mut total = fix::Outcome::default();
        for _ in 0..4 {
            let outcome = fix::apply(&analysis, &sources)?;
            if outcome.files.is_empty() {
                total.left = outcome.left;
                break;
            }
            total.attributes += outcome.attributes;
            total.spawns += outcome.spawns;
            total.imports += outcome.imports;
            for file in outcome.files {
                if !total.files.contains(&file) {
                    total.files.push(file);
                }
            }
            total.left = outcome.left;
            sources = read_sources(&workspace);
            analysis = analyse::analyse(&workspace, &sources);
        }
        let s = |n: usize| if n == 1 { "" } else { "s" };
        let _ = writeln!(
            stderr,
            "observe: fixed {} attribute{}, {} spawn{}, {} import{} in {} file{}",
            total.attributes,
            s(total.attributes),
            total.spawns,
            s(total.spawns),
            total.imports,
            s(total.imports),
            total.files.len(),
            s(total.files.len()),
        );
        for left in &total.left {
            let _ = writeln!(stderr, "observe: not fixed: {left}");
        }
    }
    let text = if options.json {
        report::json(&analysis)
    } else {
        report::human(&analysis, &sources)
    };
    stdout
        .write_all(text.as_bytes())
        .map_err(|err| format!("could not write the report: {err}"))?;
    Ok(if report::worst(&analysis) == Level::Deny { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn arguments_as_cargo_passes_them() {
        let plain = Options {
            manifest_path: None,
            json: false,
            fix: false,
            deny: false,
        };
        assert_eq!(parse_args(&args("lint")), Ok(Command::Lint(plain.clone())));
        assert_eq!(parse_args(&args("observe lint")), Ok(Command::Lint(plain.clone())));
        assert_eq!(
            parse_args(&args(
                "observe lint --message-format=json --fix --manifest-path x/Cargo.toml"
            )),
            Ok(Command::Lint(Options {
                manifest_path: Some(PathBuf::from("x/Cargo.toml")),
                json: true,
                fix: true,
                ..plain
            }))
        );
        assert_eq!(parse_args(&args("observe")), Ok(Command::Help));
        assert_eq!(parse_args(&args("observe top --help")), Ok(Command::Help));
        assert_eq!(parse_args(&args("top --addr 127.0.0.1:9 -h")), Ok(Command::Help));
        assert!(parse_args(&args("lint --colour")).is_err());
        assert!(parse_args(&args("check")).is_err());
        assert!(parse_args(&args("lint --message-format")).is_err());
    }
}
