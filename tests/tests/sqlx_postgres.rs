//! sqlx against a real PostgreSQL server (started by `.ci/run`): statements are reported on the caller's own
//! task, the other path from SQLite's worker thread. Set `OBSERVE_TEST_POSTGRES_URL` to run it locally; on CI
//! (`CI` set) a missing server is a failure, not a skip.

use observe::observe;
use observe_tests::StatsdReceiver;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

#[observe(handler)]
async fn customers_with_orders(pool: &PgPool, schema: &str) -> Result<usize, sqlx::Error> {
    let customers = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {schema}.customers ORDER BY id"
    )))
    .fetch_all(pool)
    .await?;
    let mut orders = 0;
    for customer in customers {
        let id: i32 = customer.get(0);
        orders += sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {schema}.orders WHERE customer_id = $1"
        )))
        .bind(id)
        .fetch_all(pool)
        .await?
        .len();
    }
    Ok(orders)
}

#[observe(handler)]
async fn fan_out(pool: &PgPool, schema: &str) -> Result<i64, sqlx::Error> {
    let (a, b) = tokio::join!(count(pool, schema, "customers"), count(pool, schema, "orders"));
    Ok(a? + b?)
}

#[observe]
async fn count(pool: &PgPool, schema: &str, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {schema}.{table}")))
        .fetch_one(pool)
        .await
        .map(|row| row.get(0))
}

#[test]
fn postgres_statements_count_in_their_scope() {
    let Ok(url) = std::env::var("OBSERVE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide OBSERVE_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)"
        );
        eprintln!("skipped: set OBSERVE_TEST_POSTGRES_URL=postgres://user:pass@host/db to run this test");
        return;
    };
    let receiver = StatsdReceiver::bind().unwrap();
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .log_filter("warn")
        .init()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("observe_test_{}", std::process::id());
    let (orders, total) = runtime.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(2)
            .connect(&url)
            .await
            .unwrap();
        for statement in [
            format!("CREATE SCHEMA {schema}"),
            format!("CREATE TABLE {schema}.customers (id serial PRIMARY KEY, name text NOT NULL)"),
            format!("CREATE TABLE {schema}.orders (id serial PRIMARY KEY, customer_id int NOT NULL)"),
            format!("INSERT INTO {schema}.customers (name) SELECT 'c' || g FROM generate_series(1, 7) g"),
            format!("INSERT INTO {schema}.orders (customer_id) SELECT 1 + g % 7 FROM generate_series(1, 21) g"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&pool)
                .await
                .unwrap();
        }
        // Both connections open before any scope runs (a connection opened in a scope counts its set-up).
        let (a, b) = tokio::join!(pool.acquire(), pool.acquire());
        drop((a.unwrap(), b.unwrap()));
        let orders = customers_with_orders(&pool, &schema).await.unwrap();
        let total = fan_out(&pool, &schema).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        (orders, total)
    });
    assert_eq!((orders, total), (21, 28));
    observe::flush();
    let lines = receiver.lines();
    drop(guard);
    let queries = |scope: &str| observe_tests::distribution(&lines, "observe.scope.queries", scope);
    assert_eq!(queries("sqlx_postgres.customers_with_orders"), [(8.0, 1.0)]);
    assert_eq!(queries("sqlx_postgres.count"), [(1.0, 2.0)]);
    assert_eq!(queries("sqlx_postgres.fan_out"), [(2.0, 1.0)]);
    let n_plus_one: f64 = lines
        .iter()
        .filter(|l| l.name == "observe.scope.n_plus_one")
        .map(|l| l.value)
        .sum();
    assert_eq!(n_plus_one, 1.0);
    // PostgreSQL statements run on the caller's task, inside the scope: scopes never needed their span.
    assert!(!observe::sqlx::following_worker_threads());
}
