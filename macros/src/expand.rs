//! Code generation for `#[observe]` on a function.
//!
//! The generated code only names the runtime through `<crate>::__private`, imported once at the top of the
//! function as `__observe_private`; keeps the user's tokens (and so their spans, for type errors) intact; and
//! uses hygienic (`mixed_site`) names for its own locals so that they can neither clash with nor be seen by
//! the user's code.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Pat, ReturnType, Type};

use crate::args::Args;
use crate::asyncness::{self, Shape};

/// The names the generated code gives its locals.
pub(crate) struct Names {
    pub(crate) scope: Ident,
    pub(crate) ret: Ident,
    pub(crate) future: Ident,
}

impl Names {
    fn new() -> Names {
        let hygienic = |name: &str| Ident::new(name, Span::mixed_site());
        Names {
            scope: hygienic("observe_scope"),
            ret: hygienic("observe_ret"),
            future: hygienic("observe_future"),
        }
    }
}

/// Checks the function against the arguments; every problem is returned.
pub(crate) fn validate(args: &Args, item: &ItemFn) -> Vec<syn::Error> {
    // In source order: the attribute's arguments first, then the signature.
    let mut errors = Vec::new();
    for field in &args.fields {
        if !has_argument(item, field) {
            let arguments = argument_names(item);
            let patterns = item.sig.inputs.len() - arguments.len();
            let hint = match (arguments.is_empty(), patterns) {
                (true, 0) => format!("`{}` takes no arguments", item.sig.ident),
                (true, _) => format!(
                    "`{}` takes only patterns (`(a, b): (u32, u32)`), which have no name to record: bind the \
                     argument to a name and destructure it in the body",
                    item.sig.ident
                ),
                (false, 0) => format!("its arguments are {}", arguments.join(", ")),
                (false, _) => format!(
                    "its named arguments are {} (patterns such as `(a, b): (u32, u32)` have no name to record)",
                    arguments.join(", ")
                ),
            };
            errors.push(syn::Error::new(
                field.span(),
                format!(
                    "`{field}` is not an argument of `{}`: fields(..) lists arguments to record; {hint}",
                    item.sig.ident
                ),
            ));
        }
    }
    if let Some(constness) = &item.sig.constness {
        errors.push(syn::Error::new(
            constness.span(),
            "#[observe] cannot be used on a `const fn`: observing reads the clock, which a const context cannot do",
        ));
    }
    if let Some(variadic) = &item.sig.variadic {
        errors.push(syn::Error::new(
            variadic.span(),
            "#[observe] cannot be used on a variadic function",
        ));
    }
    errors
}

/// The arguments `fields(..)` can name, quoted for an error message.
fn argument_names(item: &ItemFn) -> Vec<String> {
    item.sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Receiver(_) => Some("`self`".to_owned()),
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(p) => Some(format!("`{}`", p.ident)),
                _ => None,
            },
        })
        .collect()
}

fn has_argument(item: &ItemFn, name: &Ident) -> bool {
    item.sig.inputs.iter().any(|arg| match arg {
        FnArg::Receiver(_) => name == "self",
        FnArg::Typed(typed) => matches!(&*typed.pat, Pat::Ident(p) if p.ident.unraw() == name.unraw()),
    })
}

/// Generates the observed function.
pub(crate) fn expand(args: &Args, item: ItemFn) -> TokenStream {
    let names = Names::new();
    let krate = args.krate();
    // One `use` of the runtime: a wrong `crate = path` is one error, at the path, and the rest reads short.
    let private = Ident::new("__observe_private", Span::call_site());
    let private = quote!(#private);
    let ItemFn { attrs, vis, sig, block } = item;
    // `#![..]` written inside the body stays first inside the generated one; the others stay on the function.
    let (inner_attrs, attrs): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, syn::AttrStyle::Inner(_)));

    let site = site_static(args, &sig.ident, &private);
    let scope = &names.scope;
    let record_fields = record_fields(args, &names, &private);
    let classify = classify_closure(&names, &private);

    // The scope, its carrier (`carrier = expr`) and its fields. `mut` only where the scope is entered here or
    // resumes a carrier, so that no `unused_mut` fires.
    let carrier = args.carrier.as_ref().map(|expr| {
        quote! { #scope.set_carrier(#private::CarrierSource::carrier(&(#expr))); }
    });
    let open = |entered_here: bool| {
        let mutability = (entered_here || carrier.is_some()).then(|| quote!(mut));
        quote! {
            let #mutability #scope = #private::Scope::new(&__OBSERVE_SITE);
            #carrier
            #record_fields
        }
    };
    let body = match asyncness::shape(&sig, &block) {
        Shape::AsyncFn => {
            let fake_return = asyncness::typed_fake_return(&sig.output);
            let stmts = &block.stmts;
            let open = open(false);
            quote! {
                #open
                #private::ScopeFuture::new(
                    #scope,
                    async move {
                        #fake_return
                        #(#stmts)*
                    },
                    #classify,
                )
                .await
            }
        }
        Shape::ReturnsFuture => {
            let future = &names.future;
            let open = open(true);
            quote! {
                #open
                let #future = #scope.in_scope(move || #block);
                #private::ScopeFuture::new(#scope, #future, #classify)
            }
        }
        Shape::AsyncTrait { prefix, future } => {
            let open = open(false);
            quote! {
                #(#prefix)*
                #open
                ::std::boxed::Box::pin(#private::ScopeFuture::new(#scope, #future, #classify))
            }
        }
        Shape::Sync if matches!(&sig.output, ReturnType::Type(_, ty) if is_never(ty)) => {
            // Never returns normally: a panic still ends the scope (inside `in_scope`); `exit` ends the process.
            let open = open(true);
            quote! {
                #open
                #scope.in_scope(move || -> ! #block)
            }
        }
        Shape::Sync => {
            let ret = &names.ret;
            let closure_output = closure_output(&sig.output);
            let outcome = outcome_of(&names, &private);
            let open = open(true);
            quote! {
                #open
                let #ret = #scope.in_scope(move || #closure_output #block);
                #scope.finish(#outcome);
                #ret
            }
        }
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            #(#inner_attrs)*
            use #krate::__private as #private;
            #site
            #body
        }
    }
}

