//! The workspace as `cargo metadata --no-deps` describes it, and the lint's configuration from
//! `[workspace.metadata.observe.lint]`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Allow,
    Warn,
    Deny,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        match text {
            "allow" => Some(Level::Allow),
            "warn" => Some(Level::Warn),
            "deny" => Some(Level::Deny),
            _ => None,
        }
    }

    /// As rustc names a diagnostic of this level.
    pub fn label(self) -> &'static str {
        match self {
            Level::Deny => "error",
            _ => "warning",
        }
    }
}

/// What an entry point is, which is also the argument `--fix` gives the attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A function `require`d by the configuration, with no kind of its own.
    Function,
    Task,
    Handler,
    Command,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Function => "function",
            Kind::Task => "task",
            Kind::Handler => "handler",
            Kind::Command => "command",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        match text {
            "function" => Some(Kind::Function),
            "task" => Some(Kind::Task),
            "handler" => Some(Kind::Handler),
            "command" => Some(Kind::Command),
            _ => None,
        }
    }
}

/// A pattern over item paths (`crate::handlers::*`) or, when it contains a `/` or ends in `.rs`, over file
/// paths relative to the workspace root (`src/generated/**`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
    file: bool,
    segments: Vec<String>,
}

impl Pattern {
    pub fn new(text: &str) -> Pattern {
        let text = text.trim().to_owned();
        let file = text.contains('/') || text.ends_with(".rs");
        let segments = if file {
            text.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
        } else {
            text.split("::").map(|s| s.trim().to_owned()).collect()
        };
        Pattern { text, file, segments }
    }

    /// Does this pattern cover the item `path` (`["crate", "handlers", "list"]`) of crate `crate_name`, defined
    /// in `file` (relative to the workspace root)? An item pattern covers everything below what it names.
    pub fn matches(&self, crate_name: &str, path: &[String], file: &str) -> bool {
        if self.file {
            let parts: Vec<String> = file.split('/').map(str::to_owned).collect();
            return segments_match(&self.segments, &parts, false);
        }
        let Some((first, rest)) = self.segments.split_first() else {
            return false;
        };
        let first_ok = first == "crate" || first == "*" || first == "**" || first.replace('-', "_") == crate_name;
        if !first_ok || path.is_empty() {
            return false;
        }
        if first == "**" {
            return segments_match(&self.segments, &path[1..], true);
        }
        segments_match(rest, &path[1..], true)
    }
}

