//! Procedural macros of [observe](https://docs.rs/observe). Depend on `observe`, not on this crate: it
//! re-exports the macro and holds the runtime the generated code calls.

use proc_macro::TokenStream;

mod args;
mod asyncness;
mod expand;

/// Observes every call of a function as a scope: trace ID in every log line, duration and outcome metrics.
///
/// See the documentation of `observe::observe` for the arguments and examples.
#[proc_macro_attribute]
pub fn observe(args: TokenStream, item: TokenStream) -> TokenStream {
    observe_impl(args.into(), item.into()).into()
}

fn observe_impl(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let parsed_args = syn::parse2::<args::Args>(args);
    let function = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "#[observe] goes on a function (`fn` or `async fn`, free or in an `impl`)",
            );
            return with_errors(item, [err]);
        }
    };
    let args = match parsed_args {
        Ok(args) => args,
        Err(err) => return with_errors(item, [err]),
    };
    let mut errors = args.errors.clone();
    errors.extend(expand::validate(&args, &function));
    if !errors.is_empty() {
        return with_errors(item, errors);
    }
    expand::expand(&args, function)
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
