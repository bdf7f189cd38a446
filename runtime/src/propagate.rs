//! Carrying the current trace across the hops real systems make: spawned tasks, blocking pools, threads, job
//! queues. Scopes started on the other side are children of the same trace (same trace ID in every log line).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::str::FromStr;
use std::task::{Context as TaskContext, Poll};

use tracing::Span;

use crate::scope::{current_trace_id, run_in_frame, Frame};
use crate::trace_id::TraceId;
use crate::w3c::{SpanId, TraceParent};

/// The current span, for carrying elsewhere: with sqlx scope carriers, the span entered around the scope, not
/// the carrier that stands for it there (a carrier entered on another thread would make no parent).
fn current_span() -> Span {
    #[cfg(feature = "sqlx")]
    return crate::sqlx_carrier::current_span_bypassing();
    #[cfg(not(feature = "sqlx"))]
    Span::current()
}

/// A trace to carry elsewhere: the trace ID, W3C flags, and the current `tracing` span (so that spans keep
/// their parent too). Capture it with [`TraceContext::current`], re-enter it with [`TraceContext::in_scope`] or
/// [`TraceContext::wrap`].
///
/// ```
/// #[observe::observe(handler)]
/// fn handler() -> (observe::TraceId, Option<observe::TraceId>) {
///     let context = observe::TraceContext::current();
///     let from_thread = std::thread::spawn(move || context.in_scope(observe::current_trace_id))
///         .join()
///         .unwrap();
///     (observe::current_trace_id().unwrap(), from_thread)
/// }
/// let (mine, theirs) = handler();
/// assert_eq!(Some(mine), theirs);
/// ```
#[derive(Clone, Debug)]
pub struct TraceContext {
    trace_id: Option<TraceId>,
    flags: u8,
    span: Span,
}

impl TraceContext {
    /// The context of the code running now: empty outside any scope.
    ///
    /// ```
    /// assert!(observe::TraceContext::current().trace_id().is_none());
    /// ```
    pub fn current() -> TraceContext {
        TraceContext {
            trace_id: current_trace_id(),
            flags: crate::scope::current_trace_flags(),
            span: current_span(),
        }
    }

    /// A context that resumes the trace `trace_id` (from a queue message, a header you parsed yourself).
    ///
    /// ```
    /// let id = observe::TraceId::generate();
    /// let context = observe::TraceContext::from_trace_id(id);
    /// assert_eq!(context.in_scope(observe::current_trace_id), Some(id));
    /// ```
    pub fn from_trace_id(trace_id: TraceId) -> TraceContext {
        TraceContext {
            trace_id: Some(trace_id),
            flags: 1,
            span: Span::none(),
        }
    }

    /// The carried trace ID.
    ///
    /// ```
    /// let id = observe::TraceId::generate();
    /// assert_eq!(observe::TraceContext::from_trace_id(id).trace_id(), Some(id));
    /// ```
    pub fn trace_id(&self) -> Option<TraceId> {
        self.trace_id
    }

    fn frame(&self) -> Frame {
        let frame = Frame::new(None, ptr::null());
        frame.trace_id.set(self.trace_id);
        frame.flags.set(self.flags);
        frame
    }

    /// Runs `f` inside this context: scopes it starts share the trace ID, log lines carry it.
    ///
    /// ```
    /// let context = observe::TraceContext::from_trace_id(observe::TraceId::generate());
    /// let id = context.in_scope(|| observe::current_trace_id());
    /// assert_eq!(id, context.trace_id());
    /// ```
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.trace_id.is_none() {
            return self.span.in_scope(f);
        }
        let frame = self.frame();
        run_in_frame(&frame, || self.span.in_scope(f))
    }

    /// Wraps a future so that it runs inside this context on every poll, wherever it is polled.
    ///
    /// ```
    /// # async fn run() {
    /// let context = observe::TraceContext::from_trace_id(observe::TraceId::generate());
    /// let id = context.clone().wrap(async { observe::current_trace_id() }).await;
    /// assert_eq!(id, context.trace_id());
    /// # }
    /// ```
    pub fn wrap<F: Future>(self, future: F) -> WithContext<F> {
        WithContext {
            frame: self.trace_id.map(|_| self.frame()),
            span: self.span,
            future,
        }
    }

    /// The context as a [`Carrier`], to put into a job's payload or a message's headers. `None` outside any
    /// trace.
    ///
    /// ```
    /// let context = observe::TraceContext::from_trace_id(observe::TraceId::generate());
    /// assert!(context.carrier().is_some());
    /// ```
    pub fn carrier(&self) -> Option<Carrier> {
        Some(Carrier {
            parent: TraceParent {
                trace_id: self.trace_id?,
                parent_id: SpanId::generate(),
                flags: self.flags,
            },
        })
    }
}

