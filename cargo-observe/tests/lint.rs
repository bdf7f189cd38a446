//! `cargo observe lint` over the fixture workspaces: the exact findings, both output formats, exit statuses.

mod common;

use common::{copy_fixture, expected, lint, run_in, snapshot};

#[test]
fn axum_service_and_library() {
    let run = lint("axum-app", &["--message-format", "json"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(
        run.findings(),
        expected(&[
            ("app/src/handlers/mod.rs", 11, "handler", "list_orders"),
            ("app/src/handlers/mod.rs", 15, "handler", "create_order"),
            // A method router built in a helper function, `get(users::show).delete(users::remove)`.
            ("app/src/handlers/users.rs", 1, "handler", "show"),
            ("app/src/handlers/users.rs", 5, "handler", "remove"),
            ("app/src/main.rs", 23, "handler", "version"),
            ("app/src/main.rs", 28, "command", "main"),
            // In the other crate of the workspace, routed by its path.
            ("shared/src/api.rs", 12, "handler", "ping"),
            // `require = [{ path = "shared::jobs::*", kind = "task" }]`.
            ("shared/src/jobs.rs", 3, "task", "nightly_report"),
        ])
    );
    let (_, summary) = run.json();
    // Observed: `health` (attribute), `Status::current` (observed impl), `api::reset` and `api::purge` (observed
    // inline module behind `#[path]`), `hourly`. Skipped: `legacy_orders`. Ignored: `internal_stats`.
    assert_eq!(summary["entry_points"], 15);
    assert_eq!(summary["observed"], 5);
    assert_eq!(summary["skipped"], 1);
    assert_eq!(summary["not_observed"], 8);
    assert_eq!(summary["handlers"], 6);
    let unanalysed: Vec<(String, u64, String)> = summary["unanalysed"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| {
            (
                u["file"].as_str().unwrap_or_default().to_owned(),
                u["line"].as_u64().unwrap_or_default(),
                u["what"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        unanalysed,
        [
            (
                "app/src/main.rs".to_owned(),
                12,
                "routes or spawns built inside the macro `with_metrics_route!`".to_owned()
            ),
            ("app/src/main.rs".to_owned(), 32, "a closure handler".to_owned()),
            (
                "app/src/routes.rs".to_owned(),
                15,
                "handler `docs_crate::serve_docs` (not a function of the workspace)".to_owned()
            ),
        ]
    );
}

#[test]
fn human_output_looks_like_rustc() {
    let run = lint("axum-app", &[]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let expected = "\
warning[observe::missing]: handler `create_order` is not observed
  --> app/src/handlers/mod.rs:15:14
   |
15 | pub async fn create_order(State(db): State<Db>) -> Result<Json<Order>, AppError> {
   |              ^^^^^^^^^^^^
   |
   = note: routed at app/src/routes.rs:9:59
   = help: add `#[observe(handler)]` (use observe::observe;)
";
    assert!(run.stdout.contains(expected), "{}", run.stdout);
    let summary = run.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        summary,
        "warning: 8 entry points are not observed (6 handlers, 1 task, 1 command); 3 items could not be analysed: \
         routes or spawns built inside the macro `with_metrics_route!` (app/src/main.rs:12:14), a closure handler \
         (app/src/main.rs:32:30), handler `docs_crate::serve_docs` (not a function of the workspace) \
         (app/src/routes.rs:15:29)"
    );
    // One line at the gutter width of one digit.
    assert!(
        run.stdout
            .contains(" --> app/src/handlers/users.rs:1:14\n  |\n1 | pub async fn show()"),
        "{}",
        run.stdout
    );
}

#[test]
fn json_lines_have_every_field() {
    let run = lint("worker", &["--message-format=json"]);
    let (findings, summary) = run.json();
    assert!(!findings.is_empty());
    for finding in &findings {
        for key in [
            "code", "level", "kind", "function", "file", "line", "column", "message", "help",
        ] {
            assert!(!finding[key].is_null(), "no `{key}` in {finding}");
        }
        assert_eq!(finding["level"], "warning");
    }
    let raw = findings
        .iter()
        .find(|f| f["code"] == "observe::raw-spawn")
        .expect("a raw spawn");
    assert_eq!(raw["file"], "src/jobs.rs");
    assert_eq!((raw["line"].as_u64(), raw["column"].as_u64()), (Some(35), Some(13)));
    assert_eq!(raw["function"], "observed_job");
    assert_eq!(
        raw["help"],
        "use `observe::spawn`, which keeps the trace of `observed_job`"
    );
    let missing = findings.iter().find(|f| f["function"] == "compress").expect("compress");
    assert_eq!(missing["code"], "observe::missing");
    assert_eq!(missing["message"], "task `compress` is not observed");
    assert_eq!(missing["help"], "add `#[observe(task)]` (use observe::observe;)");
    assert_eq!(
        (missing["line"].as_u64(), missing["column"].as_u64()),
        (Some(13), Some(8))
    );
    assert_eq!(summary["raw_spawns"], 1);
    assert_eq!(summary["level"], "warning");
}

#[test]
fn worker_tasks() {
    let run = lint("worker", &["--message-format", "json"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(
        run.findings(),
        expected(&[
            ("src/jobs.rs", 3, "task", "poll_queue"), // tokio::spawn(jobs::poll_queue(rx))
            ("src/jobs.rs", 13, "task", "compress"),  // spawn_blocking(move || jobs::compress(..))
            ("src/jobs.rs", 17, "task", "heartbeat"), // std::thread::spawn(jobs::heartbeat)
            ("src/jobs.rs", 21, "task", "cleanup"),   // observe::spawn(async move { jobs::cleanup().await })
            ("src/jobs.rs", 35, "spawn", "observed_job"), // raw tokio::spawn in observed code
            ("src/jobs.rs", 38, "task", "audit"),
            ("src/main.rs", 8, "command", "main"),
        ])
    );
    let (_, summary) = run.json();
    assert_eq!(
        summary["unanalysed"][0]["what"],
        "a task started by the method call `.run()`"
    );
}

#[test]
fn actix_routes() {
    let run = lint("actix-app", &["--message-format", "json"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(
        run.findings(),
        expected(&[
            ("src/main.rs", 5, "handler", "hello"),           // #[get("/")]
            ("src/main.rs", 10, "handler", "echo"),           // #[post("/echo")]
            ("src/main.rs", 27, "handler", "multi"),          // #[route("/multi", ..)]
            ("src/main.rs", 31, "handler", "manual_hello"),   // .route("/hey", web::get().to(manual_hello))
            ("src/main.rs", 35, "handler", "resource_index"), // web::resource("/r").to(resource_index)
            ("src/main.rs", 39, "handler", "resource_post"),  // .route(web::post().to(resource_post))
            ("src/main.rs", 46, "handler", "users"),          // web::get().to(Api::users)
            ("src/main.rs", 52, "command", "main"),
        ])
    );
    let (_, summary) = run.json();
    // `observed` has the attribute, `quiet` is skipped.
    assert_eq!(
        (summary["observed"].as_u64(), summary["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(summary["unanalysed"][0]["what"], "a closure handler");
    assert_eq!(summary["unanalysed"][0]["line"], 64);
}

#[test]
fn cli_at_level_deny() {
    let run = lint("cli", &[]);
    assert_eq!(run.status, 1, "level = \"deny\" fails: {}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("error[observe::missing]: command `list` is not observed\n"),
        "{}",
        run.stdout
    );
    let summary = run.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        summary,
        "error: 2 entry points are not observed (2 commands); 1 item could not be analysed: could not analyse \
         src/broken.rs:2:15: an unclosed delimiter, or a literal or token that does not lex"
    );
    let json = lint("cli", &["--message-format", "json"]);
    assert_eq!(json.status, 1);
    assert_eq!(
        json.findings(),
        expected(&[
            // `require = [{ path = "crate::commands::*", kind = "command" }]`; `add` is observed, `done` skipped,
            // `format_line` ignored; `src/bin/admin.rs` has an observed `main`.
            ("src/commands.rs", 8, "command", "list"),
            ("src/main.rs", 25, "command", "main"),
        ])
    );
    let (findings, summary) = json.json();
    assert_eq!(findings[0]["level"], "error");
    assert_eq!(summary["level"], "error");
}

#[test]
fn deny_flag_and_default_exit_status() {
    assert_eq!(lint("actix-app", &[]).status, 0);
    let denied = lint("actix-app", &["--deny"]);
    assert_eq!(denied.status, 1);
    assert!(
        denied.stdout.starts_with("error[observe::missing]"),
        "{}",
        denied.stdout
    );
}

#[test]
fn as_a_cargo_subcommand() {
    // `cargo observe lint` runs `cargo-observe observe lint`.
    let dir = common::fixture("actix-app");
    let direct = run_in(&dir, &["lint", "--message-format", "json"]);
    let sub = run_in(&dir, &["observe", "lint", "--message-format", "json"]);
    assert_eq!(direct.status, 0, "{}", direct.stderr);
    assert_eq!(direct.stdout, sub.stdout);
    assert_eq!(direct.findings().len(), 8);
    let help = run_in(&dir, &["observe", "--help"]);
    assert!(help.stdout.contains("Usage: cargo observe lint"), "{}", help.stdout);
}

#[test]
fn errors_are_reported_not_panics() {
    let dir = common::fixture("actix-app");
    let unknown = run_in(&dir, &["lint", "--colour"]);
    assert_eq!(unknown.status, 2);
    assert!(
        unknown.stderr.starts_with("error: unknown option `--colour`"),
        "{}",
        unknown.stderr
    );
    let missing = run_in(&dir, &["lint", "--manifest-path", "no/such/Cargo.toml"]);
    assert_eq!(missing.status, 2);
    assert!(missing.stderr.contains("`cargo metadata` failed"), "{}", missing.stderr);
}

#[test]
fn fix_leaves_a_package_without_observe_alone() {
    let dir = copy_fixture("actix-app", "fix-actix");
    let before = snapshot(&dir);
    let run = run_in(&dir, &["lint", "--fix"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(snapshot(&dir), before);
    assert!(
        run.stderr.contains("observe: not fixed: src/main.rs:5:10: handler `hello` is not observed (the package `actix-app` does not depend on `observe`)"),
        "{}",
        run.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}
