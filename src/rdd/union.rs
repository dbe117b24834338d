//! Concatenating datasets.

use super::{ChunkIter, Chunks, Compute, NewRdd, Rdd};
use crate::context::Context;
use crate::data::Data;
use crate::error::Result;
use crate::runtime::TaskContext;

/// The partitions of several datasets side by side: partition `i` of the
/// union is partition `splits[i].1` of parent `splits[i].0`.
struct UnionOp<T> {
    parents: Vec<Rdd<T>>,
    splits: Vec<(usize, usize)>,
}

impl<T: Data> Compute<T> for UnionOp<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        let (parent, inner) = self.splits[split];
        self.parents[parent].iterator(inner, tc)
    }
}

/// Parents that share a partitioner: partition `i` of the union
/// concatenates partition `i` of every parent, keeping the partitioner.
struct PartitionerAwareUnionOp<T> {
    parents: Vec<Rdd<T>>,
}

impl<T: Data> Compute<T> for PartitionerAwareUnionOp<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        let mut parts = Vec::with_capacity(self.parents.len());
        for p in &self.parents {
            parts.push(p.iterator(split, tc)?);
        }
        parts.reverse();
        Ok(Box::new(Chain { parts }))
    }
}

/// Reads several partitions one after another (stored in reverse order).
struct Chain<T> {
    parts: Vec<ChunkIter<T>>,
}

impl<T> Chunks<T> for Chain<T> {
    fn next_chunk(&mut self, out: &mut Vec<T>, hint: usize) -> Result<bool> {
        while let Some(current) = self.parts.last_mut() {
            if current.next_chunk(out, hint)? {
                return Ok(true);
            }
            self.parts.pop();
            if !out.is_empty() {
                return Ok(!self.parts.is_empty());
            }
        }
        Ok(false)
    }
}

pub(crate) fn union_all<T: Data>(ctx: &Context, rdds: &[Rdd<T>]) -> Rdd<T> {
    let deps = rdds.iter().map(|r| r.narrow_dep()).collect();
    let parents = rdds.to_vec();
    let shared = rdds.first().and_then(|r| r.partitioner().cloned());
    if let Some(p) = shared.filter(|p| rdds.iter().all(|r| r.partitioner() == Some(p))) {
        let spec = NewRdd {
            op_name: "union",
            num_partitions: p.num_partitions(),
            deps,
            partitioner: Some(p),
        };
        return Rdd::from_op(ctx, spec, PartitionerAwareUnionOp { parents });
    }
    let splits: Vec<(usize, usize)> = rdds
        .iter()
        .enumerate()
        .flat_map(|(i, r)| (0..r.num_partitions()).map(move |s| (i, s)))
        .collect();
    let spec = NewRdd {
        op_name: "union",
        num_partitions: splits.len(),
        deps,
        partitioner: None,
    };
    Rdd::from_op(ctx, spec, UnionOp { parents, splits })
}

impl<T: Data> Rdd<T> {
    /// The elements of both datasets (duplicates kept): the partitions of
    /// `self` followed by those of `other`, or, when both have the same
    /// partitioner, partition-wise concatenation keeping it.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let u = ctx.parallelize(vec![1, 2], 1).union(&ctx.parallelize(vec![2, 3], 2));
    /// assert_eq!(u.num_partitions(), 3);
    /// assert_eq!(u.collect().unwrap(), [1, 2, 2, 3]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn union(&self, other: &Rdd<T>) -> Rdd<T> {
        union_all(self.context(), &[self.clone(), other.clone()])
    }
}
