//! Expansion snapshots: what `#[observe]` generates for each shape of function, formatted as `cargo expand`
//! would show it. Review a changed expansion with `INSTA_UPDATE=always cargo test -p observe-macros` and
//! `git diff macros/src/snapshots/`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::observe_impl;

/// Snapshots `#[observe(args)] item` and its expansion, both formatted as `cargo expand` would show them.
/// Errors come out as `compile_error!` items after the untouched item, so they format too.
fn check(name: &str, args: TokenStream, item: TokenStream) {
    let input = format(quote!(#[observe(#args)] #item));
    let output = format(observe_impl(args, item, false));
    insta::with_settings!({ omit_expression => true, prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, format!("{input}\n// ---- expands to ----\n\n{output}"));
    });
}

fn format(tokens: TokenStream) -> String {
    let file = syn::parse2::<syn::File>(tokens.clone())
        .unwrap_or_else(|err| panic!("does not parse as items: {err}\n{tokens}"));
    prettyplease::unparse(&file)
}

#[test]
fn sync_fn_returning_result() {
    check(
        "sync_fn_returning_result",
        quote!(handler),
        quote! {
            pub fn get_order(id: u64) -> Result<String, AppError> {
                let order = load(id)?;
                Ok(order.name)
            }
        },
    );
}

#[test]
fn sync_fn_returning_unit() {
    check(
        "sync_fn_returning_unit",
        quote!(task),
        quote! {
            fn send_reminders() {
                tracing::info!("sending reminders");
            }
        },
    );
}

#[test]
fn async_fn() {
    check(
        "async_fn",
        quote!(handler),
        quote! {
            async fn get_order(id: u64) -> Result<String, AppError> {
                let order = load(id).await?;
                Ok(order.name)
            }
        },
    );
}

#[test]
fn fn_returning_impl_future() {
    check(
        "fn_returning_impl_future",
        quote!(task),
        quote! {
            fn later(x: u32) -> impl Future<Output = u32> + Send {
                async move { x + 1 }
            }
        },
    );
}

/// What `#[async_trait]` 0.1 (which runs first: it is on the `impl`) leaves for us to observe.
#[test]
fn async_trait_method() {
    check(
        "async_trait_method",
        quote!(handler),
        quote! {
            fn find<'life0, 'async_trait>(
                &'life0 self,
                id: u64,
            ) -> ::core::pin::Pin<Box<
                dyn ::core::future::Future<Output = Result<String, String>> + ::core::marker::Send + 'async_trait,
            >>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    if let ::core::option::Option::Some(__ret) =
                        ::core::option::Option::None::<Result<String, String>>
                    {
                        #[allow(unreachable_code)]
                        return __ret;
                    }
                    let __self = self;
                    let id = id;
                    let __ret: Result<String, String> = { Ok(__self.name(id)) };
                    #[allow(unreachable_code)]
                    __ret
                })
            }
        },
    );
}

#[test]
fn method_with_mut_self() {
    check(
        "method_with_mut_self",
        quote!(),
        quote! {
            fn push(&mut self, name: &str) -> &mut Self {
                self.names.push(name.to_owned());
                self
            }
        },
    );
}

#[test]
fn fields() {
    check(
        "fields",
        quote!(handler, fields(id, name)),
        quote! {
            fn with_fields(id: u64, name: &str, secret: &str) -> usize {
                id as usize + name.len() + secret.len()
            }
        },
    );
}

#[test]
fn budget_and_carrier() {
    check(
        "budget_and_carrier",
        quote!(task, max_queries = 20, carrier = job.carrier),
        quote! {
            async fn send_invoice(job: Job) -> Result<(), Error> {
                mailer().send(job.invoice).await
            }
        },
    );
}

#[test]
fn crate_path() {
    check(
        "crate_path",
        quote!(crate = renamed::obs),
        quote! {
            fn via_path() -> u8 {
                1
            }
        },
    );
}

#[test]
fn name_and_level() {
    check(
        "name_and_level",
        quote!(handler, name = "orders.get", level = "info"),
        quote! {
            fn get(id: u64) -> u64 {
                id
            }
        },
    );
}

#[test]
fn never_returns() {
    check(
        "never_returns",
        quote!(command),
        quote! {
            fn serve() -> ! {
                std::process::exit(0)
            }
        },
    );
}

/// The function comes out untouched, followed by one `compile_error!` per problem.
#[test]
fn several_errors() {
    check(
        "several_errors",
        quote!(handler, task, colour = "blue", level = "loud", fields(missing)),
        quote! {
            const fn get() -> u32 {
                1
            }
        },
    );
}

