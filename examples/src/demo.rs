//! The demo shop: an axum service on loopback with an embedded SQLite database (sqlx), observed handlers
//! (one with a deliberate N+1 loop, one that enqueues a background job), a worker that resumes the job's trace,
//! and a CLI command; a local StatsD receiver turns what observe sends into a per-scope table.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use observe::{observe, Carrier};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::ConnectOptions;
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, Notify};

/// How to run the demo.
pub struct Options {
    /// `None`: the scripted burst, then exit. `Some(addr)`: serve there until Ctrl-C.
    pub serve: Option<SocketAddr>,
    /// The observe configuration to start from (the demo sets the StatsD address to its local receiver).
    pub config: observe::Config,
    /// Where the SQLite database goes.
    pub database: std::path::PathBuf,
}

/// What the scripted burst did, to compare with what the metrics say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// `GET /products` requests.
    pub list_products: usize,
    /// `GET /orders/{id}` requests, of which `missing` answered 404.
    pub get_order: usize,
    /// `GET /orders/{id}` requests for orders that do not exist.
    pub missing: usize,
    /// `GET /orders` requests (the N+1 page).
    pub list_orders: usize,
    /// `POST /orders` requests (each enqueues a confirmation job).
    pub create_order: usize,
    /// The trace ID of the first `POST /orders`, as the server answered it (`X-Request-ID`).
    pub first_order_trace: String,
}

/// The demo's result: the table, what it was built from, and what the script did.
pub struct Report {
    /// The per-scope table, as printed.
    pub table: String,
    /// The metrics received.
    pub view: observe_view::View,
    /// What the script did.
    pub script: Script,
}

#[derive(Clone)]
struct Shop {
    db: SqlitePool,
    jobs: mpsc::UnboundedSender<Job>,
}

struct Job {
    order: i64,
    carrier: Option<Carrier>,
}

type Reply = Result<String, StatusCode>;

fn internal(err: sqlx::Error) -> StatusCode {
    tracing::error!(%err, "database error");
    StatusCode::INTERNAL_SERVER_ERROR
}

#[observe(handler)]
async fn list_products(State(shop): State<Shop>) -> Reply {
    let rows = sqlx::query("SELECT name, price_cents FROM products ORDER BY id")
        .fetch_all(&shop.db)
        .await
        .map_err(internal)?;
    tracing::info!(products = rows.len(), "listed products");
    Ok(rows
        .iter()
        .map(|r| format!("{} {}\n", r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect())
}

#[observe(handler)]
async fn get_order(State(shop): State<Shop>, Path(id): Path<i64>) -> Reply {
    let order = sqlx::query("SELECT customer FROM orders WHERE id = ?")
        .bind(id)
        .fetch_all(&shop.db)
        .await
        .map_err(internal)?;
    let Some(order) = order.first() else {
        tracing::warn!(order = id, "no such order");
        return Err(StatusCode::NOT_FOUND);
    };
    let items = sqlx::query(
        "SELECT p.name, i.quantity FROM order_items i JOIN products p ON p.id = i.product_id WHERE i.order_id = ?",
    )
    .bind(id)
    .fetch_all(&shop.db)
    .await
    .map_err(internal)?;
    tracing::info!(order = id, items = items.len(), "served order");
    Ok(format!(
        "order {id} for {}: {} items\n",
        order.get::<String, _>(0),
        items.len()
    ))
}

/// The slow page: one query for the orders, then one per order for its items (the N+1 loop observe flags).
#[observe(handler)]
async fn list_orders(State(shop): State<Shop>) -> Reply {
    let orders = sqlx::query("SELECT id FROM orders ORDER BY id DESC LIMIT 8")
        .fetch_all(&shop.db)
        .await
        .map_err(internal)?;
    let mut lines = String::new();
    for order in &orders {
        let id: i64 = order.get(0);
        let items = sqlx::query("SELECT quantity FROM order_items WHERE order_id = ?")
            .bind(id)
            .fetch_all(&shop.db)
            .await
            .map_err(internal)?;
        lines.push_str(&format!("order {id}: {} items\n", items.len()));
    }
    Ok(lines)
}

#[observe(handler)]
async fn create_order(State(shop): State<Shop>, Path(customer): Path<String>) -> Reply {
    let mut tx = shop.db.begin().await.map_err(internal)?;
    let id: i64 = sqlx::query("INSERT INTO orders (customer) VALUES (?) RETURNING id")
        .bind(&customer)
        .fetch_one(&mut *tx)
        .await
        .map_err(internal)?
        .get(0);
    sqlx::query("INSERT INTO order_items (order_id, product_id, quantity) VALUES (?, 1, 2), (?, 3, 1)")
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    tracing::info!(order = id, "order created, confirmation queued");
    let _ = shop.jobs.send(Job {
        order: id,
        carrier: Carrier::current(),
    });
    Ok(format!("order {id} created\n"))
}

/// The background worker's job: runs in the trace of the request that queued it.
#[observe(task, carrier = job.carrier)]
async fn send_confirmation(db: &SqlitePool, job: Job) -> Result<(), sqlx::Error> {
    let customer: String = sqlx::query("SELECT customer FROM orders WHERE id = ?")
        .bind(job.order)
        .fetch_all(db)
        .await?
        .first()
        .map(|row| row.get(0))
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(2)).await;
    tracing::info!(order = job.order, %customer, "confirmation email sent");
    Ok(())
}

/// The CLI command of the shop: the day's totals, run once the burst is over.
#[observe(command)]
async fn daily_report(db: &SqlitePool) -> Result<(), sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(DISTINCT o.id), coalesce(sum(i.quantity * p.price_cents), 0) FROM orders o \
         JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id",
    )
    .fetch_all(db)
    .await?;
    let (orders, cents): (i64, i64) = row.first().map(|r| (r.get(0), r.get(1))).unwrap_or_default();
    tracing::info!(
        orders,
        revenue = format!("{}.{:02} EUR", cents / 100, cents % 100),
        "daily report"
    );
    Ok(())
}

