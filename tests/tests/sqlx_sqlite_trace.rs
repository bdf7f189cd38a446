//! sqlx's SQLite connections timed by SQLite's own trace hook (`observe::sqlx::trace_sqlite`): statements count
//! in the scope that sent them with sqlx's statement events off, and are not counted twice with them on.

mod numbers;

use observe::observe;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Row, SqlitePool};

async fn pool(path: &std::path::Path, sqlx_events: bool) -> SqlitePool {
    let mut options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
    if !sqlx_events {
        options = options.log_statements(log::LevelFilter::Off);
    }
    SqlitePoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| Box::pin(observe::sqlx::trace_sqlite(conn)))
        .connect_with(options)
        .await
        .unwrap()
}

#[observe(handler)]
async fn count_rows(pool: &SqlitePool) -> i64 {
    let rows = sqlx::query("SELECT count(*) FROM numbers")
        .fetch_all(pool)
        .await
        .unwrap();
    rows[0].get(0)
}

/// One query per row: the N+1 loop.
#[observe(handler)]
async fn one_by_one(pool: &SqlitePool) -> i64 {
    let mut total = 0;
    for n in 1..=7i64 {
        let rows = sqlx::query("SELECT n FROM numbers WHERE n = ?")
            .bind(n % 3 + 1)
            .fetch_all(pool)
            .await
            .unwrap();
        total += rows[0].get::<i64, _>(0);
    }
    total
}

/// Inside a span of the user's: the worker enters that span, which holds the scope's carrier.
#[observe(task)]
async fn in_a_span(pool: &SqlitePool) -> i64 {
    use tracing::Instrument;
    async { count_rows(pool).await + sqlx::query("SELECT 1").fetch_all(pool).await.unwrap().len() as i64 }
        .instrument(tracing::warn_span!("batch"))
        .await
}

#[test]
fn sqlite_trace_hook_counts_each_statement_once_in_its_scope() {
    let receiver = observe_tests::StatsdReceiver::bind().expect("a loopback UDP socket");
    let capture = observe_tests::Capture::default();
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .log_writer(capture.clone())
        .log_filter("warn")
        .init()
        .expect("observe starts");
    let (quiet, chatty) = (numbers::path("trace-quiet"), numbers::path("trace-chatty"));
    let results = observe_tests::runtime(2).block_on(async {
        let (quiet, chatty) = (pool(&quiet, false).await, pool(&chatty, true).await);
        for pool in [&quiet, &chatty] {
            numbers::fill(pool, &[1, 2, 3]).await;
        }
        let (a, b) = tokio::join!(count_rows(&quiet), count_rows(&quiet));
        let c = count_rows(&chatty).await;
        let d = one_by_one(&quiet).await;
        let e = in_a_span(&quiet).await;
        [a, b, c, d, e]
    });
    for path in [&quiet, &chatty] {
        let _ = std::fs::remove_file(path);
    }
    observe::flush();
    let lines = receiver.lines();
    drop(guard);

    assert_eq!(results, [3, 3, 3, 14, 4]);
    let queries = |scope: &str| observe_tests::distribution(&lines, "observe.scope.queries", scope);
    // The chatty pool's statements are reported twice (trace hook and sqlx event) and counted once.
    assert_eq!(queries("sqlx_sqlite_trace.count_rows"), [(1.0, 4.0)]);
    assert_eq!(queries("sqlx_sqlite_trace.one_by_one"), [(7.0, 1.0)]);
    assert_eq!(
        queries("sqlx_sqlite_trace.in_a_span"),
        [(2.0, 1.0)],
        "its child's and its own"
    );
    let flagged = observe_tests::lines_for(&lines, "observe.scope.n_plus_one", "sqlx_sqlite_trace.one_by_one");
    assert_eq!(flagged.len(), 1);
    assert!(
        capture.text().contains("SELECT n FROM numbers WHERE n = ?"),
        "{}",
        capture.text()
    );
}
