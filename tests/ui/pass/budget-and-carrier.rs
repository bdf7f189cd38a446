use observe::{observe, Carrier};

struct Job {
    carrier: Option<Carrier>,
    payload: String,
}

#[observe(task, max_queries = 2, carrier = job.carrier)]
async fn run_job(job: Job) -> usize {
    job.payload.len()
}

#[observe(task, carrier = &traceparent)]
fn from_text(traceparent: String) -> Option<observe::TraceId> {
    observe::current_trace_id()
}

fn main() {
    let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
    let id = from_text(text.clone()).unwrap();
    assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    let job = Job { carrier: text.parse().ok(), payload: "abc".into() };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(run_job(job)), 3);
    // Text that is not a traceparent starts a trace of its own.
    assert!(from_text("garbage".into()).is_some());
}
