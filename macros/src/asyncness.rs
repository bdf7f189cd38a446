//! Recognising how a function produces its result: `async fn`, `fn -> impl Future`, the shape
//! `#[async_trait]` leaves behind, or a plain synchronous body.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Block, Expr, ReturnType, Signature, Stmt, Type, TypeImplTrait};

pub(crate) enum Shape {
    /// `async fn`: the body becomes an `async move` block run as one scope.
    AsyncFn,
    /// `fn .. -> impl Future<..>`: the scope starts at the call and ends when the future completes.
    ReturnsFuture,
    /// What `#[async_trait]` generates: `Box::pin(async move { .. })` as the last expression.
    AsyncTrait { prefix: Vec<Stmt>, future: Expr },
    /// Anything else.
    Sync,
}

pub(crate) fn shape(sig: &Signature, block: &Block) -> Shape {
    if sig.asyncness.is_some() {
        return Shape::AsyncFn;
    }
    if let Some(future) = async_trait_future(block) {
        let prefix = block.stmts[..block.stmts.len() - 1].to_vec();
        return Shape::AsyncTrait { prefix, future };
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if returns_impl_future(ty) {
            return Shape::ReturnsFuture;
        }
    }
    Shape::Sync
}

/// The `async move { .. }` inside a trailing `Box::pin(..)`, as `#[async_trait]` writes it.
fn async_trait_future(block: &Block) -> Option<Expr> {
    let Some(Stmt::Expr(Expr::Call(call), None)) = block.stmts.last() else {
        return None;
    };
    let Expr::Path(path) = &*call.func else {
        return None;
    };
    let segments: Vec<String> = path.path.segments.iter().map(|s| s.ident.to_string()).collect();
    let is_box_pin = segments.ends_with(&["Box".to_owned(), "pin".to_owned()]);
    if !is_box_pin || call.args.len() != 1 {
        return None;
    }
    match call.args.first() {
        Some(future @ Expr::Async(block)) if block.capture.is_some() => Some(future.clone()),
        _ => None,
    }
}

fn returns_impl_future(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(TypeImplTrait { bounds, .. }) => bounds.iter().any(|bound| {
            matches!(bound, syn::TypeParamBound::Trait(t)
                if t.path.segments.last().is_some_and(|s| s.ident == "Future"))
        }),
        Type::Paren(inner) => returns_impl_future(&inner.elem),
        _ => false,
    }
}

pub(crate) fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

/// An unreachable `return` of the declared type at the top of the async block: it fixes the block's output
/// type, so `?` and type errors behave as in the original `async fn` (tracing-attributes does the same).
/// Without a declared type it is `()`: a body that never returns (`loop { .. }`, a server) would otherwise leave
/// the type to the outcome's probe, which picks `Result`.
pub(crate) fn typed_fake_return(output: &ReturnType) -> TokenStream {
    let (ty, span) = match output {
        ReturnType::Type(_, ty) if contains_impl_trait(ty) || matches!(**ty, Type::Never(_)) => {
            return TokenStream::new()
        }
        // Spanned at the declared type: a body of the wrong type gets "return type inferred to be `T` here"
        // pointing at the signature, not at the attribute.
        ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
        ReturnType::Default => (quote!(()), Span::call_site()),
    };
    let unreachable = Ident::new("observe_unreachable", Span::mixed_site().located_at(span));
    quote_spanned! {span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::needless_return
        )]
        if false {
            let #unreachable: #ty = loop {};
            return #unreachable;
        }
    }
}