#[test]
fn not_a_function() {
    check(
        "not_a_function",
        quote!(handler),
        quote! {
            struct Orders {
                names: Vec<String>,
            }
        },
    );
}

/// After a bad argument, parsing resumes at the next comma: every problem is reported.
#[test]
fn argument_errors_recover() {
    check(
        "argument_errors_recover",
        quote!(
            handler = true,
            name,
            level = info,
            fields = id,
            crate,
            fields(id, 3, self.id, id),
            skip(secret),
            nmae = "x",
            "literal"
        ),
        quote! {
            fn get(&self, id: u64, secret: &str) {}
        },
    );
}

/// With observability compiled out (`observe/disabled`) the item is left alone, but its misuses are still
/// errors: code must not compile only while observability is off.
#[test]
fn compiled_out_misuses_are_still_errors() {
    for (args, item, error) in [
        (
            quote!(fields(nope)),
            quote!(
                fn f() {}
            ),
            "nope",
        ),
        (
            quote!(),
            quote!(
                const fn g() {}
            ),
            "const",
        ),
        (
            quote!(name = "x"),
            quote!(
                mod m {}
            ),
            "name",
        ),
    ] {
        let output = observe_impl(args.clone(), item.clone(), true).to_string();
        assert!(output.contains("compile_error"), "#[observe({args})] {item}: {output}");
        assert!(output.contains(error), "#[observe({args})] {item}: {output}");
    }
    // A correct use stays as it was.
    let output = observe_impl(
        quote!(handler),
        quote!(
            fn ok() {}
        ),
        true,
    )
    .to_string();
    assert!(!output.contains("compile_error"), "{output}");
}

/// The expansion of `#[observe(args)] item` as token text (`disabled`: observability compiled out).
fn expanded(args: TokenStream, item: TokenStream, disabled: bool) -> String {
    observe_impl(args, item, disabled).to_string()
}

/// Argument errors that used to reach rustc as a confusing type error or a wrong hint.
#[test]
fn budget_suffixes_and_pattern_arguments_are_explained() {
    let output = expanded(
        quote!(max_queries = 20u8),
        quote!(
            fn f() {}
        ),
        false,
    );
    assert!(output.contains("without a suffix"), "{output}");
    let output = expanded(
        quote!(max_queries = 20u32),
        quote!(
            fn f() {}
        ),
        false,
    );
    assert!(!output.contains("compile_error"), "{output}");
    let output = expanded(
        quote!(fields(a)),
        quote!(
            fn f((a, b): (u32, u32)) {}
        ),
        false,
    );
    assert!(output.contains("only patterns"), "{output}");
    let output = expanded(
        quote!(fields(c)),
        quote!(
            fn f(x: u8, (a, b): (u32, u32)) {}
        ),
        false,
    );
    assert!(output.contains("named arguments are `x`"), "{output}");
}

/// Compiled out, a `crate = path` is still used, so that the user's `use observe as path;` stays used.
#[test]
fn compiled_out_crate_paths_stay_used() {
    let output = expanded(
        quote!(crate = obs),
        quote!(
            fn f() {}
        ),
        true,
    );
    assert!(output.contains("use obs :: __private as _"), "{output}");
    let output = expanded(
        quote!(crate = obs),
        quote!(
            mod m {
                fn f() {}
            }
        ),
        true,
    );
    // Inside a module (paths resolve there, as for the observed functions), next to an `impl`.
    assert!(
        output.starts_with("mod m { const _ : () = { use obs :: __private as _ ; } ;"),
        "{output}"
    );
    let output = expanded(
        quote!(crate = obs),
        quote!(
            impl S {
                fn f() {}
            }
        ),
        true,
    );
    assert!(
        output.starts_with("const _ : () = { use obs :: __private as _ ; } ; impl S"),
        "{output}"
    );
}

/// `#[observe::skip]` on an `impl`, a trait or a module inside an observed module skips all of it.
#[test]
fn skip_on_a_nested_container_skips_all_of_it() {
    let output = observe_impl(
        quote!(handler),
        quote!(
            mod m {
                fn observed() {}
                #[observe::skip]
                impl S {
                    fn skipped() {}
                }
                #[observe::skip]
                mod inner {
                    fn skipped_too() {}
                }
            }
        ),
        false,
    );
    let text = format(output);
    let marked = text.matches("observe(handler)").count();
    assert_eq!(marked, 1, "only `observed` is marked:\n{text}");
    assert!(!text.contains("::skip"), "the skip attributes are consumed:\n{text}");
}
