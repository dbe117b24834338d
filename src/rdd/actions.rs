//! Actions: operations that run a job and bring a result to the driver.

use super::{CHUNK, ChunkIter, PartitionIter, Rdd, for_each_chunk};
use crate::data::{Data, Key, Value};
use crate::error::{Error, Result};
use crate::rdd::run_job;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;

pub(crate) fn count_partition<T>(it: ChunkIter<T>) -> Result<u64> {
    let mut n = 0u64;
    for_each_chunk(it, |b| {
        n += b.len() as u64;
        Ok(())
    })?;
    Ok(n)
}

/// Pulls at most `n` records, asking for small chunks first so that
/// `take(1)` computes one record, not a partition.
fn take_from<T>(mut it: ChunkIter<T>, n: usize) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut hint = n.clamp(1, CHUNK);
    while out.len() < n {
        let before = out.len();
        let more = it.next_chunk(&mut out, hint.min(n - before).max(1))?;
        if !more {
            break;
        }
        if out.len() == before {
            hint = (hint * 2).min(CHUNK);
        }
    }
    out.truncate(n);
    Ok(out)
}

/// Keeps the `n` smallest elements under `cmp` (a bounded max-heap).
struct Smallest<T, F> {
    n: usize,
    heap: BinaryHeap<Ranked<T, F>>,
    cmp: F,
}

struct Ranked<T, F> {
    value: T,
    cmp: F,
}

impl<T, F: Fn(&T, &T) -> Ordering> PartialEq for Ranked<T, F> {
    fn eq(&self, other: &Self) -> bool {
        (self.cmp)(&self.value, &other.value) == Ordering::Equal
    }
}
impl<T, F: Fn(&T, &T) -> Ordering> Eq for Ranked<T, F> {}
impl<T, F: Fn(&T, &T) -> Ordering> PartialOrd for Ranked<T, F> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T, F: Fn(&T, &T) -> Ordering> Ord for Ranked<T, F> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.cmp)(&self.value, &other.value)
    }
}

impl<T, F: Fn(&T, &T) -> Ordering + Copy> Smallest<T, F> {
    fn new(n: usize, cmp: F) -> Self {
        Smallest {
            n,
            // Grown by what arrives: `n` may be far larger than the data.
            heap: BinaryHeap::new(),
            cmp,
        }
    }

    fn push(&mut self, value: T) {
        if self.n == 0 {
            return;
        }
        if self.heap.len() < self.n {
            self.heap.push(Ranked {
                value,
                cmp: self.cmp,
            });
        } else if let Some(top) = self.heap.peek()
            && (self.cmp)(&value, &top.value) == Ordering::Less
        {
            self.heap.pop();
            self.heap.push(Ranked {
                value,
                cmp: self.cmp,
            });
        }
    }

    fn into_sorted(self) -> Vec<T> {
        let mut v: Vec<T> = self.heap.into_iter().map(|r| r.value).collect();
        v.sort_by(self.cmp);
        v
    }
}

impl<T: Data> Rdd<T> {
    pub(crate) fn all_partitions(&self) -> Vec<usize> {
        (0..self.num_partitions()).collect()
    }

    /// Runs `f` on every partition and returns one result per partition.
    pub(crate) fn run_partitions<R: Send + Serialize + DeserializeOwned>(
        &self,
        action: &'static str,
        f: impl Fn(ChunkIter<T>) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        run_job(
            self.context(),
            self,
            &self.all_partitions(),
            action,
            |_, it| f(it),
        )
    }

