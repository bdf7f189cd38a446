//! One source file, parsed with `syn`, reduced to plain data: its modules, functions, `use` imports, and the
//! places that name handlers (routes) or tasks (spawns).
//!
//! `syn` trees hold `proc_macro2` spans, which are neither `Send` nor meaningful on another thread (the source
//! map behind `span-locations` is thread-local), so every file is reduced to a [`FileSummary`] on the thread that
//! parsed it. Resolving names across files happens later, in [`crate::analyse`], on summaries only.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, Item, Meta, Token};

/// A position in a file: line from 1, column from 0, in characters (what `proc_macro2` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub(crate) fn of(span: Span) -> Pos {
        let start = span.start();
        Pos {
            line: start.line as u32,
            col: start.column as u32,
        }
    }

    pub(crate) fn end_of(span: Span) -> Pos {
        let end = span.end();
        Pos {
            line: end.line as u32,
            col: end.column as u32,
        }
    }
}

/// A path as written: `handlers::list`, `::std::thread::spawn`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathRef {
    pub leading_colon: bool,
    pub segments: Vec<String>,
}

impl PathRef {
    fn from_syn(path: &syn::Path) -> PathRef {
        PathRef {
            leading_colon: path.leading_colon.is_some(),
            segments: path.segments.iter().map(|s| s.ident.to_string()).collect(),
        }
    }

    pub fn text(&self) -> String {
        let joined = self.segments.join("::");
        if self.leading_colon {
            format!("::{joined}")
        } else {
            joined
        }
    }

    fn last(&self) -> &str {
        self.segments.last().map(String::as_str).unwrap_or("")
    }
}

/// A module of the file: index 0 is the file's own module, the others are inline `mod name { .. }` blocks.
#[derive(Debug, Clone)]
pub struct ModSummary {
    pub parent: Option<usize>,
    pub name: String,
    pub observed: bool,
    pub skip: bool,
    /// Names of the types (struct, enum, union, alias, trait) defined here: `Type::method` paths.
    pub types: Vec<String>,
}

/// `mod name;`: a module in another file.
#[derive(Debug, Clone)]
pub struct ModDecl {
    pub module: usize,
    pub name: String,
    pub path_attr: Option<String>,
    pub observed: bool,
    pub skip: bool,
    pub pos: Pos,
}

/// A `use` import (flattened: one per imported name), or a glob when `alias` is `None`.
#[derive(Debug, Clone)]
pub struct UseDef {
    pub module: usize,
    pub alias: Option<String>,
    pub path: PathRef,
}

#[derive(Debug, Clone)]
pub struct FnDef {
    pub name: String,
    pub module: usize,
    pub impl_idx: Option<usize>,
    /// Defined inside another function's body.
    pub nested: bool,
    pub observed: bool,
    pub skip: bool,
    /// Carries an actix-web route attribute (`#[get("/")]`, `#[route(..)]`).
    pub actix_route: bool,
    /// Position of the name.
    pub ident: Pos,
    /// Start of the item after its attributes (`pub`, `async`, `fn`): where `--fix` inserts.
    pub item_start: Pos,
    /// A `const fn`: never observed by an observed `mod` or `impl` around it.
    pub is_const: bool,
}

#[derive(Debug, Clone)]
pub struct ImplDef {
    pub module: usize,
    pub self_ty: String,
    pub observed: bool,
    pub skip: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefKind {
    Handler,
    Task,
}

/// What a route or spawn names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Path(PathRef),
    /// Cannot be followed to a function: a closure, an inline async block, a method call on a value.
    Opaque(String),
}

/// When a reference counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// A free `get(h)` / `on(filter, h)` call outside `.route(..)`: only when the function called is axum's.
    CalleeIsAxum(PathRef),
    /// A free `spawn(..)` call: not when `spawn` is a function of the crate itself.
    CalleeIsNotLocal(PathRef),
}

#[derive(Debug, Clone)]
pub struct Reference {
    pub kind: RefKind,
    pub module: usize,
    pub self_ty: Option<String>,
    pub target: Target,
    pub condition: Condition,
    pub pos: Pos,
}

