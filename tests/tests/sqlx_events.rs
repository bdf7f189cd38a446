//! The sqlx layer reads the statement of each `sqlx::query` event as sqlx 0.9's logger builds it (a short
//! statement in `summary`, a longer one abbreviated there and in full, padded with newlines, in `db.statement`),
//! and keeps the statements a thread ran lately so that a repeated one is neither copied nor fingerprinted
//! again. Whatever that cache holds, every query must come out with its own text and fingerprint: many distinct
//! statements (more than the cache keeps), statements alternating in one slot, over-long ones, and the odd
//! events (no statement, a bad time).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use observe::observe;
use tracing_subscriber::prelude::*;

/// Emits an event shaped like sqlx-core 0.9's `QueryLogger::finish` (same target, fields and order).
fn sqlx_event(sql: &str, elapsed: Duration) {
    let words: Vec<&str> = sql.split_whitespace().take(4).collect();
    let mut summary = words.join(" ");
    let statement = if summary != sql {
        summary.push_str(" \u{2026}");
        format!("\n\n{sql}\n")
    } else {
        String::new()
    };
    raw_event(&summary, &statement, elapsed.as_secs_f64());
}

fn raw_event(summary: &str, statement: &str, elapsed_secs: f64) {
    tracing::debug!(
        target: "sqlx::query",
        summary,
        db.statement = statement,
        rows_affected = 0u64,
        rows_returned = 1u64,
        elapsed_secs,
    );
}

#[observe(handler)]
fn run(statements: &[String]) {
    for (i, sql) in statements.iter().enumerate() {
        sqlx_event(sql, Duration::from_micros(i as u64 + 1));
    }
}

fn with_layer<R>(f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(observe::sqlx::layer());
    tracing::subscriber::with_default(subscriber, f)
}

#[test]
fn every_statement_comes_out_as_it_went_in() {
    let mut statements = Vec::new();
    // More distinct statements than the cache keeps (64 sets of 2), of many lengths, each run three times
    // in a row and then again after all the others (so that every one is looked up after being evicted).
    for n in 0..300 {
        let sql = format!(
            "SELECT c{n} FROM t{} WHERE id = ? AND k IN ({})",
            n % 7,
            "?, ".repeat(n % 5) + "?"
        );
        statements.extend([sql.clone(), sql.clone(), sql]);
    }
    statements.extend(statements.clone());
    // Short ones (in `summary` only), one of fewer than eight bytes, and a statement with odd whitespace.
    for sql in ["SELECT 1", "BEGIN", "VALUES 1", "SELECT  2", "COMMIT"] {
        statements.extend([sql.to_owned(), sql.to_owned()]);
    }
    // Longer than the cache keeps (copied every time).
    let long = format!("SELECT {} FROM wide WHERE id = ?", vec!["col"; 600].join(", "));
    statements.extend([long.clone(), long]);

    let ((), captured) = observe::testing::capture(|| with_layer(|| run(&statements)));
    let seen: Vec<&str> = captured.queries.iter().map(|q| q.statement.as_str()).collect();
    let sent: Vec<&str> = statements.iter().map(|s| s.trim()).collect();
    assert_eq!(seen.len(), sent.len());
    for (i, (seen, sent)) in seen.iter().zip(&sent).enumerate() {
        assert_eq!(seen, sent, "query {i}");
        assert_eq!(
            captured.queries[i].fingerprint,
            observe::query::fingerprint(sent),
            "query {i}"
        );
        assert_eq!(
            captured.queries[i].elapsed,
            Duration::from_micros(i as u64 + 1),
            "query {i}"
        );
    }
    assert_eq!(captured.scope("run").unwrap().queries as usize, statements.len());
}

/// Three statements of the same length with the same first, middle and last eight bytes: the cache cannot
/// tell them apart by its key and must compare the text. Three, so that one is always evicted.
fn same_set() -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|column| format!("SELECT id, name, {column}x FROM items WHERE   owner_id = ? ORDER BY id"))
        .collect()
}

