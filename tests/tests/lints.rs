//! The code `#[observe]` generates triggers no lint in the user's crate, however strict (the approach of
//! pin-project's `tests/lint.rs`): every shape of observed function is below, in a crate that denies a wide
//! set of rustc and clippy lints and forbids `unsafe` code.
//!
//! It is checked twice: by `cargo test -p observe-tests --test lints` (rustc lints) and by
//! `cargo clippy -p observe-tests --all-targets -- -D warnings` (clippy lints). A generated item that trips a
//! lint is fixed in the macro, never allowed here.

#![forbid(unsafe_code)]
#![deny(
    warnings,
    future_incompatible,
    nonstandard_style,
    rust_2018_compatibility,
    rust_2018_idioms,
    rust_2021_compatibility,
    rust_2024_compatibility,
    unused,
    ambiguous_negative_literals,
    closure_returning_async_block,
    deprecated_in_future,
    explicit_outlives_requirements,
    impl_trait_redundant_captures,
    let_underscore_drop,
    macro_use_extern_crate,
    meta_variable_misuse,
    missing_copy_implementations,
    missing_debug_implementations,
    missing_docs,
    non_ascii_idents,
    noop_method_call,
    redundant_imports,
    redundant_lifetimes,
    single_use_lifetimes,
    trivial_casts,
    trivial_numeric_casts,
    unit_bindings,
    unnameable_types,
    unreachable_pub,
    unused_extern_crates,
    unused_import_braces,
    unused_lifetimes,
    unused_macro_rules,
    unused_qualifications,
    unused_results,
    variant_size_differences
)]
#![deny(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    // A restriction subset that generated code could plausibly trip.
    clippy::absolute_paths,
    clippy::allow_attributes,
    clippy::allow_attributes_without_reason,
    clippy::as_conversions,
    clippy::default_numeric_fallback,
    clippy::empty_drop,
    clippy::infinite_loop,
    clippy::let_underscore_must_use,
    clippy::let_underscore_untyped,
    clippy::min_ident_chars,
    clippy::missing_docs_in_private_items,
    clippy::mod_module_files,
    clippy::redundant_type_annotations,
    clippy::renamed_function_params,
    clippy::same_name_method,
    clippy::semicolon_outside_block,
    clippy::shadow_reuse,
    clippy::shadow_same,
    clippy::shadow_unrelated,
    clippy::std_instead_of_alloc,
    clippy::std_instead_of_core,
    clippy::str_to_string,
    clippy::unused_trait_names,
    clippy::unwrap_used,
    clippy::used_underscore_binding,
    clippy::used_underscore_items,
    clippy::wildcard_enum_match_arm
)]

use core::fmt;
use core::future::{self, Future};
use core::num::ParseIntError;
use std::process;

use async_trait::async_trait;
/// observe under another name, for `crate = path`.
use observe as obs;
use observe::observe;
use tokio::runtime;

/// An error of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppError;

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("app error")
    }
}

impl From<ParseIntError> for AppError {
    fn from(_: ParseIntError) -> Self {
        Self
    }
}

/// A plain sync function.
#[observe]
fn plain() -> u32 {
    1
}

/// Returns nothing.
#[observe(task)]
fn unit() {}

/// Returns a `Result` and uses `?`.
///
/// # Errors
///
/// When `text` is not a number.
#[observe(handler, name = "lints.parse", level = "info")]
pub fn parse(text: &str) -> Result<u32, AppError> {
    let value = text.parse::<u32>()?;
    Ok(value)
}

/// Items first, then statements, in the body of an observed function.
#[observe]
fn items_first(value: u32) -> u32 {
    /// A helper item.
    const STEP: u32 = 2;
    let doubled = value * STEP;
    doubled + 1
}

/// Records some of its arguments.
#[observe(handler, fields(id, name))]
fn with_fields(id: u64, name: &str, secret: &str) -> usize {
    usize::try_from(id).unwrap_or_default() + name.len() + secret.len()
}

/// Names the runtime through a path.
#[observe(crate = obs)]
fn via_path() -> u8 {
    2
}

/// Generic over a lifetime, a type and a constant.
#[observe]
fn largest<'items, T, const N: usize>(items: &'items [T; N]) -> Option<&'items T>
where
    T: Ord + fmt::Debug,
{
    items.iter().max()
}

/// Takes `impl Trait` and returns `impl Trait`.
#[observe]
fn evens(limit: u32, label: impl fmt::Display) -> impl Iterator<Item = (u32, String)> {
    let text = label.to_string();
    (0..limit).filter(|n| n % 2 == 0).map(move |n| (n, text.clone()))
}

/// Never returns.
#[observe(command)]
fn exit_now() -> ! {
    process::exit(0)
}

/// An `async fn` returning a `Result`.
///
/// # Errors
///
/// When `text` is not a number.
#[observe(handler)]
pub async fn parse_later(text: &str) -> Result<u32, AppError> {
    let value = later(1).await;
    Ok(text.parse::<u32>()? + value)
}

