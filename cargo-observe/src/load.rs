//! Reads and summarizes every source file reachable from the targets' root files through `mod name;`
//! declarations, in parallel, each file once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::extract::{self, FileSummary, Pos};

#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    /// Relative to the workspace root, with `/`.
    pub rel: String,
    pub text: String,
    /// What went wrong reading or parsing it.
    pub summary: Result<FileSummary, FileError>,
    /// For each `mod name;` of the summary, the file it names, when it exists.
    pub children: Vec<Option<usize>>,
}

#[derive(Debug, Clone)]
pub struct FileError {
    pub pos: Option<Pos>,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
    pub by_path: HashMap<PathBuf, usize>,
}

impl Sources {
    pub fn lines(&self) -> usize {
        self.files.iter().map(|f| f.text.lines().count()).sum()
    }
}

/// Applies `f` to every item on up to `threads` threads; results in the items' order.
pub fn par_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            mine.push((i, f(item)));
        }
        results.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // Parsing recurses as deep as the code nests: a main thread's stack, not a spawned thread's 2 MiB.
            let spawned = std::thread::Builder::new().stack_size(STACK).spawn_scoped(scope, work);
            if spawned.is_err() {
                break; // No more threads: the others, and this one, do the work.
            }
        }
        work();
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

const STACK: usize = 8 << 20;

pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn read(path: &Path) -> (String, Result<FileSummary, FileError>) {
    match std::fs::read_to_string(path) {
        Err(err) => (
            String::new(),
            Err(FileError {
                pos: None,
                message: format!("cannot read it: {err}"),
            }),
        ),
        Ok(text) => {
            let summary = extract::summarize(&text).map_err(|(pos, message)| FileError {
                pos: Some(pos),
                message,
            });
            (text, summary)
        }
    }
}

/// Where the `mod` declarations of a file look for their files.
/// `mod_rs`: the file is a crate root, a `mod.rs`, or was named by `#[path]`.
fn child_file(file: &Path, mod_rs: bool, summary: &FileSummary, decl: usize) -> Option<(PathBuf, bool)> {
    let decl = &summary.decls[decl];
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut inline = Vec::new();
    let mut module = Some(decl.module);
    while let Some(m) = module {
        let summary_module = &summary.modules[m];
        if summary_module.parent.is_some() {
            inline.push(summary_module.name.as_str());
        }
        module = summary_module.parent;
    }
    inline.reverse();
    let mut base = dir.to_path_buf();
    let stem_dir = !mod_rs && (decl.path_attr.is_none() || !inline.is_empty());
    if stem_dir {
        if let Some(stem) = file.file_stem() {
            base.push(stem);
        }
    }
    for name in &inline {
        base.push(name);
    }
    if let Some(path) = &decl.path_attr {
        let candidate = base.join(path);
        return candidate.is_file().then_some((candidate, true));
    }
    let flat = base.join(format!("{}.rs", decl.name));
    if flat.is_file() {
        return Some((flat, false));
    }
    let nested = base.join(&decl.name).join("mod.rs");
    nested.is_file().then_some((nested, true))
}

/// Loads the root files and everything they declare, level by level, each level in parallel.
pub fn load(root: &Path, roots: &[PathBuf]) -> Sources {
    let mut sources = Sources::default();
    let mut pending: Vec<(PathBuf, bool)> = Vec::new();
    for path in roots {
        if !sources.by_path.contains_key(path) {
            sources.by_path.insert(path.clone(), sources.by_path.len());
            pending.push((path.clone(), true));
        }
    }
    let threads = threads();
    while !pending.is_empty() {
        let loaded = par_map(&pending, threads, |(path, mod_rs)| {
            let (text, summary) = read(path);
            let children: Vec<Option<(PathBuf, bool)>> = match &summary {
                Ok(s) => (0..s.decls.len()).map(|d| child_file(path, *mod_rs, s, d)).collect(),
                Err(_) => Vec::new(),
            };
            (text, summary, children)
        });
        let mut next = Vec::new();
        for ((path, _), (text, summary, children)) in pending.drain(..).zip(loaded) {
            let children = children
                .into_iter()
                .map(|child| {
                    let (child, mod_rs) = child?;
                    let index = match sources.by_path.get(&child) {
                        Some(&index) => index,
                        None => {
                            let index = sources.by_path.len();
                            sources.by_path.insert(child.clone(), index);
                            next.push((child, mod_rs));
                            index
                        }
                    };
                    Some(index)
                })
                .collect();
            sources.files.push(SourceFile {
                rel: relative(root, &path),
                path,
                text,
                summary,
                children,
            });
        }
        pending = next;
    }
    sources
}