/// The static site of the function: kind, name, span level, fields and source location.
fn site_static(args: &Args, ident: &Ident, private: &TokenStream) -> TokenStream {
    let kind = format_ident!("{}", args.kind().variant());
    let level = format_ident!("{}", args.level());
    let span_name = ident.unraw().to_string();
    let name = match &args.name {
        Some(name) => quote!(#name),
        None => quote!(::core::concat!(::core::module_path!(), "::", #span_name)),
    };
    let fields = args.fields.iter().map(|f| f.unraw().to_string());
    // `line!()` spanned at the function's name reports the line of the `fn`, not of the attribute.
    let line = quote_spanned!(ident.span()=> ::core::line!());
    let max_queries = args.max_queries.as_ref().map(|n| quote!(.with_max_queries(#n)));
    quote! {
        static __OBSERVE_SITE: #private::Site = #private::Site::new(
            &__OBSERVE_SITE,
            #private::Kind::#kind,
            #name,
            #span_name,
            #private::Level::#level,
            &[#(#fields),*],
            ::core::module_path!(),
            ::core::file!(),
            #line,
        )#max_queries;
    }
}

/// Records `fields(..)` on the scope's span, formatting them only when the span is enabled.
fn record_fields(args: &Args, names: &Names, private: &TokenStream) -> TokenStream {
    if args.fields.is_empty() {
        return TokenStream::new();
    }
    let scope = &names.scope;
    let records = args.fields.iter().map(|field| {
        let name = field.unraw().to_string();
        // Located at the user's field name (hygiene unchanged), and the value coerced to `&dyn Debug` at the
        // argument: a missing `Debug` impl is one error, pointing at the field in the attribute.
        let span = field.span();
        let scope = Ident::new(&scope.to_string(), scope.span().located_at(span));
        let private = located_at(private.clone(), span);
        quote_spanned! {span=>
            #scope.record_field(#name, &#private::debug::<&dyn ::core::fmt::Debug>(&#field));
        }
    });
    quote! {
        if #scope.span_enabled() {
            #(#records)*
        }
    }
}

/// `Err(..)` is an error, anything else is ok: resolved at compile time from the concrete return type.
fn outcome_of(names: &Names, private: &TokenStream) -> TokenStream {
    let ret = &names.ret;
    quote! {
        {
            use #private::{AnyOutcome as _, ResultOutcome as _};
            (&#private::Probe(&#ret)).__observe_outcome()
        }
    }
}

fn classify_closure(names: &Names, private: &TokenStream) -> TokenStream {
    let ret = &names.ret;
    quote! {
        |#ret| {
            use #private::{AnyOutcome as _, ResultOutcome as _};
            (&#private::Probe(#ret)).__observe_outcome()
        }
    }
}

/// The closure around a sync body returns the function's type, so `?` and type errors behave as in the
/// original function, and a body that never returns (`loop { .. }`, `process::exit`) still has it (`()` when
/// none is declared: left to inference, the outcome's probe would pick `Result`). `impl Trait` cannot be written
/// there: those closures are left to inference.
fn closure_output(output: &ReturnType) -> TokenStream {
    match output {
        ReturnType::Type(arrow, ty) if !asyncness::contains_impl_trait(ty) && !is_never(ty) => {
            quote!(#arrow #ty)
        }
        ReturnType::Type(..) => TokenStream::new(),
        ReturnType::Default => quote!(-> ()),
    }
}

/// `tokens` with every span moved to `span`'s location, keeping their hygiene: errors in them point there.
fn located_at(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), located_at(group.stream(), span));
                inner.set_span(group.span().located_at(span));
                token = TokenTree::Group(inner);
            } else {
                token.set_span(token.span().located_at(span));
            }
            token
        })
        .collect()
}

fn is_never(ty: &Type) -> bool {
    matches!(ty, Type::Never(_))
}
