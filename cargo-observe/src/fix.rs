//! `--fix`: adds the missing `#[observe(kind)]` attributes (and `use observe::observe;`), and replaces raw
//! spawns in observed code with observe's.

use std::collections::BTreeMap;

use crate::analyse::{Analysis, Fix};
use crate::extract::{FileSummary, Pos};
use crate::load::Sources;

#[derive(Debug, Default)]
pub struct Outcome {
    pub attributes: usize,
    pub spawns: usize,
    pub imports: usize,
    pub files: Vec<String>,
    /// Findings left alone, with why.
    pub left: Vec<String>,
}

#[derive(Debug)]
enum Edit {
    /// Insert at the start of a line (1-based; one past the last line: at the end of the file).
    Line {
        line: u32,
        text: String,
        order: u8,
    },
    Replace {
        start: Pos,
        end: Pos,
        text: String,
    },
}

/// Byte offsets of the start of every line, plus the end of the text.
fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    starts
}

fn offset(text: &str, starts: &[usize], pos: Pos) -> usize {
    let Some(&start) = starts.get(pos.line.saturating_sub(1) as usize) else {
        return text.len();
    };
    let line = &text[start..];
    let within = line.char_indices().nth(pos.col as usize).map_or(line.len(), |(i, _)| i);
    start + within
}

fn line_offset(text: &str, starts: &[usize], line: u32) -> usize {
    starts
        .get(line.saturating_sub(1) as usize)
        .copied()
        .unwrap_or(text.len())
}

fn indentation(text: &str, starts: &[usize], line: u32) -> String {
    let start = line_offset(text, starts, line);
    text[start..].chars().take_while(|c| *c == ' ' || *c == '\t').collect()
}

/// Where `use observe::observe;` goes: after the last top-level `use`, else after the inner attributes and
/// `//!` comments, else first.
fn import_edit(summary: &FileSummary, import: &str, eol: &str) -> Edit {
    match (summary.last_use_line, summary.inner_end_line) {
        (Some(line), _) => Edit::Line {
            line: line + 1,
            text: format!("{import}{eol}"),
            order: 0,
        },
        (None, 0) => Edit::Line {
            line: 1,
            text: format!("{import}{eol}{eol}"),
            order: 0,
        },
        (None, line) => Edit::Line {
            line: line + 1,
            text: format!("{eol}{import}{eol}"),
            order: 0,
        },
    }
}

