//! Configuration from the environment: destination, flavor, prefix and the Datadog unified service tags.

use observe::observe;
use observe_tests::StatsdReceiver;

#[observe(task, name = "env.job")]
fn job() {}

#[test]
fn environment_configures_destination_and_global_tags() {
    let receiver = StatsdReceiver::bind().unwrap();
    // This binary has one test, and nothing else reads the environment concurrently.
    std::env::set_var("OBSERVE_STATSD_ADDR", receiver.addr());
    std::env::set_var("OBSERVE_METRIC_PREFIX", "myapp");
    std::env::set_var("DD_SERVICE", "checkout");
    std::env::set_var("DD_ENV", "prod,eu");
    std::env::set_var("DD_VERSION", "1.2.3");
    std::env::set_var("DD_AGENT_HOST", "ignored-because-observe-addr-wins");

    std::env::set_var("OBSERVE_STATSD_FLAVOR", "influx");
    let err = observe::Config::default().install_subscriber(false).init().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid OBSERVE_STATSD_FLAVOR \"influx\": expected `dogstatsd` or `statsd`"
    );
    std::env::set_var("OBSERVE_STATSD_FLAVOR", "dogstatsd");

    let guard = observe::Config::default().install_subscriber(false).init().unwrap();
    job();
    observe::flush();
    let lines = receiver.lines();
    drop(guard);
    let mut names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "myapp.scope.calls",
            "myapp.scope.duration",
            "myapp.scope.queries",
            "myapp.scope.query_time"
        ],
        "{lines:#?}"
    );
    for line in &lines {
        assert!(line.name.starts_with("myapp.scope."), "{}", line.raw);
        assert_eq!(line.tag("service"), Some("checkout"));
        assert_eq!(line.tag("env"), Some("prod_eu"), "commas cannot be in a tag value");
        assert_eq!(line.tag("version"), Some("1.2.3"));
        assert_eq!(line.tag("scope"), Some("env.job"));
    }
}
