//! Windows: a window stream at time `T` holds the parent's batches in
//! `(T - length, T]`, and is defined every `slide`. Both durations must be
//! multiples of the parent's slide. Incremental variants update the
//! previous window with the batches that leave and enter it.

use super::dstream::{DStream, NewStream, StreamOp};
use super::time::{Time, check_duration};
use crate::data::{Data, Key, Value};
use crate::error::{Error, Result};
use crate::partitioner::Partitioner;
use crate::partitioner::Partitioning;
use crate::rdd::Rdd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl<T: Data> DStream<T> {
    /// Checks a window's durations against this stream's slide.
    fn check_window(&self, length: Duration, slide: Duration) -> Result<()> {
        check_duration("window length", length)?;
        check_duration("window slide", slide)?;
        let parent = self.slide_duration();
        if parent.is_zero() {
            return Ok(()); // the parent is refused already
        }
        for (what, d) in [("window length", length), ("window slide", slide)] {
            if d.as_millis() % parent.as_millis() != 0 {
                return Err(Error::InvalidArgument(format!(
                    "{what} {d:?} is not a multiple of the parent stream's slide {parent:?}"
                )));
            }
        }
        Ok(())
    }

    /// All elements of the batches in each window of `length`, every
    /// `slide`. Both must be multiples of this stream's slide, else
    /// [`start`](super::StreamingContext::start) is an
    /// [`Error::InvalidArgument`] naming them.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let clock = ManualClock::new();
    /// let tick = Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    /// let q = StreamQueue::new();
    /// for i in 1..=3 {
    ///     q.push(ctx.parallelize(vec![i], 1));
    /// }
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
    ///     .window(2 * tick, tick)
    ///     .foreach_rdd(move |rdd, _| {
    ///         let mut w = rdd.collect()?;
    ///         w.sort();
    ///         sink.lock().unwrap().push(w);
    ///         Ok(())
    ///     })?;
    /// ssc.start()?;
    /// clock.advance(3 * tick);
    /// ssc.wait_for_batch(Time::from_millis(300))?;
    /// assert_eq!(*seen.lock().unwrap(), [vec![1], vec![1, 2], vec![2, 3]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn window(&self, length: Duration, slide: Duration) -> DStream<T> {
        self.graph().refuse_unless(self.check_window(length, slide));
        // Each batch is read by several windows: keep it in memory.
        self.node.base.persist.store(true, Ordering::Relaxed);
        let spec = NewStream {
            name: "window",
            slide,
            parents: vec![self.as_any()],
            reads_back: length,
            persist: false,
        };
        DStream::from_op(
            self.graph(),
            spec,
            Window {
                parent: self.clone(),
                length,
            },
        )
    }

    /// The number of elements in each window (one element, 0 for an empty
    /// window).
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// let out = run_batches(vec![vec!['a'], vec!['b', 'c'], vec![]], |s| {
    ///     s.count_by_window(2 * TEST_BATCH, TEST_BATCH)
    /// })?;
    /// assert_eq!(out, [vec![1], vec![3], vec![2]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn count_by_window(&self, length: Duration, slide: Duration) -> DStream<u64> {
        self.window(length, slide).count()
    }

    /// Each window reduced with `f` (recomputed from the window's batches,
    /// each reduced once).
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// let out = run_batches(vec![vec![1], vec![2], vec![3]], |s| {
    ///     s.reduce_by_window(|a, b| a + b, 2 * TEST_BATCH, TEST_BATCH)
    /// })?;
    /// assert_eq!(out, [vec![1], vec![3], vec![5]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reduce_by_window(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> DStream<T>
    where
        T: Value,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.reduce(move |a, b| f(a, b))
            .window(length, slide)
            .reduce(move |a, b| g(a, b))
    }

    /// Each window reduced incrementally: the previous window's value,
    /// minus (`inverse`) the batches that left, plus the batches that
    /// entered.
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// let out = run_batches(vec![vec![1], vec![2], vec![3], vec![]], |s| {
    ///     s.reduce_by_window_inv(|a, b| a + b, |a, b| a - b, 2 * TEST_BATCH, TEST_BATCH)
    /// })?;
    /// assert_eq!(out, [vec![1], vec![3], vec![5], vec![3]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reduce_by_window_inv(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        inverse: impl Fn(T, T) -> T + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
    ) -> DStream<T>
    where
        T: Value,
    {
        self.map(|x| ((), x))
            .reduce_by_key_and_window_inv(f, inverse, length, slide, 1, None)
            .map(|(_, v)| v)
    }

    /// How often each element occurs in each window (incremental; elements
    /// whose count falls to zero are dropped).
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// let out = run_batches(vec![vec!['a', 'b'], vec!['a'], vec![]], |s| {
    ///     s.count_by_value_and_window(2 * TEST_BATCH, TEST_BATCH, 2)
    /// })?;
    /// // 'b' falls to zero in the third window and is dropped.
    /// assert_eq!(out, [vec![('a', 1), ('b', 1)], vec![('a', 2), ('b', 1)], vec![('a', 1)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn count_by_value_and_window(
        &self,
        length: Duration,
        slide: Duration,
        partitioning: impl Into<Partitioning>,
    ) -> DStream<(T, u64)>
    where
        T: Key,
    {
        self.map(|x| (x, 1u64)).reduce_by_key_and_window_inv(
            |a, b| a + b,
            |a, b| a - b,
            length,
            slide,
            partitioning,
            Some(Arc::new(|(_, n): &(T, u64)| *n != 0)),
        )
    }
}

