//! Transformations and actions of key-value datasets (`Rdd<(K, V)>`),
//! Spark's `PairRDDFunctions`.

use super::ShuffleDependency;
use super::cogroup::CoGroupOp;
use super::join::{FullOuter, HashJoinOp, Inner, StreamOuter, StreamOuterFlipped};
use super::shuffled::{CombinedShuffleOp, LocalCombineOp, PlainShuffledOp, Sorter};
use super::{NewRdd, Rdd, for_each_chunk};
use crate::data::{Data, Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::partitioner::Partitioning;
use crate::rdd::Dependency;
use crate::shuffle::{Aggregate, Combiner, GroupValues, NoAggregate};
use std::collections::HashMap;
use std::sync::Arc;

impl<K: Key, V: Value> Rdd<(K, V)> {
    /// Applies `f` to every value, keeping keys and the partitioner.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![('a', 1), ('b', 2)], 2).map_values(|v| v * 10);
    /// assert_eq!(r.collect()?, [('a', 10), ('b', 20)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn map_values<U: Data>(&self, f: impl Fn(V) -> U + Send + Sync + 'static) -> Rdd<(K, U)> {
        self.pipe_chunks("map_values", true, move |input, out| {
            out.extend(input.drain(..).map(|(k, v)| (k, f(v))))
        })
    }

    /// Replaces every value by the values `f` returns, each paired with the
    /// key; keeps the partitioner.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![('a', 2), ('b', 1)], 2).flat_map_values(|n| 0..n);
    /// assert_eq!(r.collect()?, [('a', 0), ('a', 1), ('b', 0)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn flat_map_values<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> Rdd<(K, U)> {
        self.pipe_chunks("flat_map_values", true, move |input, out| {
            for (k, v) in input.drain(..) {
                out.extend(f(v).into_iter().map(|u| (k.clone(), u)));
            }
        })
    }

    /// The keys.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![('a', 1), ('b', 2)], 2).keys().collect()?, ['a', 'b']);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn keys(&self) -> Rdd<K> {
        self.pipe_chunks("keys", false, |input, out| {
            out.extend(input.drain(..).map(|(k, _)| k))
        })
    }

    /// The values.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![('a', 1), ('b', 2)], 2).values().collect()?, [1, 2]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn values(&self) -> Rdd<V> {
        self.pipe_chunks("values", false, |input, out| {
            out.extend(input.drain(..).map(|(_, v)| v))
        })
    }

    /// Redistributes the pairs by `partitioner`; a no-op when the dataset is
    /// already partitioned by an equal partitioner.
    ///
    /// ```
    /// use spate::Partitioner;
    /// let ctx = spate::Context::new().unwrap();
    /// let p = ctx.parallelize((0..10).map(|i| (i, i)).collect(), 3)
    ///     .partition_by(Partitioner::hash(2));
    /// assert_eq!(p.glom().collect().unwrap()[0].iter().all(|(k, _)| k % 2 == 0), true);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn partition_by(&self, partitioner: Partitioner) -> Rdd<(K, V)> {
        if self.partitioner() == Some(&partitioner) {
            return self.clone();
        }
        self.shuffle_plain("partition_by", partitioner, None)
    }

    /// A shuffle that moves records without combining; `sorter`, if any,
    /// orders each output partition.
    pub(crate) fn shuffle_plain(
        &self,
        op_name: &'static str,
        partitioner: Partitioner,
        sorter: Option<Sorter<K, V>>,
    ) -> Rdd<(K, V)> {
        let dep = ShuffleDependency::<K, V, V, NoAggregate>::new(
            self.clone(),
            partitioner.clone(),
            None,
            false,
        );
        let spec = NewRdd {
            op_name,
            num_partitions: partitioner.num_partitions(),
            deps: vec![Dependency::Shuffle(dep.clone())],
            partitioner: Some(partitioner),
        };
        Rdd::from_op(self.context(), spec, PlainShuffledOp { dep, sorter })
    }

    /// The general per-key aggregation (Spark's `combineByKey`): `create`
    /// turns a key's first value into a combiner, `merge_value` adds a value
    /// to a combiner, `merge_combiners` merges combiners from different
    /// partitions. Combines on the map side before the shuffle.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let avg = ctx.parallelize(vec![('a', 1.0), ('a', 3.0), ('b', 5.0)], 2)
    ///     .map(|(k, v)| (k.to_string(), v))
    ///     .combine_by_key(|v| (v, 1), |(s, n), v| (s + v, n + 1), |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2))
    ///     .map_values(|(s, n)| s / n as f64);
    /// let mut r = avg.collect().unwrap();
    /// r.sort_by(|a, b| a.0.cmp(&b.0));
    /// assert_eq!(r, [("a".to_string(), 2.0), ("b".to_string(), 5.0)]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn combine_by_key<C: Value>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> Rdd<(K, C)> {
        self.combine_by_key_with(Partitioning::Default, create, merge_value, merge_combiners)
    }

    /// [`combine_by_key`](Rdd::combine_by_key) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let pairs = ctx.parallelize(vec![('a', 1), ('a', 2), ('b', 5)], 2);
    /// // Per key (sum, count), into 3 partitions.
    /// let r = pairs.combine_by_key_with(3, |v| (v, 1), |(s, n), v| (s + v, n + 1), |(s, n), (t, m)| (s + t, n + m));
    /// assert_eq!(r.num_partitions(), 3);
    /// let mut got = r.collect()?;
    /// got.sort();
    /// assert_eq!(got, [('a', (3, 2)), ('b', (5, 1))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn combine_by_key_with<C: Value>(
        &self,
        partitioning: impl Into<Partitioning>,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> Rdd<(K, C)> {
        let agg = Combiner {
            create,
            merge_value,
            merge_combiners,
        };
        self.aggregate_into("combine_by_key", partitioning.into(), agg, true)
    }

    pub(crate) fn aggregate_into<C: Value, A: Aggregate<V, C>>(
        &self,
        op_name: &'static str,
        partitioning: Partitioning,
        agg: A,
        map_side_combine: bool,
    ) -> Rdd<(K, C)> {
        let partitioner = partitioning.resolve(&[(self.partitioner(), self.num_partitions())]);
        let agg = Arc::new(agg);
        let spec = |deps| NewRdd {
            op_name,
            num_partitions: partitioner.num_partitions(),
            deps,
            partitioner: Some(partitioner.clone()),
        };
        if self.partitioner() == Some(&partitioner) {
            // Already partitioned by key: aggregate each partition in place.
            let op = LocalCombineOp {
                parent: self.clone(),
                agg,
            };
            return Rdd::from_op(self.context(), spec(vec![self.narrow_dep()]), op);
        }
        let dep = ShuffleDependency::new(
            self.clone(),
            partitioner.clone(),
            Some(agg.clone()),
            map_side_combine,
        );
        let op = CombinedShuffleOp {
            dep: dep.clone(),
            agg,
        };
        Rdd::from_op(self.context(), spec(vec![Dependency::Shuffle(dep)]), op)
    }

    /// Merges the values of each key with an associative, commutative `f`,
    /// combining on the map side first.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let mut r = ctx.parallelize(vec![('a', 1), ('b', 1), ('a', 1)], 2)
    ///     .reduce_by_key(|x, y| x + y).collect().unwrap();
    /// r.sort();
    /// assert_eq!(r, [('a', 2), ('b', 1)]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)> {
        self.reduce_by_key_with(Partitioning::Default, f)
    }

    /// [`reduce_by_key`](Rdd::reduce_by_key) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let pairs = ctx.parallelize(vec![("a".to_string(), 1), ("b".to_string(), 1), ("a".to_string(), 1)], 2);
    /// let counts = pairs.reduce_by_key_with(spate::Partitioner::hash(4), |x, y| x + y);
    /// assert_eq!(counts.partitioner(), Some(&spate::Partitioner::hash(4)));
    /// assert_eq!(counts.collect_as_map()?["a"], 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn reduce_by_key_with(
        &self,
        partitioning: impl Into<Partitioning>,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Rdd<(K, V)> {
        let f = Arc::new(f);
        let g = f.clone();
        let agg = Combiner {
            create: |v| v,
            merge_value: move |a, b| f(a, b),
            merge_combiners: move |a, b| g(a, b),
        };
        self.aggregate_into("reduce_by_key", partitioning.into(), agg, true)
    }

    /// Like `reduce_by_key`, starting each key's fold from `zero` in every
    /// partition (so the zero may be applied several times, as in Spark).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let mut got = ctx.parallelize(vec![('a', 2), ('a', 3), ('b', 4)], 2).fold_by_key(1, |x, y| x * y).collect()?;
    /// got.sort();
    /// assert_eq!(got, [('a', 6), ('b', 4)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn fold_by_key(
        &self,
        zero: V,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Rdd<(K, V)> {
        self.fold_by_key_with(Partitioning::Default, zero, f)
    }

    /// [`fold_by_key`](Rdd::fold_by_key) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![('a', 2), ('a', 3)], 2).fold_by_key_with(1, 0, |x, y| x + y);
    /// assert_eq!((r.num_partitions(), r.collect()?), (1, vec![('a', 5)]));
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn fold_by_key_with(
        &self,
        partitioning: impl Into<Partitioning>,
        zero: V,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> Rdd<(K, V)> {
        let f = Arc::new(f);
        let (g, h) = (f.clone(), f.clone());
        let agg = Combiner {
            create: move |v| h(zero.clone(), v),
            merge_value: move |a, b| f(a, b),
            merge_combiners: move |a, b| g(a, b),
        };
        self.aggregate_into("fold_by_key", partitioning.into(), agg, true)
    }

    /// Aggregates each key's values into a `U`: `seq` folds values into an
    /// accumulator that starts at `zero` in every partition, `comb` merges
    /// accumulators.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // The distinct values per key.
    /// let r = ctx
    ///     .parallelize(vec![('a', 1), ('a', 1), ('a', 2), ('b', 3)], 2)
    ///     .aggregate_by_key(
    ///         std::collections::BTreeSet::new(),
    ///         |mut s, v| {
    ///             s.insert(v);
    ///             s
    ///         },
    ///         |mut s, t| {
    ///             s.extend(t);
    ///             s
    ///         },
    ///     )
    ///     .map_values(|s| s.into_iter().collect::<Vec<_>>());
    /// let mut got = r.collect()?;
    /// got.sort();
    /// assert_eq!(got, [('a', vec![1, 2]), ('b', vec![3])]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn aggregate_by_key<U: Value>(
        &self,
        zero: U,
        seq: impl Fn(U, V) -> U + Send + Sync + 'static,
        comb: impl Fn(U, U) -> U + Send + Sync + 'static,
    ) -> Rdd<(K, U)> {
        self.aggregate_by_key_with(Partitioning::Default, zero, seq, comb)
    }

    /// [`aggregate_by_key`](Rdd::aggregate_by_key) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx
    ///     .parallelize(vec![('a', 4), ('a', 9), ('b', 1)], 2)
    ///     .aggregate_by_key_with(2, i32::MIN, |m, v| m.max(v), |m, n| m.max(n));
    /// let mut got = r.collect()?;
    /// got.sort();
    /// assert_eq!((r.num_partitions(), got), (2, vec![('a', 9), ('b', 1)]));
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn aggregate_by_key_with<U: Value>(
        &self,
        partitioning: impl Into<Partitioning>,
        zero: U,
        seq: impl Fn(U, V) -> U + Send + Sync + 'static,
        comb: impl Fn(U, U) -> U + Send + Sync + 'static,
    ) -> Rdd<(K, U)> {
        let seq = Arc::new(seq);
        let s2 = seq.clone();
        let agg = Combiner {
            create: move |v| s2(zero.clone(), v),
            merge_value: move |u, v| seq(u, v),
            merge_combiners: comb,
        };
        self.aggregate_into("aggregate_by_key", partitioning.into(), agg, true)
    }

    /// Groups each key's values into one vector. Does not combine on the
    /// map side (it would not shrink the data), as in Spark. The order of
    /// values within a group is unspecified.
    ///
    /// Under a memory budget the reduce side spills runs of partial groups
    /// and merges them one key at a time, so a hot key's values may be many
    /// times the budget; only the one group being emitted must fit in memory.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let mut got = ctx.parallelize(vec![('a', 1), ('b', 2), ('a', 3)], 2).group_by_key().collect()?;
    /// got.sort();
    /// for (_, v) in &mut got {
    ///     v.sort();
    /// }
    /// assert_eq!(got, [('a', vec![1, 3]), ('b', vec![2])]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn group_by_key(&self) -> Rdd<(K, Vec<V>)> {
        self.group_by_key_with(Partitioning::Default)
    }

    /// [`group_by_key`](Rdd::group_by_key) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![(1, 'x'), (1, 'y')], 2).group_by_key_with(4);
    /// assert_eq!(r.num_partitions(), 4);
    /// assert_eq!(r.map_values(|v| v.len()).collect()?, [(1, 2)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn group_by_key_with(&self, partitioning: impl Into<Partitioning>) -> Rdd<(K, Vec<V>)> {
        self.aggregate_into("group_by_key", partitioning.into(), GroupValues, false)
    }

    /// Groups the values of both datasets by key: for every key in either,
    /// `(key, (values in self, values in other))`.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2);
    /// let b = ctx.parallelize(vec![(1, "x".to_string())], 1);
    /// let mut got = a.cogroup(&b).collect()?;
    /// got.sort();
    /// assert_eq!(got, [(1, (vec!['a'], vec!["x".to_string()])), (2, (vec!['b'], vec![]))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn cogroup<W: Value>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        self.cogroup_with(other, Partitioning::Default)
    }

    /// [`cogroup`](Rdd::cogroup) into the given partitioning. An input
    /// already partitioned by the result's partitioner is read without a
    /// shuffle.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(1, 'a')], 2);
    /// let b = ctx.parallelize(vec![(1, 9)], 1);
    /// let r = a.cogroup_with(&b, spate::Partitioner::hash(5));
    /// assert_eq!(r.num_partitions(), 5);
    /// assert_eq!(r.collect()?, [(1, (vec!['a'], vec![9]))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn cogroup_with<W: Value>(
        &self,
        other: &Rdd<(K, W)>,
        partitioning: impl Into<Partitioning>,
    ) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        let p = self.two_way_partitioner(other, partitioning.into());
        CoGroupOp::rdd(self, other, p)
    }

    /// Groups three datasets by key: for every key in any of them,
    /// `(key, (values in self, in b, in c))` (Spark's `cogroup(other1,
    /// other2)`), partitioned by Spark's default-partitioner rule over the
    /// three.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let a = ctx.parallelize(vec![(1, 'x')], 2);
    /// let b = ctx.parallelize(vec![(1, 10), (2, 20)], 2);
    /// let c = ctx.parallelize(vec![(2, 'z')], 1);
    /// let mut g = a.cogroup3(&b, &c).collect().unwrap();
    /// g.sort();
    /// assert_eq!(g, [(1, (vec!['x'], vec![10], vec![])), (2, (vec![], vec![20], vec!['z']))]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn cogroup3<W: Value, X: Value>(
        &self,
        b: &Rdd<(K, W)>,
        c: &Rdd<(K, X)>,
    ) -> Rdd<(K, (Vec<V>, Vec<W>, Vec<X>))> {
        let p = Partitioning::Default.resolve(&[
            (self.partitioner(), self.num_partitions()),
            (b.partitioner(), b.num_partitions()),
            (c.partitioner(), c.num_partitions()),
        ]);
        // Grouped two at a time into the same partitioner: the pair's
        // result is read in place, only `c` shuffles again.
        let ab = CoGroupOp::rdd(self, b, p.clone());
        CoGroupOp::rdd(&ab, c, p).map_values(|(ab, xs)| {
            let (vs, ws) = ab.into_iter().next().unwrap_or_default();
            (vs, ws, xs)
        })
    }

    /// Groups four datasets by key, as [`cogroup3`](Rdd::cogroup3) does
    /// three.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let a = ctx.parallelize(vec![(1, 'a')], 1);
    /// let (b, c, d) = (a.map_values(|_| 2), a.map_values(|_| 3.0), a.map_values(|_| 'd'));
    /// assert_eq!(
    ///     a.cogroup4(&b, &c, &d).collect().unwrap(),
    ///     [(1, (vec!['a'], vec![2], vec![3.0], vec!['d']))]
    /// );
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn cogroup4<W: Value, X: Value, Y: Value>(
        &self,
        b: &Rdd<(K, W)>,
        c: &Rdd<(K, X)>,
        d: &Rdd<(K, Y)>,
    ) -> Rdd<(K, (Vec<V>, Vec<W>, Vec<X>, Vec<Y>))> {
        let p = Partitioning::Default.resolve(&[
            (self.partitioner(), self.num_partitions()),
            (b.partitioner(), b.num_partitions()),
            (c.partitioner(), c.num_partitions()),
            (d.partitioner(), d.num_partitions()),
        ]);
        let ab = CoGroupOp::rdd(self, b, p.clone());
        let cd = CoGroupOp::rdd(c, d, p.clone());
        CoGroupOp::rdd(&ab, &cd, p).map_values(|(ab, cd)| {
            let (vs, ws) = ab.into_iter().next().unwrap_or_default();
            let (xs, ys) = cd.into_iter().next().unwrap_or_default();
            (vs, ws, xs, ys)
        })
    }

    fn two_way_partitioner<W: Value>(
        &self,
        other: &Rdd<(K, W)>,
        partitioning: Partitioning,
    ) -> Partitioner {
        partitioning.resolve(&[
            (self.partitioner(), self.num_partitions()),
            (other.partitioner(), other.num_partitions()),
        ])
    }

    /// Inner join: `(k, (v, w))` for every pair of values with equal keys.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let a = ctx.parallelize(vec![(1, 'x'), (2, 'y')], 2);
    /// let b = ctx.parallelize(vec![(1, 10), (1, 11), (3, 30)], 2);
    /// let mut j = a.join(&b).collect().unwrap();
    /// j.sort();
    /// assert_eq!(j, [(1, ('x', 10)), (1, ('x', 11))]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn join<W: Value>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, W))> {
        self.join_with(other, Partitioning::Default)
    }

    /// [`join`](Rdd::join) into the given partitioning. Each output
    /// partition loads `other`'s partition into a hash table and streams
    /// `self`'s partition through it, so put the smaller dataset second.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let users = ctx.parallelize(vec![(1, "ann".to_string()), (2, "bob".to_string())], 2);
    /// let orders = ctx.parallelize(vec![(1, 30), (1, 12)], 2);
    /// let joined = users.join_with(&orders, 3);
    /// assert_eq!(joined.num_partitions(), 3);
    /// let mut got = joined.collect()?;
    /// got.sort();
    /// assert_eq!(got, [(1, ("ann".to_string(), 12)), (1, ("ann".to_string(), 30))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn join_with<W: Value>(
        &self,
        other: &Rdd<(K, W)>,
        partitioning: impl Into<Partitioning>,
    ) -> Rdd<(K, (V, W))> {
        let p = self.two_way_partitioner(other, partitioning.into());
        HashJoinOp::<K, V, W, Inner>::rdd("join", self, other, p)
    }

    /// Left outer join: every pair of `self`, with `None` where `other` has
    /// no value for the key.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2);
    /// let b = ctx.parallelize(vec![(1, 'x')], 1);
    /// let mut got = a.left_outer_join(&b).collect()?;
    /// got.sort();
    /// assert_eq!(got, [(1, ('a', Some('x'))), (2, ('b', None))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn left_outer_join<W: Value>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, Option<W>))> {
        self.left_outer_join_with(other, Partitioning::Default)
    }

    /// [`left_outer_join`](Rdd::left_outer_join) into the given partitioning
    /// (a hash join that loads `other`'s partitions).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(2, 'b')], 2);
    /// let b = ctx.parallelize(vec![(1, 'x')], 1);
    /// let r = a.left_outer_join_with(&b, 1);
    /// assert_eq!((r.num_partitions(), r.collect()?), (1, vec![(2, ('b', None))]));
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn left_outer_join_with<W: Value>(
        &self,
        other: &Rdd<(K, W)>,
        partitioning: impl Into<Partitioning>,
    ) -> Rdd<(K, (V, Option<W>))> {
        let p = self.two_way_partitioner(other, partitioning.into());
        HashJoinOp::<K, V, W, StreamOuter>::rdd("left_outer_join", self, other, p)
    }

    /// Right outer join: every pair of `other`, with `None` where `self` has
    /// no value for the key.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(1, 'a')], 2);
    /// let b = ctx.parallelize(vec![(1, 'x'), (3, 'y')], 1);
    /// let mut got = a.right_outer_join(&b).collect()?;
    /// got.sort();
    /// assert_eq!(got, [(1, (Some('a'), 'x')), (3, (None, 'y'))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn right_outer_join<W: Value>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, W))> {
        self.right_outer_join_with(other, Partitioning::Default)
    }

    /// [`right_outer_join`](Rdd::right_outer_join) into the given partitioning
    /// (a hash join that loads `self`'s partitions).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(1, 'a')], 2);
    /// let b = ctx.parallelize(vec![(3, 'y')], 1);
    /// let r = a.right_outer_join_with(&b, 2);
    /// assert_eq!((r.num_partitions(), r.collect()?), (2, vec![(3, (None, 'y'))]));
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn right_outer_join_with<W: Value>(
        &self,
        other: &Rdd<(K, W)>,
        partitioning: impl Into<Partitioning>,
    ) -> Rdd<(K, (Option<V>, W))> {
        let p = self.two_way_partitioner(other, partitioning.into());
        HashJoinOp::<K, W, V, StreamOuterFlipped>::rdd("right_outer_join", other, self, p)
    }

    /// Full outer join: every key of either side, with `None` for a side
    /// that has no value.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2);
    /// let b = ctx.parallelize(vec![(1, 'x'), (3, 'y')], 1);
    /// let mut got = a.full_outer_join(&b).collect()?;
    /// got.sort();
    /// assert_eq!(got, [(1, (Some('a'), Some('x'))), (2, (Some('b'), None)), (3, (None, Some('y')))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn full_outer_join<W: Value>(
        &self,
        other: &Rdd<(K, W)>,
    ) -> Rdd<(K, (Option<V>, Option<W>))> {
        self.full_outer_join_with(other, Partitioning::Default)
    }

    /// [`full_outer_join`](Rdd::full_outer_join) into the given partitioning
    /// (a hash join that loads `other`'s partitions).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(2, 'b')], 2);
    /// let b = ctx.parallelize(vec![(3, 'y')], 1);
    /// let r = a.full_outer_join_with(&b, 1);
    /// assert_eq!(r.collect()?, [(2, (Some('b'), None)), (3, (None, Some('y')))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn full_outer_join_with<W: Value>(
        &self,
        other: &Rdd<(K, W)>,
        partitioning: impl Into<Partitioning>,
    ) -> Rdd<(K, (Option<V>, Option<W>))> {
        let p = self.two_way_partitioner(other, partitioning.into());
        HashJoinOp::<K, V, W, FullOuter>::rdd("full_outer_join", self, other, p)
    }

    /// The pairs of `self` whose key is not in `other`, hashed into as many
    /// partitions as `self` has (Spark's default for this operation).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b'), (2, 'c')], 2);
    /// let b = ctx.parallelize(vec![(1, ())], 1);
    /// let mut got = a.subtract_by_key(&b).collect()?;
    /// got.sort();
    /// assert_eq!(got, [(2, 'b'), (2, 'c')]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn subtract_by_key<W: Value>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, V)> {
        self.subtract_by_key_with(other, self.num_partitions())
    }

    /// [`subtract_by_key`](Rdd::subtract_by_key) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2);
    /// let b = ctx.parallelize(vec![(2, 0u8)], 1);
    /// let r = a.subtract_by_key_with(&b, 3);
    /// assert_eq!((r.num_partitions(), r.collect()?), (3, vec![(1, 'a')]));
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn subtract_by_key_with<W: Value>(
        &self,
        other: &Rdd<(K, W)>,
        partitioning: impl Into<Partitioning>,
    ) -> Rdd<(K, V)> {
        self.cogroup_with(other, partitioning)
            .pipe_chunks("subtract_by_key", true, |input, out| {
                for (k, (vs, ws)) in input.drain(..) {
                    if ws.is_empty() {
                        out.extend(vs.into_iter().map(|v| (k.clone(), v)));
                    }
                }
            })
    }

    /// Merges the values of each key with `f` into a map on the driver,
    /// without a shuffle: each task merges its partition into a map, and the
    /// driver merges the maps (Spark's `reduceByKeyLocally`).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let m = ctx.parallelize(vec![('a', 1), ('b', 2), ('a', 3)], 2)
    ///     .reduce_by_key_locally(|x, y| x + y)
    ///     .unwrap();
    /// assert_eq!((m[&'a'], m[&'b']), (4, 2));
    /// ```
    pub fn reduce_by_key_locally(&self, f: impl Fn(V, V) -> V + Sync) -> Result<HashMap<K, V>> {
        let merge = |map: &mut HashMap<K, V>, k: K, v: V| match map.remove(&k) {
            Some(old) => {
                map.insert(k, f(old, v));
            }
            None => {
                map.insert(k, v);
            }
        };
        let parts = self.run_partitions("reduce_by_key_locally", |it| {
            let mut map = HashMap::new();
            for_each_chunk(it, |b| {
                b.drain(..).for_each(|(k, v)| merge(&mut map, k, v));
                Ok(())
            })?;
            Ok(map)
        })?;
        let mut all = HashMap::new();
        for part in parts {
            part.into_iter().for_each(|(k, v)| merge(&mut all, k, v));
        }
        Ok(all)
    }

    /// The number of pairs per key, on the driver.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let counts = ctx.parallelize(vec![('a', 9), ('b', 9), ('a', 0)], 2).count_by_key()?;
    /// assert_eq!((counts[&'a'], counts[&'b']), (2, 1));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn count_by_key(&self) -> Result<HashMap<K, u64>> {
        self.map_values(|_| 1u64)
            .reduce_by_key(|a, b| a + b)
            .collect_as_map()
    }

    /// All pairs as a map on the driver; for a repeated key, one of its
    /// values is kept.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let m = ctx.parallelize(vec![('a', 1), ('b', 2)], 2).collect_as_map()?;
    /// assert_eq!(m[&'b'], 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn collect_as_map(&self) -> Result<HashMap<K, V>> {
        Ok(self.collect()?.into_iter().collect())
    }

    /// The values of `key`. With a known partitioner only the partition that
    /// owns the key is computed.
    ///
    /// ```
    /// use spate::Partitioner;
    /// let ctx = spate::Context::new().unwrap();
    /// let p = ctx.parallelize(vec![(1, 'a'), (2, 'b'), (1, 'c')], 2).partition_by(Partitioner::hash(4));
    /// let mut v = p.lookup(&1).unwrap();
    /// v.sort();
    /// assert_eq!(v, ['a', 'c']);
    /// ```
    pub fn lookup(&self, key: &K) -> Result<Vec<V>> {
        let key = key.clone();
        let parts: Vec<usize> = match self.partitioner() {
            Some(p) => vec![p.for_keys::<K>()?.partition(&key)],
            None => (0..self.num_partitions()).collect(),
        };
        let found = crate::rdd::run_job(self.context(), self, &parts, "lookup", |_, it| {
            let mut vs = Vec::new();
            for_each_chunk(it, |b| {
                vs.extend(b.drain(..).filter(|(k, _)| *k == key).map(|(_, v)| v));
                Ok(())
            })?;
            Ok(vs)
        })?;
        Ok(found.into_iter().flatten().collect())
    }
}
