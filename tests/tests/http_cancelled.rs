//! An outgoing call the caller stops waiting for (a timeout) is still timed and counted in its scope, as a
//! query timed by `query::time_future` is when dropped part-way. Its own binary: it starts observe globally.

use std::time::Duration;

use observe::observe;

#[observe(handler)]
async fn gives_up(client: &reqwest_middleware::ClientWithMiddleware, url: &str) -> bool {
    tokio::time::timeout(Duration::from_millis(100), client.get(url).send())
        .await
        .is_err()
}

#[test]
fn a_call_cut_short_by_a_timeout_is_still_counted() {
    let observe_tests::Started { receiver, guard, .. } = observe_tests::start();
    let runtime = observe_tests::runtime(1);
    let timed_out = runtime.block_on(async {
        // A server that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(observe::reqwest::TracePropagation)
            .build();
        let timed_out = gives_up(&client, &url).await;
        held.abort();
        timed_out
    });
    assert!(timed_out, "the server never answers");
    drop(guard);
    let lines = receiver.lines();
    let calls = observe_tests::distribution(&lines, "observe.scope.http_calls", "http_cancelled.gives_up");
    assert_eq!(calls, [(1.0, 1.0)], "one call, counted");
    let time = observe_tests::distribution(&lines, "observe.scope.http_time", "http_cancelled.gives_up");
    assert_eq!(time.len(), 1);
    assert!(time[0].0 >= 90.0, "timed until given up (ms): {time:?}");
}