/// An `async fn` returning nothing, with an item first in its body.
#[observe]
async fn async_unit() {
    /// A helper item.
    const TIMES: u32 = 2;
    for _ in 0..TIMES {
        let _: u32 = later(0).await;
    }
}

/// Items first, then statements, in the body of an observed `async fn`.
#[observe]
async fn async_items_first(value: u32) -> u32 {
    /// A helper item.
    const STEP: u32 = 2;
    later(value).await * STEP
}

/// An `async fn` borrowing its arguments.
#[observe(fields(text))]
async fn async_borrowed<'text>(text: &'text str, extra: &str) -> &'text str {
    let _: u32 = later(u32::try_from(extra.len()).unwrap_or_default()).await;
    text.get(1..).unwrap_or_default()
}

/// Returns `impl Future`.
#[observe(task)]
fn later(x: u32) -> impl Future<Output = u32> + Send {
    async move { x + 1 }
}

/// Returns `impl Future` of a `Result`.
#[observe]
fn later_result(fail: bool) -> impl Future<Output = Result<(), AppError>> {
    future::ready(if fail { Err(AppError) } else { Ok(()) })
}

/// A type with observed methods.
#[derive(Debug, Default)]
pub struct Orders {
    /// The names of the orders.
    names: Vec<String>,
}

impl Orders {
    /// An associated function returning `Self`.
    #[observe]
    #[must_use]
    pub fn new() -> Self {
        Self { names: Vec::new() }
    }

    /// Takes `&self`, records it.
    #[observe(handler, fields(self))]
    #[must_use]
    pub fn first(&self) -> Option<&str> {
        self.names.first().map(String::as_str)
    }

    /// Takes `&mut self`, returns a borrow of it.
    #[observe]
    pub fn push(&mut self, name: &str) -> &mut Self {
        self.names.push(name.to_owned());
        self
    }

    /// Takes `self`.
    #[observe(task)]
    #[must_use]
    pub fn into_names(self) -> Vec<String> {
        self.names
    }

    /// An `async` method.
    #[observe(handler)]
    pub async fn count(&self) -> usize {
        let _: u32 = later(0).await;
        self.names.len()
    }
}

/// A trait with native `async fn`, implemented with observed methods.
trait Store {
    /// Looks a key up.
    fn get(&self, key: u32) -> Option<u32>;
    /// Loads everything.
    async fn load(&self) -> Result<u32, AppError>;
}

/// An in-memory store.
#[derive(Debug)]
struct Memory(Vec<u32>);

impl Store for Memory {
    #[observe(handler)]
    fn get(&self, key: u32) -> Option<u32> {
        self.0.iter().copied().find(|stored| *stored == key)
    }

    #[observe(task)]
    async fn load(&self) -> Result<u32, AppError> {
        let _: u32 = later(0).await;
        u32::try_from(self.0.len()).map_err(|_| AppError)
    }
}

/// A trait made object-safe by `#[async_trait]`.
#[async_trait]
trait Repository {
    /// Finds an order.
    async fn find(&self, id: u64) -> Result<String, AppError>;
    /// Counts the orders.
    async fn total(&self) -> usize;
}

/// A repository.
#[derive(Debug)]
struct Db;

#[async_trait]
impl Repository for Db {
    #[observe(handler, fields(id))]
    async fn find(&self, id: u64) -> Result<String, AppError> {
        if id == 0 {
            return Err(AppError);
        }
        Ok(format!("order-{id}"))
    }

    #[observe]
    async fn total(&self) -> usize {
        3
    }
}

#[test]
fn every_shape_runs() {
    assert_eq!(plain(), 1);
    unit();
    assert_eq!(parse("4"), Ok(4));
    assert_eq!(parse("x"), Err(AppError));
    assert_eq!(items_first(2), 5);
    assert_eq!(with_fields(1, "ab", "c"), 4);
    assert_eq!(via_path(), 2);
    assert_eq!(largest(&[1_u32, 3, 2]), Some(&3));
    assert_eq!(evens(5, "n").count(), 3);
    let _: fn() -> ! = exit_now;

    let mut orders = Orders::new();
    assert_eq!(orders.push("a").push("b").names.len(), 2);
    assert_eq!(orders.first(), Some("a"));
    let memory = Memory(vec![1]);
    assert_eq!(memory.get(1), Some(1));

    let executor = runtime::Builder::new_current_thread().build().expect("a runtime");
    executor.block_on(async {
        assert_eq!(parse_later("1").await, Ok(3));
        async_unit().await;
        assert_eq!(async_items_first(1).await, 4);
        assert_eq!(async_borrowed("abc", "x").await, "bc");
        assert_eq!(later(1).await, 2);
        assert_eq!(later_result(true).await, Err(AppError));
        assert_eq!(orders.count().await, 2);
        assert_eq!(memory.load().await, Ok(1));
        let db: Box<dyn Repository + Send + Sync> = Box::new(Db);
        assert_eq!(db.find(1).await, Ok("order-1".to_owned()));
        assert_eq!(db.find(0).await, Err(AppError));
        assert_eq!(db.total().await, 3);
    });
    assert_eq!(orders.into_names().len(), 2);
}
