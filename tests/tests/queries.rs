//! Query metrics against real SQLite databases, through every hook (`query::record`, rusqlite, diesel), in
//! sync and async scopes (with a `tokio::join!` fan-out), checked on metric packets from a real UDP socket;
//! N+1 detection, the unscoped counter and the test helpers.

use std::sync::Mutex;
use std::time::Duration;

use diesel::connection::{Connection, SimpleConnection};
use diesel::RunQueryDsl;
use observe::observe;
use observe_tests::{distribution, lines_for, serial, Capture, StatsdReceiver};

fn shop(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, sku TEXT NOT NULL);
         DELETE FROM orders; DELETE FROM items;",
    )
    .unwrap();
    for order in 1..=20 {
        conn.execute(
            "INSERT INTO orders (id, customer) VALUES (?1, ?2)",
            (order, format!("c{order}")),
        )
        .unwrap();
        for item in 0..3 {
            conn.execute(
                "INSERT INTO items (order_id, sku) VALUES (?1, ?2)",
                (order, format!("sku-{order}-{item}")),
            )
            .unwrap();
        }
    }
    observe::rusqlite::instrument(&conn);
    conn
}

/// One query for the orders, then one per order for its items: the N+1 pattern.
#[observe(handler)]
fn orders_page_n_plus_one(conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM orders ORDER BY id LIMIT 10")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut items = 0;
    for id in ids {
        let mut stmt = conn.prepare("SELECT sku FROM items WHERE order_id = ?1")?;
        items += stmt.query_map([id], |row| row.get::<_, String>(0))?.count();
    }
    Ok(items)
}

/// The same data in two queries: no N+1.
#[observe(handler)]
fn orders_page_batched(conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM orders ORDER BY id LIMIT 10")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT sku FROM items WHERE order_id IN ({list})");
    let items = conn
        .prepare(&sql)?
        .query_map([], |row| row.get::<_, String>(0))?
        .count();
    Ok(items)
}

#[observe(handler)]
fn no_queries() -> u8 {
    1
}

#[observe(task)]
fn diesel_job(conn: &mut diesel::SqliteConnection) -> diesel::QueryResult<usize> {
    conn.batch_execute("CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, note TEXT)")?;
    let mut inserted = 0;
    for note in ["a", "b", "c"] {
        inserted += diesel::sql_query("INSERT INTO audit (note) VALUES (?)")
            .bind::<diesel::sql_types::Text, _>(note)
            .execute(conn)?;
    }
    Ok(inserted)
}

/// An async handler fanning out to three observed lookups with `tokio::join!`, each on its own connection.
#[observe(handler)]
async fn dashboard(path: std::path::PathBuf) -> usize {
    let (a, b, c) = tokio::join!(count(&path, "orders"), count(&path, "items"), count(&path, "orders"));
    a + b + c
}

#[observe]
async fn count(path: &std::path::Path, table: &str) -> usize {
    tokio::task::yield_now().await;
    let conn = rusqlite::Connection::open(path).unwrap();
    observe::rusqlite::instrument(&conn);
    let n: i64 = conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))
        .unwrap();
    n as usize
}

static DIR: Mutex<()> = Mutex::new(());