    /// The number of elements.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec!['a', 'b', 'c'], 2).count()?, 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn count(&self) -> Result<u64> {
        Ok(self.run_partitions("count", count_partition)?.iter().sum())
    }

    /// Whether the dataset has no elements.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert!(ctx.parallelize(vec![1, 2], 2).filter(|x| *x > 5).is_empty()?);
    /// assert!(!ctx.parallelize(vec![1], 1).is_empty()?);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        // As `take(1)`: one partition first, then four times as many per
        // round, each partition read only up to its first record.
        let total = self.num_partitions();
        let mut scanned = 0;
        while scanned < total {
            let parts: Vec<usize> = (scanned..(scanned * 4).clamp(scanned + 1, total)).collect();
            let found = run_job(self.context(), self, &parts, "is_empty", |_, mut it| {
                let mut chunk = Vec::new();
                while it.next_chunk(&mut chunk, 1)? {
                    if !chunk.is_empty() {
                        return Ok(true);
                    }
                }
                Ok(!chunk.is_empty())
            })?;
            if found.contains(&true) {
                return Ok(false);
            }
            scanned += parts.len();
        }
        Ok(true)
    }

    /// Runs `f` on every element, on the task threads.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let ctx = spate::Context::new()?;
    /// let total = AtomicU64::new(0);
    /// ctx.parallelize(vec![1u64, 2, 3], 2).foreach(|x| {
    ///     total.fetch_add(x, Ordering::Relaxed);
    /// })?;
    /// assert_eq!(total.into_inner(), 6);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn foreach(&self, f: impl Fn(T) + Sync) -> Result<()> {
        self.run_partitions("foreach", |it| {
            for_each_chunk(it, |b| {
                b.drain(..).for_each(&f);
                Ok(())
            })
        })?;
        Ok(())
    }

    /// Runs `f` on every partition, on the task threads, given the same
    /// [`PartitionIter`](super::PartitionIter) as
    /// [`map_partitions`](Rdd::map_partitions) (for example to open one
    /// connection per partition). If reading the partition fails, the
    /// iterator ends early and the task fails with that error.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let ctx = spate::Context::new()?;
    /// let batches = AtomicUsize::new(0);
    /// ctx.parallelize((0..10).collect::<Vec<_>>(), 3).foreach_partition(|part| {
    ///     let batch: Vec<i32> = part.collect(); // e.g. one bulk insert per partition
    ///     assert!(!batch.is_empty());
    ///     batches.fetch_add(1, Ordering::Relaxed);
    /// })?;
    /// assert_eq!(batches.into_inner(), 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn foreach_partition(&self, f: impl Fn(super::PartitionIter<T>) + Sync) -> Result<()> {
        self.run_partitions("foreach_partition", |it| {
            let error = std::rc::Rc::new(std::cell::RefCell::new(None));
            f(super::PartitionIter::new(it, error.clone()));
            match error.borrow_mut().take() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })?;
        Ok(())
    }
}

impl<T: Value> Rdd<T> {
    /// Runs `f` on each of the chosen `partitions` (indices into this
    /// dataset's partitions, in any order, repeats allowed) as one job, and
    /// returns its results in the order asked (Spark's `runJob`). An
    /// `InvalidArgument` for an index past the last partition.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 100, 1, 4);
    /// let sums = r.run_job(&[3, 0], |i, it| (i, it.sum::<i64>())).unwrap();
    /// assert_eq!(sums, [(3, 2175), (0, 300)]); // 75..100 and 0..25
    /// ```
    pub fn run_job<R: Send + Serialize + DeserializeOwned>(
        &self,
        partitions: &[usize],
        f: impl Fn(usize, PartitionIter<T>) -> R + Sync,
    ) -> Result<Vec<R>> {
        if let Some(bad) = partitions.iter().find(|&&p| p >= self.num_partitions()) {
            return Err(Error::InvalidArgument(format!(
                "partition {bad} of a dataset with {} partitions",
                self.num_partitions()
            )));
        }
        run_job(self.context(), self, partitions, "run_job", |tc, it| {
            let error = Rc::new(RefCell::new(None));
            let out = f(tc.partition(), PartitionIter::new(it, error.clone()));
            // An input error ended the iterator early: the task fails.
            match error.borrow_mut().take() {
                Some(e) => Err(e),
                None => Ok(out),
            }
        })
    }

