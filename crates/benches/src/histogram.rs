//! A lock-free latency histogram.
//!
//! Thousands of bot tasks record millions of samples a second from a few
//! threads, so recording must be one relaxed atomic add, with no lock and no
//! allocation. Buckets are log-linear over nanoseconds: values below 64 ns
//! are exact, above that each power of two is cut into 32 buckets, so a
//! quantile is off by at most 1/32 (about 3 %) of its value. That is plenty
//! for p50/p99 of latencies, and the whole table is under 16 KiB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are their own bucket.
const LINEAR: u64 = 2 * SUB;
/// Enough buckets for any `u64`.
const BUCKETS: usize = (LINEAR + (64 - (SUB_BITS as u64 + 1)) * SUB) as usize;

/// A histogram of durations, shared between tasks.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < LINEAR {
        return ns as usize;
    }
    // ns >= 64, so the top bit is at 6 or above.
    let top = 63 - ns.leading_zeros();
    let shift = top - SUB_BITS;
    let sub = (ns >> shift) & (SUB - 1);
    (LINEAR + u64::from(top - (SUB_BITS + 1)) * SUB + sub) as usize
}

/// The smallest and largest value that land in bucket `index`.
fn bounds_of(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < LINEAR {
        return (index, index);
    }
    let rel = index - LINEAR;
    let top = rel / SUB + u64::from(SUB_BITS) + 1;
    let sub = rel % SUB;
    let shift = top - u64::from(SUB_BITS);
    let low = (SUB | sub) << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    /// Records one sample, in nanoseconds.
    pub fn record_ns(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Records one sample.
    pub fn record(&self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The value below which a share `q` (0..=1) of the samples lie: the
    /// midpoint of the bucket holding that rank, capped at the maximum.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0u64;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                let (low, high) = bounds_of(index);
                let mid = low + (high - low) / 2;
                return mid.min(self.max_ns.load(Ordering::Relaxed));
            }
        }
        self.max_ns.load(Ordering::Relaxed)
    }

    /// A summary in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let count = self.count();
        let ms = |ns: u64| ns as f64 / 1e6;
        LatencySummary {
            count,
            mean_ms: if count == 0 {
                0.0
            } else {
                ms(self.sum_ns.load(Ordering::Relaxed)) / count as f64
            },
            p50_ms: ms(self.quantile_ns(0.50)),
            p90_ms: ms(self.quantile_ns(0.90)),
            p99_ms: ms(self.quantile_ns(0.99)),
            p999_ms: ms(self.quantile_ns(0.999)),
            max_ms: ms(self.max_ns.load(Ordering::Relaxed)),
        }
    }
}

/// Quantiles of a latency distribution, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for ns in 0..5000 {
            let b = bucket_of(ns);
            assert!(b >= last, "buckets grow with values");
            last = b;
        }
        for ns in (0..5000).chain([1 << 20, (1 << 20) + 1, u64::MAX / 3, u64::MAX]) {
            let b = bucket_of(ns);
            assert!(b < BUCKETS, "{ns} -> {b}");
            let (low, high) = bounds_of(b);
            assert!(low <= ns && ns <= high, "{ns} not in {low}..={high}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_a_few_percent() {
        let h = Histogram::new();
        for us in 1..=1000u64 {
            h.record_ns(us * 1000);
        }
        let p50 = h.quantile_ns(0.5) as f64;
        let p99 = h.quantile_ns(0.99) as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.04, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.04, "{p99}");
        assert_eq!(h.quantile_ns(1.0), 1_000_000);
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.mean_ms - 0.5005).abs() < 1e-9);
        assert_eq!(Histogram::new().summary(), LatencySummary::default());
    }
}
