//! sqlx's SQLite worker threads with the scope carriers `observe::init()` installs: statements count in the
//! scope that sent them (sequential and concurrent scopes, nested ones, a carrier reused by later scopes), and
//! the lines sqlx writes on its worker thread carry the trace ID of that scope.

mod numbers;

use observe::observe;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

#[observe(handler)]
async fn count_rows(pool: &SqlitePool) -> (observe::TraceId, i64) {
    let trace_id = observe::current_trace_id().expect("inside a scope");
    let rows = sqlx::query("SELECT count(*) FROM numbers")
        .fetch_all(pool)
        .await
        .unwrap();
    (trace_id, rows[0].get(0))
}

/// A span of the user's inside the scope: `Span::current()` there is still the user's span (a field recorded on
/// it shows), and the statement sent inside it is counted in the scope.
#[observe(handler)]
async fn in_a_span(pool: &SqlitePool) -> usize {
    use tracing::Instrument;
    let span = tracing::warn_span!("lookup", rows = tracing::field::Empty);
    async {
        let rows = sqlx::query("SELECT n FROM numbers").fetch_all(pool).await.unwrap();
        tracing::Span::current().record("rows", rows.len());
        tracing::warn!("looked up");
        rows.len()
    }
    .instrument(span)
    .await
}

/// More statements than a carrier keeps the text of (256): all are counted, the loop is still flagged.
#[observe(task)]
async fn many(pool: &SqlitePool) {
    for n in 0..300i64 {
        sqlx::query("SELECT n FROM numbers WHERE n = ?")
            .bind(n % 3)
            .fetch_all(pool)
            .await
            .unwrap();
    }
}

#[observe(task)]
async fn both(pool: &SqlitePool) -> i64 {
    let (_, a) = count_rows(pool).await;
    let rows = sqlx::query("SELECT max(n) FROM numbers").fetch_all(pool).await.unwrap();
    a + rows[0].get::<i64, _>(0)
}

/// Takes `Span::current()` (the scope's carrier) and lets another thread run a statement under it: before the
/// scope ends, or (when `late`) after, by returning the thread and the signal that starts it.
#[observe(handler)]
fn lend(late: bool) -> Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let span = tracing::Span::current();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        wait.recv().unwrap();
        observe_tests::run_like_the_sqlx_worker(&span);
    });
    if late {
        return Some((go, worker));
    }
    go.send(()).unwrap();
    worker.join().unwrap();
    None
}

#[test]
fn worker_thread_statements_find_their_scope_through_carriers() {
    let capture = observe_tests::Capture::default();
    let receiver = observe_tests::StatsdReceiver::bind().expect("a loopback UDP socket");
    let guard = observe::Config::default()
        .statsd_addr(receiver.addr())
        .log_format(observe::LogFormat::Pretty)
        .log_writer(capture.clone())
        // sqlx writes each statement at debug level, on its worker thread.
        .log_filter("warn,sqlx::query=debug")
        .init()
        .expect("observe starts");
    let runtime = observe_tests::runtime(2);
    let unscoped_before = observe::query::unscoped();
    let path = numbers::path("sqlx-carriers");
    let (sequential, concurrent, total) = runtime.block_on(async {
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true))
            .await
            .unwrap();
        numbers::fill(&pool, &[1, 2, 3]).await;
        let (a, b) = tokio::join!(pool.acquire(), pool.acquire());
        drop((a.unwrap(), b.unwrap()));
        assert!(observe::sqlx::following_worker_threads());

        let mut sequential = Vec::new();
        for _ in 0..3 {
            sequential.push(count_rows(&pool).await);
        }
        let (x, y) = tokio::join!(count_rows(&pool), count_rows(&pool));
        let total = both(&pool).await;
        assert_eq!(in_a_span(&pool).await, 3);
        many(&pool).await;
        (sequential, [x, y], total)
    });
    let _ = std::fs::remove_file(&path);

    // A statement reported under a scope's carrier before the scope ends counts in it; one reported after it
    // ended counts as unscoped, and not in the next scope that borrows the same carrier.
    let carriers_before = observe::sqlx::carriers();
    assert!(lend(false).is_none());
    let unscoped_before_late = observe::query::unscoped();
    let (go, worker) = lend(true).expect("the late worker");
    go.send(()).unwrap();
    worker.join().unwrap();
    assert_eq!(
        observe::query::unscoped() - unscoped_before_late,
        1,
        "the late statement"
    );
    assert!(lend(false).is_none());
    assert_eq!(
        observe::sqlx::carriers(),
        carriers_before,
        "the three scopes reused a carrier"
    );
    observe::flush();
    let lines = receiver.lines();
    drop(guard);

    for (_, count) in sequential.iter().chain(&concurrent) {
        assert_eq!(*count, 3);
    }
    assert_eq!(total, 6);
    let queries = |scope: &str| observe_tests::distribution(&lines, "observe.scope.queries", scope);
    assert_eq!(queries("sqlx_carriers.count_rows"), [(1.0, 6.0)]);
    assert_eq!(
        queries("sqlx_carriers.both"),
        [(2.0, 1.0)],
        "its own query and its child's"
    );
    assert_eq!(
        queries("sqlx_carriers.in_a_span"),
        [(1.0, 1.0)],
        "sent inside the user's span"
    );
    // 300 statements, 256 of them kept with their text: sent as 296, the midpoint of the bucket [288, 304).
    assert_eq!(queries("sqlx_carriers.many"), [(296.0, 1.0)]);
    let flagged = observe_tests::lines_for(&lines, "observe.scope.n_plus_one", "sqlx_carriers.many");
    assert_eq!(flagged.len(), 1, "the loop is flagged");
    assert_eq!(
        queries("sqlx_carriers.lend"),
        [(0.0, 1.0), (1.0, 2.0)],
        "the late statement is not counted"
    );
    // The set-up ran outside any scope: the two statements and the connections' PRAGMAs, nothing after.
    let unscoped = observe::query::unscoped() - unscoped_before - 1;
    assert!(
        (2..=4).contains(&unscoped),
        "{unscoped} unscoped besides the late statement"
    );
    let carriers = observe::sqlx::carriers();
    assert!((1..=3).contains(&carriers), "carriers are reused: {carriers}");

    // sqlx's own line for each statement was written on its worker thread, with the trace ID of the scope that
    // sent it.
    let logged = capture.text();
    for (trace_id, _) in sequential.iter().chain(&concurrent) {
        let line = logged
            .lines()
            .find(|l| l.contains(&format!("trace_id={trace_id}")))
            .unwrap_or_else(|| panic!("no line with trace {trace_id}:\n{logged}"));
        assert!(
            line.contains("sqlx::query") && line.contains("SELECT count(*)"),
            "{line}"
        );
    }
    let looked_up = logged
        .lines()
        .find(|l| l.contains("looked up"))
        .expect("the user's line");
    assert!(looked_up.contains("lookup{rows=3}"), "{looked_up}");
    let creates = logged
        .lines()
        .find(|l| l.contains("CREATE TABLE"))
        .expect("the set-up's line");
    assert!(!creates.contains("trace_id="), "outside any scope: {creates}");
}