/// Which keys an incremental window keeps.
pub type KeepFilter<K, V> = Arc<dyn Fn(&(K, V)) -> bool + Send + Sync>;

impl<K: Key, V: Value> DStream<(K, V)> {
    /// Each window's values merged per key with `f`: every batch is
    /// reduced once, then the window's reduced batches are merged.
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// // Two-batch windows every two batches.
    /// let batches = vec![vec![('a', 1)], vec![('a', 2), ('b', 1)], vec![('b', 4)], vec![]];
    /// let out = run_batches(batches, |s| {
    ///     s.reduce_by_key_and_window(|x, y| x + y, 2 * TEST_BATCH, 2 * TEST_BATCH, 2)
    /// })?;
    /// assert_eq!(out, [vec![('a', 3), ('b', 1)], vec![('b', 4)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        partitioning: impl Into<Partitioning>,
    ) -> DStream<(K, V)> {
        let partitioning = partitioning.into();
        let f = Arc::new(f);
        let g = f.clone();
        self.reduce_by_key_with(partitioning.clone(), move |a, b| f(a, b))
            .window(length, slide)
            .reduce_by_key_with(partitioning, move |a, b| g(a, b))
    }

    /// Incremental [`reduce_by_key_and_window`](DStream::reduce_by_key_and_window):
    /// each window is the previous one, with the values of the batches that
    /// left removed by `inverse` (`inverse(a, b)` undoes `f(a, b)`'s `b`)
    /// and those of the batches that entered merged by `f`. Keys whose value
    /// falls to a neutral value stay unless `keep` drops them.
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// let batches = vec![vec![('a', 1)], vec![('a', 2)], vec![], vec![]];
    /// let out = run_batches(batches, |s| {
    ///     s.reduce_by_key_and_window_inv(|x, y| x + y, |x, y| x - y, 2 * TEST_BATCH, TEST_BATCH, 1, None)
    /// })?;
    /// // Without a keep filter a key stays at its neutral value.
    /// assert_eq!(out, [vec![('a', 1)], vec![('a', 3)], vec![('a', 2)], vec![('a', 0)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        length: Duration,
        slide: Duration,
        partitioning: impl Into<Partitioning>,
        keep: Option<KeepFilter<K, V>>,
    ) -> DStream<(K, V)> {
        self.graph().refuse_unless(self.check_window(length, slide));
        let f: Arc<dyn Fn(V, V) -> V + Send + Sync> = Arc::new(f);
        let partitioner = partitioning
            .into()
            .resolve(&[(None, self.context().default_parallelism())]);
        let g = f.clone();
        let reduced = self.reduce_by_key_with(partitioner.clone(), move |a, b| g(a, b));
        reduced.node.base.persist.store(true, Ordering::Relaxed);
        let spec = NewStream {
            name: "reduce_by_key_and_window",
            slide,
            parents: vec![reduced.as_any()],
            reads_back: length + slide,
            persist: true,
        };
        let windows = DStream::from_op(
            self.graph(),
            spec,
            IncrementalWindow {
                reduced,
                length,
                slide,
                partitioner: partitioner.clone(),
                f,
                inverse: Arc::new(inverse),
                keep,
            },
        );
        windows.register_stateful(partitioner);
        windows
    }

    /// Groups each window's values per key.
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// let out = run_batches(vec![vec![('k', 1)], vec![('k', 2)]], |s| {
    ///     s.group_by_key_and_window(2 * TEST_BATCH, TEST_BATCH, 1).map_values(|mut v| {
    ///         v.sort();
    ///         v
    ///     })
    /// })?;
    /// assert_eq!(out, [vec![('k', vec![1])], vec![('k', vec![1, 2])]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn group_by_key_and_window(
        &self,
        length: Duration,
        slide: Duration,
        partitioning: impl Into<Partitioning>,
    ) -> DStream<(K, Vec<V>)> {
        self.window(length, slide).group_by_key_with(partitioning)
    }
}

