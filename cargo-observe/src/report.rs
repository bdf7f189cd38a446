//! Findings as rustc-style text, or as JSON lines.

use std::fmt::Write as _;

use serde_json::json;

use crate::analyse::{Analysis, Code, Finding, Unanalysed};
use crate::load::Sources;
use crate::workspace::Level;

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Counts per kind of the missing findings, in the order handler, task, command, function.
fn missing_counts(analysis: &Analysis) -> [(&'static str, usize); 4] {
    let mut counts = [("handler", 0), ("task", 0), ("command", 0), ("function", 0)];
    for finding in analysis.findings.iter().filter(|f| f.code == Code::Missing) {
        if let Some(count) = counts.iter_mut().find(|(kind, _)| *kind == finding.kind) {
            count.1 += 1;
        }
    }
    counts
}

fn unanalysed_item(item: &Unanalysed) -> String {
    match item.pos {
        Some(pos) if !item.what.starts_with("could not analyse ") => {
            format!("{} ({}:{}:{})", item.what, item.rel, pos.line, pos.col + 1)
        }
        _ => item.what.clone(),
    }
}

/// The highest level among the findings (`Allow` when there are none).
pub fn worst(analysis: &Analysis) -> Level {
    analysis.findings.iter().map(|f| f.level).max().unwrap_or(Level::Allow)
}

/// The summary sentence, without its level.
pub fn summary(analysis: &Analysis) -> String {
    let counts = missing_counts(analysis);
    let missing: usize = counts.iter().map(|(_, n)| n).sum();
    let raw = analysis.findings.len() - missing;
    let mut parts = Vec::new();
    if missing > 0 {
        let kinds: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| plural(*n, kind, &format!("{kind}s")))
            .collect();
        let verb = if missing == 1 { "is" } else { "are" };
        parts.push(format!(
            "{} {verb} not observed ({})",
            plural(missing, "entry point", "entry points"),
            kinds.join(", ")
        ));
    }
    if raw > 0 {
        let verb = if raw == 1 { "loses" } else { "lose" };
        parts.push(format!(
            "{} {verb} the trace ID",
            plural(raw, "raw spawn", "raw spawns")
        ));
    }
    if parts.is_empty() {
        let skipped = if analysis.skipped > 0 {
            format!(" ({} skipped)", analysis.skipped)
        } else {
            String::new()
        };
        parts.push(format!(
            "{} in {}, all observed{skipped}",
            plural(analysis.entry_points, "entry point", "entry points"),
            plural(analysis.crates, "crate", "crates")
        ));
    }
    let mut text = parts.join(", ");
    let n = analysis.unanalysed.len();
    if n > 0 {
        let _ = write!(text, "; {} could not be analysed:", plural(n, "item", "items"));
        if n <= 3 {
            let items: Vec<String> = analysis.unanalysed.iter().map(unanalysed_item).collect();
            let _ = write!(text, " {}", items.join(", "));
        } else {
            for item in &analysis.unanalysed {
                let _ = write!(text, "\n  - {}", unanalysed_item(item));
            }
        }
    }
    text
}

fn expand_tabs(line: &str) -> String {
    line.replace('\t', "    ")
}

/// One finding, as rustc prints a diagnostic.
pub fn human_finding(out: &mut String, finding: &Finding, sources: &Sources) {
    let text = &sources.files[finding.file].text;
    let line_text = text
        .lines()
        .nth(finding.pos.line.saturating_sub(1) as usize)
        .unwrap_or("")
        .trim_end_matches('\r');
    let before: String = line_text.chars().take(finding.pos.col as usize).collect();
    let indent = expand_tabs(&before).chars().count();
    let number = finding.pos.line.to_string();
    let pad = " ".repeat(number.len());
    let _ = writeln!(
        out,
        "{}[{}]: {}",
        finding.level.label(),
        finding.code.name(),
        finding.message
    );
    let _ = writeln!(
        out,
        "{pad}--> {}:{}:{}",
        finding.rel,
        finding.pos.line,
        finding.pos.col + 1
    );
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{number} | {}", expand_tabs(line_text));
    let _ = writeln!(
        out,
        "{pad} | {}{}",
        " ".repeat(indent),
        "^".repeat(finding.width.max(1) as usize)
    );
    let _ = writeln!(out, "{pad} |");
    if let Some(note) = &finding.note {
        let _ = writeln!(out, "{pad} = note: {note}");
    }
    let _ = writeln!(out, "{pad} = help: {}", finding.help);
    out.push('\n');
}

pub fn human(analysis: &Analysis, sources: &Sources) -> String {
    let mut out = String::new();
    for finding in &analysis.findings {
        human_finding(&mut out, finding, sources);
    }
    let label = match worst(analysis) {
        Level::Deny => "error",
        Level::Warn => "warning",
        Level::Allow => "observe",
    };
    let _ = writeln!(out, "{label}: {}", summary(analysis));
    out
}

pub fn json_finding(finding: &Finding) -> serde_json::Value {
    json!({
        "type": "finding",
        "code": finding.code.name(),
        "level": finding.level.label(),
        "kind": finding.kind,
        "function": finding.function,
        "path": finding.path,
        "crate": finding.crate_name,
        "file": finding.rel,
        "line": finding.pos.line,
        "column": finding.pos.col + 1,
        "message": finding.message,
        "help": finding.help,
        "note": finding.note,
    })
}

pub fn json(analysis: &Analysis) -> String {
    let mut out = String::new();
    for finding in &analysis.findings {
        let _ = writeln!(out, "{}", json_finding(finding));
    }
    let counts = missing_counts(analysis);
    let missing: usize = counts.iter().map(|(_, n)| n).sum();
    let unanalysed: Vec<serde_json::Value> = analysis
        .unanalysed
        .iter()
        .map(|u| {
            json!({
                "what": u.what,
                "file": u.rel,
                "line": u.pos.map(|p| p.line),
                "column": u.pos.map(|p| p.col + 1),
            })
        })
        .collect();
    let level = match worst(analysis) {
        Level::Allow => serde_json::Value::Null,
        level => level.label().into(),
    };
    let summary = json!({
        "type": "summary",
        "level": level,
        "message": summary(analysis),
        "not_observed": missing,
        "handlers": counts[0].1,
        "tasks": counts[1].1,
        "commands": counts[2].1,
        "functions": counts[3].1,
        "raw_spawns": analysis.findings.len() - missing,
        "entry_points": analysis.entry_points,
        "observed": analysis.observed,
        "skipped": analysis.skipped,
        "unanalysed": unanalysed,
        "crates": analysis.crates,
        "files": analysis.files,
        "lines": analysis.lines,
    });
    let _ = writeln!(out, "{summary}");
    out
}