/// A free call of a function named `spawn`/`spawn_blocking` (raw when it resolves to tokio or std).
#[derive(Debug, Clone)]
pub struct SpawnCall {
    pub module: usize,
    pub callee: PathRef,
    pub enclosing_fn: Option<usize>,
    pub start: Pos,
    pub end: Pos,
}

/// Something that may hide routes or spawns from the lint (a `macro_rules!` body, an unreadable macro call).
#[derive(Debug, Clone)]
pub struct Opaque {
    pub pos: Pos,
    pub what: String,
}

#[derive(Debug, Clone, Default)]
pub struct FileSummary {
    pub modules: Vec<ModSummary>,
    pub decls: Vec<ModDecl>,
    pub uses: Vec<UseDef>,
    pub fns: Vec<FnDef>,
    pub impls: Vec<ImplDef>,
    pub refs: Vec<Reference>,
    pub spawns: Vec<SpawnCall>,
    pub opaque: Vec<Opaque>,
    /// Last line of the file's inner attributes and `//!` comments (0: none).
    pub inner_end_line: u32,
    /// Last line of the last `use` at the top level of the file.
    pub last_use_line: Option<u32>,
    /// The top level imports the `observe` attribute (`use observe::observe;`, `use observe::*;`, ...).
    pub imports_observe: bool,
    /// Something at the top level is already named `observe` (a function, a module, an import of another).
    pub observe_name_taken: bool,
}

/// Parses `source` and reduces it. `Err` is the parse error, with its position.
pub fn summarize(source: &str) -> Result<FileSummary, (Pos, String)> {
    let file = syn::parse_file(source).map_err(|err| {
        let message = err.to_string();
        let message = if message == "cannot parse string into token stream" {
            "an unclosed delimiter, or a literal or token that does not lex".to_owned()
        } else {
            message
        };
        (Pos::of(err.span()), message)
    })?;
    let mut ex = Extractor {
        out: FileSummary::default(),
        module: 0,
        impl_ctx: None,
        fn_ctx: None,
    };
    ex.out.modules.push(ModSummary {
        parent: None,
        name: String::new(),
        observed: false,
        skip: false,
        types: Vec::new(),
    });
    ex.out.inner_end_line = file.attrs.iter().map(|a| Pos::end_of(a.span()).line).max().unwrap_or(0);
    for item in &file.items {
        if let Item::Use(u) = item {
            let end = Pos::end_of(u.span()).line;
            ex.out.last_use_line = Some(ex.out.last_use_line.map_or(end, |l| l.max(end)));
        }
        top_level_names(item, &mut ex.out);
    }
    for item in &file.items {
        ex.visit_item(item);
    }
    Ok(ex.out)
}

/// Records whether the top level already imports the attribute, or uses the name for something else.
fn top_level_names(item: &Item, out: &mut FileSummary) {
    let ident = match item {
        Item::Use(u) => {
            let mut uses = Vec::new();
            flatten_use(&u.tree, &mut Vec::new(), u.leading_colon.is_some(), 0, &mut uses);
            for use_def in uses {
                let path = &use_def.path.segments;
                match &use_def.alias {
                    Some(alias) if alias == "observe" => {
                        if path.len() == 2 && path[0] == "observe" && path[1] == "observe" {
                            out.imports_observe = true;
                        } else {
                            out.observe_name_taken = true;
                        }
                    }
                    None if path.len() == 1 && path[0] == "observe" => out.imports_observe = true,
                    _ => {}
                }
            }
            return;
        }
        Item::Fn(i) => &i.sig.ident,
        Item::Mod(i) => &i.ident,
        Item::Macro(i) => match &i.ident {
            Some(ident) => ident,
            None => return,
        },
        Item::ExternCrate(i) => i.rename.as_ref().map_or(&i.ident, |(_, r)| r),
        _ => return,
    };
    if ident == "observe" {
        out.observe_name_taken = true;
    }
}