fn temp_db(name: &str) -> std::path::PathBuf {
    let _lock = DIR.lock().unwrap();
    let dir = std::env::temp_dir().join(format!("observe-queries-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn query_metrics_reach_statsd_from_every_hook() {
    let _serial = serial();
    let capture = Capture::default();
    let receiver = StatsdReceiver::bind().unwrap();
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .log_writer(capture.clone())
        .log_filter("warn")
        .init()
        .unwrap();

    let path = temp_db("shop.db");
    let conn = shop(&path);
    assert_eq!(orders_page_n_plus_one(&conn).unwrap(), 30);
    assert_eq!(orders_page_batched(&conn).unwrap(), 30);
    assert_eq!(no_queries(), 1);
    assert_eq!(no_queries(), 1);

    observe::diesel::instrument_all_connections().unwrap();
    let mut diesel_conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    assert_eq!(diesel_job(&mut diesel_conn).unwrap(), 3);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(dashboard(path.clone())), 20 + 60 + 20);

    let before = observe::query::unscoped();
    conn.query_row("SELECT 1", [], |_| Ok(())).unwrap();
    assert_eq!(
        observe::query::unscoped(),
        before + 1,
        "a query outside any scope is counted, not lost"
    );

    observe::flush();
    let lines = receiver.lines();
    drop(guard);

    // Queries per execution: 11 for the N+1 page, 2 for the batched one, 0 (twice) for no_queries.
    assert_eq!(
        distribution(&lines, "observe.scope.queries", "queries.orders_page_n_plus_one"),
        [(11.0, 1.0)]
    );
    assert_eq!(
        distribution(&lines, "observe.scope.queries", "queries.orders_page_batched"),
        [(2.0, 1.0)]
    );
    assert_eq!(
        distribution(&lines, "observe.scope.queries", "queries.no_queries"),
        [(0.0, 2.0)]
    );
    assert_eq!(
        distribution(&lines, "observe.scope.query_time", "queries.no_queries"),
        [(0.0, 2.0)]
    );
    // diesel: the CREATE TABLE and three INSERTs.
    assert_eq!(
        distribution(&lines, "observe.scope.queries", "queries.diesel_job"),
        [(4.0, 1.0)]
    );
    // The fan-out: each lookup ran one query; the dashboard counts its children's three.
    assert_eq!(
        distribution(&lines, "observe.scope.queries", "queries.count"),
        [(1.0, 3.0)]
    );
    assert_eq!(
        distribution(&lines, "observe.scope.queries", "queries.dashboard"),
        [(3.0, 1.0)]
    );
    // Query time is a distribution in milliseconds, positive when queries ran.
    for (ms, _) in distribution(&lines, "observe.scope.query_time", "queries.orders_page_n_plus_one") {
        assert!(ms > 0.0 && ms < 10_000.0, "{ms}");
    }
    assert!(lines_for(&lines, "observe.scope.queries", "queries.dashboard")
        .iter()
        .all(|l| l.kind == "d"));

    // N+1: flagged on the loop, not on the batched version, with one warning naming the fingerprint.
    let n_plus_one = |scope: &str| -> f64 {
        lines_for(&lines, "observe.scope.n_plus_one", scope)
            .iter()
            .map(|l| l.value)
            .sum()
    };
    assert_eq!(n_plus_one("queries.orders_page_n_plus_one"), 1.0);
    assert_eq!(n_plus_one("queries.orders_page_batched"), 0.0);
    let warnings: Vec<String> = capture.lines().into_iter().filter(|l| l.contains("N+1")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let warning = &warnings[0];
    assert!(warning.contains("trace_id="), "{warning}");
    assert!(warning.contains("repeats=10"), "{warning}");
    assert!(
        warning.contains("fingerprint=\"SELECT sku FROM items WHERE order_id = ?\""),
        "{warning}"
    );
    assert!(
        warning.contains("scope=\"queries::orders_page_n_plus_one\""),
        "{warning}"
    );

    // Unscoped queries have their own metric; no SQL text anywhere in a tag.
    assert!(lines
        .iter()
        .any(|l| l.name == "observe.unscoped.queries" && l.value >= 1.0));
    for line in &lines {
        assert!(
            !line.raw.contains("SELECT") && !line.raw.contains("sku-"),
            "{}",
            line.raw
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn capture_and_assert_queries_for_tests() {
    // The scopes below also aggregate into their sites: drain them into a throwaway receiver at the end so
    // that the other test's packets only hold its own executions.
    let _serial = serial();
    let receiver = StatsdReceiver::bind().unwrap();
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .install_subscriber(false)
        .init()
        .unwrap();
    let path = temp_db("capture.db");
    let conn = shop(&path);
    let (items, captured) = observe::testing::capture(|| orders_page_n_plus_one(&conn).unwrap());
    assert_eq!(items, 30);
    let scope = captured.scope("orders_page_n_plus_one").unwrap();
    assert_eq!(scope.queries, 11);
    assert_eq!(scope.kind, observe::Kind::Handler);
    assert_eq!(captured.queries.len(), 11);
    assert_eq!(
        captured.queries[1].fingerprint,
        "SELECT sku FROM items WHERE order_id = ?"
    );
    assert!(
        captured.queries.iter().all(|q| !q.statement.contains("sku-")),
        "no parameters"
    );

    assert_eq!(observe::assert_queries!(2, orders_page_batched(&conn).unwrap()), 30);
    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        observe::assert_queries!(2, orders_page_n_plus_one(&conn).unwrap())
    }))
    .unwrap_err();
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with("expected 2 queries from `orders_page_n_plus_one(&conn).unwrap()`, but it ran 11:"),
        "{message}"
    );
    assert!(
        message.contains("  2. SELECT sku FROM items WHERE order_id = ?1"),
        "{message}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let total = runtime.block_on(observe::assert_queries!(3, async { dashboard(path.clone()).await }));
    assert_eq!(total, 100);
    drop(guard);
    let _ = std::fs::remove_file(&path);
}

#[observe(handler, max_queries = 3)]
fn chatty_page(conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
    let mut total = 0;
    for table in ["orders", "items", "orders", "items", "orders"] {
        let sql = if table == "orders" {
            "SELECT count(*) FROM orders"
        } else {
            "SELECT count(*) FROM items"
        };
        total += conn.query_row(sql, [], |row| row.get::<_, i64>(0))? as usize;
    }
    Ok(total)
}

#[test]
fn budgets_warn_count_and_fail_tests_in_strict_mode() {
    let _serial = serial();
    let capture = Capture::default();
    let receiver = StatsdReceiver::bind().unwrap();
    // This binary's other test installs the global subscriber; this one reads the warning through its own.
    let subscriber = observe_tests::capturing_subscriber(&capture);
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .install_subscriber(false)
        .init()
        .unwrap();
    let path = temp_db("budget.db");
    let conn = shop(&path);
    tracing::subscriber::with_default(subscriber, || {
        assert_eq!(chatty_page(&conn).unwrap(), 20 * 3 + 60 * 2);
    });
    let warning = capture
        .lines()
        .into_iter()
        .find(|l| l.contains("query budget exceeded"))
        .expect("a warning");
    assert!(
        warning.contains("queries=5") && warning.contains("max_queries=3"),
        "{warning}"
    );
    assert!(warning.contains("trace_id="), "{warning}");

    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        observe::testing::strict_budgets(|| chatty_page(&conn))
    }));
    let message = failure.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("`queries::chatty_page` ran 5 queries, over its budget of 3"),
        "{message}"
    );

    observe::flush();
    let lines = receiver.lines();
    drop(guard);
    let over: f64 = lines
        .iter()
        .filter(|l| l.name == "observe.scope.over_budget" && l.tag("scope") == Some("queries.chatty_page"))
        .map(|l| l.value)
        .sum();
    assert_eq!(over, 2.0, "both executions ran over");
    let _ = std::fs::remove_file(&path);
}

