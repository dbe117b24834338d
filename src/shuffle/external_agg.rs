//! Reduce-side aggregation that may not fit in memory: when the combine map
//! passes the task's share of the budget, its entries are written, ordered
//! by key hash, as a run on disk; at the end the runs and the map are merged
//! by hash, and entries with equal keys are combined (Spark's
//! `ExternalAppendOnlyMap`). Grouping operations (group_by_key, cogroup, a
//! join's build side) use it too: their combiners hold every value, so the
//! map is sized by the records put in, and a hot key's values are spilled
//! across runs and only brought together when its group is emitted.

use super::aggregate::{CombineMap, combine_chunk, new_map};
use super::external_sort::Run;
use crate::chunk::{ChunkIter, Chunks, IterChunks};
use crate::data::{Key, Value};
use crate::error::Result;
use crate::runtime::TaskContext;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;

/// How a combiner's size grows, which decides how the map's size is
/// estimated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Growth {
    /// A combiner stays about the same size as values merge in (sums,
    /// counts, maxima): the map's size is its entry count times a sampled
    /// entry size.
    PerKey,
    /// A combiner keeps every value (grouping): the map's size is the
    /// number of records put in times a sampled record size, so one hot key
    /// cannot hide its growth from a sample taken when it was small.
    PerRecord,
}

/// A combine map that spills hash-ordered runs.
pub(crate) struct SpillingMap<'a, K, C> {
    map: CombineMap<K, C>,
    runs: Vec<Run<(K, C)>>,
    limit: usize,
    growth: Growth,
    /// Sampled bytes per entry (`PerKey`) or per record put in (`PerRecord`).
    unit_bytes: Option<usize>,
    /// Estimated bytes of the records put in since the last spill
    /// (`PerRecord`).
    held_bytes: usize,
    tc: &'a TaskContext,
}

impl<'a, K: Key, C: Value> SpillingMap<'a, K, C> {
    pub(crate) fn new(tc: &'a TaskContext, growth: Growth) -> Self {
        SpillingMap {
            map: new_map(),
            runs: Vec::new(),
            limit: tc.rt.memory().limit() / tc.rt.parallelism().max(1),
            growth,
            unit_bytes: None,
            held_bytes: 0,
            tc,
        }
    }

    /// Folds a chunk in (see `combine_chunk`), spilling if the map grew
    /// past the task's share.
    pub(crate) fn insert_batch<V: Value>(
        &mut self,
        chunk: &mut Vec<(K, V)>,
        create: impl Fn(V) -> C,
        merge: impl Fn(C, V) -> C,
    ) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.growth == Growth::PerRecord {
            let each = *self.unit_bytes.get_or_insert_with(|| {
                let sample = &chunk[..chunk.len().min(64)];
                (crate::memory::estimate_size(sample) / sample.len()).max(1) + 16
            });
            self.held_bytes = self.held_bytes.saturating_add(chunk.len() * each);
        }
        combine_chunk(&mut self.map, chunk, create, merge);
        if self.estimated_bytes() > self.limit {
            self.spill()?;
        }
        Ok(())
    }

    fn estimated_bytes(&mut self) -> usize {
        match self.growth {
            Growth::PerRecord => self.held_bytes,
            Growth::PerKey => {
                let each = *self
                    .unit_bytes
                    .get_or_insert_with(|| super::combined_entry_bytes(&self.map));
                self.map.len().saturating_mul(each)
            }
        }
    }

    /// Starts an input whose records differ in size from the previous
    /// one's (cogroup's second side): the next chunk is sampled afresh.
    pub(crate) fn new_input(&mut self) {
        if self.growth == Growth::PerRecord {
            self.unit_bytes = None;
        }
    }

    /// The map itself when nothing was spilled, else `self` back.
    pub(crate) fn into_memory(self) -> std::result::Result<CombineMap<K, C>, Self> {
        if self.runs.is_empty() {
            Ok(self.map)
        } else {
            Err(self)
        }
    }

    fn spill(&mut self) -> Result<()> {
        let mut entries: Vec<(K, C)> = self.map.drain().collect();
        entries.sort_unstable_by_key(|(k, _)| hash_of(k));
        let run = Run::write(&entries, self.tc)?;
        let bytes = run.bytes;
        self.tc.metrics.update(|m| {
            m.spills += 1;
            m.spilled_bytes += bytes;
        });
        self.runs.push(run);
        self.held_bytes = 0;
        Ok(())
    }

    /// All combined entries; merges spilled runs with `merge` when there are
    /// any. Order unspecified, except that after a spill (see
    /// [`into_memory`](Self::into_memory)) entries come in ascending
    /// [`hash_of`] order.
    pub(crate) fn finish(self, merge: impl Fn(C, C) -> C + 'static) -> Result<ChunkIter<(K, C)>> {
        if self.runs.is_empty() {
            return Ok(Box::new(IterChunks(self.map.into_iter())));
        }
        let mut rest: Vec<(K, C)> = self.map.into_iter().collect();
        rest.sort_unstable_by_key(|(k, _)| hash_of(k));
        let mut sources: Vec<Source<K, C>> = self.runs.into_iter().map(Source::Run).collect();
        sources.push(Source::Memory(rest.into_iter()));
        let mut m = HashMerge {
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

/// The hash that orders a spilled map's runs and merged output.
pub(crate) fn hash_of<K: std::hash::Hash>(k: &K) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(k)
}

enum Source<K, C> {
    Run(Run<(K, C)>),
    Memory(std::vec::IntoIter<(K, C)>),
}

struct HashMerge<K, C, M> {
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
            let h = hash_of(&k);
            self.heap.push(Reverse((h, i)));
            (h, k, c)
        });
        Ok(())
    }
}

impl<K: Key, C: Value, M: Fn(C, C) -> C> Chunks<(K, C)> for HashMerge<K, C, M> {
    fn next_chunk(&mut self, out: &mut Vec<(K, C)>, hint: usize) -> Result<bool> {
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
