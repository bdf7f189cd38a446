//! Puts the file summaries together into crates (module trees), resolves the names routes and spawns use, and
//! decides which entry points are not observed.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::extract::{Condition, FileSummary, PathRef, Pos, RefKind, Target as RefTarget};
use crate::load::Sources;
use crate::workspace::{Kind, Level, ObserveDep, TargetKind, Workspace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    Missing,
    RawSpawn,
}

impl Code {
    pub fn name(self) -> &'static str {
        match self {
            Code::Missing => "observe::missing",
            Code::RawSpawn => "observe::raw-spawn",
        }
    }
}

/// What `--fix` does about a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Insert `attribute` before the item starting at `at`: on a line of its own, indented like the item, when
    /// the item starts its line; with `import`, also add that `use` to the top of the file unless already there.
    Attribute {
        at: Pos,
        attribute: String,
        import: Option<String>,
    },
    /// Replace the text from `start` to `end` (a spawn function's path).
    Replace { start: Pos, end: Pos, text: String },
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub code: Code,
    pub level: Level,
    /// `handler`, `task`, `command`, `function` (required by the configuration), or `spawn`.
    pub kind: &'static str,
    pub function: String,
    /// `crate::handlers::create_order`.
    pub path: String,
    pub crate_name: String,
    pub file: usize,
    pub rel: String,
    pub pos: Pos,
    /// Width of the caret, in characters.
    pub width: u32,
    pub message: String,
    pub help: String,
    pub note: Option<String>,
    pub fix: Option<Fix>,
    /// Why `--fix` leaves it alone.
    pub no_fix: Option<String>,
}

/// Something that may name an entry point but that the lint cannot follow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unanalysed {
    pub rel: String,
    pub pos: Option<Pos>,
    pub what: String,
    /// Whether it is code of `rel` itself (an `ignore` file pattern for `rel` then drops it); a module whose file
    /// is missing is not: it is declared in `rel` and its code is elsewhere.
    pub in_file: bool,
}

#[derive(Debug, Default)]
pub struct Analysis {
    pub findings: Vec<Finding>,
    pub unanalysed: Vec<Unanalysed>,
    /// Entry points found (observed or not, skipped included).
    pub entry_points: usize,
    pub observed: usize,
    pub skipped: usize,
    pub crates: usize,
    pub files: usize,
    pub lines: usize,
}

#[derive(Debug)]
struct Module {
    parent: Option<usize>,
    path: Vec<String>,
    children: HashMap<String, usize>,
    fns: HashMap<String, usize>,
    nested_fns: HashMap<String, usize>,
    types: HashSet<String>,
    uses: HashMap<String, (usize, PathRef)>,
    globs: Vec<(usize, PathRef)>,
    observed: bool,
    skip: bool,
    /// An inline `mod name { .. }` (at any depth inside its file).
    inline: bool,
}

#[derive(Debug)]
struct FnEntry {
    file: usize,
    local: usize,
    module: usize,
    path: Vec<String>,
    observed: bool,
    skip: bool,
}

/// One file as a part of one crate: its modules and functions, numbered in the crate.
#[derive(Debug)]
struct Instance {
    file: usize,
    modules: Vec<usize>,
    fns: Vec<usize>,
}

#[derive(Debug)]
struct Crate {
    target: usize,
    modules: Vec<Module>,
    fns: Vec<FnEntry>,
    /// `(type, method)` to the methods of every `impl type` in the crate.
    methods: HashMap<(String, String), Vec<usize>>,
    instances: Vec<Instance>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Res {
    Fn(usize, usize),
    Module(usize, usize),
    Type(usize, usize, String),
    External(Vec<String>),
    NotFound,
    Ambiguous,
}

struct Linker<'a> {
    sources: &'a Sources,
    crates: Vec<Crate>,
    /// Crate names of the workspace's libraries, usable from its other crates.
    libs: HashMap<String, usize>,
    unanalysed: Vec<Unanalysed>,
}

fn summary_of(sources: &Sources, file: usize) -> Option<&FileSummary> {
    sources.files[file].summary.as_ref().ok()
}

