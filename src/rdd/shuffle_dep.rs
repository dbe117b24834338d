//! The typed shuffle dependency: a keyed parent dataset, a partitioner and
//! an optional aggregator; it runs a map task by pulling the parent's
//! partition into the shuffle machinery's writer.

use super::Rdd;
use crate::chunk::for_each_chunk;
use crate::data::{Key, Value};
use crate::error::Result;
use crate::ids::ShuffleId;
use crate::lineage::{AnyRdd, ShuffleDep};
use crate::partitioner::Partitioner;
use crate::runtime::{Runtime, TaskContext};
use crate::shuffle::writer::MapWriter;
use crate::shuffle::{Aggregate, MapOutput, combine_chunk, combined_entry_bytes, new_map};
use std::marker::PhantomData;
use std::sync::Arc;

/// A typed shuffle of `(K, V)` records into `(K, C)` combiners (or plain
/// `(K, V)` records when there is no aggregator, in which case `C == V`).
pub(crate) struct ShuffleDependency<K, V, C, A> {
    id: ShuffleId,
    rt: Arc<Runtime>,
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
        let rt = parent.context().runtime().clone();
        let id = rt.next_shuffle_id();
        rt.shuffles().register(id, parent.num_partitions());
        Arc::new(ShuffleDependency {
            id,
            rt,
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
        self.rt.shuffles().unregister(self.id);
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
                let mut writer = MapWriter::<(K, C)>::new(&self.rt, self.id, tc, reduces);
                let mut combined = new_map::<K, C>();
                let mut entry_bytes = None;
                for_each_chunk(input, |chunk| {
                    combine_chunk(
                        &mut combined,
                        chunk,
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
                let mut writer = MapWriter::<(K, V)>::new(&self.rt, self.id, tc, reduces);
                for_each_chunk(input, |chunk| {
                    for (k, v) in chunk.drain(..) {
                        writer.push(by_key.partition(&k), (k, v))?;
                    }
                    Ok(())
                })?;
                writer.finish()
            }
        }
    }
}
