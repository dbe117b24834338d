//! Per-batch operations on streams of key-value pairs.

use super::dstream::DStream;
use crate::data::{Key, Value};
use crate::partitioner::Partitioning;
use std::sync::Arc;

impl<K: Key, V: Value> DStream<(K, V)> {
    /// Applies `f` to every value, keeping keys.
    pub fn map_values<U: Value>(
        &self,
        f: impl Fn(V) -> U + Send + Sync + 'static,
    ) -> DStream<(K, U)> {
        let f = Arc::new(f);
        self.derive("map_values", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.map_values(move |v| f(v)))
        })
    }

    /// Applies `f` to every value and pairs each result with the key.
    pub fn flat_map_values<U: Value, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> DStream<(K, U)> {
        let f = Arc::new(f);
        self.derive("flat_map_values", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.flat_map_values(move |v| f(v)))
        })
    }

    /// Merges each batch's values per key with `f`.
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)> {
        self.reduce_by_key_with(Partitioning::Default, f)
    }

    /// [`reduce_by_key`](DStream::reduce_by_key) into the given partitioning.
    pub fn reduce_by_key_with(
        &self,
        partitioning: impl Into<Partitioning>,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> DStream<(K, V)> {
        let f = Arc::new(f);
        let partitioning = partitioning.into();
        self.derive("reduce_by_key", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.reduce_by_key_with(partitioning.clone(), move |a, b| f(a, b)))
        })
    }

    /// Groups each batch's values per key.
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)> {
        self.group_by_key_with(Partitioning::Default)
    }

    /// [`group_by_key`](DStream::group_by_key) into the given partitioning.
    pub fn group_by_key_with(&self, partitioning: impl Into<Partitioning>) -> DStream<(K, Vec<V>)> {
        let partitioning = partitioning.into();
        self.derive("group_by_key", move |rdd, _| {
            Ok(rdd.group_by_key_with(partitioning.clone()))
        })
    }

    /// Combines each batch's values per key (see
    /// [`Rdd::combine_by_key`](crate::Rdd::combine_by_key)).
    pub fn combine_by_key<C: Value>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> DStream<(K, C)> {
        let (create, merge_value, merge_combiners) = (
            Arc::new(create),
            Arc::new(merge_value),
            Arc::new(merge_combiners),
        );
        self.derive("combine_by_key", move |rdd, _| {
            let (c, mv, mc) = (create.clone(), merge_value.clone(), merge_combiners.clone());
            Ok(rdd.combine_by_key(move |v| c(v), move |a, v| mv(a, v), move |a, b| mc(a, b)))
        })
    }

    /// Joins each batch with `other`'s batch of the same time.
    pub fn join<W: Value>(&self, other: &DStream<(K, W)>) -> DStream<(K, (V, W))> {
        self.combined("join", other, |a, b, _| Ok(a.join(b)))
    }

    /// Left outer join, batch by batch.
    pub fn left_outer_join<W: Value>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (V, Option<W>))> {
        self.combined("left_outer_join", other, |a, b, _| Ok(a.left_outer_join(b)))
    }

    /// Right outer join, batch by batch.
    pub fn right_outer_join<W: Value>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (Option<V>, W))> {
        self.combined("right_outer_join", other, |a, b, _| {
            Ok(a.right_outer_join(b))
        })
    }

    /// Full outer join, batch by batch.
    pub fn full_outer_join<W: Value>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (Option<V>, Option<W>))> {
        self.combined("full_outer_join", other, |a, b, _| Ok(a.full_outer_join(b)))
    }

    /// Cogroup, batch by batch.
    pub fn cogroup<W: Value>(&self, other: &DStream<(K, W)>) -> DStream<(K, (Vec<V>, Vec<W>))> {
        self.combined("cogroup", other, |a, b, _| Ok(a.cogroup(b)))
    }
}