/// `**` matches any number of segments, `*` within a segment any characters. With `prefix`, the pattern may
/// match the beginning of `segments` only.
fn segments_match(pattern: &[String], segments: &[String], prefix: bool) -> bool {
    match pattern.split_first() {
        None => prefix || segments.is_empty(),
        Some((p, rest)) if p == "**" => (0..=segments.len()).any(|i| segments_match(rest, &segments[i..], prefix)),
        Some((p, rest)) => match segments.split_first() {
            Some((s, tail)) => glob(p, s) && segments_match(rest, tail, prefix),
            None => false,
        },
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Require {
    pub pattern: Pattern,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub require: Vec<Require>,
    pub ignore: Vec<Pattern>,
    pub level: Level,
    /// Level of `observe::raw-spawn`; the general level unless set.
    pub raw_spawn: Level,
    /// Target kinds to read (`lib`, `bin`, `example`, `test`, `bench`).
    pub targets: Vec<String>,
    /// Keys it did not understand, and other things worth a warning.
    pub warnings: Vec<String>,
}

const DEFAULT_TARGETS: &[&str] = &["lib", "bin", "example", "test", "bench"];

impl Config {
    /// Whether a finding about the function `path` of `crate_name`, in the file `rel`, is ignored.
    pub fn ignores(&self, crate_name: &str, path: &[String], rel: &str) -> bool {
        self.ignore.iter().any(|p| p.matches(crate_name, path, rel))
    }

    /// Whether the whole file `rel` (relative to the workspace root) is ignored by a file pattern.
    pub fn ignores_file(&self, rel: &str) -> bool {
        self.ignore.iter().any(|p| p.file && p.matches("", &[], rel))
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            require: Vec::new(),
            ignore: Vec::new(),
            level: Level::Warn,
            raw_spawn: Level::Warn,
            targets: DEFAULT_TARGETS.iter().map(|s| (*s).to_owned()).collect(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Reads the `observe.lint` table of the workspace metadata (`null` when there is none).
    pub fn from_metadata(metadata: &Value) -> Result<Config, String> {
        let mut config = Config::default();
        let Some(table) = metadata.get("observe").and_then(|o| o.get("lint")) else {
            return Ok(config);
        };
        let table = table
            .as_object()
            .ok_or("`workspace.metadata.observe.lint` must be a table")?;
        let where_ = "in [workspace.metadata.observe.lint]";
        let mut raw_spawn = None;
        for (key, value) in table {
            match key.as_str() {
                "level" => {
                    let text = value.as_str().unwrap_or("");
                    config.level = match Level::parse(text) {
                        Some(Level::Allow) | None => {
                            return Err(format!("`level` {where_} must be \"warn\" or \"deny\", not {value}"))
                        }
                        Some(level) => level,
                    };
                }
                "raw-spawn" | "raw_spawn" => {
                    let text = value.as_str().unwrap_or("");
                    raw_spawn = Some(Level::parse(text).ok_or_else(|| {
                        format!("`{key}` {where_} must be \"allow\", \"warn\" or \"deny\", not {value}")
                    })?);
                }
                "require" => {
                    for entry in list(value, key)? {
                        config.require.push(match entry {
                            Value::String(text) => Require {
                                pattern: Pattern::new(text),
                                kind: Kind::Function,
                            },
                            Value::Object(item) => {
                                let path = item.get("path").and_then(Value::as_str).ok_or_else(|| {
                                    format!("a table in `require` {where_} needs `path = \"crate::module::*\"`")
                                })?;
                                let kind = match item.get("kind") {
                                    None => Kind::Function,
                                    Some(kind) => kind.as_str().and_then(Kind::parse).ok_or_else(|| {
                                        format!(
                                            "`kind` in `require` {where_} must be \"handler\", \"task\", \"command\" \
                                             or \"function\", not {kind}"
                                        )
                                    })?,
                                };
                                Require {
                                    pattern: Pattern::new(path),
                                    kind,
                                }
                            }
                            other => {
                                return Err(format!(
                                    "`require` {where_} takes paths (\"crate::handlers::*\") or tables \
                                     ({{ path = \"..\", kind = \"task\" }}), not {other}"
                                ))
                            }
                        });
                    }
                }
                "ignore" => {
                    for entry in list(value, key)? {
                        let text = entry
                            .as_str()
                            .ok_or_else(|| format!("`ignore` {where_} takes strings, not {entry}"))?;
                        config.ignore.push(Pattern::new(text));
                    }
                }
                "targets" => {
                    config.targets.clear();
                    for entry in list(value, key)? {
                        let text = entry.as_str().unwrap_or("");
                        if !DEFAULT_TARGETS.contains(&text) {
                            return Err(format!(
                                "`targets` {where_} takes \"lib\", \"bin\", \"example\", \"test\", \"bench\", not {entry}"
                            ));
                        }
                        config.targets.push(text.to_owned());
                    }
                }
                other => config
                    .warnings
                    .push(format!("unknown key `{other}` {where_} (ignored)")),
            }
        }
        config.raw_spawn = raw_spawn.unwrap_or(config.level);
        Ok(config)
    }
}

fn list<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("`{key}` in [workspace.metadata.observe.lint] must be an array, not {value}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Lib,
    Bin,
    Example,
    Test,
    Bench,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Lib => "lib",
            TargetKind::Bin => "bin",
            TargetKind::Example => "example",
            TargetKind::Test => "test",
            TargetKind::Bench => "bench",
        }
    }
}

/// How a package depends on the `observe` runtime: the name its code uses, and whether `observe::spawn`
/// (the `tokio` feature) is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserveDep {
    pub name: String,
    pub tokio: bool,
}

#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub observe: Option<ObserveDep>,
    pub observe_dev: Option<ObserveDep>,
}

#[derive(Debug, Clone)]
pub struct Target {
    /// The crate's name in paths (`my_app`).
    pub crate_name: String,
    pub kind: TargetKind,
    pub package: usize,
    pub root: PathBuf,
}

