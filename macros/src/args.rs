//! Parsing and validating the arguments of `#[observe(...)]`. Every problem is collected, each spanned at the
//! offending token, and reported together.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Path, Token};

const EXPECTED: &str = "expected one of: `handler`, `task`, `command`, `name = \"...\"`, \
                        `level = \"...\"`, `fields(arg, ...)`, `crate = path`";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Function,
    Handler,
    Task,
    Command,
}

impl Kind {
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Kind::Function => "Function",
            Kind::Handler => "Handler",
            Kind::Task => "Task",
            Kind::Command => "Command",
        }
    }
}

/// The parsed attribute, before it meets the function it is attached to.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) kind: Option<(Kind, Ident)>,
    pub(crate) name: Option<LitStr>,
    pub(crate) level: Option<(&'static str, LitStr)>,
    pub(crate) fields: Vec<Ident>,
    pub(crate) krate: Option<Path>,
    /// Every problem found; parsing goes on after one so that all are reported at once.
    pub(crate) errors: Vec<syn::Error>,
}

impl Args {
    pub(crate) fn kind(&self) -> Kind {
        self.kind.as_ref().map_or(Kind::Function, |(kind, _)| *kind)
    }

    pub(crate) fn level(&self) -> &'static str {
        self.level.as_ref().map_or("DEBUG", |(level, _)| level)
    }

    pub(crate) fn krate(&self) -> Path {
        self.krate
            .clone()
            .unwrap_or_else(|| syn::parse_quote!(::observe))
    }
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut seen: Vec<(String, Span)> = Vec::new();
        while !input.is_empty() {
            let key = if input.peek(Token![crate]) {
                let token: Token![crate] = input.parse()?;
                Ident::new("crate", token.span)
            } else {
                input.call(Ident::parse_any)?
            };
            let key_name = key.to_string();
            let slot = match key_name.as_str() {
                "handler" | "task" | "command" => "kind",
                other => other,
            };
            if let Some((_, first)) = seen.iter().find(|(name, _)| name == slot) {
                let mut err = syn::Error::new(
                    key.span(),
                    if slot == "kind" {
                        "a scope has one kind: `handler`, `task` or `command`, given once".to_owned()
                    } else {
                        format!("duplicate argument `{key_name}`")
                    },
                );
                err.combine(syn::Error::new(*first, "first given here"));
                args.errors.push(err);
            } else {
                seen.push((slot.to_owned(), key.span()));
            }
            match key_name.as_str() {
                "handler" | "task" | "command" => {
                    let kind = match key_name.as_str() {
                        "handler" => Kind::Handler,
                        "task" => Kind::Task,
                        _ => Kind::Command,
                    };
                    if args.kind.is_none() {
                        args.kind = Some((kind, key));
                    }
                }
                "name" => {
                    input.parse::<Token![=]>()?;
                    let lit: LitStr = input.parse()?;
                    if lit.value().trim().is_empty() {
                        args.errors
                            .push(syn::Error::new(lit.span(), "the scope name cannot be empty"));
                    }
                    args.name.get_or_insert(lit);
                }
                "level" => {
                    input.parse::<Token![=]>()?;
                    let lit: LitStr = input.parse()?;
                    match parse_level(&lit.value()) {
                        Some(level) => {
                            args.level.get_or_insert((level, lit));
                        }
                        None => args.errors.push(syn::Error::new(
                            lit.span(),
                            "unknown level; expected one of: \"trace\", \"debug\", \"info\", \"warn\", \"error\"",
                        )),
                    }
                }
                "fields" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let names = content.parse_terminated(Ident::parse_any, Token![,])?;
                    for name in names {
                        if args.fields.iter().any(|f| f == &name) {
                            args.errors.push(syn::Error::new(
                                name.span(),
                                format!("`{name}` is listed twice in fields(..)"),
                            ));
                        } else {
                            args.fields.push(name);
                        }
                    }
                }
                "crate" => {
                    input.parse::<Token![=]>()?;
                    let path = if input.peek(LitStr) {
                        let lit: LitStr = input.parse()?;
                        lit.parse::<Path>()?
                    } else {
                        Path::parse_mod_style(input)?
                    };
                    args.krate.get_or_insert(path);
                }
                _ => {
                    args.errors.push(syn::Error::new(
                        key.span(),
                        format!("unknown argument `{key_name}`; {EXPECTED}"),
                    ));
                    skip_value(input)?;
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// Skips what follows an unknown argument (`= value` or `(...)`) so that the next ones are still checked.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

fn parse_level(text: &str) -> Option<&'static str> {
    Some(match text.to_ascii_lowercase().as_str() {
        "trace" => "TRACE",
        "debug" => "DEBUG",
        "info" => "INFO",
        "warn" => "WARN",
        "error" => "ERROR",
        _ => return None,
    })
}
