//! The memory budget that shuffle buffers and cached blocks draw from.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What [`Context::memory_usage`](crate::Context::memory_usage) reports:
/// the memory budget and how much of it shuffle buffers and cached blocks
/// hold now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Bytes in use (estimated sizes of what is held).
    pub used: usize,
    /// The budget (`ContextBuilder::memory_limit`).
    pub limit: usize,
}

/// A byte budget shared by a context's tasks. Reservations are estimates
/// (see [`estimate_size`]); a reservation that would pass the limit is
/// refused and the caller falls back to disk.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryBudget {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Reserves `bytes` if they fit under the limit.
    pub(crate) fn try_reserve(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|n| *n <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Counts `bytes` that are in use whether or not they fit (bookkeeping
    /// of data that exists already); later reservations see them.
    pub(crate) fn reserve_anyway(&self, bytes: usize) {
        let next = self.used.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(next, Ordering::Relaxed);
    }

    pub(crate) fn release(&self, bytes: usize) {
        let prev = self.used.fetch_sub(bytes, Ordering::AcqRel);
        assert!(prev >= bytes, "released more memory than was reserved");
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The most memory reserved at once since the last reset.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak measurement from the current use.
    pub(crate) fn reset_peak(&self) {
        self.peak.store(self.used(), Ordering::Relaxed);
    }
}

/// Estimates the in-memory size of `items`: the inline size of each element
/// plus a heap size sampled from up to 16 elements (their encoded length is a
/// cheap, honest proxy for strings and vectors they own).
pub(crate) fn estimate_size<T: serde::Serialize>(items: &[T]) -> usize {
    let inline = std::mem::size_of_val(items);
    if items.is_empty() {
        return 0;
    }
    let step = (items.len() / 16).max(1);
    let mut sampled = 0usize;
    let mut n = 0usize;
    let mut buf = Vec::new();
    for item in items.iter().step_by(step).take(16) {
        buf.clear();
        if crate::codec::encode_record(item, &mut buf).is_ok() {
            sampled += buf.len();
        }
        n += 1;
    }
    inline + sampled / n.max(1) * items.len()
}

/// A default budget: half the physical memory (read from /proc/meminfo),
/// or 2 GiB where that cannot be read.
pub(crate) fn default_limit() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    total.map_or(2 << 30, |t| t / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit() {
        let b = MemoryBudget::new(100);
        assert!(b.try_reserve(60));
        assert!(!b.try_reserve(41));
        assert!(b.try_reserve(40));
        b.release(100);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn estimate_counts_heap_data() {
        let small: Vec<String> = vec![String::new(); 100];
        let big: Vec<String> = vec!["x".repeat(1000); 100];
        assert!(estimate_size(&big) > estimate_size(&small) + 90_000);
    }
}