impl Target {
    /// The `observe` dependency this target's code can use.
    pub fn observe_dep<'a>(&self, packages: &'a [Package]) -> Option<&'a ObserveDep> {
        let package = &packages[self.package];
        match self.kind {
            TargetKind::Lib | TargetKind::Bin => package.observe.as_ref(),
            _ => package.observe.as_ref().or(package.observe_dev.as_ref()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub packages: Vec<Package>,
    pub targets: Vec<Target>,
    pub config: Config,
}

#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Workspace {
    /// Runs `cargo metadata --format-version 1 --no-deps` (with `$CARGO`, as cargo sets it for subcommands).
    pub fn load(manifest_path: Option<&Path>) -> Result<Workspace, Error> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(&cargo);
        command.args(["metadata", "--format-version", "1", "--no-deps"]);
        if let Some(path) = manifest_path {
            command.arg("--manifest-path").arg(path);
        }
        let output = command.output().map_err(|err| {
            Error(format!(
                "could not run `{} metadata`: {err}",
                Path::new(&cargo).display()
            ))
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error(format!("`cargo metadata` failed:\n{}", stderr.trim_end())));
        }
        let json: Value = serde_json::from_slice(&output.stdout)
            .map_err(|err| Error(format!("could not read the output of `cargo metadata`: {err}")))?;
        Workspace::from_metadata(&json)
    }

    pub fn from_metadata(json: &Value) -> Result<Workspace, Error> {
        let bad = |what: &str| Error(format!("unexpected `cargo metadata` output: {what}"));
        let root = json
            .get("workspace_root")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no `workspace_root`"))?;
        let members: Vec<&str> = json
            .get("workspace_members")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `workspace_members`"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let config = Config::from_metadata(json.get("metadata").unwrap_or(&Value::Null)).map_err(Error)?;
        let mut workspace = Workspace {
            root: PathBuf::from(root),
            packages: Vec::new(),
            targets: Vec::new(),
            config,
        };
        let packages = json
            .get("packages")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `packages`"))?;
        for package in packages {
            let id = package.get("id").and_then(Value::as_str).unwrap_or("");
            if !members.contains(&id) {
                continue;
            }
            let name = package.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
            let (mut observe, mut observe_dev) = (None, None);
            for dep in package
                .get("dependencies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if dep.get("name").and_then(Value::as_str) != Some("observe") {
                    continue;
                }
                let code_name = dep.get("rename").and_then(Value::as_str).unwrap_or("observe");
                let tokio = dep
                    .get("features")
                    .and_then(Value::as_array)
                    .is_some_and(|f| f.iter().any(|f| f.as_str() == Some("tokio")));
                let found = ObserveDep {
                    name: code_name.replace('-', "_"),
                    tokio,
                };
                match dep.get("kind").and_then(Value::as_str) {
                    None | Some("normal") => observe = Some(found),
                    Some("dev") => observe_dev = Some(found),
                    _ => {}
                }
            }
            let index = workspace.packages.len();
            workspace.packages.push(Package {
                name,
                observe,
                observe_dev,
            });
            for target in package.get("targets").and_then(Value::as_array).into_iter().flatten() {
                let kinds: Vec<&str> = target
                    .get("kind")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let kind = if kinds.contains(&"bin") {
                    TargetKind::Bin
                } else if kinds.contains(&"example") {
                    TargetKind::Example
                } else if kinds.contains(&"test") {
                    TargetKind::Test
                } else if kinds.contains(&"bench") {
                    TargetKind::Bench
                } else if kinds.contains(&"custom-build") {
                    continue;
                } else {
                    TargetKind::Lib
                };
                if !workspace.config.targets.iter().any(|t| t == kind.name()) {
                    continue;
                }
                let (Some(name), Some(src)) = (
                    target.get("name").and_then(Value::as_str),
                    target.get("src_path").and_then(Value::as_str),
                ) else {
                    return Err(bad("a target without `name` or `src_path`"));
                };
                workspace.targets.push(Target {
                    crate_name: name.replace('-', "_"),
                    kind,
                    package: index,
                    root: PathBuf::from(src),
                });
            }
        }
        Ok(workspace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split("::").map(str::to_owned).collect()
    }

    #[test]
    fn item_patterns() {
        let p = Pattern::new("crate::handlers::*");
        assert!(p.matches("app", &path("crate::handlers::list"), "src/handlers.rs"));
        assert!(p.matches("app", &path("crate::handlers::users::show"), "src/handlers/users.rs"));
        assert!(p.matches("app", &path("crate::handlers::Orders::list"), "src/handlers.rs"));
        assert!(!p.matches("app", &path("crate::handlers"), "src/lib.rs"));
        assert!(!p.matches("app", &path("crate::jobs::run"), "src/jobs.rs"));

        let named = Pattern::new("app::jobs");
        assert!(named.matches("app", &path("crate::jobs::run"), "src/jobs.rs"));
        assert!(!named.matches("other", &path("crate::jobs::run"), "src/jobs.rs"));

        let deep = Pattern::new("crate::**::internal_*");
        assert!(deep.matches("app", &path("crate::a::b::internal_x"), "src/a/b.rs"));
        assert!(deep.matches("app", &path("crate::internal_y"), "src/lib.rs"));
        assert!(!deep.matches("app", &path("crate::a::public"), "src/a.rs"));
    }

    #[test]
    fn file_patterns() {
        let p = Pattern::new("src/generated/**");
        assert!(p.matches("app", &path("crate::x"), "src/generated/a.rs"));
        assert!(p.matches("app", &path("crate::x"), "src/generated/deep/b.rs"));
        assert!(!p.matches("app", &path("crate::x"), "src/main.rs"));
        let q = Pattern::new("*/src/legacy.rs");
        assert!(q.matches("app", &path("crate::x"), "shop/src/legacy.rs"));
        assert!(!q.matches("app", &path("crate::x"), "shop/src/main.rs"));
    }

    #[test]
    fn config() {
        let metadata = serde_json::json!({"observe": {"lint": {
            "require": ["crate::handlers::*", {"path": "crate::jobs::*", "kind": "task"}],
            "ignore": ["crate::handlers::internal"],
            "level": "deny",
            "colour": true,
        }}});
        let config = Config::from_metadata(&metadata).expect("valid");
        assert_eq!(config.level, Level::Deny);
        assert_eq!(config.raw_spawn, Level::Deny);
        assert_eq!(config.require[1].kind, Kind::Task);
        assert_eq!(config.ignore.len(), 1);
        assert_eq!(config.warnings.len(), 1);

        let bad = serde_json::json!({"observe": {"lint": {"level": "fatal"}}});
        let err = Config::from_metadata(&bad).expect_err("invalid level");
        assert!(err.contains("\"warn\" or \"deny\""), "{err}");
        assert_eq!(
            Config::from_metadata(&Value::Null).expect("no table").level,
            Level::Warn
        );
    }
}
