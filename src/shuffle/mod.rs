//! Shuffles: redistributing a keyed dataset by partitioner, with map-side
//! combine where an aggregator allows.
//!
//! A map task pulls one parent partition, optionally combines values per key
//! in a hash map, splits the result into one bucket per reduce partition and
//! hands the buckets to the [`ShuffleManager`] as a [`MapOutput`]. Buckets
//! stay typed in memory while the context's memory budget has room; the rest
//! is encoded (bincode), compressed (lz4) and written with a checksum per
//! frame to a file in the scratch directory. A reduce task reads its bucket
//! from every map output ([`reader`]), checking each frame; a missing or
//! corrupt block is a [`Error::ShuffleFetch`](crate::Error::ShuffleFetch).

mod aggregate;
pub(crate) mod external_agg;
pub(crate) mod external_sort;
mod manager;
pub(crate) mod reader;
mod writer;

pub(crate) use aggregate::{
    Aggregate, CombineMap, Combiner, GroupValues, NoAggregate, combine_batch,
};
pub(crate) use manager::{MapOutput, ShuffleManager};

use crate::context::Context;
use crate::data::{Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::rdd::{AnyRdd, Rdd, for_each_batch};
use crate::scheduler::TaskContext;
use std::marker::PhantomData;
use std::sync::Arc;

/// Shuffle id, assigned per context in creation order.
pub(crate) type ShuffleId = u64;

/// The untyped face of a shuffle dependency, as the scheduler sees it.
pub(crate) trait ShuffleDep: Send + Sync {
    fn shuffle_id(&self) -> ShuffleId;
    /// The dataset whose partitions the map tasks read.
    fn parent(&self) -> Arc<dyn AnyRdd>;
    /// Runs the map task for partition `tc.partition()`.
    fn run_map_task(&self, tc: &TaskContext) -> Result<MapOutput>;
}

/// A typed shuffle of `(K, V)` records into `(K, C)` combiners (or plain
/// `(K, V)` records when there is no aggregator, in which case `C == V`).
pub(crate) struct ShuffleDependency<K, V, C, A> {
    id: ShuffleId,
    ctx: Context,
    parent: Rdd<(K, V)>,
    pub(crate) partitioner: Partitioner,
    pub(crate) aggregator: Option<Arc<A>>,
    pub(crate) map_side_combine: bool,
    _c: PhantomData<fn() -> C>,
}

impl<K: Key, V: Value, C: Value, A: Aggregate<V, C>> ShuffleDependency<K, V, C, A> {
    pub(crate) fn new(
        parent: Rdd<(K, V)>,
        partitioner: Partitioner,
        aggregator: Option<Arc<A>>,
        map_side_combine: bool,
    ) -> Arc<Self> {
        let ctx = parent.context().clone();
        let id = ctx.next_shuffle_id();
        ctx.shuffles().register(id, parent.num_partitions());
        Arc::new(ShuffleDependency {
            id,
            ctx,
            parent,
            partitioner,
            map_side_combine: map_side_combine && aggregator.is_some(),
            aggregator,
            _c: PhantomData,
        })
    }

    pub(crate) fn id(&self) -> ShuffleId {
        self.id
    }

    pub(crate) fn num_reduces(&self) -> usize {
        self.partitioner.num_partitions()
    }
}

impl<K, V, C, A> Drop for ShuffleDependency<K, V, C, A> {
    fn drop(&mut self) {
        // No dataset can read this shuffle any more: free its memory and files.
        self.ctx.shuffles().unregister(self.id);
    }
}

impl<K: Key, V: Value, C: Value, A: Aggregate<V, C>> ShuffleDep for ShuffleDependency<K, V, C, A> {
    fn shuffle_id(&self) -> ShuffleId {
        self.id
    }

    fn parent(&self) -> Arc<dyn AnyRdd> {
        self.parent.as_any_rdd()
    }

    fn run_map_task(&self, tc: &TaskContext) -> Result<MapOutput> {
        let by_key = self.partitioner.for_keys::<K>()?;
        let reduces = self.num_reduces();
        let input = self.parent.iterator(tc.partition(), tc)?;
        match (&self.aggregator, self.map_side_combine) {
            (Some(agg), true) => {
                let mut writer = writer::MapWriter::<(K, C)>::new(&self.ctx, self.id, tc, reduces);
                let mut combined = aggregate::new_map::<K, C>();
                let mut entry_bytes = None;
                for_each_batch(input, |batch| {
                    combine_batch(
                        &mut combined,
                        batch,
                        |v| agg.create(v),
                        |c, v| agg.merge_value(c, v),
                    );
                    // A combine map that outgrows the task's share is flushed
                    // as partial combiners; the reduce side merges them.
                    let each = *entry_bytes.get_or_insert_with(|| combined_entry_bytes(&combined));
                    if writer.over_limit(combined.len(), each) {
                        for (k, c) in combined.drain() {
                            writer.push(by_key.partition(&k), (k, c))?;
                        }
                        writer.spill()?;
                    }
                    Ok(())
                })?;
                for (k, c) in combined {
                    writer.push(by_key.partition(&k), (k, c))?;
                }
                writer.finish()
            }
            _ => {
                let mut writer = writer::MapWriter::<(K, V)>::new(&self.ctx, self.id, tc, reduces);
                for_each_batch(input, |batch| {
                    for (k, v) in batch.drain(..) {
                        writer.push(by_key.partition(&k), (k, v))?;
                    }
                    Ok(())
                })?;
                writer.finish()
            }
        }
    }
}

/// Estimated bytes per entry of a combine map, sampled from a few entries.
pub(crate) fn combined_entry_bytes<K: Value, C: Value>(map: &aggregate::CombineMap<K, C>) -> usize {
    let sample: Vec<(&K, &C)> = map.iter().take(16).collect();
    if sample.is_empty() {
        return size_of::<(K, C)>() + 8;
    }
    // Inline size of the entry plus its sampled heap data, plus control bytes.
    (crate::memory::estimate_size(&sample) / sample.len()).max(1) + size_of::<(K, C)>() + 1
}
