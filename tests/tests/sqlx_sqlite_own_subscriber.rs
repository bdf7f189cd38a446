//! sqlx against SQLite under a subscriber the user builds (no scope carriers): scopes then open a span each
//! once the layer has met sqlx's worker thread, and statements are found through it; a wrapped subscriber whose
//! installation failed does not change that.

mod numbers;

use observe::observe;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use tracing_subscriber::prelude::*;

#[observe(handler)]
async fn count_rows(pool: &SqlitePool) -> i64 {
    let rows = sqlx::query("SELECT count(*) FROM numbers")
        .fetch_all(pool)
        .await
        .unwrap();
    rows[0].get(0)
}

#[test]
fn statements_are_found_through_scope_spans_without_carriers() {
    let receiver = observe_tests::StatsdReceiver::bind().expect("a loopback UDP socket");
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .install_subscriber(false)
        .init()
        .expect("observe starts");
    tracing_subscriber::registry()
        .with(observe::layer().with_filter(tracing_subscriber::EnvFilter::new("warn")))
        .with(observe::sqlx::layer())
        .init();
    let path = numbers::path("sqlx-own-subscriber");
    let counts = observe_tests::runtime(2).block_on(async {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true))
            .await
            .unwrap();
        numbers::fill(&pool, &[1, 2]).await;
        assert!(observe::sqlx::following_worker_threads());
        let first = count_rows(&pool).await;
        // Now a wrapped subscriber that cannot be installed (what `observe::init()` would meet here): while it
        // was being registered, every callsite's interest was asked again with carriers about to be used (scope
        // spans: never). Scopes must still open the spans this subscriber finds statements through.
        let wrapped = observe::sqlx::carry_scopes(tracing_subscriber::registry().with(observe::sqlx::layer()));
        assert!(tracing::subscriber::set_global_default(wrapped).is_err());
        let (a, b) = tokio::join!(count_rows(&pool), count_rows(&pool));
        [first, a, b, count_rows(&pool).await]
    });
    let _ = std::fs::remove_file(&path);
    observe::flush();
    let lines = receiver.lines();
    drop(guard);
    assert_eq!(counts, [2, 2, 2, 2]);
    assert_eq!(observe::sqlx::carriers(), 0, "no carriers without the wrapper");
    assert_eq!(
        observe_tests::distribution(&lines, "observe.scope.queries", "sqlx_sqlite_own_subscriber.count_rows"),
        [(1.0, 4.0)]
    );
}