    /// All elements, in partition order.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // In partition order: the order of the input here.
    /// assert_eq!(ctx.parallelize(vec![3, 1, 2], 2).map(|x| x * 2).collect()?, [6, 2, 4]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn collect(&self) -> Result<Vec<T>> {
        let parts = self.run_partitions("collect", super::drain_all)?;
        Ok(parts.concat())
    }

    /// The first element; an error on an empty dataset.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec!['x', 'y'], 2).first()?, 'x');
    /// assert!(matches!(ctx.empty::<u8>().first(), Err(spate::Error::EmptyDataset(_))));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn first(&self) -> Result<T> {
        self.take(1)?
            .into_iter()
            .next()
            .ok_or(Error::EmptyDataset("first"))
    }

    /// The first `n` elements in partition order. Scans one partition first,
    /// then more (up to four times as many per round) until it has `n`, as
    /// Spark does; within a partition only the needed records are computed.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// assert_eq!(ctx.range(0, 1_000_000, 1, 8).take(3).unwrap(), [0, 1, 2]);
    /// ```
    pub fn take(&self, n: usize) -> Result<Vec<T>> {
        let total = self.num_partitions();
        let mut out = Vec::new();
        let mut scanned = 0;
        while out.len() < n && scanned < total {
            let mut tries = 1;
            if scanned > 0 {
                tries = if out.is_empty() {
                    scanned * 4
                } else {
                    let est = (1.5 * n as f64 * scanned as f64 / out.len() as f64).ceil() as usize;
                    est.saturating_sub(scanned).clamp(1, scanned * 4)
                };
            }
            let parts: Vec<usize> = (scanned..(scanned + tries).min(total)).collect();
            let left = n - out.len();
            let got = run_job(self.context(), self, &parts, "take", |_, it| {
                take_from(it, left)
            })?;
            for mut part in got {
                let room = n - out.len();
                part.truncate(room);
                out.append(&mut part);
            }
            scanned += parts.len();
        }
        Ok(out)
    }

    /// The `n` smallest elements by `cmp`, in ascending order. The
    /// comparator may own data (it is shared by reference, not copied).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let rank = vec![3, 1, 2]; // the preferred order of 0, 1, 2
    /// let r = ctx.parallelize(vec![0usize, 1, 2, 1], 2);
    /// let best = r.take_ordered_by(2, move |a, b| rank[*a].cmp(&rank[*b])).unwrap();
    /// assert_eq!(best, [1, 1]);
    /// ```
    pub fn take_ordered_by(
        &self,
        n: usize,
        cmp: impl Fn(&T, &T) -> Ordering + Sync,
    ) -> Result<Vec<T>> {
        let cmp = &cmp;
        let parts = self.run_partitions("take_ordered", |it| {
            let mut best = Smallest::new(n, cmp);
            for_each_chunk(it, |b| {
                b.drain(..).for_each(|x| best.push(x));
                Ok(())
            })?;
            Ok(best.into_sorted())
        })?;
        let mut best = Smallest::new(n, cmp);
        parts.into_iter().flatten().for_each(|x| best.push(x));
        Ok(best.into_sorted())
    }

    /// The `n` smallest elements, ascending.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let d = ctx.parallelize(vec![5, 1, 4, 2, 3], 2);
    /// assert_eq!(d.take_ordered(2).unwrap(), [1, 2]);
    /// assert_eq!(d.top(2).unwrap(), [5, 4]);
    /// ```
    pub fn take_ordered(&self, n: usize) -> Result<Vec<T>>
    where
        T: Ord,
    {
        self.take_ordered_by(n, T::cmp)
    }

    /// The `n` largest elements, descending.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![5, 1, 9, 3], 2).top(2)?, [9, 5]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn top(&self, n: usize) -> Result<Vec<T>>
    where
        T: Ord,
    {
        self.take_ordered_by(n, |a: &T, b: &T| b.cmp(a))
    }

    /// Merges all elements with an associative, commutative `f`; an error
    /// on an empty dataset.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1, 2, 3, 4], 3).reduce(|a, b| a + b)?, 10);
    /// assert!(ctx.empty::<i32>().reduce(|a, b| a + b).is_err());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Sync) -> Result<T> {
        let parts = self.run_partitions("reduce", |it| {
            let mut acc: Option<T> = None;
            for_each_chunk(it, |b| {
                for x in b.drain(..) {
                    acc = Some(match acc.take() {
                        Some(a) => f(a, x),
                        None => x,
                    });
                }
                Ok(())
            })?;
            Ok(acc)
        })?;
        parts
            .into_iter()
            .flatten()
            .reduce(&f)
            .ok_or(Error::EmptyDataset("reduce"))
    }

    /// Folds each partition starting from `zero`, then folds the partition
    /// results starting from `zero` again (Spark's rule: the zero is applied
    /// once per partition and once more on the driver).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// assert_eq!(ctx.parallelize(vec![1, 2, 3], 3).fold(10, |a, b| a + b).unwrap(), 46);
    /// ```
    pub fn fold(&self, zero: T, f: impl Fn(T, T) -> T + Sync) -> Result<T> {
        self.aggregate(zero, &f, &f)
    }

    /// Aggregates each partition into a `U` with `seq` starting from `zero`,
    /// then merges the partition results with `comb`, starting from `zero`.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // (sum, count) in one pass, for the mean.
    /// let (sum, n) = ctx
    ///     .parallelize(vec![2.0, 4.0, 9.0], 2)
    ///     .aggregate((0.0, 0u32), |(s, n), x| (s + x, n + 1), |(s, n), (t, m)| (s + t, n + m))?;
    /// assert_eq!((sum, n), (15.0, 3));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn aggregate<U: Value>(
        &self,
        zero: U,
        seq: impl Fn(U, T) -> U + Sync,
        comb: impl Fn(U, U) -> U,
    ) -> Result<U> {
        let z = &zero;
        let seq = &seq;
        let parts = self.run_partitions("aggregate", move |it| {
            let mut acc = Some(z.clone());
            for_each_chunk(it, |b| {
                for x in b.drain(..) {
                    acc = acc.take().map(|a| seq(a, x));
                }
                Ok(())
            })?;
            Ok(acc.expect("accumulator is always present"))
        })?;
        Ok(parts.into_iter().fold(zero.clone(), comb))
    }

    /// Like [`aggregate`](Rdd::aggregate), but merges partition results in
    /// a tree of the given `depth` (≥ 1) with shuffles, so no single task
    /// merges more than about `n^(1/depth)` results.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let s = ctx.range(0, 1000, 1, 50).tree_aggregate(0i64, |a, x| a + x, |a, b| a + b, 2).unwrap();
    /// assert_eq!(s, 499_500);
    /// ```
    pub fn tree_aggregate<U: Value>(
        &self,
        zero: U,
        seq: impl Fn(U, T) -> U + Send + Sync + 'static,
        comb: impl Fn(U, U) -> U + Send + Sync + 'static,
        depth: usize,
    ) -> Result<U> {
        if depth < 1 {
            return Err(Error::InvalidArgument(format!(
                "tree_aggregate depth {depth} < 1"
            )));
        }
        if self.num_partitions() == 0 {
            return Ok(zero);
        }
        let comb = std::sync::Arc::new(comb);
        let z = zero.clone();
        let mut partial: Rdd<U> = self.map_partitions_op("tree_aggregate", false, move |_, it| {
            std::iter::once(it.fold(z.clone(), &seq))
        });
        let mut n = partial.num_partitions();
        let scale = ((n as f64).powf(1.0 / depth as f64).ceil() as usize).max(2);
        while n > scale + n.div_ceil(scale) {
            n /= scale;
            let current = n;
            let c = comb.clone();
            partial = partial
                .map_partitions_with_index(move |i, it| it.map(move |u| ((i % current) as u64, u)))
                .reduce_by_key_with(current, move |a, b| c(a, b))
                .values();
        }
        let c = comb.clone();
        partial.aggregate(zero, |a, u| c(a, u), |a, b| comb(a, b))
    }

    /// Reduces with `f` like [`reduce`](Rdd::reduce), but merges partition
    /// results in a tree of the given `depth` (≥ 1), as
    /// [`tree_aggregate`](Rdd::tree_aggregate) does. An error on an empty
    /// dataset.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// assert_eq!(ctx.range(1, 101, 1, 40).tree_reduce(|a, b| a + b, 2).unwrap(), 5050);
    /// ```
    pub fn tree_reduce(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        depth: usize,
    ) -> Result<T>
    where
        T: Value,
    {
        let f = std::sync::Arc::new(f);
        let (seq, comb) = (f.clone(), f);
        let merge = move |a: Option<T>, b: Option<T>| match (a, b) {
            (Some(a), Some(b)) => Some(comb(a, b)),
            (a, b) => a.or(b),
        };
        self.tree_aggregate(
            None,
            move |acc: Option<T>, x| {
                Some(match acc {
                    Some(a) => seq(a, x),
                    None => x,
                })
            },
            merge,
            depth,
        )?
        .ok_or(Error::EmptyDataset("tree_reduce"))
    }

    /// How many times each distinct element occurs, on the driver.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let counts = ctx.parallelize(vec!['a', 'b', 'a'], 2).count_by_value()?;
    /// assert_eq!((counts[&'a'], counts[&'b']), (2, 1));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn count_by_value(&self) -> Result<HashMap<T, u64>>
    where
        T: Key,
    {
        self.map(|x| (x, 1u64))
            .reduce_by_key(|a, b| a + b)
            .collect_as_map()
    }

    /// The smallest element; an error on an empty dataset.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![4, -2, 7], 2).min()?, -2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn min(&self) -> Result<T>
    where
        T: Ord,
    {
        self.reduce(std::cmp::min)
            .map_err(|_| Error::EmptyDataset("min"))
    }

    /// The largest element; an error on an empty dataset.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec!["pear".to_string(), "apple".to_string()], 2).max()?, "pear");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn max(&self) -> Result<T>
    where
        T: Ord,
    {
        self.reduce(std::cmp::max)
            .map_err(|_| Error::EmptyDataset("max"))
    }

    /// The largest element under `cmp`; of equal ones, the last in
    /// partition order (as `Iterator::max_by`). An error on an empty
    /// dataset. For floats, `f64::total_cmp` gives a total order.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let xs = ctx.parallelize(vec![2.5, -1.0, 7.25, 0.0], 3);
    /// assert_eq!(xs.max_by(f64::total_cmp).unwrap(), 7.25);
    /// assert_eq!(xs.min_by(f64::total_cmp).unwrap(), -1.0);
    /// ```
    pub fn max_by(&self, cmp: impl Fn(&T, &T) -> Ordering + Sync) -> Result<T> {
        self.reduce(|a, b| if cmp(&b, &a) == Ordering::Less { a } else { b })
            .map_err(|_| Error::EmptyDataset("max_by"))
    }

    /// The smallest element under `cmp`; of equal ones, the first in
    /// partition order (as `Iterator::min_by`). An error on an empty
    /// dataset.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // Floats, with their total order.
    /// assert_eq!(ctx.parallelize(vec![2.5, -1.0, 3.0], 2).min_by(f64::total_cmp)?, -1.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn min_by(&self, cmp: impl Fn(&T, &T) -> Ordering + Sync) -> Result<T> {
        self.reduce(|a, b| if cmp(&b, &a) == Ordering::Less { b } else { a })
            .map_err(|_| Error::EmptyDataset("min_by"))
    }

    /// The element with the largest `key`; of equal keys, the last in
    /// partition order. An error on an empty dataset.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let words = ctx.parallelize(["a", "ccc", "bb", "ddd"].map(String::from).to_vec(), 2);
    /// assert_eq!(words.max_by_key(|w| w.len()).unwrap(), "ddd");
    /// assert_eq!(words.min_by_key(|w| w.len()).unwrap(), "a");
    /// ```
    pub fn max_by_key<K: Ord>(&self, key: impl Fn(&T) -> K + Sync) -> Result<T> {
        self.max_by(|a, b| key(a).cmp(&key(b)))
            .map_err(|_| Error::EmptyDataset("max_by_key"))
    }

    /// The element with the smallest `key`; of equal keys, the first in
    /// partition order. An error on an empty dataset.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let words = ctx.parallelize(vec!["spate".to_string(), "rdd".to_string(), "engine".to_string()], 2);
    /// assert_eq!(words.min_by_key(|w| w.len())?, "rdd");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn min_by_key<K: Ord>(&self, key: impl Fn(&T) -> K + Sync) -> Result<T> {
        self.min_by(|a, b| key(a).cmp(&key(b)))
            .map_err(|_| Error::EmptyDataset("min_by_key"))
    }

    /// The elements as an iterator that holds one partition in memory at a
    /// time: each partition is computed by a job of its own when the
    /// iterator reaches it (Spark's `toLocalIterator`). An item is an error
    /// if its partition's job failed; the iterator then ends.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 10, 1, 3);
    /// let all: Vec<i64> = r.to_local_iterator().collect::<Result<_, _>>().unwrap();
    /// assert_eq!(all, (0..10).collect::<Vec<_>>());
    /// ```
    pub fn to_local_iterator(&self) -> LocalIterator<T> {
        LocalIterator {
            rdd: self.clone(),
            next_partition: 0,
            current: Vec::new().into_iter(),
            failed: false,
        }
    }
}

/// The iterator of [`Rdd::to_local_iterator`]: one partition in memory at a
/// time.
#[must_use = "iterators are lazy: no partition is computed until it is consumed"]
pub struct LocalIterator<T> {
    rdd: Rdd<T>,
    next_partition: usize,
    current: std::vec::IntoIter<T>,
    failed: bool,
}

impl<T: Value> Iterator for LocalIterator<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(x) = self.current.next() {
                return Some(Ok(x));
            }
            if self.failed || self.next_partition >= self.rdd.num_partitions() {
                return None;
            }
            let split = self.next_partition;
            self.next_partition += 1;
            let got = run_job(
                self.rdd.context(),
                &self.rdd,
                &[split],
                "to_local_iterator",
                |_, it| super::drain_all(it),
            );
            match got {
                Ok(mut parts) => self.current = parts.pop().unwrap_or_default().into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