const AXUM_METHODS: &[&str] = &[
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "connect", "any",
];
const ACTIX_ATTRS: &[&str] = &[
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "connect", "route",
];
const SPAWNS: &[&str] = &["spawn", "spawn_blocking", "spawn_local"];
/// Future adapters that do not change which function a spawned future runs.
const ADAPTERS: &[&str] = &[
    "instrument",
    "in_current_span",
    "in_current_scope",
    "with_current_subscriber",
    "with_subscriber",
    "with_context",
    "boxed",
    "boxed_local",
    "fuse",
];

#[derive(Default)]
struct AttrInfo {
    observed: bool,
    skip: bool,
    cfg_test: bool,
    test_fn: bool,
    actix_route: bool,
}

fn attr_info(attrs: &[Attribute]) -> AttrInfo {
    let mut info = AttrInfo::default();
    for attr in attrs {
        let path = attr.path();
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let last = segments.last().map(String::as_str).unwrap_or("");
        match last {
            "observe" => info.observed = true,
            "skip" if segments.len() == 1 || (segments.len() == 2 && segments[0] == "observe") => info.skip = true,
            "test" | "bench" if segments.len() <= 2 => info.test_fn = true,
            "cfg" if segments.len() == 1 => {
                if let Ok(meta) = attr.parse_args::<Meta>() {
                    info.cfg_test |= cfg_is_test(&meta);
                }
            }
            "cfg_attr" if segments.len() == 1 => {
                let nested = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated);
                if let Ok(nested) = nested {
                    for meta in nested.iter().skip(1) {
                        let p = meta.path();
                        if p.segments.last().is_some_and(|s| s.ident == "observe") {
                            info.observed = true;
                        }
                    }
                }
            }
            _ if ACTIX_ATTRS.contains(&last) => {
                if let Meta::List(list) = &attr.meta {
                    let first = list.tokens.clone().into_iter().next();
                    if let Some(TokenTree::Literal(lit)) = first {
                        info.actix_route |= lit.to_string().starts_with('"');
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// `test`, or `all(.., test, ..)`: code that only exists in test builds.
fn cfg_is_test(meta: &Meta) -> bool {
    match meta {
        Meta::Path(p) => p.is_ident("test"),
        Meta::List(list) if list.path.is_ident("all") => list
            .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .map(|nested| nested.iter().any(cfg_is_test))
            .unwrap_or(false),
        _ => false,
    }
}

fn flatten_use(tree: &syn::UseTree, prefix: &mut Vec<String>, leading: bool, module: usize, out: &mut Vec<UseDef>) {
    use syn::UseTree;
    match tree {
        UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, leading, module, out);
            prefix.pop();
        }
        UseTree::Name(n) => {
            let mut segments = prefix.clone();
            let alias = if n.ident == "self" {
                prefix.last().cloned()
            } else {
                segments.push(n.ident.to_string());
                Some(n.ident.to_string())
            };
            if let Some(alias) = alias {
                out.push(UseDef {
                    module,
                    alias: Some(alias),
                    path: PathRef {
                        leading_colon: leading,
                        segments,
                    },
                });
            }
        }
        UseTree::Rename(r) => {
            if r.rename == "_" {
                return;
            }
            let mut segments = prefix.clone();
            if r.ident != "self" {
                segments.push(r.ident.to_string());
            }
            out.push(UseDef {
                module,
                alias: Some(r.rename.to_string()),
                path: PathRef {
                    leading_colon: leading,
                    segments,
                },
            });
        }
        UseTree::Glob(_) => out.push(UseDef {
            module,
            alias: None,
            path: PathRef {
                leading_colon: leading,
                segments: prefix.clone(),
            },
        }),
        UseTree::Group(g) => {
            for tree in &g.items {
                flatten_use(tree, prefix, leading, module, out);
            }
        }
    }
}

/// The first line of an item after its attributes: its visibility, else its signature's first keyword.
fn item_start(vis: &syn::Visibility, sig: &syn::Signature) -> Pos {
    let vis_span = match vis {
        syn::Visibility::Public(p) => Some(p.span),
        syn::Visibility::Restricted(r) => Some(r.pub_token.span),
        syn::Visibility::Inherited => None,
    };
    let sig_span = sig
        .constness
        .map(|t| t.span)
        .or(sig.asyncness.map(|t| t.span))
        .or(sig.unsafety.map(|t| t.span))
        .or(sig.abi.as_ref().map(|a| a.extern_token.span))
        .unwrap_or(sig.fn_token.span);
    Pos::of(vis_span.unwrap_or(sig_span))
}

fn self_ty_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default(),
        syn::Type::Reference(r) => self_ty_name(&r.elem),
        syn::Type::Paren(p) => self_ty_name(&p.elem),
        syn::Type::Group(g) => self_ty_name(&g.elem),
        _ => String::new(),
    }
}

fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        Expr::Reference(r) => strip(&r.expr),
        _ => expr,
    }
}

