//! A lock-free latency histogram: log-linear buckets (32 per power of two, so a reported
//! percentile is within about 3 % of the true value), shared by every client task.
//!
//! Every thread records into a shard of its own (threads take the shards in turn), so that
//! clients on different threads do not contend for the same counters: a shared counter
//! bounced between cores on every event would make the clients, not the server, the
//! bottleneck of a saturation run. Reading sums the shards.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Sub-buckets per power of two, as a number of bits.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are their own bucket.
const LINEAR: u64 = 2 * SUB;
/// Enough buckets for values up to 2^63 microseconds.
const BUCKETS: usize = (LINEAR + (64 - SUB_BITS as u64 - 1) * SUB) as usize;
/// Shards per histogram: threads beyond this share them.
const SHARDS: usize = 8;

/// Counts of latencies in microseconds.
pub struct Histogram {
    shards: Box<[Shard]>,
}

/// One thread's counts. Aligned to 128 bytes, so that two shards' counters never share a
/// cache line (or an adjacent-line prefetch pair).
#[repr(align(128))]
struct Shard {
    count: AtomicU64,
    max: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

/// This thread's shard number: threads are numbered in the order they first record.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

fn index(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let exp = 63 - value.leading_zeros(); // >= SUB_BITS + 1
    let sub = (value >> (exp - SUB_BITS)) & (SUB - 1);
    (LINEAR + u64::from(exp - SUB_BITS - 1) * SUB + sub) as usize
}

/// The smallest value that falls in bucket `i`.
fn lower_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / SUB + u64::from(SUB_BITS) + 1;
    let sub = (i - LINEAR) % SUB;
    match 1u64.checked_shl(exp as u32) {
        Some(base) => base | (sub << (exp - u64::from(SUB_BITS))),
        None => u64::MAX,
    }
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, micros: u64) {
        let shard = &self.shards[shard_index()];
        shard.buckets[index(micros)].fetch_add(1, Ordering::Relaxed);
        shard.count.fetch_add(1, Ordering::Relaxed);
        shard.max.fetch_max(micros, Ordering::Relaxed);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.count.load(Ordering::Relaxed))
            .sum()
    }

    /// The largest value recorded.
    pub fn max(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.max.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// How many values fell in bucket `i`, over every shard.
    fn bucket(&self, i: usize) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.buckets[i].load(Ordering::Relaxed))
            .sum()
    }

    /// The value at quantile `q` (0..=1): the midpoint of its bucket, or `None` if empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for i in 0..BUCKETS {
            seen += self.bucket(i);
            if seen >= rank {
                let low = lower_bound(i);
                let high = lower_bound(i + 1).min(self.max().max(low));
                return Some(low + (high - low) / 2);
            }
        }
        Some(self.max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_recorded_on_many_threads_are_all_counted() {
        let histogram = Histogram::default();
        std::thread::scope(|scope| {
            for t in 0..(SHARDS as u64 + 3) {
                let histogram = &histogram;
                scope.spawn(move || {
                    for v in 0..100 {
                        histogram.record(t * 1_000 + v);
                    }
                });
            }
        });
        assert_eq!(histogram.count(), (SHARDS as u64 + 3) * 100);
        assert_eq!(histogram.max(), (SHARDS as u64 + 2) * 1_000 + 99);
        // Half the values are below the middle thread's.
        let median = histogram.quantile(0.5).unwrap_or(0);
        let middle = (SHARDS as u64 + 3) / 2 * 1_000;
        assert!(
            median.abs_diff(middle) <= middle / 16,
            "{median} against {middle}"
        );
    }

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for v in [
            0,
            1,
            63,
            64,
            65,
            100,
            1_000,
            123_456,
            10_000_000,
            u64::MAX / 2,
        ] {
            let i = index(v);
            assert!(i >= last);
            last = i;
            assert!(
                lower_bound(i) <= v && v < lower_bound(i + 1).max(v + 1),
                "{v}"
            );
        }
    }
}