impl Linker<'_> {
    fn build_crate(&mut self, target: usize, root: usize) -> Crate {
        let mut krate = Crate {
            target,
            modules: Vec::new(),
            fns: Vec::new(),
            methods: HashMap::new(),
            instances: Vec::new(),
        };
        let mut stack = Vec::new();
        self.add_file(&mut krate, root, None, String::new(), false, false, &mut stack);
        krate
    }

    #[allow(clippy::too_many_arguments)]
    fn add_file(
        &mut self,
        krate: &mut Crate,
        file: usize,
        parent: Option<usize>,
        name: String,
        observed: bool,
        skip: bool,
        stack: &mut Vec<usize>,
    ) {
        if stack.contains(&file) || stack.len() > 64 {
            return;
        }
        let sources = self.sources;
        let source = &sources.files[file];
        let Ok(summary) = &source.summary else {
            // Reported once per file, by `analyse`; the module exists, empty.
            let path = parent.map_or_else(Vec::new, |p| child_path(&krate.modules[p].path, &name));
            let id = push_module(krate, parent, name, path, observed, skip, false);
            krate.instances.push(Instance {
                file,
                modules: vec![id],
                fns: Vec::new(),
            });
            return;
        };
        let mut modules = Vec::with_capacity(summary.modules.len());
        for (i, module) in summary.modules.iter().enumerate() {
            let (parent, name, own_observed, own_skip) = match module.parent {
                None => (parent, name.clone(), observed, skip),
                Some(p) => (Some(modules[p]), module.name.clone(), module.observed, module.skip),
            };
            let (path, inherited_observed, inherited_skip) = match parent {
                Some(p) => {
                    let pm = &krate.modules[p];
                    (child_path(&pm.path, &name), pm.observed, pm.skip)
                }
                None => (Vec::new(), false, false),
            };
            let id = push_module(
                krate,
                parent,
                name,
                path,
                own_observed || inherited_observed,
                own_skip || inherited_skip,
                i != 0,
            );
            krate.modules[id].types.extend(module.types.iter().cloned());
            modules.push(id);
        }
        let mut fns = Vec::with_capacity(summary.fns.len());
        for (local, f) in summary.fns.iter().enumerate() {
            let module = modules[f.module];
            let m = &krate.modules[module];
            let implementation = f.impl_idx.map(|i| &summary.impls[i]);
            let mut path = m.path.clone();
            if let Some(imp) = implementation {
                path.push(imp.self_ty.clone());
            }
            path.push(f.name.clone());
            let contained = !f.nested && !f.is_const;
            let observed = f.observed || (contained && (m.observed || implementation.is_some_and(|i| i.observed)));
            let skip = f.skip || m.skip || implementation.is_some_and(|i| i.skip);
            let id = krate.fns.len();
            krate.fns.push(FnEntry {
                file,
                local,
                module,
                path,
                observed,
                skip,
            });
            match implementation {
                Some(imp) => krate
                    .methods
                    .entry((imp.self_ty.clone(), f.name.clone()))
                    .or_default()
                    .push(id),
                None if f.nested => {
                    krate.modules[module].nested_fns.entry(f.name.clone()).or_insert(id);
                }
                None => {
                    krate.modules[module].fns.entry(f.name.clone()).or_insert(id);
                }
            }
            fns.push(id);
        }
        for use_def in &summary.uses {
            let module = modules[use_def.module];
            match &use_def.alias {
                Some(alias) => {
                    krate.modules[module]
                        .uses
                        .entry(alias.clone())
                        .or_insert((module, use_def.path.clone()));
                }
                None => krate.modules[module].globs.push((module, use_def.path.clone())),
            }
        }
        krate.instances.push(Instance {
            file,
            modules: modules.clone(),
            fns,
        });
        stack.push(file);
        for (d, decl) in summary.decls.iter().enumerate() {
            match source.children.get(d).copied().flatten() {
                Some(child) => {
                    self.add_file(
                        krate,
                        child,
                        Some(modules[decl.module]),
                        decl.name.clone(),
                        decl.observed,
                        decl.skip,
                        stack,
                    );
                }
                None => self.unanalysed.push(Unanalysed {
                    rel: source.rel.clone(),
                    pos: Some(decl.pos),
                    what: format!("module `{}` (its file was not found)", decl.name),
                    in_file: false,
                }),
            }
        }
        stack.pop();
    }

    fn resolve(&self, c: usize, m: usize, path: &PathRef, self_ty: Option<&str>, depth: u32) -> Res {
        if depth > 12 {
            return Res::NotFound;
        }
        if path.leading_colon {
            return self.resolve_extern(&path.segments, depth);
        }
        let Some((first, rest)) = path.segments.split_first() else {
            return Res::NotFound;
        };
        match first.as_str() {
            "crate" => self.walk(c, 0, rest, depth),
            "self" => self.walk(c, m, rest, depth),
            "super" => match self.crates[c].modules[m].parent {
                Some(parent) => self.walk(c, parent, rest, depth),
                None => Res::NotFound,
            },
            "Self" => match self_ty {
                Some(ty) => self.type_member(c, m, ty, rest),
                None => Res::NotFound,
            },
            _ => match self.lookup(c, m, first, rest, depth) {
                Some(res) => res,
                None => self.resolve_extern(&path.segments, depth),
            },
        }
    }

    fn resolve_extern(&self, segments: &[String], depth: u32) -> Res {
        match segments.split_first() {
            Some((first, rest)) => match self.libs.get(first) {
                Some(&c) => self.walk(c, 0, rest, depth + 1),
                None => Res::External(segments.to_vec()),
            },
            None => Res::NotFound,
        }
    }

    fn walk(&self, c: usize, m: usize, segments: &[String], depth: u32) -> Res {
        let Some((first, rest)) = segments.split_first() else {
            return Res::Module(c, m);
        };
        match first.as_str() {
            "super" => match self.crates[c].modules[m].parent {
                Some(parent) => self.walk(c, parent, rest, depth),
                None => Res::NotFound,
            },
            "self" => self.walk(c, m, rest, depth),
            _ => self.lookup(c, m, first, rest, depth).unwrap_or(Res::NotFound),
        }
    }

    /// `name` in module `m`, then `rest` inside what it names. `None`: the module has no such name.
    fn lookup(&self, c: usize, m: usize, name: &str, rest: &[String], depth: u32) -> Option<Res> {
        let module = &self.crates[c].modules[m];
        if rest.is_empty() {
            if let Some(&f) = module.fns.get(name) {
                return Some(Res::Fn(c, f));
            }
        }
        if let Some(&child) = module.children.get(name) {
            return Some(self.walk(c, child, rest, depth));
        }
        if module.types.contains(name) {
            return Some(self.type_member(c, m, name, rest));
        }
        if let Some((declared_in, path)) = module.uses.get(name) {
            if path.segments.first().is_some_and(|first| first == name) && !path.leading_colon {
                // `use observe::observe;`: the path starts with the crate, not with this import. Another path
                // that starts with the name (`observe::spawn`) names the crate too: the imported item (a
                // macro, a function) has no members.
                let mut through_crate = vec![name.to_owned()];
                through_crate.extend(rest.iter().cloned());
                let segments = if rest.is_empty() {
                    &path.segments
                } else {
                    &through_crate
                };
                return Some(self.resolve_extern(segments, depth + 1));
            }
            let res = self.resolve(c, *declared_in, path, None, depth + 1);
            if rest.is_empty() || !matches!(res, Res::Fn(..)) {
                return Some(self.continue_with(res, rest, depth));
            }
        }
        let mut external = None;
        for (declared_in, glob) in &module.globs {
            match self.resolve(c, *declared_in, glob, None, depth + 1) {
                Res::Module(gc, gm) if (gc, gm) != (c, m) => {
                    if let Some(res) = self.lookup(gc, gm, name, rest, depth + 1) {
                        return Some(res);
                    }
                }
                // A name from an external glob (`use axum::routing::*;`): only a single name, a longer path
                // is read as starting with a crate's name.
                Res::External(mut segments) if external.is_none() && rest.is_empty() => {
                    segments.push(name.to_owned());
                    segments.extend(rest.iter().cloned());
                    external = Some(Res::External(segments));
                }
                _ => {}
            }
        }
        if rest.is_empty() {
            if let Some(&f) = module.nested_fns.get(name) {
                return Some(Res::Fn(c, f));
            }
        }
        external
    }

    fn continue_with(&self, res: Res, rest: &[String], depth: u32) -> Res {
        match res {
            _ if rest.is_empty() => res,
            Res::Module(c, m) => self.walk(c, m, rest, depth + 1),
            Res::Type(c, m, ty) => self.type_member(c, m, &ty, rest),
            Res::External(mut segments) => {
                segments.extend(rest.iter().cloned());
                Res::External(segments)
            }
            _ => Res::NotFound,
        }
    }

    /// `Type` (no rest) or `Type::method`: the method of an `impl Type` anywhere in the crate, preferring one
    /// in the module where the type is.
    fn type_member(&self, c: usize, m: usize, ty: &str, rest: &[String]) -> Res {
        match rest {
            [] => Res::Type(c, m, ty.to_owned()),
            [method] => {
                let krate = &self.crates[c];
                let Some(candidates) = krate.methods.get(&(ty.to_owned(), method.clone())) else {
                    return Res::NotFound;
                };
                let local: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|&f| krate.fns[f].module == m)
                    .collect();
                match (candidates.as_slice(), local.as_slice()) {
                    ([only], _) | (_, [only]) => Res::Fn(c, *only),
                    _ => Res::Ambiguous,
                }
            }
            _ => Res::NotFound,
        }
    }
}

