//! The demo: everything observe does, in one command, with no agent, database server or account.
//!
//! `cargo run --example demo` starts a small shop (axum on loopback, SQLite through sqlx), sends it a scripted
//! burst of requests, and prints the log lines (trace IDs joining web, worker and command) and a per-scope
//! table built from the real metric packets. `cargo run --example demo -- --serve [addr]` keeps serving
//! (default 127.0.0.1:3000) until Ctrl-C.

use observe_examples::demo;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let serve = match args.next().as_deref() {
        None => None,
        Some("--serve") => Some(args.next().as_deref().unwrap_or("127.0.0.1:3000").parse()?),
        Some(other) => anyhow::bail!("unknown argument {other:?}; usage: demo [--serve [host:port]]"),
    };
    let report = demo::run(demo::Options {
        serve,
        config: observe::Config::default(),
        database: std::env::temp_dir().join(format!("observe-demo-{}.db", std::process::id())),
    })
    .await?;
    let script = &report.script;
    if serve.is_none() {
        println!(
            "\nthe script sent {} requests: {} GET /products, {} GET /orders/{{id}} ({} missing), {} GET /orders, {} POST orders",
            script.list_products + script.get_order + script.list_orders + script.create_order,
            script.list_products,
            script.get_order,
            script.missing,
            script.list_orders,
            script.create_order
        );
    }
    println!("\nwhat observe sent ({} metric lines), per scope:\n", report.view.lines);
    print!("{}", report.table);
    Ok(())
}
