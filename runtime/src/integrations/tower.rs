//! HTTP in: a tower [`Layer`] that makes every request a `handler` scope, named by its route, with the trace ID
//! taken from the request (or a fresh one) and returned on the response.
//!
//! ```
//! use axum::{routing::get, Router};
//!
//! async fn get_order() -> &'static str {
//!     tracing::info!("this line carries the request's trace ID");
//!     "order"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(get_order))
//!     .route_layer(observe::tower::ObserveLayer::new());
//! ```
//!
//! - **Name**: the matched route (`GET /orders/{id}`, from axum's `MatchedPath` with the `axum` feature, or
//!   your own [`ObserveLayer::route_name`]), never the raw URI: a metric tag must have few values. With
//!   `route_layer` (as above), only requests that match a route are observed; with `layer`, every request is,
//!   and those that match no route (404s) are one scope, `unmatched` (routes added with `nest_service` are
//!   `unmatched` too: axum gives them no `MatchedPath`).
//! - **Trace ID in**: from `traceparent` (strict W3C rules), else `X-Request-ID` (1 to 128 characters of
//!   `[A-Za-z0-9._-]`; a 32-hex or UUID value is the trace ID itself, anything else is hashed to one, the same
//!   in every service). A header that breaks the rules is ignored (never logged, counted in
//!   [`Diagnostics::rejected_trace_headers`](crate::Diagnostics)) and a fresh ID generated. Whether to trust
//!   each header is a setting; both are trusted by default.
//! - **Trace ID out**: `X-Request-ID` (the caller's, when it sent a valid one; else the trace ID), and
//!   `traceresponse` and `traceparent` with the trace ID, a span ID generated for this request, and the caller's
//!   flags (those W3C defines; reserved ones are dropped).
//! - **Outcome**: `error` for a 5xx response or a service error, `panic`, `cancelled` when the client goes away
//!   before the response is ready, `ok` otherwise.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::scope::Scope;
use crate::site::{Kind, Outcome, Site};
use crate::trace_id::TraceId;
use crate::w3c::{trace_id_from_request_id, valid_request_id, SpanId, TraceParent};

static HTTP_SPAN: Site = Site::new(
    &HTTP_SPAN,
    Kind::Handler,
    "observe::http",
    "http.request",
    tracing::Level::DEBUG,
    &[],
    "observe::tower",
    file!(),
    line!(),
);

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

type RouteName = dyn Fn(&http::Extensions) -> Option<String> + Send + Sync;

/// The tower layer. See the module documentation.
///
/// ```
/// let layer = observe::tower::ObserveLayer::new().trust_request_id(false);
/// # drop(layer);
/// ```
#[derive(Clone)]
pub struct ObserveLayer {
    trust_traceparent: bool,
    trust_request_id: bool,
    route_name: Option<Arc<RouteName>>,
}

impl Default for ObserveLayer {
    fn default() -> Self {
        ObserveLayer::new()
    }
}

impl ObserveLayer {
    /// The layer with the defaults: both incoming headers trusted, routes named by axum's `MatchedPath` (with
    /// the `axum` feature).
    ///
    /// ```
    /// let layer = observe::tower::ObserveLayer::new();
    /// # drop(layer);
    /// ```
    pub fn new() -> ObserveLayer {
        ObserveLayer {
            trust_traceparent: true,
            trust_request_id: true,
            route_name: None,
        }
    }

    /// Whether to continue the trace of an incoming `traceparent` (default `true`). At the edge of your system,
    /// if callers outside it should not choose your trace IDs, turn off both this and
    /// [`trust_request_id`](ObserveLayer::trust_request_id): a 32-hex or UUID `X-Request-ID` becomes the trace
    /// ID as it is.
    ///
    /// ```
    /// let layer = observe::tower::ObserveLayer::new().trust_traceparent(false);
    /// # drop(layer);
    /// ```
    pub fn trust_traceparent(mut self, trust: bool) -> ObserveLayer {
        self.trust_traceparent = trust;
        self
    }

