//! Sorting by key: a range partitioner whose bounds come from a sampled
//! sketch of the keys (Spark's `RangePartitioner`), then a sort of each
//! reduce partition that spills sorted runs past the task's share.

use super::sample::partition_rng;
use super::shuffled::Sorter;
use super::{ChunkIter, Compute, Rdd, for_each_chunk, run_job};
use crate::chunk::IterChunks;
use crate::data::{Data, Key, Value};
use crate::error::Result;
use crate::partitioner::{Order, Partitioner};
use crate::runtime::TaskContext;
use crate::shuffle::external_sort::SortOrder;
use rand::Rng;
use std::ops::RangeInclusive;
use std::sync::Arc;

impl<K: Key, V: Value> Rdd<(K, V)> {
    /// Sorts by key: samples the keys (running a job now, as Spark does) to
    /// build a range partitioner, shuffles, and sorts each partition.
    /// Reading the partitions in order gives the whole dataset in order.
    /// `Some(0)` partitions is an [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    ///
    /// ```
    /// use spate::Order;
    /// let ctx = spate::Context::new().unwrap();
    /// let s = ctx.parallelize(vec![(3, 'c'), (1, 'a'), (2, 'b')], 2).sort_by_key(Order::Descending, None).unwrap();
    /// assert_eq!(s.collect().unwrap(), [(3, 'c'), (2, 'b'), (1, 'a')]);
    /// ```
    pub fn sort_by_key(&self, order: Order, num_partitions: Option<usize>) -> Result<Rdd<(K, V)>>
    where
        K: Ord,
    {
        if let Some(n) = num_partitions {
            crate::context::at_least_one_partition("sort_by_key", n)?;
        }
        let n = num_partitions.unwrap_or(self.num_partitions()).max(1);
        let bounds = range_bounds(&self.keys(), n)?;
        let partitioner = Partitioner::range(bounds, order);
        let ascending = order == Order::Ascending;
        let sorter: Sorter<K, V> = SortOrder {
            sort: Arc::new(move |v: &mut Vec<(K, V)>| {
                // Ties may come in any order, as in Spark: an unstable sort is faster.
                if ascending {
                    v.sort_unstable_by(|a, b| a.0.cmp(&b.0))
                } else {
                    v.sort_unstable_by(|a, b| b.0.cmp(&a.0))
                }
            }),
            cmp: Arc::new(move |a: &(K, V), b: &(K, V)| {
                if ascending {
                    a.0.cmp(&b.0)
                } else {
                    b.0.cmp(&a.0)
                }
            }),
        };
        Ok(self.shuffle_plain("sort_by_key", partitioner, Some(sorter)))
    }

    /// Repartitions by `partitioner` and sorts each partition by key in the
    /// shuffle's reduce side, one pass instead of a repartition and a sort
    /// (Spark's `repartitionAndSortWithinPartitions`). Sorting spills
    /// sorted runs past the task's share of memory. Ties keep no order.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.parallelize(vec![(5, 'e'), (2, 'b'), (4, 'd'), (1, 'a'), (3, 'c')], 2)
    ///     .repartition_and_sort_within_partitions(spate::Partitioner::hash(2));
    /// assert_eq!(r.glom().collect().unwrap(), [vec![(2, 'b'), (4, 'd')], vec![(1, 'a'), (3, 'c'), (5, 'e')]]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn repartition_and_sort_within_partitions(&self, partitioner: Partitioner) -> Rdd<(K, V)>
    where
        K: Ord,
    {
        let sorter: Sorter<K, V> = SortOrder {
            sort: Arc::new(|v: &mut Vec<(K, V)>| v.sort_unstable_by(|a, b| a.0.cmp(&b.0))),
            cmp: Arc::new(|a: &(K, V), b: &(K, V)| a.0.cmp(&b.0)),
        };
        self.shuffle_plain(
            "repartition_and_sort_within_partitions",
            partitioner,
            Some(sorter),
        )
    }

