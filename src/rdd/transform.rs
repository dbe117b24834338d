//! Narrow transformations of any dataset, and the wide ones that are not
//! specific to key-value pairs.

use super::narrow::{MapPartitionsOp, PipeOp};
use super::{NewRdd, PartitionIter, Rdd};
use crate::data::{Data, Key};
use crate::partitioner::Partitioning;
use crate::partitioner::{Partitioner, stable_hash};
use std::marker::PhantomData;
use std::sync::Arc;

impl<T: Data> Rdd<T> {
    /// The shape of a child that maps partition i to partition i.
    pub(super) fn one_to_one(&self, op_name: &'static str, keeps_partitioner: bool) -> NewRdd {
        NewRdd {
            op_name,
            num_partitions: self.num_partitions(),
            deps: vec![self.narrow_dep()],
            partitioner: if keeps_partitioner {
                self.partitioner().cloned()
            } else {
                None
            },
        }
    }

    /// A one-to-one child whose chunks are transformed by `f`.
    pub(crate) fn pipe_chunks<U: Data>(
        &self,
        op_name: &'static str,
        keeps_partitioner: bool,
        f: impl Fn(&mut Vec<T>, &mut Vec<U>) + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.try_pipe_chunks(op_name, keeps_partitioner, move |input, out| {
            f(input, out);
            Ok(())
        })
    }

    /// [`pipe_chunks`](Rdd::pipe_chunks) with a transform that may fail
    /// the task.
    pub(crate) fn try_pipe_chunks<U: Data>(
        &self,
        op_name: &'static str,
        keeps_partitioner: bool,
        f: impl Fn(&mut Vec<T>, &mut Vec<U>) -> crate::Result<()> + Send + Sync + 'static,
    ) -> Rdd<U> {
        let spec = self.one_to_one(op_name, keeps_partitioner);
        let op = PipeOp {
            parent: self.clone(),
            f: Arc::new(f),
            _out: PhantomData,
        };
        Rdd::from_op(self.context(), spec, op)
    }