fn child_path(parent: &[String], name: &str) -> Vec<String> {
    let mut path = parent.to_vec();
    path.push(name.to_owned());
    path
}

fn push_module(
    krate: &mut Crate,
    parent: Option<usize>,
    name: String,
    path: Vec<String>,
    observed: bool,
    skip: bool,
    inline: bool,
) -> usize {
    let id = krate.modules.len();
    if let Some(p) = parent {
        krate.modules[p].children.entry(name).or_insert(id);
    }
    krate.modules.push(Module {
        parent,
        path,
        children: HashMap::new(),
        fns: HashMap::new(),
        nested_fns: HashMap::new(),
        types: HashSet::new(),
        uses: HashMap::new(),
        globs: Vec::new(),
        observed,
        skip,
        inline,
    });
    id
}

/// The `observe` replacement of a raw spawn function, and whether it needs the `tokio` feature.
fn raw_spawn(path: &[String]) -> Option<(&'static str, bool)> {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["tokio", "spawn"] | ["tokio", "task", "spawn"] => Some(("spawn", true)),
        ["tokio", "task", "spawn_blocking"] | ["tokio", "spawn_blocking"] => Some(("spawn_blocking", true)),
        ["std", "thread", "spawn"] => Some(("thread::spawn", false)),
        _ => None,
    }
}