    /// The elements whose key lies in `lower..=upper`, both ends included
    /// (Spark's `filterByRange`); keeps the partitioner. On a dataset
    /// partitioned by a range partitioner (after [`sort_by_key`](Rdd::sort_by_key)),
    /// only the partitions that can hold such keys are read: the others are
    /// empty without computing their parents.
    ///
    /// ```
    /// use spate::Order;
    /// let ctx = spate::Context::new()?;
    /// let sorted = ctx.parallelize((0..100).map(|i| (i, i * i)).collect(), 4)
    ///     .sort_by_key(Order::Ascending, Some(4))?;
    /// let r = sorted.filter_by_range(10, 12);
    /// assert_eq!(r.collect()?, [(10, 100), (11, 121), (12, 144)]);
    /// assert_eq!(r.num_partitions(), 4);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn filter_by_range(&self, lower: K, upper: K) -> Rdd<(K, V)>
    where
        K: Ord,
    {
        let input = match self
            .partitioner()
            .and_then(|p| p.partitions_for_range(&lower, &upper))
        {
            Some(read) => {
                let spec = self.one_to_one("partition_pruning", true);
                let op = PruneOp {
                    parent: self.clone(),
                    read,
                };
                Rdd::from_op(self.context(), spec, op)
            }
            None => self.clone(),
        };
        input.pipe_chunks("filter_by_range", true, move |chunk, out| {
            out.extend(chunk.drain(..).filter(|(k, _)| lower <= *k && *k <= upper))
        })
    }
}

/// A parent's partitions in `read`, the others empty without computing
/// them (Spark's `PartitionPruningRDD`, keeping the partition count).
struct PruneOp<T> {
    parent: Rdd<T>,
    read: RangeInclusive<usize>,
}

impl<T: Data> Compute<T> for PruneOp<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        if self.read.contains(&split) {
            self.parent.iterator(split, tc)
        } else {
            Ok(Box::new(IterChunks(std::iter::empty())))
        }
    }
}

/// Upper bounds of `partitions - 1` ranges holding about equal numbers of
/// keys, from a weighted sample (Spark's `RangePartitioner` sketch and
/// `determineBounds`).
pub(crate) fn range_bounds<K: Key + Ord>(keys: &Rdd<K>, partitions: usize) -> Result<Vec<K>> {
    if partitions <= 1 || keys.num_partitions() == 0 {
        return Ok(Vec::new());
    }
    let sample_size = (20 * partitions).min(1_000_000);
    let per_partition = (3 * sample_size).div_ceil(keys.num_partitions());
    let all: Vec<usize> = (0..keys.num_partitions()).collect();
    let sketches = run_job(
        keys.context(),
        keys,
        &all,
        "sort_by_key sample",
        |tc, it| {
            // Reservoir sampling, seeded by partition: the bounds are reproducible.
            let mut rng = partition_rng(0x5EED, tc.partition());
            let mut reservoir: Vec<K> = Vec::with_capacity(per_partition);
            let mut seen = 0u64;
            for_each_chunk(it, |b| {
                for k in b.drain(..) {
                    seen += 1;
                    if reservoir.len() < per_partition {
                        reservoir.push(k);
                    } else {
                        let j = rng.random_range(0..seen);
                        if (j as usize) < per_partition {
                            reservoir[j as usize] = k;
                        }
                    }
                }
                Ok(())
            })?;
            Ok((seen, reservoir))
        },
    )?;
    let mut candidates: Vec<(K, f64)> = Vec::new();
    for (seen, sample) in sketches {
        if sample.is_empty() {
            continue;
        }
        let weight = seen as f64 / sample.len() as f64;
        candidates.extend(sample.into_iter().map(|k| (k, weight)));
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    let total: f64 = candidates.iter().map(|c| c.1).sum();
    let step = total / partitions as f64;
    let mut bounds: Vec<K> = Vec::with_capacity(partitions - 1);
    let (mut cumulative, mut target) = (0.0, step);
    for (key, weight) in candidates {
        cumulative += weight;
        if cumulative >= target && bounds.last().is_none_or(|b| key > *b) {
            bounds.push(key);
            target += step;
            if bounds.len() == partitions - 1 {
                break;
            }
        }
    }
    Ok(bounds)
}