/// A future running inside a [`TraceContext`]. See [`TraceContext::wrap`] and [`FutureExt::in_current_scope`].
///
/// ```
/// use observe::FutureExt;
/// let future: observe::WithContext<_> = async { 1 }.in_current_scope();
/// # drop(future);
/// ```
pub struct WithContext<F> {
    frame: Option<Frame>,
    span: Span,
    future: F,
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned and never moved out; `frame` and `span` are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let _entered = this.span.enter();
        match &this.frame {
            Some(frame) => run_in_frame(frame, || future.poll(cx)),
            None => future.poll(cx),
        }
    }
}

impl<F> fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithContext")
            .field("trace_id", &self.frame.as_ref().and_then(|f| f.trace_id.get()))
            .finish_non_exhaustive()
    }
}

/// `.in_current_scope()` for any future: it carries the current trace wherever it is polled.
///
/// ```
/// use observe::FutureExt;
///
/// #[observe::observe(handler)]
/// async fn handler() -> bool {
///     let mine = observe::current_trace_id();
///     let task = async { observe::current_trace_id() }.in_current_scope();
///     // (with tokio: tokio::spawn(task) and the spawned task logs with the handler's trace ID)
///     task.await == mine
/// }
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// assert!(runtime.block_on(handler()));
/// ```
pub trait FutureExt: Future + Sized {
    /// Wraps the future in the current [`TraceContext`].
    fn in_current_scope(self) -> WithContext<Self> {
        TraceContext::current().wrap(self)
    }
}

impl<F: Future> FutureExt for F {}

/// A trace context to put into a job's payload or a message's headers, and to resume on the other side
/// ([`resume`], or `#[observe(task, carrier = expr)]`).
///
/// It is a W3C `traceparent` value, so any tracer that speaks W3C can read it too. Its forms:
/// `Display`/`FromStr` (the `traceparent` string), a plain string map (`{"traceparent": "00-…"}`), and with
/// the `serde` feature a serde struct of that map.
///
/// ```
/// #[observe::observe(handler)]
/// fn enqueue() -> (observe::TraceId, String) {
///     let carrier = observe::Carrier::current().expect("inside a scope");
///     (observe::current_trace_id().unwrap(), carrier.to_string())
/// }
///
/// let (id, payload) = enqueue();
/// let carrier: observe::Carrier = payload.parse().unwrap();
/// assert_eq!(carrier.trace_id(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Carrier {
    parent: TraceParent,
}

impl Carrier {
    /// The current trace, if code runs inside one.
    ///
    /// ```
    /// assert!(observe::Carrier::current().is_none());
    /// ```
    pub fn current() -> Option<Carrier> {
        TraceContext::current().carrier()
    }

    /// The trace ID it carries.
    ///
    /// ```
    /// let id = observe::TraceId::generate();
    /// let carrier = observe::TraceContext::from_trace_id(id).carrier().unwrap();
    /// assert_eq!(carrier.trace_id(), id);
    /// ```
    pub fn trace_id(&self) -> TraceId {
        self.parent.trace_id
    }

    /// The `traceparent` it stands for.
    ///
    /// ```
    /// let carrier: observe::Carrier = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
    /// assert!(carrier.traceparent().sampled());
    /// ```
    pub fn traceparent(&self) -> TraceParent {
        self.parent
    }