/// Applies the fixes of every finding that has one, and writes the files.
pub fn apply(analysis: &Analysis, sources: &Sources) -> Result<Outcome, String> {
    let mut outcome = Outcome::default();
    let mut by_file: BTreeMap<usize, Vec<&Fix>> = BTreeMap::new();
    for finding in &analysis.findings {
        match (&finding.fix, &finding.no_fix) {
            (Some(fix), _) => by_file.entry(finding.file).or_default().push(fix),
            (None, reason) => outcome.left.push(format!(
                "{}:{}:{}: {}{}",
                finding.rel,
                finding.pos.line,
                finding.pos.col + 1,
                finding.message,
                reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
            )),
        }
    }
    for (file, fixes) in by_file {
        let source = &sources.files[file];
        let Ok(summary) = &source.summary else { continue };
        let text = &source.text;
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let starts = line_starts(text);
        let mut edits = Vec::new();
        let mut import = None;
        for fix in fixes {
            match fix {
                Fix::Attribute {
                    at,
                    attribute,
                    import: needed,
                } => {
                    let line_start = line_offset(text, &starts, at.line);
                    let item = offset(text, &starts, *at);
                    if text
                        .get(line_start..item)
                        .is_some_and(|before| before.trim().is_empty())
                    {
                        let indent = indentation(text, &starts, at.line);
                        edits.push(Edit::Line {
                            line: at.line,
                            text: format!("{indent}{attribute}{eol}"),
                            order: 1,
                        });
                    } else {
                        // Something precedes the item on its line (`impl X { fn f() {} }`, `#[inline] fn f()`):
                        // insert right before the item, not before the line.
                        edits.push(Edit::Replace {
                            start: *at,
                            end: *at,
                            text: format!("{attribute} "),
                        });
                    }
                    outcome.attributes += 1;
                    if needed.is_some() {
                        import = needed.clone();
                    }
                }
                Fix::Replace { start, end, text } => {
                    edits.push(Edit::Replace {
                        start: *start,
                        end: *end,
                        text: text.clone(),
                    });
                    outcome.spawns += 1;
                }
            }
        }
        if let Some(import) = import {
            if !summary.imports_observe {
                edits.push(import_edit(summary, &import, eol));
                outcome.imports += 1;
            }
        }
        // From the end of the file backwards, so that offsets stay valid; at one offset, the import goes
        // before an attribute.
        let mut placed: Vec<(usize, usize, u8, String)> = edits
            .into_iter()
            .map(|edit| match edit {
                Edit::Line { line, text: new, order } => {
                    let at = line_offset(text, &starts, line);
                    // At the end of a file without a final newline, start a line first.
                    let new = if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
                        format!("{eol}{new}")
                    } else {
                        new
                    };
                    (at, at, order, new)
                }
                Edit::Replace { start, end, text: new } => {
                    (offset(text, &starts, start), offset(text, &starts, end), 2, new)
                }
            })
            .collect();
        placed.sort_by_key(|p| std::cmp::Reverse((p.0, p.2)));
        let mut fixed = text.clone();
        for (start, end, _, new) in placed {
            if start <= end && end <= fixed.len() {
                fixed.replace_range(start..end, &new);
            }
        }
        std::fs::write(&source.path, fixed)
            .map_err(|err| format!("could not write {}: {err}", source.path.display()))?;
        outcome.files.push(source.rel.clone());
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::{Config, ObserveDep, Package, Target, TargetKind, Workspace};

    /// Fixes a one-file binary crate written to a temporary directory; returns the fixed text.
    fn fix_once(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("cargo-observe-fix-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).expect("a temporary directory");
        let main = dir.join("src/main.rs");
        std::fs::write(&main, text).expect("write main.rs");
        let workspace = Workspace {
            root: dir.clone(),
            packages: vec![Package {
                name: "app".to_owned(),
                observe: Some(ObserveDep {
                    name: "observe".to_owned(),
                    tokio: false,
                }),
                observe_dev: None,
            }],
            targets: vec![Target {
                crate_name: "app".to_owned(),
                kind: TargetKind::Bin,
                package: 0,
                root: main.clone(),
            }],
            config: Config::default(),
        };
        let sources = crate::read_sources(&workspace);
        let analysis = crate::analyse::analyse(&workspace, &sources);
        apply(&analysis, &sources).expect("fixes apply");
        let fixed = std::fs::read_to_string(&main).expect("read main.rs");
        let _ = std::fs::remove_dir_all(&dir);
        fixed
    }

    #[test]
    fn attributes_imports_and_spawns() {
        let fixed = fix_once(
            "shapes",
            "//! Inner doc.\n#![allow(dead_code)]\n\nstruct S;\nimpl S { fn method() {} }\n\n\
             #[observe(command)]\nfn main() {\n    std::thread::spawn(S::method);\n    \
             tokio::spawn(\n        worker(),\n    );\n}\n\n\t/// Tabs.\n\tasync fn worker() {}",
        );
        assert_eq!(
            fixed,
            "//! Inner doc.\n#![allow(dead_code)]\n\nuse observe::observe;\n\nstruct S;\n\
             impl S { #[observe(task)] fn method() {} }\n\n#[observe(command)]\nfn main() {\n    \
             observe::thread::spawn(S::method);\n    tokio::spawn(\n        worker(),\n    );\n}\n\n\
             \t/// Tabs.\n\t#[observe(task)]\n\tasync fn worker() {}"
        );
    }

    #[test]
    fn crlf_and_existing_imports() {
        let fixed = fix_once(
            "crlf",
            "use observe::{observe, Config};\r\nmod inner {\r\n    pub fn job() {}\r\n}\r\nfn main() {\r\n    \
             std::thread::spawn(inner::job);\r\n}\r\n",
        );
        assert_eq!(
            fixed,
            "use observe::{observe, Config};\r\nmod inner {\r\n    #[observe::observe(task)]\r\n    pub fn job() {}\r\n}\r\n\
             #[observe(command)]\r\nfn main() {\r\n    std::thread::spawn(inner::job);\r\n}\r\n"
        );
    }

    #[test]
    fn offsets_count_characters() {
        let text = "fn é() {}\n  let x = ü(1);\n";
        let starts = line_starts(text);
        assert_eq!(
            offset(text, &starts, Pos { line: 2, col: 10 }),
            text.find("ü").unwrap_or(0)
        );
        assert_eq!(indentation(text, &starts, 2), "  ");
        assert_eq!(line_offset(text, &starts, 3), text.len());
    }
}
