//! The scope enter/exit path allocates nothing once warm: a counting global allocator watches observed sync
//! calls and observed futures polled to completion, with the metric pipeline running.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use observe::observe;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the measuring thread counts: the test harness and the flusher thread allocate on their own.
    static MEASURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && MEASURED.with(|m| m.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[observe(handler)]
fn handler(x: u64) -> Result<u64, u64> {
    if x.is_multiple_of(7) {
        Err(child(x))
    } else {
        Ok(child(x))
    }
}

#[observe]
fn child(x: u64) -> u64 {
    x.wrapping_mul(31)
}

#[observe(task)]
async fn job(x: u64) -> u64 {
    YieldOnce(false).await;
    child(x) + 1
}

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn run_to_completion<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

#[test]
fn observed_calls_allocate_nothing_after_warm_up() {
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let guard = observe::Config::default()
        .statsd_addr(receiver.local_addr().unwrap().to_string())
        .install_subscriber(false)
        .init()
        .unwrap();
    MEASURED.with(|m| m.set(true));

    // Warm-up: the first call of each (site, outcome) registers the site and allocates its histogram.
    for x in 0..14 {
        let _ = std::hint::black_box(handler(x));
        std::hint::black_box(run_to_completion(job(x)));
    }

    COUNTING.store(true, Ordering::SeqCst);
    for x in 0..100_000 {
        let _ = std::hint::black_box(handler(std::hint::black_box(x)));
        std::hint::black_box(run_to_completion(job(x)));
    }
    COUNTING.store(false, Ordering::SeqCst);
    MEASURED.with(|m| m.set(false));

    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "allocations on the scope path");
    // The calls were really recorded.
    let executions = |suffix: &str| {
        observe::sites()
            .find(|s| s.name().ends_with(suffix))
            .map(|s| s.executions())
            .unwrap()
    };
    assert_eq!(executions("::handler"), 100_014);
    assert_eq!(executions("::child"), 200_028);
    assert_eq!(executions("::job"), 100_014);
    drop(guard);
}