    /// Whether to take the trace ID from an incoming `X-Request-ID` (default `true`).
    ///
    /// ```
    /// let layer = observe::tower::ObserveLayer::new().trust_request_id(false);
    /// # drop(layer);
    /// ```
    pub fn trust_request_id(mut self, trust: bool) -> ObserveLayer {
        self.trust_request_id = trust;
        self
    }

    /// How to name a request's route from its extensions, for routers other than axum. Return `None` for a
    /// request that matched no route. The name must come from your route table, never from the URI.
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct Route(&'static str);
    /// let layer = observe::tower::ObserveLayer::new()
    ///     .route_name(|extensions| extensions.get::<Route>().map(|r| r.0.to_owned()));
    /// # drop(layer);
    /// ```
    pub fn route_name<F>(mut self, name: F) -> ObserveLayer
    where
        F: Fn(&http::Extensions) -> Option<String> + Send + Sync + 'static,
    {
        self.route_name = Some(Arc::new(name));
        self
    }

    /// The site of a request: its method and route (your [`ObserveLayer::route_name`], else axum's
    /// `MatchedPath`), or `unmatched`.
    fn site_of<B>(&self, request: &Request<B>) -> &'static Site {
        let method = method_name(request.method());
        let extensions = request.extensions();
        if let Some(name) = &self.route_name {
            return route_site(method, name(extensions).as_deref());
        }
        #[cfg(feature = "axum")]
        if let Some(path) = extensions.get::<axum::extract::MatchedPath>() {
            return route_site(method, Some(path.as_str()));
        }
        route_site(method, None)
    }

    /// The trace ID, W3C flags and request ID to echo, from the request's headers.
    fn incoming(&self, headers: &HeaderMap) -> Incoming {
        let mut traceparent = Seen::default();
        let mut request_id = Seen::default();
        if self.trust_traceparent || self.trust_request_id {
            // One pass over the request's headers finds both: most names are standard ones, told apart from
            // these two by a tag, which costs less than hashing each custom name for a lookup.
            for (name, value) in headers {
                if *name == TRACEPARENT {
                    traceparent.add(value);
                } else if *name == X_REQUEST_ID {
                    request_id.add(value);
                }
            }
        }
        if self.trust_traceparent {
            if let Some(first) = traceparent.first {
                // Several traceparent headers: ambiguous, so invalid.
                let parsed = (!traceparent.repeated)
                    .then(|| first.to_str().ok().and_then(TraceParent::parse))
                    .flatten();
                match parsed {
                    Some(parent) => {
                        return Incoming {
                            trace_id: parent.trace_id,
                            flags: parent.flags,
                            request_id: self.request_id(&request_id).map(|(value, _)| value),
                        }
                    }
                    None => rejected(),
                }
            }
        }
        if let Some((value, trace_id)) = self.request_id(&request_id) {
            return Incoming {
                trace_id,
                flags: 1,
                request_id: Some(value),
            };
        }
        Incoming {
            trace_id: TraceId::generate(),
            flags: 1,
            request_id: None,
        }
    }

    fn request_id(&self, seen: &Seen<'_>) -> Option<(HeaderValue, TraceId)> {
        if !self.trust_request_id {
            return None;
        }
        let first = seen.first?;
        let trace_id = if seen.repeated {
            None
        } else {
            first
                .to_str()
                .ok()
                .filter(|v| valid_request_id(v))
                .and_then(trace_id_from_request_id)
        };
        match trace_id {
            Some(trace_id) => Some((first.clone(), trace_id)),
            None => {
                rejected();
                None
            }
        }
    }
}

/// A request header's first value, and whether it came more than once.
#[derive(Default)]
struct Seen<'a> {
    first: Option<&'a HeaderValue>,
    repeated: bool,
}

impl<'a> Seen<'a> {
    fn add(&mut self, value: &'a HeaderValue) {
        if self.first.is_some() {
            self.repeated = true;
        } else {
            self.first = Some(value);
        }
    }
}

