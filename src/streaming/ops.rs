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
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> DStream<U> {
        let f = Arc::new(f);
        self.derive("map", move |rdd, _| {
            let f = f.clone();
            Ok(rdd.map(move |x| f(x)))
        })
    }

    /// Applies `f` to every element and flattens the results.
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

    /// Keeps the elements for which `f` holds.
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
    pub fn glom(&self) -> DStream<Vec<T>> {
        self.derive("glom", |rdd, _| Ok(rdd.glom()))
    }

    /// Redistributes each batch into `num_partitions` partitions.
    pub fn repartition(&self, num_partitions: usize) -> DStream<T>
    where
        T: Value,
    {
        self.derive("repartition", move |rdd, _| {
            Ok(rdd.repartition(num_partitions))
        })
    }

    /// Any transformation of each batch's dataset, given the batch time.
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
    pub fn union(&self, other: &DStream<T>) -> DStream<T> {
        self.combined("union", other, |a, b, _| Ok(a.union(b)))
    }

    /// The number of elements of each batch, as a one-element dataset (0
    /// for an empty batch).
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
    pub fn count_by_value(&self) -> DStream<(T, u64)>
    where
        T: Key,
    {
        self.derive("count_by_value", |rdd, _| {
            Ok(rdd.map(|x| (x, 1u64)).reduce_by_key(|a, b| a + b))
        })
    }

    /// Each batch reduced with `f` to (at most) one element.
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