/// Why a function is an entry point.
#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    note: String,
}

fn loc(rel: &str, pos: Pos) -> String {
    format!("{rel}:{}:{}", pos.line, pos.col + 1)
}

pub fn analyse(workspace: &Workspace, sources: &Sources) -> Analysis {
    let mut linker = Linker {
        sources,
        crates: Vec::new(),
        libs: HashMap::new(),
        unanalysed: Vec::new(),
    };
    for (t, target) in workspace.targets.iter().enumerate() {
        if let Some(&root) = sources.by_path.get(&target.root) {
            let krate = linker.build_crate(t, root);
            if target.kind == TargetKind::Lib {
                linker
                    .libs
                    .entry(target.crate_name.clone())
                    .or_insert(linker.crates.len());
            }
            linker.crates.push(krate);
        }
    }
    for file in &sources.files {
        if let Err(err) = &file.summary {
            let at = match err.pos {
                Some(pos) if pos.line > 0 => format!("{}:{}:{}", file.rel, pos.line, pos.col + 1),
                _ => file.rel.clone(),
            };
            linker.unanalysed.push(Unanalysed {
                rel: file.rel.clone(),
                pos: err.pos,
                what: format!("could not analyse {at}: {}", err.message),
                in_file: true,
            });
        }
    }

    // Every entry point, by crate and function.
    let mut entries: HashMap<(usize, usize), Entry> = HashMap::new();
    let mut classify = |c: usize, f: usize, kind: Kind, note: String| {
        let entry = entries.entry((c, f)).or_insert(Entry {
            kind,
            note: note.clone(),
        });
        if kind > entry.kind {
            *entry = Entry { kind, note };
        }
    };
    let mut raw_spawns = Vec::new();
    for (c, krate) in linker.crates.iter().enumerate() {
        let target = &workspace.targets[krate.target];
        if target.kind == TargetKind::Bin {
            if let Some(&main) = krate.modules.first().and_then(|m| m.fns.get("main")) {
                classify(
                    c,
                    main,
                    Kind::Command,
                    format!("`fn main` of the binary `{}`", target.crate_name),
                );
            }
        }
        for (f, entry) in krate.fns.iter().enumerate() {
            let Some(def) = summary_of(sources, entry.file).map(|s| &s.fns[entry.local]) else {
                continue;
            };
            if def.actix_route {
                classify(c, f, Kind::Handler, "an actix-web route attribute".to_owned());
            }
            if def.nested {
                continue;
            }
            for require in &workspace.config.require {
                if require.pattern.matches(
                    &target.crate_name,
                    &full_path(&entry.path),
                    &sources.files[entry.file].rel,
                ) {
                    classify(c, f, require.kind, format!("required by `{}`", require.pattern.text));
                    break;
                }
            }
        }
        for instance in &krate.instances {
            let Some(summary) = summary_of(sources, instance.file) else {
                continue;
            };
            let rel = &sources.files[instance.file].rel;
            let mut seen: HashMap<(Pos, RefKind), usize> = HashMap::new();
            for reference in &summary.refs {
                let m = instance.modules[reference.module];
                let holds = match &reference.condition {
                    Condition::Always => true,
                    Condition::CalleeIsAxum(callee) => matches!(
                        linker.resolve(c, m, callee, None, 0),
                        Res::External(path) if path.first().is_some_and(|s| s == "axum")
                    ),
                    // A function of the crate itself named `spawn` may be anything; one of another crate
                    // (`observe::spawn` in this workspace) is a spawn.
                    Condition::CalleeIsNotLocal(callee) => {
                        !matches!(linker.resolve(c, m, callee, None, 0), Res::Fn(fc, _) if fc == c)
                    }
                };
                if !holds || seen.insert((reference.pos, reference.kind), 0).is_some() {
                    continue;
                }
                let (kind, verb) = match reference.kind {
                    RefKind::Handler => (Kind::Handler, "routed"),
                    RefKind::Task => (Kind::Task, "spawned"),
                };
                let at = loc(rel, reference.pos);
                match &reference.target {
                    RefTarget::Opaque(what) => linker.unanalysed.push(Unanalysed {
                        rel: rel.clone(),
                        pos: Some(reference.pos),
                        what: what.clone(),
                        in_file: true,
                    }),
                    RefTarget::Path(path) => match linker.resolve(c, m, path, reference.self_ty.as_deref(), 0) {
                        Res::Fn(fc, f) => classify(fc, f, kind, format!("{verb} at {at}")),
                        Res::External(_) => linker.unanalysed.push(Unanalysed {
                            rel: rel.clone(),
                            pos: Some(reference.pos),
                            what: format!("{} `{}` (not a function of the workspace)", kind.name(), path.text()),
                            in_file: true,
                        }),
                        Res::Ambiguous => linker.unanalysed.push(Unanalysed {
                            rel: rel.clone(),
                            pos: Some(reference.pos),
                            what: format!("{} `{}` (several methods of that name)", kind.name(), path.text()),
                            in_file: true,
                        }),
                        _ => linker.unanalysed.push(Unanalysed {
                            rel: rel.clone(),
                            pos: Some(reference.pos),
                            what: format!("{} `{}` (not found)", kind.name(), path.text()),
                            in_file: true,
                        }),
                    },
                }
            }
            for spawn in &summary.spawns {
                let Some(enclosing) = spawn.enclosing_fn else { continue };
                let f = instance.fns[enclosing];
                let entry = &krate.fns[f];
                if !entry.observed || entry.skip {
                    continue;
                }
                let m = instance.modules[spawn.module];
                if let Res::External(path) = linker.resolve(c, m, &spawn.callee, None, 0) {
                    if let Some((replacement, needs_tokio)) = raw_spawn(&path) {
                        raw_spawns.push((
                            c,
                            f,
                            instance.file,
                            spawn.clone(),
                            path.join("::"),
                            replacement,
                            needs_tokio,
                        ));
                    }
                }
            }
        }
        for opaque in sources_opaque(sources, krate) {
            linker.unanalysed.push(opaque);
        }
    }

    let config = &workspace.config;
    let mut analysis = Analysis {
        crates: linker.crates.len(),
        files: sources.files.len(),
        lines: sources.lines(),
        ..Analysis::default()
    };
    // A file can be part of several crates (a `mod` declared from both `lib.rs` and `main.rs`): one finding per
    // place, with the strongest kind.
    let mut by_place: BTreeMap<(usize, Pos), (Kind, usize, usize, String)> = BTreeMap::new();
    for ((c, f), entry) in entries {
        let fn_entry = &linker.crates[c].fns[f];
        let Some(summary) = summary_of(sources, fn_entry.file) else {
            continue;
        };
        let key = (fn_entry.file, summary.fns[fn_entry.local].ident);
        let replace = by_place.get(&key).is_none_or(|(kind, ..)| entry.kind > *kind);
        if replace {
            by_place.insert(key, (entry.kind, c, f, entry.note));
        }
    }
    for ((file, pos), (kind, c, f, note)) in by_place {
        analysis.entry_points += 1;
        let krate = &linker.crates[c];
        let fn_entry = &krate.fns[f];
        if fn_entry.skip {
            analysis.skipped += 1;
            continue;
        }
        if fn_entry.observed {
            analysis.observed += 1;
            continue;
        }
        let target = &workspace.targets[krate.target];
        let source = &sources.files[file];
        let path = full_path(&fn_entry.path);
        if config.ignores(&target.crate_name, &path, &source.rel) {
            continue;
        }
        let Some(summary) = summary_of(sources, file) else {
            continue;
        };
        let def = &summary.fns[fn_entry.local];
        let dep = target.observe_dep(&workspace.packages);
        let attribute = |qualified: bool, dep_name: &str| {
            let args = match (kind, dep_name) {
                (Kind::Function, "observe") => String::new(),
                (Kind::Function, other) => format!("(crate = {other})"),
                (kind, "observe") => format!("({})", kind.name()),
                (kind, other) => format!("({}, crate = {other})", kind.name()),
            };
            if qualified {
                format!("#[{dep_name}::observe{args}]")
            } else {
                format!("#[observe{args}]")
            }
        };
        // Qualified where a bare `observe` would not resolve: a renamed dependency, an inline module (the file's
        // import does not reach it), a file where the name is taken.
        let qualified =
            |name: &str| name != "observe" || krate.modules[fn_entry.module].inline || summary.observe_name_taken;
        let dep_name = dep.map_or("observe", |dep| dep.name.as_str());
        let help = if qualified(dep_name) {
            format!("add `{}`", attribute(true, dep_name))
        } else if summary.imports_observe {
            format!("add `{}`", attribute(false, "observe"))
        } else {
            format!("add `{}` (use observe::observe;)", attribute(false, "observe"))
        };
        let (fix, no_fix) = match dep {
            None => (
                None,
                Some(format!(
                    "the package `{}` does not depend on `observe`",
                    workspace.packages[target.package].name
                )),
            ),
            Some(ObserveDep { name, .. }) => {
                let qualified = qualified(name);
                let import = (!qualified && !summary.imports_observe).then(|| "use observe::observe;".to_owned());
                (
                    Some(Fix::Attribute {
                        at: def.item_start,
                        attribute: attribute(qualified, name),
                        import,
                    }),
                    None,
                )
            }
        };
        let message = match kind {
            Kind::Function => format!("function `{}` is not observed ({note})", def.name),
            kind => format!("{} `{}` is not observed", kind.name(), def.name),
        };
        let note = match kind {
            Kind::Function => None,
            _ => Some(note),
        };
        analysis.findings.push(Finding {
            code: Code::Missing,
            level: config.level,
            kind: kind.name(),
            function: def.name.clone(),
            path: display_path(&target.crate_name, &fn_entry.path),
            crate_name: target.crate_name.clone(),
            file,
            rel: source.rel.clone(),
            pos,
            width: def.name.chars().count() as u32,
            message,
            help,
            note,
            fix,
            no_fix,
        });
    }

    if config.raw_spawn != Level::Allow {
        let mut seen = HashSet::new();
        for (c, f, file, spawn, raw, replacement, needs_tokio) in raw_spawns {
            if !seen.insert((file, spawn.start)) {
                continue;
            }
            let krate = &linker.crates[c];
            let target = &workspace.targets[krate.target];
            let fn_entry = &krate.fns[f];
            let source = &sources.files[file];
            let path = full_path(&fn_entry.path);
            if config.ignores(&target.crate_name, &path, &source.rel) {
                continue;
            }
            let function = fn_entry.path.last().cloned().unwrap_or_default();
            let (fix, no_fix) = match target.observe_dep(&workspace.packages) {
                None => (
                    None,
                    Some(format!(
                        "the package `{}` does not depend on `observe`",
                        workspace.packages[target.package].name
                    )),
                ),
                Some(dep) if needs_tokio && !dep.tokio => (
                    None,
                    Some(format!(
                        "`observe::{replacement}` needs the `tokio` feature of `observe` in the package `{}`",
                        workspace.packages[target.package].name
                    )),
                ),
                Some(dep) => (
                    Some(Fix::Replace {
                        start: spawn.start,
                        end: spawn.end,
                        text: format!("{}::{replacement}", dep.name),
                    }),
                    None,
                ),
            };
            let width = if spawn.end.line == spawn.start.line {
                spawn.end.col.saturating_sub(spawn.start.col).max(1)
            } else {
                1
            };
            analysis.findings.push(Finding {
                code: Code::RawSpawn,
                level: config.raw_spawn,
                kind: "spawn",
                function: function.clone(),
                path: display_path(&target.crate_name, &fn_entry.path),
                crate_name: target.crate_name.clone(),
                file,
                rel: source.rel.clone(),
                pos: spawn.start,
                width,
                message: format!("`{raw}` in observed code: the new task has no trace ID"),
                help: format!("use `observe::{replacement}`, which keeps the trace of `{function}`"),
                note: None,
                fix,
                no_fix,
            });
        }
    }

    analysis
        .findings
        .sort_by(|a, b| (&a.rel, a.pos, a.code).cmp(&(&b.rel, b.pos, b.code)));
    let mut unanalysed = linker.unanalysed;
    // What could not be analysed in an ignored file is not listed either (it has no item path, so only file
    // patterns can cover it); a missing module is not the declaring file's code, and stays.
    unanalysed.retain(|item| !(item.in_file && workspace.config.ignores_file(&item.rel)));
    unanalysed.sort();
    unanalysed.dedup();
    analysis.unanalysed = unanalysed;
    analysis
}