fn callee_path(call: &syn::ExprCall) -> Option<PathRef> {
    match strip(&call.func) {
        Expr::Path(p) if p.qself.is_none() => Some(PathRef::from_syn(&p.path)),
        _ => None,
    }
}

/// The function a route passes as its handler.
fn handler_target(expr: &Expr) -> Target {
    match strip(expr) {
        Expr::Path(p) if p.qself.is_none() => Target::Path(PathRef::from_syn(&p.path)),
        Expr::Closure(_) => Target::Opaque("a closure handler".to_owned()),
        Expr::MethodCall(m) if m.method == "layer" || m.method == "with_state" => handler_target(&m.receiver),
        Expr::Macro(m) => Target::Opaque(format!(
            "a handler built by macro `{}!`",
            PathRef::from_syn(&m.mac.path).text()
        )),
        Expr::Call(_) | Expr::MethodCall(_) => Target::Opaque("a handler computed by a call".to_owned()),
        _ => Target::Opaque("a handler expression".to_owned()),
    }
}

/// The function a spawn runs: `f(..)`, `f(..).await`, `move || f(..)`, `async move { f(..).await }`, `f`.
fn task_target(expr: &Expr) -> Target {
    match strip(expr) {
        Expr::Call(call) => match callee_path(call) {
            Some(path) => Target::Path(path),
            None => Target::Opaque("a task computed by a call".to_owned()),
        },
        Expr::Path(p) if p.qself.is_none() => Target::Path(PathRef::from_syn(&p.path)),
        Expr::Await(a) => task_target(&a.base),
        Expr::Try(t) => task_target(&t.expr),
        Expr::Closure(c) => task_target(&c.body),
        Expr::Async(a) => block_target(&a.block),
        Expr::Block(b) => block_target(&b.block),
        Expr::Unsafe(u) => block_target(&u.block),
        Expr::Let(l) => task_target(&l.expr),
        Expr::If(i) => task_target(&i.cond),
        Expr::Match(m) => task_target(&m.expr),
        Expr::MethodCall(m) if ADAPTERS.contains(&m.method.to_string().as_str()) => task_target(&m.receiver),
        Expr::MethodCall(m) => Target::Opaque(format!("a task started by the method call `.{}()`", m.method)),
        _ => Target::Opaque("an inline task body".to_owned()),
    }
}

fn block_target(block: &syn::Block) -> Target {
    let exprs: Vec<&Expr> = block
        .stmts
        .iter()
        .filter_map(|s| match s {
            syn::Stmt::Expr(e, _) => Some(e),
            _ => None,
        })
        .collect();
    let lets: Vec<&syn::LocalInit> = block
        .stmts
        .iter()
        .filter_map(|s| match s {
            syn::Stmt::Local(l) => l.init.as_ref(),
            _ => None,
        })
        .collect();
    match (exprs.as_slice(), lets.as_slice()) {
        ([only], _) => task_target(only),
        ([], [only]) => task_target(&only.expr),
        _ => Target::Opaque("an inline task body".to_owned()),
    }
}

/// The call a method chain starts from: `web::resource("/x").route(..).to(f)` starts from `web::resource("/x")`.
fn chain_root(expr: &Expr) -> &Expr {
    match strip(expr) {
        Expr::MethodCall(m) => chain_root(&m.receiver),
        other => other,
    }
}