/// The rusqlite hook: a trigger's sub-program (reported by SQLite as a `-- comment`) is not a statement of its
/// own, and statements that interleave (one run per row of another, still open) are each matched to their own
/// start, so each is timed by its own start and end.
#[test]
fn rusqlite_triggers_and_interleaved_statements() {
    let _serial = serial();
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY);
         CREATE TABLE audit (order_id INTEGER);
         CREATE TRIGGER audit_orders AFTER INSERT ON orders BEGIN INSERT INTO audit VALUES (new.id); END;",
    )
    .unwrap();
    observe::rusqlite::instrument(&conn);
    let ((), captured) = observe::testing::capture(|| {
        for id in 1..=3 {
            conn.execute("INSERT INTO orders (id) VALUES (?1)", [id]).unwrap();
        }
        let mut outer = conn.prepare("SELECT id FROM orders ORDER BY id").unwrap();
        let mut rows = outer.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let id: i64 = row.get(0).unwrap();
            // A slow statement inside the outer one's iteration: the outer one ends last and lasts longest.
            let _: i64 = conn
                .query_row(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
                     SELECT count(*) + ?1 FROM n",
                    [id],
                    |r| r.get(0),
                )
                .unwrap();
        }
    });
    let statements: Vec<&str> = captured.queries.iter().map(|q| q.statement.as_str()).collect();
    assert_eq!(statements.len(), 3 + 3 + 1, "{statements:#?}");
    assert!(statements.iter().all(|s| !s.starts_with("--")), "{statements:#?}");
    let outer = captured.queries.last().unwrap();
    assert_eq!(outer.statement, "SELECT id FROM orders ORDER BY id");
    let inner: Vec<_> = captured.queries[3..6].iter().map(|q| q.elapsed).collect();
    assert!(
        inner.iter().all(|d| !d.is_zero()) && outer.elapsed >= inner.iter().sum(),
        "outer {:?}, inner {inner:?}",
        outer.elapsed
    );

    // Two statements open at once, the older one finishing first; a slow one runs to its end in between. Each
    // is timed from its own start: `a` contains the slow one, `b` started after it and is short.
    let slow =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT count(*) FROM n";
    let ((), captured) = observe::testing::capture(|| {
        let mut a = conn.prepare("SELECT id FROM orders ORDER BY id").unwrap();
        let mut b = conn.prepare("SELECT order_id FROM audit ORDER BY order_id").unwrap();
        let mut a_rows = a.query([]).unwrap();
        a_rows.next().unwrap();
        let _: i64 = conn.query_row(slow, [], |r| r.get(0)).unwrap();
        let mut b_rows = b.query([]).unwrap();
        b_rows.next().unwrap();
        drop(a_rows);
        drop(b_rows);
    });
    let elapsed = |sql: &str| {
        captured
            .queries
            .iter()
            .find(|q| q.statement.starts_with(sql))
            .unwrap()
            .elapsed
    };
    let (a, b, slow) = (elapsed("SELECT id"), elapsed("SELECT order_id"), elapsed("WITH"));
    assert!(a >= slow && b < slow, "a {a:?}, b {b:?}, the slow one {slow:?}");
}