    /// The context to resume.
    ///
    /// ```
    /// let carrier: observe::Carrier = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
    /// let id = carrier.context().in_scope(observe::current_trace_id).unwrap();
    /// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn context(&self) -> TraceContext {
        TraceContext {
            trace_id: Some(self.parent.trace_id),
            flags: self.parent.flags,
            span: Span::none(),
        }
    }

    /// As a plain string map: `{"traceparent": "00-…"}` (message headers, job metadata).
    ///
    /// ```
    /// let carrier: observe::Carrier = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
    /// let map = carrier.to_map();
    /// assert_eq!(observe::Carrier::from_map(&map), Some(carrier));
    /// ```
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([("traceparent".to_owned(), self.to_string())])
    }

    /// Reads the map form back; `None` if the `traceparent` entry is missing or invalid.
    ///
    /// ```
    /// assert!(observe::Carrier::from_map(&std::collections::HashMap::new()).is_none());
    /// ```
    pub fn from_map<S: std::hash::BuildHasher>(map: &HashMap<String, String, S>) -> Option<Carrier> {
        map.get("traceparent")?.parse().ok()
    }
}

impl fmt::Display for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parent.fmt(f)
    }
}

impl fmt::Debug for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Carrier({})", self.parent)
    }
}

/// The error for a string that is not a valid `traceparent`.
///
/// ```
/// assert!("nope".parse::<observe::Carrier>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCarrierError;

impl fmt::Display for ParseCarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid W3C traceparent")
    }
}

impl std::error::Error for ParseCarrierError {}

impl FromStr for Carrier {
    type Err = ParseCarrierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceParent::parse(s)
            .map(|parent| Carrier { parent })
            .ok_or(ParseCarrierError)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Carrier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("traceparent", &self.to_string())?;
        map.end()
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Carrier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = HashMap::<String, String>::deserialize(deserializer)?;
        let value = map
            .get("traceparent")
            .ok_or_else(|| serde::de::Error::missing_field("traceparent"))?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

/// Runs `future` inside the trace `carrier` carries: the worker side of a job queue.
///
/// ```
/// # async fn run() {
/// let carrier: observe::Carrier = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
/// let id = observe::resume(&carrier, async { observe::current_trace_id() }).await;
/// assert_eq!(id.unwrap().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// # }
/// ```
pub fn resume<F: Future>(carrier: &Carrier, future: F) -> WithContext<F> {
    carrier.context().wrap(future)
}

/// `std::thread::spawn`, carrying the current trace into the new thread.
pub mod thread {
    /// Spawns a thread that runs `f` inside the current trace.
    ///
    /// ```
    /// #[observe::observe(task)]
    /// fn job() -> bool {
    ///     let mine = observe::current_trace_id();
    ///     observe::thread::spawn(observe::current_trace_id).join().unwrap() == mine
    /// }
    /// assert!(job());
    /// ```
    pub fn spawn<F, T>(f: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let context = super::TraceContext::current();
        std::thread::spawn(move || context.in_scope(f))
    }
}

/// `tokio::spawn`, carrying the current trace into the task.
///
/// ```
/// #[observe::observe(handler)]
/// async fn handler() -> bool {
///     let mine = observe::current_trace_id();
///     observe::spawn(async { observe::current_trace_id() }).await.unwrap() == mine
/// }
/// # let runtime = tokio::runtime::Runtime::new().unwrap();
/// assert!(runtime.block_on(handler()));
/// ```
#[cfg(feature = "tokio")]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(TraceContext::current().wrap(future))
}

/// `tokio::task::spawn_blocking`, carrying the current trace into the blocking pool.
///
/// ```
/// #[observe::observe(handler)]
/// async fn handler() -> bool {
///     let mine = observe::current_trace_id();
///     observe::spawn_blocking(observe::current_trace_id).await.unwrap() == mine
/// }
/// # let runtime = tokio::runtime::Runtime::new().unwrap();
/// assert!(runtime.block_on(handler()));
/// ```
#[cfg(feature = "tokio")]
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let context = TraceContext::current();
    tokio::task::spawn_blocking(move || context.in_scope(f))
}