    /// Applies `f` to every element.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let lens = ctx.parallelize(vec!["a".to_string(), "bcd".to_string()], 2).map(|s| s.len());
    /// assert_eq!(lens.collect().unwrap(), [1, 3]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Rdd<U> {
        self.pipe_chunks("map", false, move |input, out| {
            out.extend(input.drain(..).map(&f))
        })
    }

    /// Keeps the elements for which `f` is true (the partitioner is kept).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let even = ctx.range(0, 10, 1, 3).filter(|x| x % 2 == 0);
    /// assert_eq!(even.collect().unwrap(), [0, 2, 4, 6, 8]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Rdd<T> {
        self.pipe_chunks("filter", true, move |input, out| {
            out.extend(input.drain(..).filter(|x| f(x)))
        })
    }

    /// Keeps `f`'s `Some` values and drops the elements it maps to `None`
    /// (Scala's `collect` with a partial function).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let lines = ctx.parallelize(vec!["7".to_string(), "x".into(), "42".into()], 2);
    /// let numbers = lines.filter_map(|s| s.parse::<u32>().ok());
    /// assert_eq!(numbers.collect()?, [7, 42]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn filter_map<U: Data>(
        &self,
        f: impl Fn(T) -> Option<U> + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.pipe_chunks("filter_map", false, move |input, out| {
            out.extend(input.drain(..).filter_map(&f))
        })
    }

    /// Replaces every element by the elements of the iterable `f` returns.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let words = ctx.parallelize(vec!["a b".to_string(), "c".to_string()], 2)
    ///     .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>());
    /// assert_eq!(words.collect().unwrap(), ["a", "b", "c"]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn flat_map<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.pipe_chunks("flat_map", false, move |input, out| {
            for x in input.drain(..) {
                out.extend(f(x));
            }
        })
    }

    /// Transforms each partition as an iterator.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let sums = ctx.range(1, 7, 1, 2).map_partitions(|it| std::iter::once(it.sum::<i64>()));
    /// assert_eq!(sums.collect().unwrap(), [6, 15]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn map_partitions<U: Data, I>(
        &self,
        f: impl Fn(PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.map_partitions_with_index(move |_, it| f(it))
    }

    /// Transforms each partition as an iterator, knowing its index.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let tagged = ctx.parallelize(vec!['a', 'b', 'c'], 3)
    ///     .map_partitions_with_index(|i, it| it.map(move |c| (i, c)));
    /// assert_eq!(tagged.collect().unwrap(), [(0, 'a'), (1, 'b'), (2, 'c')]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn map_partitions_with_index<U: Data, I>(
        &self,
        f: impl Fn(usize, PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.map_partitions_op("map_partitions", false, f)
    }

    pub(crate) fn map_partitions_op<U: Data, I>(
        &self,
        op_name: &'static str,
        keeps_partitioner: bool,
        f: impl Fn(usize, PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        let spec = self.one_to_one(op_name, keeps_partitioner);
        let op = MapPartitionsOp {
            parent: self.clone(),
            f: Arc::new(f),
            _out: PhantomData,
        };
        Rdd::from_op(self.context(), spec, op)
    }

    /// One vector per partition holding its elements.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1, 2, 3], 2).glom().collect()?, [vec![1], vec![2, 3]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn glom(&self) -> Rdd<Vec<T>> {
        self.map_partitions_op("glom", false, |_, it| {
            std::iter::once(it.collect::<Vec<T>>())
        })
    }

    /// Pairs every element with the key `f` computes: `(f(&x), x)`.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let by_len = ctx.parallelize(vec!["aa".to_string(), "b".into()], 1).key_by(|s| s.len());
    /// assert_eq!(by_len.collect().unwrap(), [(2, "aa".to_string()), (1, "b".into())]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn key_by<K: Data>(&self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> Rdd<(K, T)> {
        self.pipe_chunks("key_by", false, move |input, out| {
            out.extend(input.drain(..).map(|x| (f(&x), x)))
        })
    }

    /// Redistributes the elements over `num_partitions` partitions with a
    /// shuffle. Each input partition deals its elements round-robin,
    /// starting at a position derived from the partition index, so a
    /// recomputed partition is split exactly as before.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 100, 1, 2).repartition(5);
    /// assert_eq!(r.num_partitions(), 5);
    /// assert_eq!(r.count().unwrap(), 100);
    /// ```
    ///
    /// Zero partitions make every action on the result an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn repartition(&self, num_partitions: usize) -> Rdd<T>
    where
        T: crate::Value,
    {
        let n = num_partitions.max(1);
        let dealt = self.map_partitions_op("repartition", false, move |index, it| {
            let start = (stable_hash(&(index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                % n as u64) as usize;
            it.enumerate()
                .map(move |(i, x)| (((start + i) % n) as u64, x))
        });
        dealt
            .partition_by(Partitioner::hash(n))
            .values()
            .refused_if(num_partitions == 0, || {
                crate::error::zero_partitions("repartition")
            })
    }

    /// The distinct elements (order unspecified).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let mut d = ctx.parallelize(vec![3, 1, 3, 2, 1], 2).distinct().collect().unwrap();
    /// d.sort();
    /// assert_eq!(d, [1, 2, 3]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn distinct(&self) -> Rdd<T>
    where
        T: Key,
    {
        self.distinct_with(Partitioning::Default)
    }

    /// [`distinct`](Rdd::distinct) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![3, 1, 3, 2, 1], 2).distinct_with(4);
    /// let mut got = r.collect()?;
    /// got.sort();
    /// assert_eq!((r.num_partitions(), got), (4, vec![1, 2, 3]));
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn distinct_with(&self, partitioning: impl Into<Partitioning>) -> Rdd<T>
    where
        T: Key,
    {
        self.map(|x| (x, ()))
            .reduce_by_key_with(partitioning, |a, _| a)
            .keys()
    }

    /// Groups elements by the key `f` computes.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let mut g = ctx.range(0, 6, 1, 2).group_by(|x| x % 2)
    ///     .map_values(|mut v| { v.sort(); v }) // order within a group is unspecified
    ///     .collect().unwrap();
    /// g.sort();
    /// assert_eq!(g, [(0, vec![0, 2, 4]), (1, vec![1, 3, 5])]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn group_by<K: Key>(&self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> Rdd<(K, Vec<T>)>
    where
        T: crate::Value,
    {
        self.group_by_with(Partitioning::Default, f)
    }

    /// [`group_by`](Rdd::group_by) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![1, 2, 3, 4, 5], 2).group_by_with(2, |x| x % 2 == 0);
    /// let mut got = r.collect()?;
    /// got.sort();
    /// got.iter_mut().for_each(|(_, g)| g.sort()); // order within a group is unspecified
    /// assert_eq!(got, [(false, vec![1, 3, 5]), (true, vec![2, 4])]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn group_by_with<K: Key>(
        &self,
        partitioning: impl Into<Partitioning>,
        f: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> Rdd<(K, Vec<T>)>
    where
        T: crate::Value,
    {
        self.key_by(f).group_by_key_with(partitioning)
    }

    /// Sorts by the key `f` computes, with a range partitioner built from a
    /// sample (the sample runs a job now, as in Spark).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let words = vec!["ccc".to_string(), "a".to_string(), "bb".to_string()];
    /// let s = ctx.parallelize(words, 2).sort_by(|s| s.len(), spate::Order::Ascending, None).unwrap();
    /// assert_eq!(s.collect().unwrap(), ["a", "bb", "ccc"]);
    /// ```
    pub fn sort_by<K: Key + Ord>(
        &self,
        f: impl Fn(&T) -> K + Send + Sync + 'static,
        order: crate::Order,
        num_partitions: Option<usize>,
    ) -> crate::Result<Rdd<T>>
    where
        T: crate::Value,
    {
        Ok(self.key_by(f).sort_by_key(order, num_partitions)?.values())
    }

    /// The elements of `self` that are not in `other` (duplicates in `self`
    /// are kept), partitioned like `self`.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let a = ctx.parallelize(vec![1, 2, 2, 3], 2);
    /// let mut d = a.subtract(&ctx.parallelize(vec![3], 1)).collect().unwrap();
    /// d.sort();
    /// assert_eq!(d, [1, 2, 2]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn subtract(&self, other: &Rdd<T>) -> Rdd<T>
    where
        T: Key,
    {
        self.subtract_with(other, self.num_partitions())
    }

    /// [`subtract`](Rdd::subtract) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![1, 2, 3, 4], 2);
    /// let b = ctx.parallelize(vec![2, 4], 1);
    /// let mut got = a.subtract_with(&b, 3).collect()?;
    /// got.sort();
    /// assert_eq!(got, [1, 3]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn subtract_with(&self, other: &Rdd<T>, partitioning: impl Into<Partitioning>) -> Rdd<T>
    where
        T: Key,
    {
        self.map(|x| (x, ()))
            .subtract_by_key_with(&other.map(|x| (x, ())), partitioning)
            .keys()
    }

    /// The distinct elements present in both datasets.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let a = ctx.parallelize(vec![1, 2, 2, 3], 2);
    /// let mut i = a.intersection(&ctx.parallelize(vec![2, 3, 4], 2)).collect().unwrap();
    /// i.sort();
    /// assert_eq!(i, [2, 3]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn intersection(&self, other: &Rdd<T>) -> Rdd<T>
    where
        T: Key,
    {
        self.intersection_with(other, Partitioning::Default)
    }

    /// [`intersection`](Rdd::intersection) into the given partitioning.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![1, 2, 2, 3], 2);
    /// let b = ctx.parallelize(vec![2, 3, 5], 1);
    /// let mut got = a.intersection_with(&b, 2).collect()?;
    /// got.sort();
    /// assert_eq!(got, [2, 3]); // without duplicates
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn intersection_with(&self, other: &Rdd<T>, partitioning: impl Into<Partitioning>) -> Rdd<T>
    where
        T: Key,
    {
        self.map(|x| (x, ()))
            .cogroup_with(&other.map(|x| (x, ())), partitioning)
            .pipe_chunks("intersection", false, |input, out| {
                out.extend(
                    input
                        .drain(..)
                        .filter(|(_, (a, b))| !a.is_empty() && !b.is_empty())
                        .map(|(k, _)| k),
                )
            })
    }
}
