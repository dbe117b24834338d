//! Grouping two keyed datasets together by key, and the `Side` that brings
//! each input of a two-input keyed operation into the output partitioning.

use super::ShuffleDependency;
use super::{ChunkIter, Compute, Dependency, NewRdd, Rdd, for_each_chunk};
use crate::data::{Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::runtime::TaskContext;
use crate::shuffle::external_agg::{Growth, SpillingMap};
use crate::shuffle::{self, NoAggregate};
use std::sync::Arc;

/// How one input of a cogroup or join reaches the output partitioning.
pub(crate) enum Side<K, V> {
    /// Already partitioned by the output partitioner: read in place.
    Narrow(Rdd<(K, V)>),
    /// Shuffled into it.
    Shuffled(Arc<ShuffleDependency<K, V, V, NoAggregate>>),
}

impl<K: Key, V: Value> Side<K, V> {
    pub(crate) fn new(rdd: &Rdd<(K, V)>, partitioner: &Partitioner) -> Self {
        if rdd.partitioner() == Some(partitioner) {
            Side::Narrow(rdd.clone())
        } else {
            Side::Shuffled(ShuffleDependency::new(
                rdd.clone(),
                partitioner.clone(),
                None,
                false,
            ))
        }
    }

    pub(crate) fn dependency(&self) -> Dependency {
        match self {
            Side::Narrow(rdd) => rdd.narrow_dep(),
            Side::Shuffled(dep) => Dependency::Shuffle(dep.clone()),
        }
    }

    pub(crate) fn read(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<(K, V)>> {
        match self {
            Side::Narrow(rdd) => rdd.iterator(split, tc),
            Side::Shuffled(dep) => Ok(shuffle::reader::read::<(K, V)>(dep.id(), split, tc)),
        }
    }
}

pub(crate) struct CoGroupOp<K, V, W> {
    left: Side<K, V>,
    right: Side<K, W>,
}

impl<K: Key, V: Value, W: Value> CoGroupOp<K, V, W> {
    pub(crate) fn rdd(
        left: &Rdd<(K, V)>,
        right: &Rdd<(K, W)>,
        partitioner: Partitioner,
    ) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        let op = CoGroupOp {
            left: Side::new(left, &partitioner),
            right: Side::new(right, &partitioner),
        };
        let spec = NewRdd {
            op_name: "cogroup",
            num_partitions: partitioner.num_partitions(),
            deps: vec![op.left.dependency(), op.right.dependency()],
            partitioner: Some(partitioner),
        };
        Rdd::from_op(left.context(), spec, op)
    }
}

impl<K: Key, V: Value, W: Value> Compute<(K, (Vec<V>, Vec<W>))> for CoGroupOp<K, V, W> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<(K, (Vec<V>, Vec<W>))>> {
        let mut groups = SpillingMap::<K, (Vec<V>, Vec<W>)>::new(tc, Growth::PerRecord);
        for_each_chunk(self.left.read(split, tc)?, |chunk| {
            groups.insert_batch(
                chunk,
                |v| (vec![v], Vec::new()),
                |(mut vs, ws), v| {
                    vs.push(v);
                    (vs, ws)
                },
            )
        })?;
        groups.new_input();
        for_each_chunk(self.right.read(split, tc)?, |chunk| {
            groups.insert_batch(
                chunk,
                |w| (Vec::new(), vec![w]),
                |(vs, mut ws), w| {
                    ws.push(w);
                    (vs, ws)
                },
            )
        })?;
        groups.finish(|(mut v1, mut w1), (mut v2, mut w2)| {
            v1.append(&mut v2);
            w1.append(&mut w2);
            (v1, w1)
        })
    }
}
