//! How values are combined per key: Spark's `Aggregator`.

use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;

/// Combines values of one key into a combiner `C`, by value as in Spark:
/// `create` starts a combiner from the first value, `merge_value` adds a
/// value to it, `merge_combiners` merges two partial combiners.
///
/// Implemented by [`Combiner`] over three closures, so every call in a
/// combine loop is static.
pub(crate) trait Aggregate<V, C>: Send + Sync + 'static {
    fn create(&self, v: V) -> C;
    fn merge_value(&self, c: C, v: V) -> C;
    fn merge_combiners(&self, a: C, b: C) -> C;
}

pub(crate) struct Combiner<F1, F2, F3> {
    pub(crate) create: F1,
    pub(crate) merge_value: F2,
    pub(crate) merge_combiners: F3,
}

impl<V, C, F1, F2, F3> Aggregate<V, C> for Combiner<F1, F2, F3>
where
    F1: Fn(V) -> C + Send + Sync + 'static,
    F2: Fn(C, V) -> C + Send + Sync + 'static,
    F3: Fn(C, C) -> C + Send + Sync + 'static,
{
    #[inline]
    fn create(&self, v: V) -> C {
        (self.create)(v)
    }
    #[inline]
    fn merge_value(&self, c: C, v: V) -> C {
        (self.merge_value)(c, v)
    }
    #[inline]
    fn merge_combiners(&self, a: C, b: C) -> C {
        (self.merge_combiners)(a, b)
    }
}

/// The aggregator type of shuffles that only move records.
pub(crate) enum NoAggregate {}

impl<V: 'static> Aggregate<V, V> for NoAggregate {
    fn create(&self, _: V) -> V {
        match *self {}
    }
    fn merge_value(&self, _: V, _: V) -> V {
        match *self {}
    }
    fn merge_combiners(&self, _: V, _: V) -> V {
        match *self {}
    }
}

/// The hash map combine loops use: FxHash, fast and fixed; partitioning uses
/// the stable hash separately.
pub(crate) type CombineMap<K, C> = HashMap<K, C, FxBuildHasher>;

pub(crate) fn new_map<K, C>() -> CombineMap<K, C> {
    HashMap::with_hasher(FxBuildHasher)
}
