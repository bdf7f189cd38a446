//! `#[observe(...)]` on an inline `mod` or an `impl` block: every function inside is observed with the same
//! arguments, except those with their own `#[observe(...)]` (which wins) or `#[observe::skip]`.
//!
//! The expansion only adds attributes: each function is then expanded by the function macro, so the generated
//! code is exactly what `#[observe]` on that function gives.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, ImplItem, Item, ItemImpl, ItemMod, Path};

use crate::args::Args;

/// Errors for arguments that make no sense for many functions at once.
pub(crate) fn validate(args: &Args, what: &str) -> Vec<syn::Error> {
    let mut errors = Vec::new();
    let per_function = "is per function: put `#[observe(...)]` with it on the function inside instead";
    if let Some(name) = &args.name {
        errors.push(syn::Error::new(name.span(), format!("`name` on {what} {per_function}")));
    }
    if let Some(field) = args.fields.first() {
        errors.push(syn::Error::new(
            field.span(),
            format!("`fields` on {what} {per_function}"),
        ));
    }
    if let Some(carrier) = &args.carrier {
        errors.push(syn::Error::new_spanned(
            carrier,
            format!("`carrier` on {what} {per_function}"),
        ));
    }
    errors
}

/// Whether `attr` is `#[observe]`/`#[observe(..)]`/`#[some::path::observe(..)]`.
fn is_observe(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "observe")
}

/// Whether `attr` is `#[observe::skip]` (or `#[skip]` imported from observe).
fn is_skip(attr: &Attribute) -> bool {
    let segments: Vec<String> = attr.path().segments.iter().map(|s| s.ident.to_string()).collect();
    matches!(segments.as_slice(), [one] if one == "skip") || segments.ends_with(&["observe".into(), "skip".into()])
}

struct Marker<'a> {
    macro_path: Path,
    args: &'a TokenStream,
}

impl Marker<'_> {
    /// Adds the attribute to one function unless it has its own, or is skipped, or is a `const fn`.
    fn mark(&self, attrs: &mut Vec<Attribute>, is_const: bool) {
        if attrs.iter().any(is_skip) {
            attrs.retain(|a| !is_skip(a));
            return;
        }
        if is_const || attrs.iter().any(is_observe) {
            return;
        }
        let path = &self.macro_path;
        let args = self.args;
        attrs.insert(0, syn::parse_quote!(#[#path(#args)]));
    }

    fn items(&self, items: &mut [Item]) {
        for item in items {
            match item {
                Item::Fn(function) => self.mark(&mut function.attrs, function.sig.constness.is_some()),
                // `#[observe::skip]` on an `impl`, a trait or a module skips everything in it.
                Item::Impl(ItemImpl { attrs, .. })
                | Item::Trait(syn::ItemTrait { attrs, .. })
                | Item::Mod(ItemMod { attrs, .. })
                    if attrs.iter().any(is_skip) =>
                {
                    attrs.retain(|a| !is_skip(a));
                }
                Item::Impl(block) if !block.attrs.iter().any(is_observe) => self.impl_items(block),
                // A trait's default methods (those with a body) are functions of the module too.
                Item::Trait(definition) => {
                    for item in &mut definition.items {
                        if let syn::TraitItem::Fn(method) = item {
                            if method.default.is_some() {
                                self.mark(&mut method.attrs, method.sig.constness.is_some());
                            }
                        }
                    }
                }
                Item::Mod(module) if !module.attrs.iter().any(is_observe) => {
                    if let Some((_, items)) = &mut module.content {
                        self.items(items);
                    }
                }
                _ => {}
            }
        }
    }

    fn impl_items(&self, block: &mut ItemImpl) {
        for item in &mut block.items {
            if let ImplItem::Fn(method) = item {
                self.mark(&mut method.attrs, method.sig.constness.is_some());
            }
        }
    }
}

/// `#[observe(..)] mod name { .. }` and `#[observe(..)] impl .. { .. }`.
pub(crate) fn expand(args_tokens: &TokenStream, args: &Args, item: Item) -> TokenStream {
    let krate = args.krate();
    let marker = Marker {
        macro_path: syn::parse_quote!(#krate::observe),
        args: args_tokens,
    };
    match item {
        Item::Mod(mut module) => {
            if let Some((_, items)) = &mut module.content {
                marker.items(items);
            }
            quote!(#module)
        }
        Item::Impl(mut block) => {
            marker.impl_items(&mut block);
            quote!(#block)
        }
        other => quote!(#other),
    }
}

/// The error for `#[observe] mod name;`: the attribute cannot see into another file.
pub(crate) fn outline_module(module: &ItemMod) -> syn::Error {
    syn::Error::new_spanned(
        crate::pair(&module.mod_token, &module.ident),
        "#[observe] on a module needs its body here (`mod name { .. }`): an attribute cannot see into \
         another file; put #[observe(...)] on the functions of that file instead",
    )
}
