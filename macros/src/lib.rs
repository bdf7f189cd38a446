//! Procedural macros of [observe](https://docs.rs/observe). Depend on `observe`, not on this crate: it
//! re-exports the macro and holds the runtime the generated code calls.

use proc_macro::TokenStream;
use quote::ToTokens;

mod args;
mod asyncness;
mod container;
mod expand;
#[cfg(test)]
mod tests;

/// Observes every call of a function as a scope: trace ID in every log line, duration and outcome metrics.
/// On an inline `mod` or an `impl` block, observes every function inside.
///
/// See the documentation of `observe::observe` for the arguments and examples.
#[proc_macro_attribute]
pub fn observe(args: TokenStream, item: TokenStream) -> TokenStream {
    observe_impl(args.into(), item.into(), cfg!(feature = "disabled")).into()
}

/// Leaves a function out of the `#[observe(...)]` on its module or `impl` block. On its own it does nothing.
#[proc_macro_attribute]
pub fn skip(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    if args.is_empty() {
        return item;
    }
    let error = syn::Error::new_spanned(args, "#[observe::skip] takes no arguments").to_compile_error();
    let item = proc_macro2::TokenStream::from(item);
    quote::quote!(#item #error).into()
}

/// The whole macro on `proc_macro2` tokens, so that it can run outside of a compiler (snapshot tests);
/// `disabled`: observability compiled out (the `disabled` feature).
fn observe_impl(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
    disabled: bool,
) -> proc_macro2::TokenStream {
    let args_tokens = args.clone();
    let args = syn::parse2::<args::Args>(args).unwrap_or_else(|err| args::Args {
        errors: vec![err],
        ..args::Args::default()
    });
    let mut errors = args.errors.clone();
    if disabled {
        // Checked as when observability is on: a misuse must not compile only while it is compiled out.
        errors.extend(item_errors(&args, &item));
        // Observability compiled out: arguments are still checked, the item is left as it is, except that a
        // `carrier = expr` is still read, never evaluated (a field only the attribute reads is not dead code),
        // and a `crate = path` is still used (the user's `use observe as path;` must not become unused).
        let uses_krate = args
            .krate
            .as_ref()
            .map(|krate| quote::quote! { use #krate::__private as _; });
        let item = match syn::parse2::<syn::ItemFn>(item.clone()) {
            Ok(mut function) if errors.is_empty() => {
                if let Some(carrier) = &args.carrier {
                    function.block.stmts.insert(
                        0,
                        syn::parse_quote! {
                            if false {
                                let _ = &(#carrier);
                            }
                        },
                    );
                }
                if let Some(uses) = &uses_krate {
                    function.block.stmts.insert(0, syn::parse_quote!(#uses));
                }
                quote::ToTokens::into_token_stream(function)
            }
            // A module: the path is used inside it, where observed functions would resolve it. An `impl`
            // block: next to it, in the module its methods resolve paths in.
            Err(_) if errors.is_empty() && uses_krate.is_some() => match syn::parse2::<syn::Item>(item.clone()) {
                Ok(syn::Item::Mod(mut module)) if module.content.is_some() => {
                    if let Some((_, items)) = &mut module.content {
                        items.insert(0, syn::parse_quote!(const _: () = { #uses_krate };));
                    }
                    quote::ToTokens::into_token_stream(module)
                }
                _ => quote::quote! {
                    const _: () = { #uses_krate };
                    #item
                },
            },
            _ => item,
        };
        return with_errors(item, errors);
    }
    // A module or an `impl` block: every function inside gets the attribute.
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Mod(module)) if module.content.is_none() => {
            errors.push(container::outline_module(&module));
            return with_errors(item, errors);
        }
        Ok(container @ (syn::Item::Mod(_) | syn::Item::Impl(_))) => {
            let what = if matches!(container, syn::Item::Mod(_)) {
                "a module"
            } else {
                "an `impl` block"
            };
            errors.extend(container::validate(&args, what));
            if !errors.is_empty() {
                return with_errors(item, errors);
            }
            return container::expand(&args_tokens, &args, container);
        }
        _ => {}
    }
    let function = match parse_function(&item) {
        Ok(function) => function,
        Err(err) => {
            errors.push(err);
            return with_errors(item, errors);
        }
    };
    errors.extend(expand::validate(&args, &function));
    if !errors.is_empty() {
        return with_errors(item, errors);
    }
    expand::expand(&args, function)
}

/// What is wrong with the annotated item itself (the checks of the expansion, without expanding).
fn item_errors(args: &args::Args, item: &proc_macro2::TokenStream) -> Vec<syn::Error> {
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Mod(module)) if module.content.is_none() => vec![container::outline_module(&module)],
        Ok(syn::Item::Mod(_)) => container::validate(args, "a module"),
        Ok(syn::Item::Impl(_)) => container::validate(args, "an `impl` block"),
        _ => match parse_function(item) {
            Ok(function) => expand::validate(args, &function),
            Err(err) => vec![err],
        },
    }
}

const GOES_ON: &str =
    "#[observe] goes on functions (`fn` or `async fn`, free or in an `impl` block), inline modules and `impl` blocks";

/// The annotated function, or an error spanned at what the attribute was put on instead.
fn parse_function(item: &proc_macro2::TokenStream) -> syn::Result<syn::ItemFn> {
    use syn::Item;

    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => return Ok(function),
        Ok(parsed) => parsed,
        Err(_) => Item::Verbatim(item.clone()),
    };
    // Spanned from the item's keyword to its name: the attributes and body are not the problem.
    let (what, span) = match &parsed {
        Item::Struct(i) => ("a struct", pair(&i.struct_token, &i.ident)),
        Item::Enum(i) => ("an enum", pair(&i.enum_token, &i.ident)),
        Item::Union(i) => ("a union", pair(&i.union_token, &i.ident)),
        Item::Trait(i) => ("a trait", pair(&i.trait_token, &i.ident)),
        Item::Impl(i) => ("an `impl` block", pair(&i.impl_token, &i.self_ty)),
        Item::Mod(i) => ("a module", pair(&i.mod_token, &i.ident)),
        Item::Const(i) => ("a constant", pair(&i.const_token, &i.ident)),
        Item::Static(i) => ("a static", pair(&i.static_token, &i.ident)),
        Item::Type(i) => ("a type alias", pair(&i.type_token, &i.ident)),
        Item::Use(i) => ("a `use` declaration", i.use_token.to_token_stream()),
        Item::ForeignMod(i) => ("an `extern` block", i.abi.to_token_stream()),
        Item::Macro(i) => ("a macro", i.mac.path.to_token_stream()),
        _ => {
            // A function without a body (a trait method declaration, a foreign function).
            if let Ok(method) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
                let sig = &method.sig;
                return Err(syn::Error::new_spanned(
                    pair(&sig.fn_token, &sig.ident),
                    "#[observe] needs a function body; on a trait method declaration, put it on the \
                     implementations instead",
                ));
            }
            let first = item.clone().into_iter().next();
            return Err(syn::Error::new_spanned(first, GOES_ON));
        }
    };
    Err(syn::Error::new_spanned(span, format!("{GOES_ON}, not on {what}")))
}

/// Two tokens side by side: an error spanned over both covers the range from the first to the second.
pub(crate) fn pair(first: &impl ToTokens, second: &impl ToTokens) -> proc_macro2::TokenStream {
    let mut tokens = first.to_token_stream();
    second.to_tokens(&mut tokens);
    tokens
}

/// The original item, untouched (so the IDE keeps working), followed by every error.
fn with_errors(
    item: proc_macro2::TokenStream,
    errors: impl IntoIterator<Item = syn::Error>,
) -> proc_macro2::TokenStream {
    let errors = errors.into_iter().map(|e| e.to_compile_error());
    quote::quote! {
        #item
        #(#errors)*
    }
}