#[observe(task)]
async fn cancelled_loop() {
    for i in 0..6 {
        observe::query::record(
            &format!("SELECT * FROM items WHERE id = {i}"),
            Duration::from_micros(10),
        );
    }
    // Never completes: the caller's timeout drops it half-way, timed.
    observe::query::time_future("SELECT pg_sleep(60)", std::future::pending::<()>()).await;
}

#[observe(handler)]
async fn cancelled_page() {
    cancelled_loop().await;
}

/// A request cancelled half-way (a timeout, a client gone): the nested scope ends before the one around it, as
/// if they had completed. Its N+1 is reported once (not again by the enclosing scope), and the query being timed
/// when the future was dropped counts in both scopes, not as unscoped.
#[test]
fn a_cancelled_scope_reports_its_n_plus_one_once_and_keeps_its_last_query() {
    let _serial = serial();
    let capture = Capture::default();
    let subscriber = observe_tests::capturing_subscriber(&capture);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ((), captured) = tracing::subscriber::with_default(subscriber, || {
        observe::testing::capture(|| {
            runtime.block_on(async {
                let cancelled = tokio::time::timeout(Duration::from_millis(20), cancelled_page()).await;
                assert!(cancelled.is_err());
            });
        })
    });
    let warnings: Vec<String> = capture.lines().into_iter().filter(|l| l.contains("N+1")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("scope=\"queries::cancelled_loop\""),
        "{}",
        warnings[0]
    );
    let names: Vec<&str> = captured.scopes.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        ["queries::cancelled_loop", "queries::cancelled_page"],
        "inner first"
    );
    for name in names {
        let scope = captured.scope(name).unwrap();
        assert_eq!(scope.outcome, observe::Outcome::Cancelled, "{name}");
        assert_eq!(scope.queries, 7, "{name}: six in the loop and the one being timed");
    }
}

