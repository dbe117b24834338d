//! Reduce-side aggregation that may not fit in memory: when the combine map
//! passes the task's share of the budget, its entries are written, ordered
//! by key hash, as a run on disk; at the end the runs and the map are merged
//! by hash, and entries with equal keys are combined (Spark's
//! `ExternalAppendOnlyMap`).

use super::aggregate::{CombineMap, combine_batch, new_map};
use super::external_sort::Run;
use crate::data::{Key, Value};
use crate::error::Result;
use crate::rdd::{BatchIter, Batches, IterBatches};
use crate::scheduler::TaskContext;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;

/// A combine map that spills hash-ordered runs.
pub(crate) struct SpillingMap<'a, K, C> {
    map: CombineMap<K, C>,
    runs: Vec<Run<(K, C)>>,
    limit: usize,
    entry_bytes: Option<usize>,
    tc: &'a TaskContext,
}

impl<'a, K: Key, C: Value> SpillingMap<'a, K, C> {
    pub(crate) fn new(tc: &'a TaskContext) -> Self {
        SpillingMap {
            map: new_map(),
            runs: Vec::new(),
            limit: tc.ctx.memory().limit() / tc.ctx.default_parallelism().max(1),
            entry_bytes: None,
            tc,
        }
    }

    /// Folds a batch in (see `combine_batch`), spilling if the map grew
    /// past the task's share.
    pub(crate) fn insert_batch<V>(
        &mut self,
        batch: &mut Vec<(K, V)>,
        create: impl Fn(V) -> C,
        merge: impl Fn(C, V) -> C,
    ) -> Result<()> {
        combine_batch(&mut self.map, batch, create, merge);
        let each = match self.entry_bytes {
            Some(b) => b,
            None if self.map.is_empty() => return Ok(()),
            None => *self
                .entry_bytes
                .insert(super::combined_entry_bytes(&self.map)),
        };
        if self.map.len().saturating_mul(each) > self.limit {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        let hasher = *self.map.hasher();
        let mut entries: Vec<(K, C)> = self.map.drain().collect();
        entries.sort_unstable_by_key(|(k, _)| hasher.hash_one(k));
        let run = Run::write(&entries, self.tc)?;
        let bytes = run.bytes;
        self.tc.metrics.update(|m| {
            m.spills += 1;
            m.spilled_bytes += bytes;
        });
        self.runs.push(run);
        Ok(())
    }

    /// All combined entries; merges spilled runs with `merge` when there are
    /// any. Order unspecified.
    pub(crate) fn finish(self, merge: impl Fn(C, C) -> C + 'static) -> Result<BatchIter<(K, C)>> {
        if self.runs.is_empty() {
            return Ok(Box::new(IterBatches(self.map.into_iter())));
        }
        let hasher = *self.map.hasher();
        let mut rest: Vec<(K, C)> = self.map.into_iter().collect();
        rest.sort_unstable_by_key(|(k, _)| hasher.hash_one(k));
        let mut sources: Vec<Source<K, C>> = self.runs.into_iter().map(Source::Run).collect();
        sources.push(Source::Memory(rest.into_iter()));
        let mut m = HashMerge {
            hasher,
            heads: (0..sources.len()).map(|_| None).collect(),
            heap: BinaryHeap::new(),
            sources,
            merge,
        };
        for i in 0..m.sources.len() {
            m.advance(i)?;
        }
        Ok(Box::new(m))
    }
}

enum Source<K, C> {
    Run(Run<(K, C)>),
    Memory(std::vec::IntoIter<(K, C)>),
}

struct HashMerge<K, C, M> {
    hasher: rustc_hash::FxBuildHasher,
    /// The next entry of each source, with its hash.
    heads: Vec<Option<(u64, K, C)>>,
    /// (hash, source) of every present head, smallest first.
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    sources: Vec<Source<K, C>>,
    merge: M,
}

impl<K: Key, C: Value, M: Fn(C, C) -> C> HashMerge<K, C, M> {
    fn advance(&mut self, i: usize) -> Result<()> {
        let next = match &mut self.sources[i] {
            Source::Run(r) => r.next()?,
            Source::Memory(it) => it.next(),
        };
        self.heads[i] = next.map(|(k, c)| {
            let h = self.hasher.hash_one(&k);
            self.heap.push(Reverse((h, i)));
            (h, k, c)
        });
        Ok(())
    }
}

impl<K: Key, C: Value, M: Fn(C, C) -> C> Batches<(K, C)> for HashMerge<K, C, M> {
    fn next_batch(&mut self, out: &mut Vec<(K, C)>, hint: usize) -> Result<bool> {
        let mut group: Vec<(K, C)> = Vec::new();
        while out.len() < hint.max(1) {
            let Some(&Reverse((hash, _))) = self.heap.peek() else {
                return Ok(false);
            };
            // Every entry with this hash, from every source: equal keys are
            // among them. Each source is in hash order, so its next head may
            // share the hash and is taken in this same loop.
            while let Some(&Reverse((h, i))) = self.heap.peek() {
                if h != hash {
                    break;
                }
                self.heap.pop();
                let (_, k, c) = self.heads[i].take().expect("a heap entry has a head");
                match group.iter().position(|(gk, _)| *gk == k) {
                    Some(p) => {
                        let (gk, gc) = group.swap_remove(p);
                        group.push((gk, (self.merge)(gc, c)));
                    }
                    None => group.push((k, c)),
                }
                self.advance(i)?;
            }
            out.append(&mut group);
        }
        Ok(!self.heap.is_empty())
    }
}