/// Does this token stream look like it builds routes or spawns: `route(`, `spawn(`, `resource(`, `.to(`?
fn tokens_build_entry_points(tokens: &TokenStream) -> bool {
    let mut previous_dot = false;
    let mut iter = tokens.clone().into_iter().peekable();
    while let Some(tree) = iter.next() {
        match &tree {
            TokenTree::Group(g) => {
                if tokens_build_entry_points(&g.stream()) {
                    return true;
                }
                previous_dot = false;
            }
            TokenTree::Ident(ident) => {
                let name = ident.to_string();
                let interesting = matches!(name.as_str(), "route" | "resource" | "spawn" | "spawn_blocking")
                    || (previous_dot && name == "to");
                let called = matches!(iter.peek(), Some(TokenTree::Group(g)) if g.delimiter() == proc_macro2::Delimiter::Parenthesis);
                if interesting && called {
                    return true;
                }
                previous_dot = false;
            }
            TokenTree::Punct(p) => previous_dot = p.as_char() == '.',
            TokenTree::Literal(_) => previous_dot = false,
        }
    }
    false
}

struct Extractor {
    out: FileSummary,
    module: usize,
    impl_ctx: Option<usize>,
    fn_ctx: Option<usize>,
}

impl Extractor {
    fn self_ty(&self) -> Option<String> {
        self.impl_ctx.map(|i| self.out.impls[i].self_ty.clone())
    }

    fn reference(&mut self, kind: RefKind, target: Target, condition: Condition, pos: Pos) {
        let self_ty = self.self_ty();
        self.out.refs.push(Reference {
            kind,
            module: self.module,
            self_ty,
            target,
            condition,
            pos,
        });
    }

    fn handler(&mut self, expr: &Expr, condition: Condition) {
        let pos = Pos::of(expr.span());
        self.reference(RefKind::Handler, handler_target(expr), condition, pos);
    }

    /// The method router of `.route(path, router)`: `get(a).post(b)`, `on(filter, c)`, `web::get().to(d)`.
    fn method_router(&mut self, expr: &Expr) {
        match strip(expr) {
            Expr::Call(call) => {
                let Some(path) = callee_path(call) else { return };
                let name = path.last();
                if AXUM_METHODS.contains(&name) && call.args.len() == 1 {
                    self.handler(&call.args[0], Condition::Always);
                } else if name == "on" && call.args.len() == 2 {
                    self.handler(&call.args[1], Condition::Always);
                } else if name == "to" && call.args.len() == 1 {
                    self.handler(&call.args[0], Condition::Always);
                }
            }
            Expr::MethodCall(m) => {
                let name = m.method.to_string();
                if (AXUM_METHODS.contains(&name.as_str()) || name == "to") && m.args.len() == 1 {
                    self.handler(&m.args[0], Condition::Always);
                } else if name == "on" && m.args.len() == 2 {
                    self.handler(&m.args[1], Condition::Always);
                }
                self.method_router(&m.receiver);
            }
            _ => {}
        }
    }

    /// A macro call: read its arguments as expressions or statements when they are; otherwise, if its tokens
    /// look like routes or spawns, count it as something the lint cannot see into.
    fn macro_call(&mut self, mac: &syn::Macro) {
        let name = PathRef::from_syn(&mac.path);
        if let Ok(exprs) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
            return;
        }
        if let Ok(stmts) = mac.parse_body_with(syn::Block::parse_within) {
            for stmt in &stmts {
                self.visit_stmt(stmt);
            }
            return;
        }
        if tokens_build_entry_points(&mac.tokens) {
            self.out.opaque.push(Opaque {
                pos: Pos::of(mac.path.span()),
                what: format!("routes or spawns inside the macro call `{}!`", name.text()),
            });
        }
    }

    fn push_fn(
        &mut self,
        name: String,
        attrs: &AttrInfo,
        ident: Pos,
        sig: (&syn::Visibility, &syn::Signature),
        impl_idx: Option<usize>,
    ) -> usize {
        self.out.fns.push(FnDef {
            name,
            module: self.module,
            impl_idx,
            nested: self.fn_ctx.is_some(),
            observed: attrs.observed,
            skip: attrs.skip,
            actix_route: attrs.actix_route,
            ident,
            item_start: item_start(sig.0, sig.1),
            is_const: sig.1.constness.is_some(),
        });
        self.out.fns.len() - 1
    }
}

