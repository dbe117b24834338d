//! Per-batch operations on streams of key-value pairs.

use super::dstream::DStream;
use crate::data::{Key, Value};
use crate::partitioner::Partitioning;
use std::sync::Arc;

impl<K: Key, V: Value> DStream<(K, V)> {
    /// Applies `f` to every value, keeping keys.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![('a', 1), ('b', 2)]], |s| s.map_values(|v| v * 10))?;
    /// assert_eq!(out, [vec![('a', 10), ('b', 20)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![('a', 2)]], |s| s.flat_map_values(|n| 0..n))?;
    /// assert_eq!(out, [vec![('a', 0), ('a', 1)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let batches = vec![vec![('a', 1), ('b', 1), ('a', 1)], vec![('b', 5)]];
    /// let out = run_batches(batches, |s| s.reduce_by_key(|x, y| x + y))?;
    /// assert_eq!(out, [vec![('a', 2), ('b', 1)], vec![('b', 5)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)> {
        self.reduce_by_key_with(Partitioning::Default, f)
    }

    /// [`reduce_by_key`](DStream::reduce_by_key) into the given partitioning.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// // Into 4 partitions by key hash.
    /// let out = run_batches(vec![vec![(1, 1), (2, 1), (1, 1)]], |s| {
    ///     s.reduce_by_key_with(4, |x, y| x + y).glom().map(|p| p.len())
    /// })?;
    /// assert_eq!(out[0].len(), 4);
    /// assert_eq!(out[0].iter().sum::<usize>(), 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![('a', 1), ('b', 2), ('a', 3)]], |s| {
    ///     s.group_by_key().map_values(|mut v| {
    ///         v.sort();
    ///         v
    ///     })
    /// })?;
    /// assert_eq!(out, [vec![('a', vec![1, 3]), ('b', vec![2])]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)> {
        self.group_by_key_with(Partitioning::Default)
    }

    /// [`group_by_key`](DStream::group_by_key) into the given partitioning.
    ///
    /// ```
    /// use spate::Partitioner;
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![(1, 'x'), (1, 'y')]], |s| {
    ///     s.group_by_key_with(Partitioner::hash(3)).map_values(|v| v.len())
    /// })?;
    /// assert_eq!(out, [vec![(1, 2)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn group_by_key_with(&self, partitioning: impl Into<Partitioning>) -> DStream<(K, Vec<V>)> {
        let partitioning = partitioning.into();
        self.derive("group_by_key", move |rdd, _| {
            Ok(rdd.group_by_key_with(partitioning.clone()))
        })
    }

    /// Combines each batch's values per key (see
    /// [`Rdd::combine_by_key`](crate::Rdd::combine_by_key)).
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// // Per key: (sum, count), for an average.
    /// let out = run_batches(vec![vec![('a', 2), ('a', 4), ('b', 1)]], |s| {
    ///     s.combine_by_key(|v| (v, 1), |(s, n), v| (s + v, n + 1), |(s, n), (t, m)| (s + t, n + m))
    /// })?;
    /// assert_eq!(out, [vec![('a', (6, 2)), ('b', (1, 1))]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// let out = run_batches2(vec![vec![(1, 'a'), (2, 'b')]], vec![vec![(1, 'x')]], |l, r| l.join(r))?;
    /// assert_eq!(out, [vec![(1, ('a', 'x'))]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn join<W: Value>(&self, other: &DStream<(K, W)>) -> DStream<(K, (V, W))> {
        self.combined("join", other, |a, b, _| Ok(a.join(b)))
    }

    /// Left outer join, batch by batch.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// let out = run_batches2(vec![vec![(1, 'a'), (2, 'b')]], vec![vec![(1, 'x')]], |l, r| {
    ///     l.left_outer_join(r)
    /// })?;
    /// assert_eq!(out, [vec![(1, ('a', Some('x'))), (2, ('b', None))]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn left_outer_join<W: Value>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (V, Option<W>))> {
        self.combined("left_outer_join", other, |a, b, _| Ok(a.left_outer_join(b)))
    }

    /// Right outer join, batch by batch.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// let out = run_batches2(vec![vec![(1, 'a')]], vec![vec![(1, 'x'), (3, 'y')]], |l, r| {
    ///     l.right_outer_join(r)
    /// })?;
    /// assert_eq!(out, [vec![(1, (Some('a'), 'x')), (3, (None, 'y'))]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn right_outer_join<W: Value>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (Option<V>, W))> {
        self.combined("right_outer_join", other, |a, b, _| {
            Ok(a.right_outer_join(b))
        })
    }

    /// Full outer join, batch by batch.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// let out = run_batches2(vec![vec![(1, 'a'), (2, 'b')]], vec![vec![(1, 'x'), (3, 'y')]], |l, r| {
    ///     l.full_outer_join(r)
    /// })?;
    /// assert_eq!(
    ///     out,
    ///     [vec![(1, (Some('a'), Some('x'))), (2, (Some('b'), None)), (3, (None, Some('y')))]]
    /// );
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn full_outer_join<W: Value>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (Option<V>, Option<W>))> {
        self.combined("full_outer_join", other, |a, b, _| Ok(a.full_outer_join(b)))
    }

    /// Cogroup, batch by batch.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// let out = run_batches2(vec![vec![(1, 'a'), (1, 'b')]], vec![vec![(1, 9), (2, 8)]], |l, r| {
    ///     l.cogroup(r).map_values(|(mut a, b)| {
    ///         a.sort();
    ///         (a, b)
    ///     })
    /// })?;
    /// assert_eq!(out, [vec![(1, (vec!['a', 'b'], vec![9])), (2, (vec![], vec![8]))]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn cogroup<W: Value>(&self, other: &DStream<(K, W)>) -> DStream<(K, (Vec<V>, Vec<W>))> {
        self.combined("cogroup", other, |a, b, _| Ok(a.cogroup(b)))
    }
}
