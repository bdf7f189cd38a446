//! Parsing and validating the arguments of `#[observe(...)]`. Every problem is collected, each spanned at the
//! offending token, and reported together: after a bad argument, parsing resumes at the next comma.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Path, Token};

const KEYS: &[&str] = &[
    "handler",
    "task",
    "command",
    "name",
    "level",
    "fields",
    "max_queries",
    "carrier",
    "crate",
];

const EXPECTED: &str = "expected one of: `handler`, `task`, `command`, `name = \"...\"`, \
                        `level = \"...\"`, `fields(arg, ...)`, `max_queries = N`, `carrier = expr`, `crate = path`";

const LEVELS: &str = "expected one of: \"trace\", \"debug\", \"info\", \"warn\", \"error\"";

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
    /// `max_queries = N`: the query budget of one execution.
    pub(crate) max_queries: Option<syn::LitInt>,
    /// `carrier = expr`: resume the trace a job carries (an `observe::Carrier`, an `Option` of one, or its text).
    pub(crate) carrier: Option<syn::Expr>,
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
        self.krate.clone().unwrap_or_else(|| syn::parse_quote!(::observe))
    }

    /// One `key`, `key = value` or `key(...)`. A recoverable problem goes to `self.errors`; an `Err` means the
    /// rest of this argument cannot be read and is skipped.
    fn parse_one(&mut self, input: ParseStream<'_>, seen: &mut Vec<(String, Ident)>) -> syn::Result<()> {
        let key = if input.peek(Token![crate]) {
            let token: Token![crate] = input.parse()?;
            Ident::new("crate", token.span)
        } else if input.peek(Ident::peek_any) {
            input.call(Ident::parse_any)?
        } else {
            return Err(input.error(EXPECTED));
        };
        let key_name = key.to_string();
        let slot = match key_name.as_str() {
            "handler" | "task" | "command" => "kind",
            other => other,
        };
        if let Some((_, first)) = seen.iter().find(|(name, _)| name == slot) {
            let message = if slot == "kind" && *first != key {
                format!(
                    "`{first}` and `{key}` cannot both be given: a scope has one kind, \
                     `handler`, `task` or `command`"
                )
            } else {
                format!("duplicate argument `{key}`")
            };
            self.errors.push(syn::Error::new(key.span(), message));
        } else if KEYS.contains(&key_name.as_str()) {
            seen.push((slot.to_owned(), key.clone()));
        }
        match key_name.as_str() {
            "handler" | "task" | "command" => {
                if input.peek(Token![=]) || input.peek(syn::token::Paren) {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("`{key}` takes no value: write `#[observe({key})]`"),
                    ));
                }
                let kind = match key_name.as_str() {
                    "handler" => Kind::Handler,
                    "task" => Kind::Task,
                    _ => Kind::Command,
                };
                self.kind.get_or_insert((kind, key));
            }
            "name" => {
                let lit = string_value(input, &key, "name = \"orders.get\"")?;
                if lit.value().trim().is_empty() {
                    self.errors
                        .push(syn::Error::new(lit.span(), "the scope name cannot be empty"));
                }
                self.name.get_or_insert(lit);
            }
            "level" => {
                let lit = string_value(input, &key, "level = \"info\"")?;
                match parse_level(&lit.value()) {
                    Some(level) => {
                        self.level.get_or_insert((level, lit));
                    }
                    None => self.errors.push(syn::Error::new(
                        lit.span(),
                        format!("unknown level {:?}; {LEVELS}", lit.value()),
                    )),
                }
            }
            "fields" => {
                if !input.peek(syn::token::Paren) {
                    return Err(syn::Error::new(
                        key.span(),
                        "`fields` lists argument names in parentheses: `fields(id, name)`",
                    ));
                }
                let content;
                syn::parenthesized!(content in input);
                self.parse_fields(&content);
            }
            "max_queries" => {
                if !input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        key.span(),
                        "`max_queries` takes a number: `max_queries = 20`",
                    ));
                }
                input.parse::<Token![=]>()?;
                let lit: syn::LitInt = input
                    .parse()
                    .map_err(|e| syn::Error::new(e.span(), "`max_queries` takes a number: `max_queries = 20`"))?;
                match lit.base10_parse::<u32>() {
                    // The budget is a `u32`: `20u8` would be a type error later, at the literal, about a type
                    // the user never chose.
                    Ok(_) if !matches!(lit.suffix(), "" | "u32") => self.errors.push(syn::Error::new(
                        lit.span(),
                        "`max_queries` is a `u32`: write the number without a suffix (`max_queries = 20`)",
                    )),
                    Ok(n) if n > 0 => {
                        self.max_queries.get_or_insert(lit);
                    }
                    _ => self.errors.push(syn::Error::new(
                        lit.span(),
                        "`max_queries` is a whole number from 1 to 4294967295",
                    )),
                }
            }
            "carrier" => {
                if !input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        key.span(),
                        "`carrier` takes the expression of the job's carrier: `carrier = job.carrier`",
                    ));
                }
                input.parse::<Token![=]>()?;
                let expr: syn::Expr = input.parse()?;
                self.carrier.get_or_insert(expr);
            }
            "crate" => {
                if !input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        key.span(),
                        "`crate` takes the path of the observe crate: `crate = my_reexport::observe`",
                    ));
                }
                input.parse::<Token![=]>()?;
                let path = if input.peek(LitStr) {
                    let lit: LitStr = input.parse()?;
                    lit.parse::<Path>()?
                } else {
                    Path::parse_mod_style(input)?
                };
                self.krate.get_or_insert(path);
            }
            _ => {
                let hint = match key_name.as_str() {
                    "skip" | "skip_all" => " (no argument is recorded unless listed in `fields(..)`)".to_owned(),
                    _ => similar_key(&key_name)
                        .map(|similar| format!(" (did you mean `{similar}`?)"))
                        .unwrap_or_default(),
                };
                self.errors.push(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{key}`{hint}; {EXPECTED}"),
                ));
                skip_value(input);
            }
        }
        Ok(())
    }

    /// The names inside `fields(...)`; never fails, so that a bad entry does not hide the others.
    fn parse_fields(&mut self, content: ParseStream<'_>) {
        while !content.is_empty() {
            let start = content.cursor().span();
            let name = if content.peek(Ident::peek_any) {
                content.call(Ident::parse_any).ok()
            } else {
                None
            };
            match name {
                Some(name) if content.is_empty() || content.peek(Token![,]) => {
                    if self.fields.iter().any(|f| f == &name) {
                        self.errors.push(syn::Error::new(
                            name.span(),
                            format!("`{name}` is listed twice in fields(..)"),
                        ));
                    } else {
                        self.fields.push(name);
                    }
                }
                _ => self.errors.push(syn::Error::new(
                    start,
                    "expected the name of an argument of the function: `fields(id, name)`",
                )),
            }
            skip_value(content);
            if content.parse::<Option<Token![,]>>().is_err() {
                return;
            }
        }
    }
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut seen = Vec::new();
        while !input.is_empty() {
            if let Err(err) = args.parse_one(input, &mut seen) {
                args.errors.push(err);
                skip_value(input);
            }
            if input.is_empty() {
                break;
            }
            if let Err(err) = input.parse::<Token![,]>() {
                args.errors.push(err);
                skip_value(input);
                input.parse::<Option<Token![,]>>()?;
            }
        }
        Ok(args)
    }
}

/// `= "..."` after `key`; `example` shows the expected form in the error.
fn string_value(input: ParseStream<'_>, key: &Ident, example: &str) -> syn::Result<LitStr> {
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` takes a string: `{example}`"),
        ));
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitStr) {
        input.parse()
    } else {
        Err(input.error(format!("expected a string literal: `{example}`")))
    }
}

/// Skips what is left of the current argument (`= value`, `(...)`, anything up to the next comma) so that
/// the next ones are still checked.
fn skip_value(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<proc_macro2::TokenTree>().is_err() {
            return;
        }
    }
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

/// A valid key close to a misspelt one (at most two edits away).
fn similar_key(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .copied()
        .map(|candidate| (edit_distance(key, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}