async fn database(path: &std::path::Path) -> anyhow::Result<SqlitePool> {
    let _ = std::fs::remove_file(path);
    // observe counts each statement with SQLite's own trace hook, on sqlx's worker thread, in the scope that
    // sent it; sqlx's per-statement log events are not needed for that, so they are off (cheaper).
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(4)
        .after_connect(|conn, _| Box::pin(observe::sqlx::trace_sqlite(conn)))
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .log_statements(log::LevelFilter::Off),
        )
        .await
        .context("opening the demo database")?;
    for statement in [
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL)",
        "CREATE TABLE order_items (order_id INTEGER NOT NULL, product_id INTEGER NOT NULL, quantity INTEGER NOT NULL)",
        "INSERT INTO products (name, price_cents) VALUES ('tea', 450), ('coffee', 600), ('cake', 350), ('scone', 275)",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    for customer in ["ada", "grace", "edsger", "barbara", "donald", "frances"] {
        let id: i64 = sqlx::query("INSERT INTO orders (customer) VALUES (?) RETURNING id")
            .bind(customer)
            .fetch_one(&pool)
            .await?
            .get(0);
        for product in 1..=3 {
            sqlx::query("INSERT INTO order_items (order_id, product_id, quantity) VALUES (?, ?, 1)")
                .bind(id)
                .bind(product)
                .execute(&pool)
                .await?;
        }
    }
    Ok(pool)
}

fn app(shop: Shop) -> Router {
    Router::new()
        .route("/products", get(list_products))
        .route("/orders", get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/customers/{customer}/orders", axum::routing::post(create_order))
        .route_layer(observe::tower::ObserveLayer::new())
        .with_state(shop)
}

/// Sends the scripted burst and returns what it did.
async fn script(base: &str) -> anyhow::Result<Script> {
    let client = reqwest::Client::new();
    let mut done = Script::default();
    let get = |path: String| client.get(format!("{base}{path}")).send();
    for round in 0..4 {
        for _ in 0..5 {
            get("/products".into()).await?.error_for_status()?;
            done.list_products += 1;
        }
        for id in [1, 2, 3, 99] {
            let status = get(format!("/orders/{id}")).await?.status();
            done.get_order += 1;
            if status == reqwest::StatusCode::NOT_FOUND {
                done.missing += 1;
            }
        }
        get("/orders".into()).await?.error_for_status()?;
        done.list_orders += 1;
        for customer in ["ada", "linus"] {
            let response = client
                .post(format!("{base}/customers/{customer}/orders"))
                .header("X-Request-ID", format!("demo-{round}-{customer}"))
                .send()
                .await?
                .error_for_status()?;
            if done.first_order_trace.is_empty() {
                done.first_order_trace = observe::trace_id_from_request_id(&format!("demo-{round}-{customer}"))
                    .map(|id| id.to_string())
                    .unwrap_or_default();
            }
            let _ = response.text().await?;
            done.create_order += 1;
        }
    }
    Ok(done)
}

/// Runs the demo. See the crate's `demo.rs` example for the command line.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let receiver = observe_view::Receiver::bind("127.0.0.1:0").context("binding the local StatsD receiver")?;
    let guard = options
        .config
        .statsd_addr(receiver.addr().to_string())
        .flush_interval(Duration::from_millis(500))
        .init()
        .context("starting observe")?;

    let db = database(&options.database).await?;
    let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
    let pending = Arc::new((AtomicUsize::new(0), Notify::new()));
    let worker = {
        let (db, pending) = (db.clone(), pending.clone());
        observe::spawn(async move {
            while let Some(job) = queue.recv().await {
                if let Err(err) = send_confirmation(&db, job).await {
                    tracing::error!(%err, "confirmation failed");
                }
                pending.0.fetch_add(1, Ordering::SeqCst);
                pending.1.notify_waiters();
            }
        })
    };
    let shop = Shop { db: db.clone(), jobs };
    let listener = tokio::net::TcpListener::bind(options.serve.unwrap_or_else(|| ([127, 0, 0, 1], 0).into()))
        .await
        .context("binding the shop's address")?;
    let addr = listener.local_addr()?;
    let server = observe::spawn(async move { axum::serve(listener, app(shop)).await });

    let script = if options.serve.is_some() {
        println!("the shop listens on http://{addr} (GET /products, /orders, /orders/{{id}}; POST /customers/{{name}}/orders)");
        println!(
            "metrics go to a local receiver on {}; Ctrl-C prints the table and stops",
            receiver.addr()
        );
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        Script::default()
    } else {
        let done = script(&format!("http://{addr}")).await?;
        // Wait for the worker to confirm every order.
        while pending.0.load(Ordering::SeqCst) < done.create_order {
            let notified = pending.1.notified();
            if pending.0.load(Ordering::SeqCst) >= done.create_order {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        done
    };
    server.abort();
    worker.abort();
    daily_report(&db).await.context("the daily report")?;
    db.close().await;
    drop(guard);
    let view = receiver.settle(Duration::from_millis(150), Duration::from_secs(5));
    let _ = std::fs::remove_file(&options.database);
    Ok(Report {
        table: view.render(),
        view,
        script,
    })
}
