//! The reduce side of shuffles: reading the moved records (sorted, when a
//! sort order is given), merging combiners per key, and combining in place
//! when the input is already partitioned as wanted.

use super::{ChunkIter, Compute, Rdd, ShuffleDependency, for_each_chunk};
use crate::data::{Key, Value};
use crate::error::Result;
use crate::runtime::TaskContext;
use crate::shuffle::external_agg::SpillingMap;
use crate::shuffle::external_sort::SortOrder;
use crate::shuffle::{self, Aggregate, NoAggregate};
use std::sync::Arc;

/// Orders one reduce partition of a sorting shuffle.
pub(crate) type Sorter<K, V> = SortOrder<(K, V)>;

/// The reduce side of a shuffle that only moves records.
pub(crate) struct PlainShuffledOp<K, V> {
    pub(crate) dep: Arc<ShuffleDependency<K, V, V, NoAggregate>>,
    pub(crate) sorter: Option<Sorter<K, V>>,
}

impl<K: Key, V: Value> Compute<(K, V)> for PlainShuffledOp<K, V> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<(K, V)>> {
        let records = shuffle::reader::read::<(K, V)>(self.dep.id(), split, tc);
        match &self.sorter {
            None => Ok(records),
            Some(order) => shuffle::external_sort::sort(records, order, tc),
        }
    }
}

/// The reduce side of an aggregating shuffle: merges map-side combiners (or
/// raw values when the map side did not combine) per key.
pub(crate) struct CombinedShuffleOp<K, V, C, A> {
    pub(crate) dep: Arc<ShuffleDependency<K, V, C, A>>,
    pub(crate) agg: Arc<A>,
}

impl<K: Key, V: Value, C: Value, A: Aggregate<V, C>> Compute<(K, C)>
    for CombinedShuffleOp<K, V, C, A>
{
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<(K, C)>> {
        let agg = self.agg.clone();
        let mut map = SpillingMap::<K, C>::new(tc, self.agg.growth());
        if self.dep.map_side_combine {
            let input = shuffle::reader::read::<(K, C)>(self.dep.id(), split, tc);
            for_each_chunk(input, |chunk| {
                map.insert_batch(chunk, |c| c, |old, c| agg.merge_combiners(old, c))
            })?;
        } else {
            let input = shuffle::reader::read::<(K, V)>(self.dep.id(), split, tc);
            combine_values(input, agg.as_ref(), &mut map)?;
        }
        map.finish(move |a, b| agg.merge_combiners(a, b))
    }
}

fn combine_values<K: Key, V: Value, C: Value, A: Aggregate<V, C>>(
    input: ChunkIter<(K, V)>,
    agg: &A,
    map: &mut SpillingMap<'_, K, C>,
) -> Result<()> {
    for_each_chunk(input, |chunk| {
        map.insert_batch(chunk, |v| agg.create(v), |c, v| agg.merge_value(c, v))
    })
}

/// Aggregation of a dataset already partitioned by the target partitioner:
/// no shuffle, each partition is combined where it is.
pub(crate) struct LocalCombineOp<K, V, A> {
    pub(crate) parent: Rdd<(K, V)>,
    pub(crate) agg: Arc<A>,
}

impl<K: Key, V: Value, C: Value, A: Aggregate<V, C>> Compute<(K, C)> for LocalCombineOp<K, V, A> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<(K, C)>> {
        let mut map = SpillingMap::<K, C>::new(tc, self.agg.growth());
        combine_values(
            self.parent.iterator(split, tc)?,
            self.agg.as_ref(),
            &mut map,
        )?;
        let agg = self.agg.clone();
        map.finish(move |a, b| agg.merge_combiners(a, b))
    }
}
