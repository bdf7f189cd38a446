//! A request that enqueues background jobs, and workers that log with the request's trace ID.
//!
//! An axum service on loopback takes `POST /orders/{id}`. Its handler enqueues two jobs, each with an
//! `observe::Carrier` (the request's trace, as a W3C `traceparent`):
//!
//! - into a channel, read by a worker task that resumes the carrier (`observe::resume`);
//! - into a SQLite `jobs` table (the carrier is a text column), polled by a worker thread that resumes it
//!   (`Carrier::context().in_scope`).
//!
//! The example sends three requests with their own `X-Request-ID` and then stops. Every line a worker logs for
//! a request carries that request's trace ID. Run it with `cargo run --example jobs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use observe::{observe, Carrier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

#[derive(Clone)]
struct App {
    emails: mpsc::UnboundedSender<(u64, Carrier)>,
    db: Arc<Mutex<rusqlite::Connection>>,
}

#[observe(handler)]
async fn create_order(State(app): State<App>, Path(id): Path<u64>) -> String {
    tracing::info!(order = id, "order created, enqueueing jobs");
    let carrier = Carrier::current().expect("a handler runs in a trace");
    // Job 1: a channel to a worker task.
    let _ = app.emails.send((id, carrier));
    // Job 2: a row in a SQLite job table, with the carrier as text.
    let db = app.db.lock().unwrap_or_else(|p| p.into_inner());
    let inserted = db.execute(
        "INSERT INTO jobs (order_id, carrier) VALUES (?1, ?2)",
        (id as i64, carrier.to_string()),
    );
    if let Err(err) = inserted {
        tracing::error!(%err, "could not enqueue the indexing job");
    }
    format!("order {id} accepted\n")
}

#[observe(task)]
async fn send_confirmation(order: u64) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    tracing::info!(order, "confirmation email sent");
}

#[observe(task)]
fn index_order(db: &rusqlite::Connection, order: u64) -> rusqlite::Result<()> {
    db.execute("UPDATE jobs SET done = 1 WHERE order_id = ?1", [order as i64])?;
    tracing::info!(order, "order indexed for search");
    Ok(())
}

/// The table worker: claims pending rows and runs each inside the trace it carries. Not a scope itself (each
/// job is, in its request's trace): `#[observe::skip]` tells `cargo observe lint` so.
#[observe::skip]
fn table_worker(db: Arc<Mutex<rusqlite::Connection>>, expected: usize) {
    let mut done = 0;
    while done < expected {
        let pending: Vec<(i64, String)> = {
            let db = db.lock().unwrap_or_else(|p| p.into_inner());
            let mut statement = db
                .prepare("SELECT order_id, carrier FROM jobs WHERE done = 0 ORDER BY order_id")
                .expect("valid SQL");
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)));
            rows.and_then(Iterator::collect).unwrap_or_default()
        };
        for (order, carrier) in pending {
            // A carrier that does not parse (an old row, a hand-made one) still runs, in a trace of its own.
            let run = || index_order(&db.lock().unwrap_or_else(|p| p.into_inner()), order as u64);
            let result = match carrier.parse::<Carrier>() {
                Ok(carrier) => carrier.context().in_scope(run),
                Err(_) => run(),
            };
            if let Err(err) = result {
                tracing::error!(%err, order, "indexing failed");
            }
            done += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn send_post(addr: std::net::SocketAddr, id: u64) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST /orders/{id} HTTP/1.1\r\nHost: shop\r\nX-Request-ID: checkout-{id}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let agent = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let _guard = observe::Config::default()
        .statsd_addr(agent.local_addr()?.to_string())
        .init()?;

    let db = rusqlite::Connection::open_in_memory()?;
    db.execute_batch(
        "CREATE TABLE jobs (order_id INTEGER PRIMARY KEY, carrier TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0)",
    )?;
    observe::rusqlite::instrument(&db);
    let db = Arc::new(Mutex::new(db));
    let (emails, mut queue) = mpsc::unbounded_channel::<(u64, Carrier)>();

    let email_worker = observe::spawn(async move {
        while let Some((order, carrier)) = queue.recv().await {
            observe::resume(&carrier, send_confirmation(order)).await;
        }
    });
    let worker_db = db.clone();
    let table_worker = observe::thread::spawn(move || table_worker(worker_db, 3));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/orders/{id}", post(create_order))
        .route_layer(observe::tower::ObserveLayer::new())
        .with_state(App { emails, db });
    let server = observe::spawn(async move { axum::serve(listener, app).await });

    for id in 1..=3 {
        let response = send_post(addr, id).await?;
        let request_id = response
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap_or("?");
        println!("POST /orders/{id} -> X-Request-ID {request_id}");
    }
    let _ = observe::spawn_blocking(move || table_worker.join()).await;
    server.abort();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    email_worker.abort();
    Ok(())
}