impl<'ast> Visit<'ast> for Extractor {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        let attrs = attr_info(&item.attrs);
        if attrs.cfg_test || attrs.test_fn {
            return;
        }
        let idx = self.push_fn(
            item.sig.ident.to_string(),
            &attrs,
            Pos::of(item.sig.ident.span()),
            (&item.vis, &item.sig),
            None,
        );
        let (outer_fn, outer_impl) = (self.fn_ctx.replace(idx), self.impl_ctx.take());
        self.visit_block(&item.block);
        self.fn_ctx = outer_fn;
        self.impl_ctx = outer_impl;
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let attrs = attr_info(&item.attrs);
        if attrs.cfg_test {
            return;
        }
        self.out.impls.push(ImplDef {
            module: self.module,
            self_ty: self_ty_name(&item.self_ty),
            observed: attrs.observed,
            skip: attrs.skip,
        });
        let outer = self.impl_ctx.replace(self.out.impls.len() - 1);
        for impl_item in &item.items {
            self.visit_impl_item(impl_item);
        }
        self.impl_ctx = outer;
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        let attrs = attr_info(&item.attrs);
        if attrs.cfg_test || attrs.test_fn {
            return;
        }
        let idx = self.push_fn(
            item.sig.ident.to_string(),
            &attrs,
            Pos::of(item.sig.ident.span()),
            (&item.vis, &item.sig),
            self.impl_ctx,
        );
        let outer = self.fn_ctx.replace(idx);
        self.visit_block(&item.block);
        self.fn_ctx = outer;
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let attrs = attr_info(&item.attrs);
        if attrs.cfg_test {
            return;
        }
        let Some((_, items)) = &item.content else {
            let path_attr = item.attrs.iter().find_map(|a| match &a.meta {
                Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s), ..
                    }) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            });
            self.out.decls.push(ModDecl {
                module: self.module,
                name: item.ident.to_string(),
                path_attr,
                observed: attrs.observed,
                skip: attrs.skip,
                pos: Pos::of(item.ident.span()),
            });
            return;
        };
        self.out.modules.push(ModSummary {
            parent: Some(self.module),
            name: item.ident.to_string(),
            observed: attrs.observed,
            skip: attrs.skip,
            types: Vec::new(),
        });
        let outer_module = std::mem::replace(&mut self.module, self.out.modules.len() - 1);
        let (outer_fn, outer_impl) = (self.fn_ctx.take(), self.impl_ctx.take());
        for item in items {
            self.visit_item(item);
        }
        self.module = outer_module;
        self.fn_ctx = outer_fn;
        self.impl_ctx = outer_impl;
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        flatten_use(
            &item.tree,
            &mut Vec::new(),
            item.leading_colon.is_some(),
            self.module,
            &mut self.out.uses,
        );
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        let alias = item.rename.as_ref().map_or(&item.ident, |(_, r)| r).to_string();
        self.out.uses.push(UseDef {
            module: self.module,
            alias: Some(alias),
            path: PathRef {
                leading_colon: true,
                segments: vec![item.ident.to_string()],
            },
        });
    }

    fn visit_item(&mut self, item: &'ast Item) {
        let type_name = match item {
            Item::Struct(i) => Some(&i.ident),
            Item::Enum(i) => Some(&i.ident),
            Item::Union(i) => Some(&i.ident),
            Item::Type(i) => Some(&i.ident),
            Item::Trait(i) => Some(&i.ident),
            _ => None,
        };
        if let Some(ident) = type_name {
            let module = self.module;
            self.out.modules[module].types.push(ident.to_string());
        }
        visit::visit_item(self, item);
    }

    fn visit_item_trait(&mut self, _: &'ast syn::ItemTrait) {
        // Default method bodies are not entry points by themselves; routes rarely live there.
    }

    fn visit_item_macro(&mut self, item: &'ast syn::ItemMacro) {
        if item.mac.path.is_ident("macro_rules") {
            if tokens_build_entry_points(&item.mac.tokens) {
                let name = item.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
                let pos = item
                    .ident
                    .as_ref()
                    .map_or(Pos::of(item.mac.path.span()), |i| Pos::of(i.span()));
                self.out.opaque.push(Opaque {
                    pos,
                    what: format!("routes or spawns built inside the macro `{name}!`"),
                });
            }
            return;
        }
        if item.mac.path.is_ident("include") {
            self.out.opaque.push(Opaque {
                pos: Pos::of(item.mac.path.span()),
                what: "an included file (`include!`)".to_owned(),
            });
            return;
        }
        self.macro_call(&item.mac);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.macro_call(mac);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let name = call.method.to_string();
        let args = &call.args;
        match name.as_str() {
            "route" if args.len() == 2 => self.method_router(&args[1]),
            "route" if args.len() == 1 => self.method_router(&args[0]),
            "to" if args.len() == 1 => {
                // actix-web: `web::resource("/").to(f)`, `web::get().to(f)`, `Route::new().to(f)`.
                if let Expr::Call(root) = chain_root(&call.receiver) {
                    if let Some(path) = callee_path(root) {
                        let actix = path.segments.iter().any(|s| {
                            matches!(
                                s.as_str(),
                                "web" | "Resource" | "Route" | "resource" | "route" | "scope"
                            )
                        });
                        if actix {
                            self.handler(&args[0], Condition::Always);
                        }
                    }
                }
            }
            n if (AXUM_METHODS.contains(&n) && args.len() == 1) || (n == "on" && args.len() == 2) => {
                // `get(a).post(b)` outside `.route(..)`: a method router built in a helper function.
                if let Expr::Call(root) = chain_root(&call.receiver) {
                    if let Some(path) = callee_path(root) {
                        let root_name = path.last();
                        let handler = if n == "on" { &args[1] } else { &args[0] };
                        if AXUM_METHODS.contains(&root_name) || root_name == "on" {
                            self.handler(handler, Condition::CalleeIsAxum(path));
                        } else if path.segments.iter().any(|s| s == "MethodRouter") {
                            // `MethodRouter::new().get(a)`.
                            self.handler(handler, Condition::Always);
                        }
                    }
                }
            }
            n if SPAWNS.contains(&n) && args.len() == 1 => {
                // `set.spawn(fut)`, `handle.spawn(fut)`, `thread::Builder::new().spawn(f)`.
                let pos = Pos::of(args[0].span());
                self.reference(RefKind::Task, task_target(&args[0]), Condition::Always, pos);
            }
            _ => {}
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let Some(path) = callee_path(call) {
            let name = path.last().to_owned();
            let args = &call.args;
            if AXUM_METHODS.contains(&name.as_str()) && args.len() == 1 {
                self.handler(&args[0], Condition::CalleeIsAxum(path));
            } else if name == "on" && args.len() == 2 {
                self.handler(&args[1], Condition::CalleeIsAxum(path));
            } else if name == "to"
                && args.len() == 1
                && path.segments.len() >= 2
                && path.segments.iter().any(|s| s == "web")
            {
                self.handler(&args[0], Condition::Always);
            } else if SPAWNS.contains(&name.as_str()) && args.len() == 1 {
                let span = call.func.span();
                self.out.spawns.push(SpawnCall {
                    module: self.module,
                    callee: path.clone(),
                    enclosing_fn: self.fn_ctx,
                    start: Pos::of(span),
                    end: Pos::end_of(span),
                });
                let pos = Pos::of(args[0].span());
                self.reference(
                    RefKind::Task,
                    task_target(&args[0]),
                    Condition::CalleeIsNotLocal(path),
                    pos,
                );
            }
        }
        visit::visit_expr_call(self, call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(source: &str) -> Vec<(RefKind, String, Condition)> {
        let summary = summarize(source).expect("parses");
        summary
            .refs
            .iter()
            .map(|r| {
                let target = match &r.target {
                    Target::Path(p) => p.text(),
                    Target::Opaque(what) => format!("<{what}>"),
                };
                (r.kind, target, r.condition.clone())
            })
            .collect()
    }

    fn path(text: &str) -> PathRef {
        PathRef {
            leading_colon: false,
            segments: text.split("::").map(str::to_owned).collect(),
        }
    }

    #[test]
    fn axum_routes() {
        let refs = targets(
            r#"fn app() -> Router {
                Router::new()
                    .route("/a", get(handlers::list).post(create))
                    .route("/b", on(MethodFilter::GET, legacy).layer(x))
                    .route("/c", get(|| async { "hi" }))
            }"#,
        );
        let mut always: Vec<_> = refs
            .iter()
            .filter(|r| r.2 == Condition::Always)
            .map(|r| r.1.clone())
            .collect();
        always.sort();
        assert_eq!(always, ["<a closure handler>", "create", "handlers::list", "legacy"]);
    }

    #[test]
    fn helper_method_routers_depend_on_the_import() {
        let refs = targets("fn orders() -> MethodRouter { get(list).delete(remove) }");
        assert_eq!(
            refs,
            [
                (
                    RefKind::Handler,
                    "remove".to_owned(),
                    Condition::CalleeIsAxum(path("get"))
                ),
                (
                    RefKind::Handler,
                    "list".to_owned(),
                    Condition::CalleeIsAxum(path("get"))
                ),
            ]
        );
    }

    #[test]
    fn spawn_shapes() {
        let refs = targets(
            r#"fn main() {
                tokio::spawn(poll(rx));
                tokio::task::spawn_blocking(move || compress(data));
                std::thread::spawn(heartbeat);
                observe::spawn(async move { let x = 1; cleanup(x).await });
                tokio::spawn(async move { loop { tick().await; } });
                set.spawn(worker.run());
                tokio::spawn(serve().instrument(span));
            }"#,
        );
        let names: Vec<_> = refs.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(
            names,
            [
                "poll",
                "compress",
                "heartbeat",
                "cleanup",
                "<an inline task body>",
                "<a task started by the method call `.run()`>",
                "serve"
            ]
        );
    }

    #[test]
    fn attributes() {
        let summary = summarize(
            r#"
            #[observe(handler)] async fn a() {}
            #[observe::observe] fn b() {}
            #[observe::skip] fn c() {}
            #[get("/")] async fn d() {}
            #[cfg(test)] mod tests { fn e() {} }
            #[test] fn f() {}
            #[observe(handler)] mod api { pub fn g() {} }
            "#,
        )
        .expect("parses");
        let fns: Vec<_> = summary
            .fns
            .iter()
            .map(|f| (f.name.as_str(), f.observed, f.skip, f.actix_route))
            .collect();
        assert_eq!(
            fns,
            [
                ("a", true, false, false),
                ("b", true, false, false),
                ("c", false, true, false),
                ("d", false, false, true),
                ("g", false, false, false),
            ]
        );
        assert!(summary.modules[1].observed);
    }

    #[test]
    fn user_macros_are_opaque() {
        let summary = summarize(
            r#"
            macro_rules! routes { ($r:expr) => { $r.route("/m", get(from_macro)) }; }
            fn app() { tokio::select! { _ = a => tokio::spawn(b()), } ; println!("{}", route); }
            "#,
        )
        .expect("parses");
        let what: Vec<_> = summary.opaque.iter().map(|o| o.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "routes or spawns built inside the macro `routes!`",
                "routes or spawns inside the macro call `tokio::select!`"
            ]
        );
    }

    #[test]
    fn imports_of_the_attribute() {
        assert!(summarize("use observe::observe;").expect("parses").imports_observe);
        assert!(
            summarize("use observe::{observe, spawn};")
                .expect("parses")
                .imports_observe
        );
        assert!(summarize("use observe::*;").expect("parses").imports_observe);
        let other = summarize("use tracing::instrument as observe;").expect("parses");
        assert!(!other.imports_observe && other.observe_name_taken);
    }

    #[test]
    fn parse_errors_have_a_position() {
        let (pos, message) = summarize("fn main() {\n    let x = ;\n}\n").expect_err("does not parse");
        assert_eq!(pos.line, 2);
        assert!(message.contains("expected"), "{message}");
    }
}