#[observe(task)]
async fn slow_task() {
    observe::query::record("SELECT 1", Duration::ZERO);
    std::future::pending::<()>().await;
}

/// `capture_future` around a timeout: the scope the timeout cancels ends inside the capture and is in it.
#[test]
fn capture_future_keeps_the_scope_its_future_cancelled() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, captured) = runtime.block_on(async {
        let slow = tokio::time::timeout(Duration::from_millis(10), slow_task());
        observe::testing::capture_future(slow).await
    });
    assert!(elapsed.is_err());
    let scope = captured
        .scope("slow_task")
        .unwrap_or_else(|| panic!("{:?}", captured.scopes));
    assert_eq!(scope.outcome, observe::Outcome::Cancelled);
    assert_eq!(scope.queries, 1);
}

#[observe(max_queries = 1)]
fn two_queries() {
    observe::query::record("SELECT a FROM t", Duration::ZERO);
    observe::query::record("SELECT b FROM t", Duration::ZERO);
}

/// Strict budgets are scoped to a closure and its thread: a test that turns them on cannot fail, or stop
/// failing, another test running in parallel; and the scope that fails is recorded (and captured) first.
#[test]
fn strict_budgets_are_scoped_to_a_closure_and_a_thread() {
    let (failure, captured) =
        observe::testing::capture(|| std::panic::catch_unwind(|| observe::testing::strict_budgets(two_queries)));
    assert!(failure.is_err(), "strict: over budget fails");
    let scope = captured.scope("two_queries").expect("captured before failing");
    assert_eq!(scope.queries, 2);

    observe::testing::strict_budgets(|| {
        // Another thread meanwhile: not strict.
        std::thread::spawn(two_queries)
            .join()
            .expect("another thread is not strict");
        // Nested calls: still strict until the outer one returns.
        observe::testing::strict_budgets(|| ());
        assert!(std::panic::catch_unwind(two_queries).is_err());
    });
    // Outside the closure: not strict any more.
    two_queries();
}

/// A future dropped while a panic that is not its own unwinds past it (a sibling in `join!`, its owner) was
/// given up, not panicking: `cancelled`.
#[test]
fn a_future_dropped_by_another_panic_is_cancelled() {
    let ((), captured) = observe::testing::capture(|| {
        let mut future = Box::pin(slow_task());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(future.as_mut(), &mut cx).is_pending());
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _owned = future;
            panic!("a sibling failed");
        }));
        assert!(unwound.is_err());
    });
    assert_eq!(
        captured.scope("slow_task").unwrap().outcome,
        observe::Outcome::Cancelled
    );
}

#[observe(task)]
fn sync_and_send_future() -> impl std::future::Future<Output = u32> + Send + Sync {
    async { 1 }
}

/// An observed future is `Sync` and `UnwindSafe` when the future it wraps is, as the unobserved one would be
/// (`FutureExt::catch_unwind` needs `UnwindSafe`).
#[test]
fn observed_futures_keep_sync_and_unwind_safe() {
    fn sync_and_unwind_safe<T: Sync + std::panic::UnwindSafe>(_: &T) {}
    #[observe(task)]
    async fn plain() -> u32 {
        2
    }
    sync_and_unwind_safe(&plain());
    sync_and_unwind_safe(&sync_and_send_future());
    assert_eq!(ready_now(plain()), 2);
}

/// Polls a future that is ready at once.
fn ready_now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("not ready"),
    }
}
