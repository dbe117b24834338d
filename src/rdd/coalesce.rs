//! Merging partitions without a shuffle.

use super::slice_bounds;
use super::{ChunkIter, Chunks, Compute, NewRdd, Rdd};
use crate::data::Data;
use crate::error::Result;
use crate::runtime::TaskContext;

struct CoalesceOp<T> {
    parent: Rdd<T>,
    /// Parent partitions of each output partition.
    groups: Vec<Vec<usize>>,
}

impl<T: Data> Compute<T> for CoalesceOp<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        Ok(Box::new(Sequential {
            parent: self.parent.clone(),
            splits: self.groups[split].clone(),
            next: 0,
            current: None,
            tc: tc.clone(),
        }))
    }
}

/// Reads parent partitions one after another, opening each lazily.
struct Sequential<T> {
    parent: Rdd<T>,
    splits: Vec<usize>,
    next: usize,
    current: Option<ChunkIter<T>>,
    tc: TaskContext,
}

impl<T: Data> Chunks<T> for Sequential<T> {
    fn next_chunk(&mut self, out: &mut Vec<T>, hint: usize) -> Result<bool> {
        loop {
            if let Some(cur) = &mut self.current {
                let more = cur.next_chunk(out, hint)?;
                if !more {
                    self.current = None;
                }
                if !out.is_empty() || more {
                    return Ok(more || self.next < self.splits.len());
                }
                continue;
            }
            if self.next >= self.splits.len() {
                return Ok(false);
            }
            self.current = Some(self.parent.iterator(self.splits[self.next], &self.tc)?);
            self.next += 1;
        }
    }
}

impl<T: Data> Rdd<T> {
    /// Reduces the number of partitions to `num_partitions` without a
    /// shuffle, merging contiguous ranges of partitions (Spark's rule when
    /// there are no locality preferences); asking for more partitions than
    /// there are keeps the count. Spark's `coalesce(n, shuffle = true)` is
    /// [`repartition`](Rdd::repartition).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let c = ctx.parallelize((0..6).collect::<Vec<_>>(), 6).coalesce(2);
    /// assert_eq!(c.glom().collect().unwrap(), [vec![0, 1, 2], vec![3, 4, 5]]);
    /// ```
    ///
    /// Zero partitions make every action on the result an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn coalesce(&self, num_partitions: usize) -> Rdd<T> {
        let parents = self.num_partitions();
        let n = num_partitions.max(1);
        let groups: Vec<Vec<usize>> = if n >= parents {
            (0..parents).map(|p| vec![p]).collect()
        } else {
            (0..n)
                .map(|i| {
                    let (a, b) = slice_bounds(parents, n, i);
                    (a..b).collect()
                })
                .collect()
        };
        let spec = NewRdd {
            op_name: "coalesce",
            num_partitions: groups.len(),
            deps: vec![self.narrow_dep()],
            partitioner: None,
        };
        Rdd::from_op(
            self.context(),
            spec,
            CoalesceOp {
                parent: self.clone(),
                groups,
            },
        )
        .refused_if(num_partitions == 0, || {
            crate::error::zero_partitions("coalesce")
        })
    }
}