struct Window<T> {
    parent: DStream<T>,
    length: Duration,
}

impl<T: Data> StreamOp<T> for Window<T> {
    fn compute(&self, _: &DStream<T>, time: Time) -> Result<Option<Rdd<T>>> {
        let batches = self.parent.datasets_in(time - self.length, time)?;
        let ctx = self.parent.context();
        Ok(Some(match batches.len() {
            0 => ctx.empty(),
            _ => ctx.union(&batches),
        }))
    }
}

struct IncrementalWindow<K, V> {
    reduced: DStream<(K, V)>,
    length: Duration,
    slide: Duration,
    partitioner: Partitioner,
    f: Arc<dyn Fn(V, V) -> V + Send + Sync>,
    inverse: Arc<dyn Fn(V, V) -> V + Send + Sync>,
    keep: Option<KeepFilter<K, V>>,
}

/// Which side of an incremental window update a value comes from.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Change {
    Left,
    Entered,
}

impl<K: Key, V: Value> StreamOp<(K, V)> for IncrementalWindow<K, V> {
    fn compute(&self, this: &DStream<(K, V)>, time: Time) -> Result<Option<Rdd<(K, V)>>> {
        let ctx = self.reduced.context().clone();
        let previous_end = time - self.slide;
        // Batches that left: in the previous window, not in this one.
        let left = self
            .reduced
            .datasets_in(previous_end - self.length, time - self.length)?;
        // Batches that entered: in this window, not in the previous one.
        let entered = self.reduced.datasets_in(previous_end, time)?;
        let previous = this.dataset_or_empty(previous_end)?;
        let tag = |rdds: Vec<Rdd<(K, V)>>, change: Change| -> Rdd<(K, (Change, V))> {
            match rdds.len() {
                0 => ctx.empty(),
                _ => ctx.union(&rdds).map_values(move |v| (change, v)),
            }
        };
        let changes = tag(left, Change::Left).union(&tag(entered, Change::Entered));
        let (f, inverse, keep) = (self.f.clone(), self.inverse.clone(), self.keep.clone());
        // The previous window is partitioned by the partitioner already, so
        // only the changes are shuffled.
        let merged = previous
            .cogroup_with(&changes, self.partitioner.clone())
            .pipe_chunks("reduce_by_key_and_window", true, move |input, out| {
                for (k, (prev, changes)) in input.drain(..) {
                    let (mut left, mut entered): (Option<V>, Option<V>) = (None, None);
                    for (change, v) in changes {
                        let slot = match change {
                            Change::Left => &mut left,
                            Change::Entered => &mut entered,
                        };
                        *slot = Some(match slot.take() {
                            Some(acc) => f(acc, v),
                            None => v,
                        });
                    }
                    let value = match prev.into_iter().next() {
                        Some(p) => {
                            let p = match left {
                                Some(l) => inverse(p, l),
                                None => p,
                            };
                            Some(match entered {
                                Some(e) => f(p, e),
                                None => p,
                            })
                        }
                        // Not in the previous window (new, or dropped by
                        // `keep`): only what entered counts.
                        None => entered,
                    };
                    if let Some(v) = value {
                        let kv = (k, v);
                        if keep.as_ref().is_none_or(|keep| keep(&kv)) {
                            out.push(kv);
                        }
                    }
                }
            });
        Ok(Some(this.graph().cut_lineage(merged, this.id(), time)))
    }
}
