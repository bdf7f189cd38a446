//! The clock of scopes and query hooks: raw reads of the TSC where quanta uses it, converted to nanoseconds
//! only at the end of a measurement.
//!
//! quanta's `Clock::raw` and `Clock::delta_as_nanos` are not inlined into other crates: two calls and a match
//! per read. When quanta's clock is the TSC (checked once: its raw value lies between two `rdtsc` read around
//! it), a read here is the `rdtsc` instruction itself and the conversion one multiplication by quanta's own
//! calibration. Elsewhere (no invariant TSC, other architectures) every read goes through quanta.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Nanoseconds per 2^40 TSC ticks, from quanta's calibration; 0 when reads go through quanta.
static TSC_NANOS_PER_2_40: AtomicU64 = AtomicU64::new(0);
const SHIFT: u32 = 40;

fn quanta() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Decides once, before the first read, whether reads may be the bare TSC.
fn init() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let clock = quanta();
        if uses_tsc(clock) {
            let factor = clock.delta_as_nanos(0, 1 << SHIFT);
            TSC_NANOS_PER_2_40.store(factor, Ordering::Release);
        }
    });
}

#[cfg(target_arch = "x86_64")]
fn uses_tsc(clock: &quanta::Clock) -> bool {
    // quanta reads the TSC with `rdtsc` when it chose it: its raw value then lies between two reads taken
    // around it. A monotonic clock in nanoseconds never does (different origin and rate). Three times, so that
    // a migration between cores in the middle cannot decide it.
    (0..3).all(|_| {
        // SAFETY: `rdtsc` exists on every x86_64 processor.
        let before = unsafe { core::arch::x86_64::_rdtsc() };
        let raw = clock.raw();
        let after = unsafe { core::arch::x86_64::_rdtsc() };
        before <= raw && raw <= after
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn uses_tsc(_: &quanta::Clock) -> bool {
    false
}

/// A raw clock reading, for [`nanos_between`].
#[inline]
pub(crate) fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if TSC_NANOS_PER_2_40.load(Ordering::Relaxed) != 0 {
        // SAFETY: `rdtsc` exists on every x86_64 processor.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    now_slow()
}

#[cold]
#[inline(never)]
fn now_slow() -> u64 {
    init();
    #[cfg(target_arch = "x86_64")]
    if TSC_NANOS_PER_2_40.load(Ordering::Acquire) != 0 {
        // SAFETY: as above.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    quanta().raw()
}

/// Nanoseconds from `start` to `end`, two readings of [`now`]; 0 if `end` is not after `start` (the TSCs of
/// two cores may differ by a few ticks).
#[inline]
pub(crate) fn nanos_between(start: u64, end: u64) -> u64 {
    let factor = TSC_NANOS_PER_2_40.load(Ordering::Relaxed);
    if factor == 0 {
        return quanta().delta_as_nanos(start, end);
    }
    let ticks = u128::from(end.saturating_sub(start));
    u64::try_from((ticks * u128::from(factor)) >> SHIFT).unwrap_or(u64::MAX)
}

/// The time since `start`, a reading of [`now`].
#[cfg_attr(not(any(feature = "rusqlite", feature = "diesel")), allow(dead_code))]
#[inline]
pub(crate) fn since(start: u64) -> std::time::Duration {
    std::time::Duration::from_nanos(nanos_between(start, now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn readings_convert_to_the_time_that_passed() {
        // Bracketed by the OS clock, so that a preemption anywhere cannot make it fail: the measured time is
        // at least the sleep and at most what the OS clock saw around it (2% for the calibration).
        let sleep = Duration::from_millis(20);
        let outer = Instant::now();
        let start = now();
        std::thread::sleep(sleep);
        let measured = since(start).as_secs_f64();
        let around = outer.elapsed().as_secs_f64();
        assert!(
            measured >= sleep.as_secs_f64() * 0.98 && measured <= around * 1.02,
            "measured {measured}, slept {sleep:?}, the OS clock saw {around}"
        );
        assert_eq!(nanos_between(10, 5), 0);
    }

    #[test]
    fn reads_are_the_tsc_exactly_where_quanta_uses_it() {
        init();
        let tsc = TSC_NANOS_PER_2_40.load(Ordering::Relaxed) != 0;
        // quanta's `Debug` names the source it picked: `Counter(..)` is the TSC.
        let quanta_uses_tsc = format!("{:?}", quanta()).contains("Counter");
        assert_eq!(tsc, quanta_uses_tsc, "{:?}", quanta());
    }
}
