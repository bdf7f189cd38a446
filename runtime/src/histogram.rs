//! A fixed-size, lock-free, log-linear histogram.
//!
//! Recording is one `fetch_add` on an atomic bucket: no allocation, no lock. Values below 32 are exact; above,
//! each power of two is split in 16 buckets, so a bucket's midpoint is within 1/32 (about 3%) of any value in
//! it. The flusher drains the buckets and sends one value per non-empty
//! bucket, weighted by its count with the StatsD sample rate (`value|d|@0.02` stands for 50 samples).

use std::sync::atomic::{AtomicU64, Ordering};

const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values at or above `2^MAX_BITS` land in the last bucket (for nanoseconds: about 4.9 hours).
const MAX_BITS: u32 = 44;
/// Number of buckets: the exact ones below `2 * SUB`, then `SUB` per power of two up to `2^MAX_BITS`.
pub(crate) const BUCKETS: usize = SUB + (MAX_BITS - SUB_BITS) as usize * SUB;

pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
}

impl Histogram {
    pub(crate) const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    #[inline]
    pub(crate) fn record(&self, value: u64) {
        self.buckets[index(value)].fetch_add(1, Ordering::Relaxed);
    }

    /// How many values are recorded (a scan: for diagnostics, not the hot path).
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Takes every non-empty bucket as `(representative value, count)`, leaving the histogram empty.
    /// A value recorded concurrently lands either in this drain or in the next one: never lost, never twice.
    pub(crate) fn drain(&self, mut f: impl FnMut(u64, u64)) {
        for (i, bucket) in self.buckets.iter().enumerate() {
            if bucket.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let count = bucket.swap(0, Ordering::Relaxed);
            if count > 0 {
                f(representative(i), count);
            }
        }
    }
}

#[inline]
pub(crate) fn index(value: u64) -> usize {
    if value < (2 * SUB) as u64 {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    if msb >= MAX_BITS {
        return BUCKETS - 1;
    }
    let shift = msb - SUB_BITS;
    let sub = ((value >> shift) as usize) & (SUB - 1);
    SUB + (shift as usize) * SUB + sub
}

/// The lower bound of bucket `i`.
fn lower(i: usize) -> u64 {
    if i < 2 * SUB {
        return i as u64;
    }
    let shift = (i - SUB) / SUB;
    let sub = (i - SUB) % SUB;
    ((SUB + sub) as u64) << shift
}

/// The value sent for bucket `i`: its midpoint (exact for the small buckets).
pub(crate) fn representative(i: usize) -> u64 {
    if i < 2 * SUB {
        return i as u64;
    }
    let shift = (i - SUB) / SUB;
    lower(i) + ((1u64 << shift) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        for v in 0..32 {
            assert_eq!(representative(index(v)), v);
        }
    }

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut previous = 0;
        for i in 1..BUCKETS {
            assert!(lower(i) > lower(i - 1));
            assert_eq!(index(lower(i)), i, "lower bound of bucket {i}");
            assert_eq!(index(lower(i) - 1), i - 1, "value below bucket {i}");
            previous = i;
        }
        assert_eq!(previous, BUCKETS - 1);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn relative_error_is_small() {
        let mut v = 1u64;
        while v < (1u64 << MAX_BITS) {
            let r = representative(index(v)) as f64;
            let err = (r - v as f64).abs() / v as f64;
            assert!(err <= 1.0 / 32.0 + 1e-9, "value {v} -> {r} (error {err})");
            v = v * 17 / 16 + 1;
        }
    }

    #[test]
    fn drain_returns_counts_and_empties() {
        let h = Histogram::new();
        for v in [5, 5, 5, 1_000_000, 1_000_100] {
            h.record(v);
        }
        let mut seen = Vec::new();
        h.drain(|value, count| seen.push((value, count)));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (5, 3));
        assert_eq!(seen[1].1, 2);
        assert!((seen[1].0 as f64 - 1_000_050.0).abs() / 1_000_050.0 < 0.02);
        let mut again = 0;
        h.drain(|_, _| again += 1);
        assert_eq!(again, 0);
    }
}
