//! Counters and histograms written by one thread and read by any.
//!
//! Every instance belongs to one worker, which is its only writer, so an
//! update is a relaxed load and store (a plain `mov` on x86-64) rather than
//! a locked read-modify-write; the admin thread reads them at scrape time
//! and may see a value a few updates old, never a torn one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A monotonically increasing count with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down, with a single writer.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline]
    pub fn set(&self, n: u64) {
        self.0.store(n, Relaxed);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.set(self.get().wrapping_add(n));
    }

    #[inline]
    pub fn sub(&self, n: u64) {
        self.set(self.get().saturating_sub(n));
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Upper bounds of the latency buckets, in microseconds (Prometheus's
/// `le`): powers of two from 32 us to 8.4 s, then +Inf. Powers of two make
/// the bucket of a sample a count of leading zeros, not a search.
pub const LATENCY_BOUNDS_US: [u64; 19] = [
    32, 64, 128, 256, 512, 1_024, 2_048, 4_096, 8_192, 16_384, 32_768, 65_536, 131_072, 262_144,
    524_288, 1_048_576, 2_097_152, 4_194_304, 8_388_608,
];

/// log2 of the first bound.
const FIRST_BOUND_LOG2: u32 = 5;

/// A latency histogram with a single writer: a count per bucket (the last
/// is +Inf) and the sum in microseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Counter; LATENCY_BOUNDS_US.len() + 1],
    sum_us: Counter,
}

/// The bucket of a sample: the first bound >= `us`.
#[inline]
fn bucket(us: u64) -> usize {
    if us <= 1 << FIRST_BOUND_LOG2 {
        return 0;
    }
    // ceil(log2(us)) - FIRST_BOUND_LOG2, capped at the +Inf bucket.
    let ceil_log2 = 64 - (us - 1).leading_zeros();
    ((ceil_log2 - FIRST_BOUND_LOG2) as usize).min(LATENCY_BOUNDS_US.len())
}

impl Histogram {
    #[inline]
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if let Some(counter) = self.buckets.get(bucket(us)) {
            counter.inc();
        }
        self.sum_us.add(us);
    }

    /// Per-bucket counts (not cumulative) and the sum in microseconds.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0u64; LATENCY_BOUNDS_US.len() + 1];
        for (count, bucket) in counts.iter_mut().zip(&self.buckets) {
            *count = bucket.get();
        }
        HistogramSnapshot {
            counts,
            sum_us: self.sum_us.get(),
        }
    }
}

/// A histogram read at one moment; snapshots of several workers add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub counts: [u64; LATENCY_BOUNDS_US.len() + 1],
    pub sum_us: u64,
}

impl HistogramSnapshot {
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::default();
        h.record(Duration::from_micros(32));
        h.record(Duration::from_micros(33));
        h.record(Duration::from_micros(64));
        h.record(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[1], 2);
        assert_eq!(s.counts[LATENCY_BOUNDS_US.len()], 1);
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_us, 32 + 33 + 64 + 60_000_000);
    }

    #[test]
    fn every_sample_lands_in_the_first_bucket_that_holds_it() {
        for us in [
            0u64,
            1,
            31,
            32,
            33,
            100,
            1_024,
            1_025,
            8_388_608,
            8_388_609,
            u64::MAX,
        ] {
            let expected = LATENCY_BOUNDS_US
                .iter()
                .position(|&bound| us <= bound)
                .unwrap_or(LATENCY_BOUNDS_US.len());
            assert_eq!(bucket(us), expected, "{us} us");
        }
    }

    #[test]
    fn counters_and_gauges() {
        let c = Counter::default();
        c.add(5);
        c.inc();
        assert_eq!(c.get(), 6);
        let g = Gauge::default();
        g.add(3);
        g.sub(5);
        assert_eq!(g.get(), 0);
    }
}
