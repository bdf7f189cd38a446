//! The SQLite table the sqlx tests query: `numbers (n)`, in a database file of the test's own.

use sqlx::SqlitePool;

/// A database file in the temporary directory, unique to this test process.
pub fn path(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("observe-{test}-{}.db", std::process::id()))
}

/// Creates the table and inserts `values` (outside any scope: unscoped statements).
pub async fn fill(pool: &SqlitePool, values: &[i64]) {
    sqlx::query("CREATE TABLE numbers (n INTEGER NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
    let rows: Vec<String> = values.iter().map(|n| format!("({n})")).collect();
    // Only integers formatted here: nothing to inject.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO numbers (n) VALUES {}",
        rows.join(", ")
    )))
    .execute(pool)
    .await
    .unwrap();
}