/// The opaque macro sites of every file of a crate (each file once per crate).
fn sources_opaque(sources: &Sources, krate: &Crate) -> Vec<Unanalysed> {
    let mut out = Vec::new();
    for instance in &krate.instances {
        let Some(summary) = summary_of(sources, instance.file) else {
            continue;
        };
        for opaque in &summary.opaque {
            out.push(Unanalysed {
                rel: sources.files[instance.file].rel.clone(),
                pos: Some(opaque.pos),
                what: opaque.what.clone(),
                in_file: true,
            });
        }
    }
    out
}

fn full_path(path: &[String]) -> Vec<String> {
    let mut full = Vec::with_capacity(path.len() + 1);
    full.push("crate".to_owned());
    full.extend(path.iter().cloned());
    full
}

fn display_path(crate_name: &str, path: &[String]) -> String {
    let mut text = crate_name.to_owned();
    for segment in path {
        text.push_str("::");
        text.push_str(segment);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::SourceFile;
    use crate::workspace::{Config, Package, Pattern, Target};
    use std::path::PathBuf;

    /// A workspace of one library crate made of the given files (the first is the root; `mod` declarations
    /// name the others by their file name without `.rs`).
    fn lint(files: &[(&str, &str)], config: Config) -> Analysis {
        let mut sources = Sources::default();
        for (i, (name, text)) in files.iter().enumerate() {
            let path = PathBuf::from(format!("/ws/src/{name}.rs"));
            sources.by_path.insert(path.clone(), i);
            let summary = crate::extract::summarize(text).map_err(|(pos, message)| crate::load::FileError {
                pos: Some(pos),
                message,
            });
            let children = summary
                .as_ref()
                .map(|s| {
                    s.decls
                        .iter()
                        .map(|d| files.iter().position(|(n, _)| *n == d.name))
                        .collect()
                })
                .unwrap_or_default();
            sources.files.push(SourceFile {
                path,
                rel: format!("src/{name}.rs"),
                text: (*text).to_owned(),
                summary,
                children,
            });
        }
        let workspace = Workspace {
            root: PathBuf::from("/ws"),
            packages: vec![Package {
                name: "app".to_owned(),
                observe: Some(ObserveDep {
                    name: "observe".to_owned(),
                    tokio: true,
                }),
                observe_dev: None,
            }],
            targets: vec![Target {
                crate_name: "app".to_owned(),
                kind: TargetKind::Bin,
                package: 0,
                root: PathBuf::from("/ws/src/main.rs"),
            }],
            config,
        };
        analyse(&workspace, &sources)
    }

    fn findings(analysis: &Analysis) -> Vec<String> {
        analysis
            .findings
            .iter()
            .map(|f| format!("{} {} {}:{}", f.kind, f.path, f.rel, f.pos.line))
            .collect()
    }

    #[test]
    fn resolves_through_modules_uses_and_super() {
        let analysis = lint(
            &[
                (
                    "main",
                    r#"
                    mod handlers;
                    mod routes;
                    use axum::routing::get;
                    #[observe(command)]
                    fn main() {}
                    "#,
                ),
                (
                    "handlers",
                    r#"
                    pub async fn list() {}
                    pub mod users { pub async fn show() {} }
                    pub struct Orders;
                    impl Orders { pub async fn create() {} }
                    "#,
                ),
                (
                    "routes",
                    r#"
                    use axum::routing::{get, post};
                    use crate::handlers::users;
                    use super::handlers::Orders as O;
                    pub fn app() -> Router {
                        Router::new()
                            .route("/", get(super::handlers::list))
                            .route("/u", get(users::show).post(O::create))
                    }
                    "#,
                ),
            ],
            Config::default(),
        );
        assert_eq!(
            findings(&analysis),
            [
                "handler app::handlers::list src/handlers.rs:2",
                "handler app::handlers::users::show src/handlers.rs:3",
                "handler app::handlers::Orders::create src/handlers.rs:5",
            ]
        );
        assert_eq!((analysis.entry_points, analysis.observed), (4, 1));
    }

    #[test]
    fn globs_self_and_unresolvable_handlers() {
        let analysis = lint(
            &[(
                "main",
                r#"
                use axum::routing::*;
                mod h { pub fn a() {} pub fn b() {} }
                use h::*;
                struct Api;
                impl Api {
                    fn routes() -> Router { Router::new().route("/c", get(Self::c)) }
                    async fn c() {}
                }
                fn main() {
                    let r = Router::new()
                        .route("/a", get(a))
                        .route("/b", get(self::h::b))
                        .route("/x", get(other_crate::x))
                        .route("/y", get(|| async {}));
                    let _ = reqwest::get(url);
                }
                "#,
            )],
            Config::default(),
        );
        assert_eq!(
            findings(&analysis),
            [
                "handler app::h::a src/main.rs:3",
                "handler app::h::b src/main.rs:3",
                "handler app::Api::c src/main.rs:8",
                "command app::main src/main.rs:10",
            ]
        );
        let what: Vec<&str> = analysis.unanalysed.iter().map(|u| u.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "handler `other_crate::x` (not a function of the workspace)",
                "a closure handler"
            ]
        );
    }

    #[test]
    fn observed_containers_skip_and_raw_spawns() {
        let analysis = lint(
            &[(
                "main",
                r#"
                use std::thread;
                #[observe(handler)]
                mod api {
                    pub async fn a() { tokio::spawn(super::work()); }
                    #[observe::skip]
                    pub async fn b() { tokio::spawn(super::work()); }
                }
                struct S;
                #[observe(handler)]
                impl S { fn c(&self) { thread::spawn(|| work2()); } }
                async fn work() {}
                #[observe(task)]
                fn work2() { observe::thread::spawn(helper); }
                fn helper() {}
                fn main() {
                    Router::new().route("/a", get(api::a)).route("/b", get(api::b)).route("/c", get(S::c));
                }
                "#,
            )],
            Config::default(),
        );
        assert_eq!(
            findings(&analysis),
            [
                "spawn app::api::a src/main.rs:5",
                "spawn app::S::c src/main.rs:11",
                "task app::work src/main.rs:12",
                "task app::helper src/main.rs:15",
                "command app::main src/main.rs:16",
            ]
        );
        let raw = &analysis.findings[1];
        assert_eq!(
            raw.fix,
            Some(Fix::Replace {
                start: Pos { line: 11, col: 39 },
                end: Pos { line: 11, col: 52 },
                text: "observe::thread::spawn".to_owned()
            })
        );
        assert_eq!(analysis.skipped, 1);
    }

    #[test]
    fn required_modules_and_ignore() {
        let mut config = Config::default();
        let metadata = serde_json::json!({"observe": {"lint": {
            "require": [{"path": "crate::jobs::*", "kind": "task"}, "crate::admin"],
            "ignore": ["crate::jobs::internal"],
        }}});
        config = Config::from_metadata(&metadata).unwrap_or(config);
        let analysis = lint(
            &[
                (
                    "main",
                    "mod jobs; mod admin { pub fn reset() {} } #[observe(command)] fn main() {}",
                ),
                (
                    "jobs",
                    "pub fn nightly() {} pub fn internal() {} #[observe(task)] pub fn hourly() {}",
                ),
            ],
            config,
        );
        assert_eq!(
            findings(&analysis),
            [
                "task app::jobs::nightly src/jobs.rs:1",
                "function app::admin::reset src/main.rs:1"
            ]
        );
        assert_eq!(
            analysis.findings[1].fix,
            Some(Fix::Attribute {
                at: Pos { line: 1, col: 22 },
                attribute: "#[observe::observe]".to_owned(),
                import: None
            })
        );
        assert_eq!(
            analysis.findings[0].fix,
            Some(Fix::Attribute {
                at: Pos { line: 1, col: 0 },
                attribute: "#[observe(task)]".to_owned(),
                import: Some("use observe::observe;".to_owned())
            })
        );
    }

    #[test]
    fn the_help_names_the_import_only_when_the_file_lacks_it() {
        let without = lint(&[("main", "fn main() {}")], Config::default());
        assert_eq!(
            without.findings[0].help,
            "add `#[observe(command)]` (use observe::observe;)"
        );
        let with = lint(&[("main", "use observe::observe; fn main() {}")], Config::default());
        assert_eq!(with.findings[0].help, "add `#[observe(command)]`");
        // In an inline module the file's import does not reach: the attribute is qualified, as `--fix` writes it.
        let inline = lint(
            &[(
                "main",
                "use observe::observe; mod jobs { pub fn nightly() {} } fn main() { tokio::spawn(jobs::nightly()); }",
            )],
            Config::default(),
        );
        let help: Vec<&str> = inline.findings.iter().map(|f| f.help.as_str()).collect();
        assert!(help.contains(&"add `#[observe::observe(task)]`"), "{help:?}");
    }

    #[test]
    fn what_cannot_be_analysed_in_an_ignored_file_is_not_listed() {
        let sources = [(
            "main",
            "use axum::routing::*; fn main() { let _ = Router::new().route(\"/y\", get(|| async {})); }",
        )];
        let listed = lint(&sources, Config::default());
        assert_eq!(listed.unanalysed.len(), 1, "{:?}", listed.unanalysed);
        let config = Config {
            ignore: vec![Pattern::new("src/main.rs")],
            ..Config::default()
        };
        let ignored = lint(&sources, config);
        assert!(ignored.unanalysed.is_empty(), "{:?}", ignored.unanalysed);
        // An item pattern names no file: what has no item path stays listed.
        let config = Config {
            ignore: vec![Pattern::new("crate::main")],
            ..Config::default()
        };
        assert_eq!(lint(&sources, config).unanalysed.len(), 1);
        // A missing module's file is not the declaring file's code: ignoring the declaring file keeps it.
        let config = Config {
            ignore: vec![Pattern::new("src/main.rs")],
            ..Config::default()
        };
        let missing = lint(&[("main", "mod gone; fn main() {}")], config);
        let what: Vec<&str> = missing.unanalysed.iter().map(|u| u.what.as_str()).collect();
        assert_eq!(what, ["module `gone` (its file was not found)"]);
    }

    #[test]
    fn parse_errors_and_missing_modules_are_reported() {
        let analysis = lint(
            &[("main", "mod broken; mod gone; fn main() {}"), ("broken", "fn x( {")],
            Config::default(),
        );
        assert_eq!(findings(&analysis), ["command app::main src/main.rs:1"]);
        let what: Vec<&str> = analysis.unanalysed.iter().map(|u| u.what.as_str()).collect();
        assert_eq!(what.len(), 2, "{what:?}");
        assert!(what[0].starts_with("could not analyse src/broken.rs:1:"), "{what:?}");
        assert_eq!(what[1], "module `gone` (its file was not found)");
    }
}
