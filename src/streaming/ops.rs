//! Per-batch transformations: each batch's dataset is transformed with the
//! dataset operation of the same name.

use super::dstream::{AnyStream, DStream, NewStream, StreamOp};
use super::time::Time;
use crate::data::{Data, Key, Value};
use crate::error::{Error, Result};
use crate::rdd::{PartitionIter, Rdd};
use std::sync::Arc;

impl<T: Data> DStream<T> {
    /// Applies `f` to every element.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![1, 2], vec![3]], |s| s.map(|x| x + 1))?;
    /// assert_eq!(out, [vec![2, 3], vec![4]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> DStream<U> {
        let f = Arc::new(f);
        self.derive("map", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.map(move |x| f(x)))
        })
    }

    /// Applies `f` to every element and flattens the results.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let lines = vec![vec!["a b".to_string()], vec!["c".to_string()]];
    /// let words = run_batches(lines, |s| {
    ///     s.flat_map(|l| l.split(' ').map(String::from).collect::<Vec<_>>())
    /// })?;
    /// assert_eq!(words, [vec!["a", "b"], vec!["c"]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn flat_map<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> DStream<U> {
        let f = Arc::new(f);
        self.derive("flat_map", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.flat_map(move |x| f(x)))
        })
    }

    /// Keeps `f`'s `Some` values, dropping the elements it maps to `None`.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec!["1".to_string(), "x".into()], vec!["3".into()]], |s| {
    ///     s.filter_map(|w| w.parse::<u8>().ok())
    /// })?;
    /// assert_eq!(out, [vec![1], vec![3]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn filter_map<U: Data>(
        &self,
        f: impl Fn(T) -> Option<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        let f = Arc::new(f);
        self.derive("filter_map", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.filter_map(move |x| f(x)))
        })
    }

    /// Keeps the elements for which `f` holds.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![1, 2, 3, 4], vec![5]], |s| s.filter(|x| x % 2 == 1))?;
    /// assert_eq!(out, [vec![1, 3], vec![5]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> DStream<T> {
        let f = Arc::new(f);
        self.derive("filter", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.filter(move |x| f(x)))
        })
    }

    /// Applies `f` to every element; an `Err` fails the batch's task as
    /// [`Rdd::try_map`] does (retried, then the batch fails).
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
    /// q.push(ctx.parallelize(vec!["1".to_string(), "22".to_string()], 2));
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
    ///     .try_map(|s| s.parse::<u32>())
    ///     .foreach_rdd(move |rdd, _| {
    ///         sink.lock().unwrap().extend(rdd.collect()?);
    ///         Ok(())
    ///     })?;
    /// ssc.start()?;
    /// clock.advance(tick);
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// assert_eq!(*seen.lock().unwrap(), [1, 22]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn try_map<U: Data, E: Into<crate::rdd::UserError>>(
        &self,
        f: impl Fn(T) -> std::result::Result<U, E> + Send + Sync + 'static,
    ) -> DStream<U> {
        let f = Arc::new(f);
        self.derive("try_map", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.try_map(move |x| f(x)))
        })
    }

    /// Replaces every element by the elements `f` returns; an `Err` fails
    /// the batch's task as [`Rdd::try_flat_map`] does.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let lines = vec![vec!["1,2".to_string(), "3".to_string()]];
    /// let out = run_batches(lines, |s| {
    ///     s.try_flat_map(|l| {
    ///         l.split(',').map(|n| n.parse::<i32>()).collect::<Result<Vec<_>, _>>()
    ///     })
    /// })?;
    /// assert_eq!(out, [vec![1, 2, 3]]);
    /// // An Err fails the batch with the user's error as the source.
    /// let bad = run_batches(vec![vec!["x".to_string()]], |s| {
    ///     s.try_flat_map(|l| l.parse::<i32>().map(|n| vec![n]))
    /// });
    /// let err = bad.unwrap_err().to_string();
    /// assert!(err.contains("invalid digit found in string"), "{err}");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn try_flat_map<U: Data, I, E>(
        &self,
        f: impl Fn(T) -> std::result::Result<I, E> + Send + Sync + 'static,
    ) -> DStream<U>
    where
        I: IntoIterator<Item = U>,
        E: Into<crate::rdd::UserError>,
    {
        let f = Arc::new(f);
        self.derive("try_flat_map", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.try_flat_map(move |x| f(x)))
        })
    }

    /// Keeps the elements for which `f` is `Ok(true)`; an `Err` fails the
    /// batch's task as [`Rdd::try_filter`] does.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec!["7".to_string(), "12".to_string()]], |s| {
    ///     s.try_filter(|n| n.parse::<i32>().map(|n| n > 10))
    /// })?;
    /// assert_eq!(out, [vec!["12".to_string()]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn try_filter<E: Into<crate::rdd::UserError>>(
        &self,
        f: impl Fn(&T) -> std::result::Result<bool, E> + Send + Sync + 'static,
    ) -> DStream<T> {
        let f = Arc::new(f);
        self.derive("try_filter", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.try_filter(move |x| f(x)))
        })
    }

    /// Applies `f` to each partition of each batch.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// // The size of each partition (every batch there has two).
    /// let out = run_batches(vec![vec![1, 2, 3, 4]], |s| s.map_partitions(|p| [p.count()]))?;
    /// assert_eq!(out, [vec![2, 2]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn map_partitions<U: Data, I>(
        &self,
        f: impl Fn(PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> DStream<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.derive("map_partitions", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.map_partitions(move |it| f(it)))
        })
    }

    /// Each partition of each batch as one vector.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![1, 2, 3, 4]], |s| s.glom())?;
    /// assert_eq!(out, [vec![vec![1, 2], vec![3, 4]]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn glom(&self) -> DStream<Vec<T>> {
        self.derive("glom", |rdd, _| Ok(rdd.glom()))
    }

    /// Redistributes each batch into `num_partitions` partitions.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![1, 2, 3, 4, 5]], |s| s.repartition(3).glom().map(|p| p.len()))?;
    /// assert_eq!(out[0].len(), 3);
    /// assert_eq!(out[0].iter().sum::<usize>(), 5);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn repartition(&self, num_partitions: usize) -> DStream<T>
    where
        T: Value,
    {
        self.derive("repartition", move |rdd, _| {
            Ok(rdd.repartition(num_partitions))
        })
    }

    /// Any transformation of each batch's dataset, given the batch time.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// // Any dataset operation, here with the batch time.
    /// let out = run_batches(vec![vec![3, 1], vec![2]], |s| {
    ///     s.transform(|rdd, time| Ok(rdd.map(move |x| (time.millis(), x))))
    /// })?;
    /// assert_eq!(out, [vec![(100, 1), (100, 3)], vec![(200, 2)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn transform<U: Data>(
        &self,
        f: impl Fn(&Rdd<T>, Time) -> Result<Rdd<U>> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.derive("transform", f)
    }

    /// A transformation of this stream's and `other`'s datasets of the same
    /// batch (Spark's `transformWith`). The two streams must be of one
    /// streaming context and have the same slide duration, else
    /// [`start`](super::StreamingContext::start) is an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex};
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let tick = std::time::Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone())?;
    /// let (words, stop) = (StreamQueue::new(), StreamQueue::new());
    /// words.push(ctx.parallelize(vec!['a', 't', 'b'], 2));
    /// stop.push(ctx.parallelize(vec!['t'], 1));
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.queue_stream(&words, Dequeue::OneAtATime)
    ///     .transform2(&ssc.queue_stream(&stop, Dequeue::OneAtATime), |w, s, _| Ok(w.subtract(s)))
    ///     .foreach_rdd(move |rdd, _| {
    ///         let mut kept = rdd.collect()?;
    ///         kept.sort();
    ///         Ok(sink.lock().unwrap().extend(kept))
    ///     })?;
    /// ssc.start()?;
    /// clock.advance(tick);
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// assert_eq!(*seen.lock().unwrap(), ['a', 'b']);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn transform2<U: Data, R: Data>(
        &self,
        other: &DStream<U>,
        f: impl Fn(&Rdd<T>, &Rdd<U>, Time) -> Result<Rdd<R>> + Send + Sync + 'static,
    ) -> DStream<R> {
        self.combined("transform2", other, f)
    }

    /// [`transform2`](Self::transform2) named `name` (in errors and the
    /// stream's name).
    pub(crate) fn combined<U: Data, R: Data>(
        &self,
        name: &'static str,
        other: &DStream<U>,
        f: impl Fn(&Rdd<T>, &Rdd<U>, Time) -> Result<Rdd<R>> + Send + Sync + 'static,
    ) -> DStream<R> {
        self.graph().refuse_unless(check_combinable(
            name,
            self.as_any().as_ref(),
            other.as_any().as_ref(),
        ));
        let mut spec = NewStream::child_of(name, self.as_any().as_ref());
        spec.parents = vec![self.as_any(), other.as_any()];
        DStream::from_op(
            self.graph(),
            spec,
            TransformWith {
                left: self.clone(),
                right: other.clone(),
                f,
            },
        )
    }

    /// The elements of both streams, batch by batch. The streams must have
    /// the same slide duration (checked at `start`, as for
    /// [`transform2`](Self::transform2)).
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// let out = run_batches2(vec![vec![1], vec![2]], vec![vec![10], vec![20]], |a, b| a.union(b))?;
    /// assert_eq!(out, [vec![1, 10], vec![2, 20]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn union(&self, other: &DStream<T>) -> DStream<T> {
        self.combined("union", other, |a, b, _| Ok(a.union(b)))
    }

    /// The number of elements of each batch, as a one-element dataset (0
    /// for an empty batch).
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec!['a', 'b'], vec![]], |s| s.count())?;
    /// assert_eq!(out, [vec![2], vec![0]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn count(&self) -> DStream<u64> {
        self.derive("count", |rdd, _| {
            let zero = rdd.context().parallelize(vec![((), 0u64)], 1);
            Ok(rdd
                .map(|_| ((), 1u64))
                .union(&zero)
                .reduce_by_key_with(1, |a, b| a + b)
                .values())
        })
    }

    /// How often each distinct element occurs in each batch.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec!['a', 'b', 'a']], |s| s.count_by_value())?;
    /// assert_eq!(out, [vec![('a', 2), ('b', 1)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn count_by_value(&self) -> DStream<(T, u64)>
    where
        T: Key,
    {
        self.derive("count_by_value", |rdd, _| {
            Ok(rdd.map(|x| (x, 1u64)).reduce_by_key(|a, b| a + b))
        })
    }

    /// Each batch reduced with `f` to (at most) one element.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let out = run_batches(vec![vec![1, 2, 3], vec![], vec![4]], |s| s.reduce(|a, b| a + b))?;
    /// assert_eq!(out, [vec![6], vec![], vec![4]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> DStream<T>
    where
        T: Value,
    {
        let f = Arc::new(f);
        self.derive("reduce", move |rdd, _| {
            let f = f.clone();
            Ok(rdd
                .map(|x| ((), x))
                .reduce_by_key_with(1, move |a, b| f(a, b))
                .values())
        })
    }

    /// The datasets this stream generated for the times in `[from, to]`
    /// that it is defined at, in time order (Spark's `slice`). Only times
    /// the context still remembers (the recent batches) can be sliced.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let tick = Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone())?;
    /// let q = StreamQueue::new();
    /// for i in 1..=3 {
    ///     q.push(ctx.parallelize(vec![i], 1));
    /// }
    /// ssc.remember(Duration::from_secs(1))?;
    /// let s = ssc.queue_stream(&q, Dequeue::OneAtATime);
    /// s.foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// clock.advance(3 * tick);
    /// ssc.wait_for_batch(Time::from_millis(300))?;
    /// // The batches of times 200 and 300.
    /// let got: Vec<Vec<i32>> = s
    ///     .slice(Time::from_millis(200), Time::from_millis(300))?
    ///     .iter()
    ///     .map(|rdd| rdd.collect())
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(got, [vec![2], vec![3]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn slice(&self, from: Time, to: Time) -> Result<Vec<Rdd<T>>> {
        if self.graph().zero_time().is_none() {
            return Err(Error::StreamingState(
                "slice needs a started context".into(),
            ));
        }
        self.datasets_in(from - self.slide_duration(), to)
    }
}

/// Whether `a` and `b` can be combined batch by batch by `op`.
fn check_combinable(op: &str, a: &dyn AnyStream, b: &dyn AnyStream) -> Result<()> {
    let (a, b) = (a.base(), b.base());
    if !Arc::ptr_eq(&a.graph, &b.graph) {
        return Err(Error::InvalidArgument(format!(
            "{op}: streams {} and {} belong to different streaming contexts",
            a.id, b.id
        )));
    }
    if a.slide != b.slide {
        return Err(Error::InvalidArgument(format!(
            "{op}: streams with different slide durations ({:?} and {:?}) cannot be combined batch by batch",
            a.slide, b.slide
        )));
    }
    Ok(())
}

struct TransformWith<T, U, F> {
    left: DStream<T>,
    right: DStream<U>,
    f: F,
}

impl<T: Data, U: Data, R: Data, F> StreamOp<R> for TransformWith<T, U, F>
where
    F: Fn(&Rdd<T>, &Rdd<U>, Time) -> Result<Rdd<R>> + Send + Sync + 'static,
{
    fn compute(&self, _: &DStream<R>, time: Time) -> Result<Option<Rdd<R>>> {
        let a = self.left.dataset_or_empty(time)?;
        let b = self.right.dataset_or_empty(time)?;
        Ok(Some((self.f)(&a, &b, time)?))
    }
}