#[test]
fn statements_that_share_a_slot_keep_their_own_text() {
    let statements = same_set();
    let rounds: Vec<String> = (0..30).map(|i| statements[i % 3].clone()).collect();
    let ((), captured) = observe::testing::capture(|| with_layer(|| run(&rounds)));
    assert_eq!(captured.queries.len(), 30);
    for (i, query) in captured.queries.iter().enumerate() {
        assert_eq!(query.statement, statements[i % 3]);
        assert_eq!(query.fingerprint, observe::query::fingerprint(&statements[i % 3]));
    }
    assert_eq!(captured.scope("run").unwrap().queries, 30);
}

#[test]
fn odd_events_are_counted_or_ignored_as_documented() {
    #[observe(handler)]
    fn odd() {
        // An abbreviated summary with no full statement (sqlx never sends it): counted, without a text.
        raw_event("SELECT a b c \u{2026}", "", 0.001);
        // Both empty: counted.
        raw_event("", "", 0.001);
        // A full statement of whitespace only falls back to the summary.
        raw_event("SELECT 1", "\n\n \n", 0.001);
        // A statement of four words or fewer that ends in " …" is its own summary, which looks abbreviated:
        // counted and timed, without its text (documented).
        sqlx_event("SELECT 1 -- \u{2026}", Duration::from_millis(1));
        // Times that are not times: not counted at all (sqlx always sends a real duration).
        raw_event("SELECT 2", "", f64::NAN);
        raw_event("SELECT 2", "", -1.0);
        raw_event("SELECT 2", "", f64::INFINITY);
        raw_event("SELECT 2", "", 1e300);
        // The longest time counted: just under 292 years.
        raw_event("SELECT 3", "", 9.1e9);
    }
    let ((), captured) = observe::testing::capture(|| with_layer(odd));
    let seen: Vec<(&str, Duration)> = captured
        .queries
        .iter()
        .map(|q| (q.statement.as_str(), q.elapsed))
        .collect();
    let ms = Duration::from_millis(1);
    assert_eq!(
        seen,
        [
            ("", ms),
            ("", ms),
            ("SELECT 1", ms),
            ("", ms),
            ("SELECT 3", Duration::from_secs(9_100_000_000))
        ]
    );
}

#[test]
fn the_full_statement_wins_whatever_the_order_of_the_fields() {
    #[observe(handler)]
    fn reordered() {
        // Another emitter, or another sqlx version: the full statement first, then a summary that is not
        // abbreviated the way sqlx does it.
        tracing::debug!(
            target: "sqlx::query",
            elapsed_secs = 0.002,
            db.statement = "\nSELECT * FROM items WHERE id = ?\n",
            summary = "SELECT *",
        );
        // Both fields given, summary first: the full statement wins.
        raw_event("DELETE FROM", "DELETE FROM carts WHERE id = ?", 0.002);
    }
    let ((), captured) = observe::testing::capture(|| with_layer(reordered));
    let seen: Vec<&str> = captured.queries.iter().map(|q| q.statement.as_str()).collect();
    assert_eq!(
        seen,
        ["SELECT * FROM items WHERE id = ?", "DELETE FROM carts WHERE id = ?"]
    );
}

/// Collects the fingerprints named by N+1 warnings.
struct Warnings(Arc<Mutex<Vec<String>>>);

struct FingerprintField<'a>(&'a mut String);

impl tracing::field::Visit for FingerprintField<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "fingerprint" {
            value.clone_into(self.0);
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "observe::n_plus_one" {
            let mut fingerprint = String::new();
            event.record(&mut FingerprintField(&mut fingerprint));
            self.0.lock().unwrap().push(fingerprint);
        }
    }
}

#[test]
fn statements_that_share_a_slot_repeat_under_their_own_fingerprints() {
    // The N+1 check groups statements by the fingerprint hash the cache hands out with each text: three
    // statements of one set, six times each, interleaved, are three repeated statements, not one or two.
    let statements = same_set();
    let rounds: Vec<String> = (0..18).map(|i| statements[i % 3].clone()).collect();
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry()
        .with(observe::sqlx::layer())
        .with(Warnings(warnings.clone()));
    tracing::subscriber::with_default(subscriber, || run(&rounds));
    let mut warned = warnings.lock().unwrap().clone();
    warned.sort();
    let mut expected: Vec<String> = statements.iter().map(|s| observe::query::fingerprint(s)).collect();
    expected.sort();
    assert_eq!(warned, expected);
}
