//! HTTP out: a `reqwest-middleware` middleware that sends the current trace with every request
//! (`traceparent` and `X-Request-ID`) and records each call in the scope, like a query, under its own metrics
//! (`observe.scope.http_calls`, `observe.scope.http_time`).
//!
//! ```
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(observe::reqwest::TracePropagation)
//!     .build();
//! # drop(client);
//! ```

use std::time::Instant;

use http::{Extensions, HeaderName, HeaderValue};
use reqwest_middleware::{Middleware, Next, Result};

use crate::w3c::{SpanId, TraceParent};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The middleware. Outside any trace it adds no header, but still times the call.
///
/// ```
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(observe::reqwest::TracePropagation)
///     .build();
/// # drop(client);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TracePropagation;

#[async_trait::async_trait]
impl Middleware for TracePropagation {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<reqwest::Response> {
        if let Some(trace_id) = crate::current_trace_id() {
            let parent = TraceParent {
                trace_id,
                parent_id: SpanId::generate(),
                flags: crate::scope::current_trace_flags(),
            };
            let headers = request.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&parent.to_string()) {
                headers.insert(TRACEPARENT, value);
            }
            // A request ID the caller set explicitly wins.
            if !headers.contains_key(X_REQUEST_ID) {
                if let Ok(value) = HeaderValue::from_str(&trace_id.to_string()) {
                    headers.insert(X_REQUEST_ID, value);
                }
            }
        }
        /// Records the call when it ends: on completion, and also when the caller stops waiting for it (a
        /// timeout, a `select!`), as `query::time_future` records a query dropped part-way.
        struct Timed(Instant);
        impl Drop for Timed {
            fn drop(&mut self) {
                crate::query::record_http(self.0.elapsed());
            }
        }
        let _timed = Timed(Instant::now());
        next.run(request, extensions).await
    }
}
