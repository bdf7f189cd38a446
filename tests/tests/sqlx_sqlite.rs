//! sqlx against a real SQLite database: statements are counted into the scope that ran them although sqlx runs
//! them on its worker thread, and although the log filter (`info`) would not show sqlx's debug events.

use observe::observe;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

async fn shop() -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(std::env::temp_dir().join(format!("observe-sqlx-{}.db", std::process::id())))
                .create_if_missing(true),
        )
        .await
        .unwrap();
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, sku TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    for order in 1..=12i64 {
        sqlx::query("INSERT INTO orders (id, customer) VALUES (?, ?)")
            .bind(order)
            .bind(format!("customer-{order}"))
            .execute(&pool)
            .await
            .unwrap();
        for item in 0..2 {
            sqlx::query("INSERT INTO items (order_id, sku) VALUES (?, ?)")
                .bind(order)
                .bind(format!("sku-{order}-{item}"))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    // Open both connections now: a connection opened inside a scope runs its set-up statement
    // (`PRAGMA foreign_keys = ON`) there, and rightly counts it; the assertions below count only the queries.
    let (a, b) = tokio::join!(pool.acquire(), pool.acquire());
    drop((a.unwrap(), b.unwrap()));
    pool
}

/// A scope that starts before the process's first SQLite connection: scope spans are off until the layer meets
/// sqlx's worker thread (the connection's `PRAGMA`s), and this scope takes its span up at its next poll.
#[observe(task)]
async fn open_the_shop() -> Result<(SqlitePool, i64), sqlx::Error> {
    let pool = shop().await;
    let row = sqlx::query("SELECT count(*) FROM orders").fetch_all(&pool).await?;
    Ok((pool, row[0].get(0)))
}

#[observe(handler)]
async fn orders_with_items(pool: &SqlitePool) -> Result<usize, sqlx::Error> {
    let orders = sqlx::query("SELECT id FROM orders ORDER BY id").fetch_all(pool).await?;
    let mut items = 0;
    for order in orders {
        let id: i64 = order.get(0);
        items += sqlx::query("SELECT sku FROM items WHERE order_id = ?")
            .bind(id)
            .fetch_all(pool)
            .await?
            .len();
    }
    Ok(items)
}

#[observe(handler)]
async fn totals(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let (orders, items) = tokio::join!(count(pool, "orders"), count(pool, "items"));
    Ok(orders? + items?)
}

#[observe]
async fn count(pool: &SqlitePool, table: &'static str) -> Result<i64, sqlx::Error> {
    let sql = match table {
        "orders" => "SELECT count(*) FROM orders",
        _ => "SELECT count(*) FROM items",
    };
    let row = sqlx::query(sql).fetch_all(pool).await?;
    Ok(row[0].get(0))
}

#[test]
fn sqlx_statements_count_in_the_scope_that_ran_them() {
    let observe_tests::Started {
        receiver,
        capture,
        guard,
    } = observe_tests::start();
    let runtime = observe_tests::runtime(2);
    let unscoped_before = observe::query::unscoped();
    let (items, total, orders) = runtime.block_on(async {
        assert!(
            !observe::sqlx::following_worker_threads(),
            "no scope opens a span before sqlx has run anything on a worker thread"
        );
        let (pool, orders) = open_the_shop().await.unwrap();
        assert!(observe::sqlx::following_worker_threads());
        let items = orders_with_items(&pool).await.unwrap();
        let total = totals(&pool).await.unwrap();
        (items, total, orders)
    });
    assert_eq!(orders, 12);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("observe-sqlx-{}.db", std::process::id())));
    assert_eq!(items, 24);
    assert_eq!(total, 12 + 24);
    observe::flush();
    let lines = receiver.lines();
    drop(guard);

    let queries = |scope: &str| observe_tests::distribution(&lines, "observe.scope.queries", scope);
    // The first connection's PRAGMAs ran before the scope had a span: unscoped (counted, not lost). Everything
    // after: 2 CREATE TABLE, 12 + 24 INSERT, the second connection's PRAGMAs, the final SELECT: 40, which is
    // sent as 41, the midpoint of its histogram bucket [40, 42).
    assert_eq!(observe::query::unscoped() - unscoped_before, 1);
    assert_eq!(queries("sqlx_sqlite.open_the_shop"), [(41.0, 1.0)]);
    assert_eq!(
        queries("sqlx_sqlite.orders_with_items"),
        [(13.0, 1.0)],
        "1 + one per order"
    );
    assert_eq!(queries("sqlx_sqlite.count"), [(1.0, 2.0)]);
    assert_eq!(
        queries("sqlx_sqlite.totals"),
        [(2.0, 1.0)],
        "the fan-out's two queries count in the parent"
    );
    let n_plus_one: f64 = lines
        .iter()
        .filter(|l| l.name == "observe.scope.n_plus_one" && l.tag("scope") == Some("sqlx_sqlite.orders_with_items"))
        .map(|l| l.value)
        .sum();
    assert_eq!(n_plus_one, 1.0);

    // The info filter kept sqlx's debug events out of the log, but not out of the count; the N+1 warning shows.
    let logged = capture.text();
    assert!(!logged.contains("sqlx::query"), "{logged}");
    assert!(logged.contains("N+1 queries"), "{logged}");
    assert!(logged.contains("SELECT sku FROM items WHERE order_id = ?"), "{logged}");
}