/// The site of `method route` (`unmatched` without a route), remembered per thread so that a request of a
/// known route costs neither an allocation nor the registry's lock. The route's text is compared on every hit:
/// the slot is chosen by its address, never trusted on it.
fn route_site(method: &'static str, route: Option<&str>) -> &'static Site {
    const SLOTS: usize = 32;
    thread_local! {
        static KNOWN: [Cell<Option<&'static Site>>; SLOTS] = const { [const { Cell::new(None) }; SLOTS] };
    }
    let matches = |site: &Site| match route {
        Some(route) => site
            .name()
            .strip_prefix(method)
            .and_then(|rest| rest.strip_prefix(' '))
            .is_some_and(|rest| rest == route),
        None => site.name() == "unmatched",
    };
    let key = route.map_or(0, |r| r.as_ptr() as usize ^ r.len()) ^ (method.as_ptr() as usize).rotate_left(17);
    let slot = (key >> 3) % SLOTS;
    let cached = KNOWN.try_with(|known| known[slot].get()).ok().flatten();
    if let Some(site) = cached.filter(|site| matches(site)) {
        return site;
    }
    let site = match route {
        Some(route) => Site::dynamic(Kind::Handler, &format!("{method} {route}"), &HTTP_SPAN),
        None => Site::dynamic(Kind::Handler, "unmatched", &HTTP_SPAN),
    };
    let _ = KNOWN.try_with(|known| known[slot].set(Some(site)));
    site
}

fn rejected() {
    crate::metrics::COUNTERS
        .rejected_headers
        .fetch_add(1, Ordering::Relaxed);
}

struct Incoming {
    trace_id: TraceId,
    flags: u8,
    request_id: Option<HeaderValue>,
}

impl fmt::Debug for ObserveLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveLayer")
            .field("trust_traceparent", &self.trust_traceparent)
            .field("trust_request_id", &self.trust_request_id)
            .field("route_name", &self.route_name.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> ObserveService<S> {
        ObserveService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ObserveLayer`] wraps around yours.
///
/// ```
/// use tower_layer::Layer;
/// let handler: axum::routing::MethodRouter = axum::routing::get(|| async { "ok" });
/// let service = observe::tower::ObserveLayer::new().layer(handler);
/// # drop(service);
/// ```
#[derive(Clone, Debug)]
pub struct ObserveService<S> {
    inner: S,
    layer: ObserveLayer,
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        // Extension methods come from the client: one bucket, never their text.
        _ => "OTHER",
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ObserveService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if cfg!(feature = "disabled") {
            return ObserveFuture {
                scope: None,
                future: ManuallyDrop::new(self.inner.call(request)),
                request_id: HeaderValue::from_static(""),
                traceresponse: None,
            };
        }
        let incoming = self.layer.incoming(request.headers());
        let site = self.layer.site_of(&request);
        let mut scope = Scope::new(site);
        scope.set_trace_id(incoming.trace_id);
        scope.set_trace_flags(incoming.flags);
        let future = scope.in_scope(|| self.inner.call(request));
        let traceresponse = TraceParent {
            trace_id: incoming.trace_id,
            parent_id: SpanId::generate(),
            flags: incoming.flags,
        };
        // One allocation for the three response header values: `traceresponse` and `traceparent` share its
        // bytes, and a generated `X-Request-ID` is the trace ID inside them (`00-<trace-id>-...`).
        let value = Bytes::from_owner(traceresponse.to_bytes());
        // SAFETY (the header value contract, not memory): the bytes are ASCII hex digits and dashes, all valid
        // in a header value (http checks it in debug builds).
        let header = |bytes: Bytes| unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) };
        let request_id = incoming.request_id.unwrap_or_else(|| header(value.slice(3..35)));
        ObserveFuture {
            scope: Some(scope),
            future: ManuallyDrop::new(future),
            request_id,
            traceresponse: Some(header(value)),
        }
    }
}

/// The response future of [`ObserveService`].
pub struct ObserveFuture<F> {
    /// `None` when observability is compiled out (feature `disabled`).
    scope: Option<Scope>,
    /// Dropped by hand, inside the scope when the request is cancelled (see the `Drop` impl).
    future: ManuallyDrop<F>,
    request_id: HeaderValue,
    traceresponse: Option<HeaderValue>,
}

// SAFETY: as for `ScopeFuture`: a `&ObserveFuture` gives access to nothing (its `Debug` prints no field).
// Keep it so: a `&self` accessor or a `Debug` that reads a field would make this unsound.
unsafe impl<F> Sync for ObserveFuture<F> {}

impl<F> Drop for ObserveFuture<F> {
    fn drop(&mut self) {
        let ObserveFuture { scope, future, .. } = self;
        // SAFETY: `future` is dropped once, here, in place (it is pinned), and never used again.
        let mut drop_future = || unsafe { ManuallyDrop::drop(future) };
        match scope {
            // A request cancelled before its response: the handler's future (and the scopes in it) end inside
            // the request's scope, before it, as with `#[observe]` on an async fn.
            Some(scope) => scope.drop_inside(drop_future),
            None => drop_future(),
        }
    }
}

impl<F> fmt::Debug for ObserveFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned and never moved out; the other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut *this.future) };
        let Some(scope) = &mut this.scope else {
            return future.poll(cx);
        };
        scope.open_span_if_wanted();
        let poll = scope.in_scope(|| future.poll(cx));
        let Poll::Ready(result) = poll else {
            return Poll::Pending;
        };
        let outcome = match &result {
            Ok(response) if response.status().is_server_error() => Outcome::Error,
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        };
        scope.end(outcome);
        // The values move into the response (the future is done with them); the one clone shares their bytes.
        let request_id = std::mem::replace(&mut this.request_id, HeaderValue::from_static(""));
        let traceresponse = this.traceresponse.take();
        Poll::Ready(result.map(|mut response| {
            let headers = response.headers_mut();
            headers.insert(X_REQUEST_ID, request_id);
            if let Some(value) = traceresponse {
                headers.insert(TRACERESPONSE, value.clone());
                headers.insert(TRACEPARENT, value);
            }
            response
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_sites_are_found_by_method_and_route_text() {
        let a = route_site("GET", Some("/orders/{id}"));
        assert_eq!(a.name(), "GET /orders/{id}");
        assert!(
            std::ptr::eq(a, route_site("GET", Some("/orders/{id}"))),
            "the same site every time"
        );
        // The same text at another address, another text at the same address (a reused buffer): the name
        // decides, not the address.
        let owned = String::from("/orders/{id}");
        assert!(std::ptr::eq(a, route_site("GET", Some(&owned))));
        let mut buffer = String::from("/orders/{id}");
        let first = route_site("POST", Some(&buffer));
        buffer.clear();
        buffer.push_str("/orders/{ix}");
        let second = route_site("POST", Some(&buffer));
        assert_eq!(
            (first.name(), second.name()),
            ("POST /orders/{id}", "POST /orders/{ix}")
        );
        assert_eq!(route_site("GET", None).name(), "unmatched");
        assert_eq!(route_site("DELETE", Some("/orders/{id}")).name(), "DELETE /orders/{id}");
    }

    /// A request cancelled while its handler's own scope runs: the handler's scope ends first, inside the
    /// request's, so that an N+1 pattern the handler reports is reported once, not again by the request.
    #[test]
    #[cfg(not(feature = "disabled"))]
    fn a_cancelled_request_ends_its_handler_scope_first_and_warns_once() {
        use std::sync::atomic::AtomicUsize;
        use tracing_subscriber::prelude::*;

        struct CountWarnings(Arc<AtomicUsize>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountWarnings {
            fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
                if event.metadata().target() == "observe::n_plus_one" {
                    self.0.fetch_add(1, Ordering::Relaxed);
                }
            }
        }

        /// A handler that runs one statement ten times in its own scope, then waits forever.
        struct Handler;
        impl tower_service::Service<Request<()>> for Handler {
            type Response = Response<()>;
            type Error = std::convert::Infallible;
            type Future = crate::scope::ScopeFuture<Pin<Box<dyn Future<Output = Result<Response<()>, Self::Error>>>>>;

            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, _: Request<()>) -> Self::Future {
                let site = Site::dynamic(Kind::Handler, "cancelled_handler", &HTTP_SPAN);
                let future: Pin<Box<dyn Future<Output = _>>> = Box::pin(async {
                    for _ in 0..10 {
                        crate::query::record("SELECT * FROM items WHERE id = 1", std::time::Duration::ZERO);
                    }
                    std::future::pending::<()>().await;
                    Ok(Response::new(()))
                });
                crate::scope::ScopeFuture::new(Scope::new(site), future, |_| Outcome::Ok)
            }
        }

        let warnings = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(CountWarnings(warnings.clone()));
        let ((), captured) = tracing::subscriber::with_default(subscriber, || {
            crate::testing::capture(|| {
                let mut service = ObserveLayer::new()
                    .route_name(|_| Some("/cancelled".to_owned()))
                    .layer(Handler);
                let mut future = Box::pin(service.call(Request::builder().body(()).unwrap()));
                let mut cx = Context::from_waker(std::task::Waker::noop());
                assert!(future.as_mut().poll(&mut cx).is_pending());
                drop(future);
            })
        });
        let ended: Vec<(&str, Outcome, u32)> = captured.scopes.iter().map(|s| (s.name, s.outcome, s.queries)).collect();
        assert_eq!(
            ended,
            [
                ("cancelled_handler", Outcome::Cancelled, 10),
                ("GET /cancelled", Outcome::Cancelled, 10)
            ]
        );
        assert_eq!(warnings.load(Ordering::Relaxed), 1);
    }

    /// Serves one request through the layer (a handler answering 200 at once) and returns the response headers.
    #[cfg(not(feature = "disabled"))]
    fn respond(layer: ObserveLayer, headers: &[(&str, &str)]) -> HeaderMap {
        let handler = answering(|_: Request<()>| Response::new(()));
        let mut request = Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut service = layer.route_name(|_| Some("/headers".to_owned())).layer(handler);
        let mut future = Box::pin(service.call(request.body(()).unwrap()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => response.headers().clone(),
            _ => panic!("the handler answers at once"),
        }
    }

    /// A service answering every request with `f`, ready at once.
    #[cfg(not(feature = "disabled"))]
    fn answering(
        f: fn(Request<()>) -> Response<()>,
    ) -> impl Service<
        Request<()>,
        Response = Response<()>,
        Error = std::convert::Infallible,
        Future = std::future::Ready<Result<Response<()>, std::convert::Infallible>>,
    > {
        struct Answer(fn(Request<()>) -> Response<()>);
        impl Service<Request<()>> for Answer {
            type Response = Response<()>;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<Response<()>, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, request: Request<()>) -> Self::Future {
                std::future::ready(Ok((self.0)(request)))
            }
        }
        Answer(f)
    }

    #[cfg(not(feature = "disabled"))]
    fn text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name}: {headers:?}"))
    }

    #[test]
    #[cfg(not(feature = "disabled"))]
    fn response_headers_carry_one_trace_and_share_one_buffer() {
        // No trace header in: a fresh trace ID, the same in all three headers.
        let headers = respond(ObserveLayer::new(), &[("host", "shop"), ("accept", "*/*")]);
        let (request_id, traceresponse) = (text(&headers, "x-request-id"), text(&headers, "traceresponse"));
        assert_eq!(request_id.len(), 32);
        assert!(request_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(traceresponse, text(&headers, "traceparent"));
        let parsed = TraceParent::parse(traceresponse).expect("a valid traceresponse");
        assert_eq!(parsed.trace_id.to_string(), request_id);
        assert_eq!(parsed.flags, 1);
        assert_eq!(headers.len(), 3, "{headers:?}");
        // One buffer behind the three values: the generated X-Request-ID is the trace ID inside it.
        let base = headers["traceresponse"].as_bytes().as_ptr();
        assert_eq!(headers["traceparent"].as_bytes().as_ptr(), base);
        assert_eq!(headers["x-request-id"].as_bytes().as_ptr(), base.wrapping_add(3));

        // A traceparent among other headers: its trace and flags; an X-Request-ID beside it is echoed.
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let headers = respond(
            ObserveLayer::new(),
            &[
                ("host", "shop"),
                ("traceparent", parent),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-request-id", "order-7"),
            ],
        );
        assert_eq!(text(&headers, "x-request-id"), "order-7");
        let parsed = TraceParent::parse(text(&headers, "traceresponse")).unwrap();
        assert_eq!(parsed.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.flags, 0);
        assert_ne!(parsed.parent_id.to_string(), "00f067aa0ba902b7", "a span ID of our own");
    }

    #[test]
    #[cfg(not(feature = "disabled"))]
    fn each_trust_setting_turns_off_its_own_header() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let hex_id = "0af7651916cd43dd8448eb211c80319c";
        let trace_of = |headers: &HeaderMap| text(headers, "traceresponse")[3..35].to_owned();

        // traceparent not trusted: the X-Request-ID decides (a non-hex one is hashed to the trace ID).
        let layer = ObserveLayer::new().trust_traceparent(false);
        let headers = respond(layer, &[("traceparent", parent), ("x-request-id", "order-7")]);
        let hashed = trace_id_from_request_id("order-7").unwrap().to_string();
        assert_eq!(
            (trace_of(&headers), text(&headers, "x-request-id")),
            (hashed, "order-7")
        );

        // X-Request-ID not trusted: the traceparent decides, and the caller's request ID is not echoed.
        let layer = ObserveLayer::new().trust_request_id(false);
        let headers = respond(layer.clone(), &[("traceparent", parent), ("x-request-id", hex_id)]);
        assert_eq!(trace_of(&headers), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(text(&headers, "x-request-id"), "4bf92f3577b34da6a3ce929d0e0e4736");
        // ... and alone it is not followed: a fresh trace.
        let headers = respond(layer, &[("x-request-id", hex_id)]);
        assert_ne!(trace_of(&headers), hex_id);
        assert_eq!(text(&headers, "x-request-id"), trace_of(&headers));
    }

    #[test]
    #[cfg(not(feature = "disabled"))]
    fn repeated_or_untrusted_trace_headers_are_not_followed() {
        let rejected = || crate::metrics::COUNTERS.rejected_headers.load(Ordering::Relaxed);
        let before = rejected();
        // Two X-Request-IDs: ambiguous, rejected, and a fresh ID echoed instead.
        let headers = respond(ObserveLayer::new(), &[("x-request-id", "a-1"), ("x-request-id", "a-2")]);
        let echoed = text(&headers, "x-request-id");
        assert_eq!(echoed.len(), 32, "{echoed}");
        assert!(rejected() > before);
        // One X-Request-ID that is a trace ID: followed.
        let id = "0af7651916cd43dd8448eb211c80319c";
        let headers = respond(ObserveLayer::new(), &[("x-request-id", id)]);
        assert_eq!(text(&headers, "x-request-id"), id);
        assert_eq!(&text(&headers, "traceresponse")[3..35], id);
        // Neither header trusted: a fresh trace, and nothing counted as rejected (nothing was read).
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let before = rejected();
        let layer = ObserveLayer::new().trust_traceparent(false).trust_request_id(false);
        let headers = respond(
            layer,
            &[("traceparent", parent), ("x-request-id", id), ("x-request-id", id)],
        );
        let trace = &text(&headers, "traceresponse")[3..35];
        assert_ne!(trace, id);
        assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(text(&headers, "x-request-id"), trace);
        assert_eq!(rejected(), before);
    }

    #[test]
    fn custom_route_names_name_the_site() {
        #[derive(Clone)]
        struct Route(&'static str);
        let layer = ObserveLayer::new().route_name(|extensions| extensions.get::<Route>().map(|r| r.0.to_owned()));
        let mut request = Request::builder().method(Method::PUT).body(()).unwrap();
        assert_eq!(layer.site_of(&request).name(), "unmatched");
        request.extensions_mut().insert(Route("/carts/{id}"));
        assert_eq!(layer.site_of(&request).name(), "PUT /carts/{id}");
    }
}
