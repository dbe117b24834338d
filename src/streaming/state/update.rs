//! `update_state_by_key`: the update function runs for every key that has
//! state or new values in a batch.

use super::{StateMeter, Tracked, previous_state};
use crate::data::{Key, Value};
use crate::error::Result;
use crate::partitioner::{Partitioner, Partitioning};
use crate::rdd::Rdd;
use crate::streaming::dstream::{DStream, StreamOp};
use crate::streaming::time::Time;
use std::sync::Arc;
use std::time::Duration;

/// Options of [`update_state_by_key_with`](DStream::update_state_by_key_with).
pub struct StateOptions<K, S> {
    /// How the state is partitioned (default: hash into the context's
    /// parallelism).
    pub partitioning: Partitioning,
    /// State the first batch starts from.
    pub initial: Option<Rdd<(K, S)>>,
    /// Drops a key whose state got no new values for this long (batch
    /// time), without calling the update function: bounds the state of
    /// keys that stop arriving.
    pub ttl: Option<Duration>,
}

impl<K, S> Default for StateOptions<K, S> {
    fn default() -> Self {
        StateOptions {
            partitioning: Partitioning::Default,
            initial: None,
            ttl: None,
        }
    }
}

impl<K: Key, V: Value> DStream<(K, V)> {
    /// Running state per key: for every key with state or new values in a
    /// batch, `update(key, new values, previous state)` gives the new
    /// state; `None` removes the key.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(10), clock.clone()).unwrap();
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![('a', 1), ('b', 1)], 1));
    /// q.push(ctx.parallelize(vec![('a', 5)], 1));
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
    ///     .update_state_by_key(|_k, new: Vec<i32>, total: Option<i32>| {
    ///         Some(total.unwrap_or(0) + new.iter().sum::<i32>())
    ///     })
    ///     .foreach_rdd(move |rdd, _| {
    ///         let mut s = rdd.collect()?;
    ///         s.sort();
    ///         sink.lock().unwrap().push(s);
    ///         Ok(())
    ///     })
    ///     .unwrap();
    /// ssc.start().unwrap();
    /// clock.advance(Duration::from_millis(20));
    /// ssc.wait_for_batch(Time::from_millis(20)).unwrap();
    /// assert_eq!(seen.lock().unwrap()[1], [('a', 6), ('b', 1)]);
    /// ```
    pub fn update_state_by_key<S: Value>(
        &self,
        update: impl Fn(&K, Vec<V>, Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)> {
        self.update_state_by_key_with(StateOptions::default(), update)
    }

    /// [`update_state_by_key`](DStream::update_state_by_key) with a
    /// partitioning and an initial state.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::StateOptions;
    /// // Totals starting from an earlier run's, in 4 partitions.
    /// let out = run_batches(vec![vec![('a', 1), ('b', 2)]], |s| {
    ///     let options = StateOptions {
    ///         partitioning: 4.into(),
    ///         initial: Some(s.context().parallelize(vec![('a', 10)], 1)),
    ///         ..StateOptions::default()
    ///     };
    ///     s.update_state_by_key_with(options, |_, new: Vec<i32>, total: Option<i32>| {
    ///         Some(total.unwrap_or(0) + new.iter().sum::<i32>())
    ///     })
    /// })?;
    /// assert_eq!(out, [vec![('a', 11), ('b', 2)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn update_state_by_key_with<S: Value>(
        &self,
        options: StateOptions<K, S>,
        update: impl Fn(&K, Vec<V>, Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)> {
        self.update_state_by_key_at(options, move |_, k, new, old| update(k, new, old))
    }

    /// [`update_state_by_key_with`](DStream::update_state_by_key_with)
    /// whose function also receives the batch time (Spark's
    /// `updateStateByKey` with a `(Time, K, Seq[V], Option[S])` function).
    ///
    /// ```
    /// use spate::streaming::{ManualClock, StateOptions, StreamQueue, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(10), clock.clone()).unwrap();
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![('a', 1)], 1));
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
    ///     .update_state_by_key_at(StateOptions::default(), |time: Time, _k, new: Vec<i32>, last: Option<(u64, i32)>| {
    ///         // Remember when the key last had values.
    ///         match (new.is_empty(), last) {
    ///             (false, _) => Some((time.millis(), new.iter().sum())),
    ///             (true, last) => last,
    ///         }
    ///     })
    ///     .foreach_rdd(move |rdd, _| Ok(sink.lock().unwrap().push(rdd.collect()?)))
    ///     .unwrap();
    /// ssc.start().unwrap();
    /// clock.advance(Duration::from_millis(20));
    /// ssc.wait_for_batch(Time::from_millis(20)).unwrap();
    /// assert_eq!(*seen.lock().unwrap(), [vec![('a', (10, 1))], vec![('a', (10, 1))]]);
    /// ```
    pub fn update_state_by_key_at<S: Value>(
        &self,
        options: StateOptions<K, S>,
        update: impl Fn(Time, &K, Vec<V>, Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)> {
        let partitioner = options
            .partitioning
            .resolve(&[(None, self.context().default_parallelism())]);
        let initial = options.initial.map(|r| r.partition_by(partitioner.clone()));
        let meter = StateMeter::new();
        let tracked = self.stateful_child(
            "update_state_by_key",
            &partitioner,
            &meter,
            UpdateState {
                parent: self.clone(),
                partitioner: partitioner.clone(),
                initial,
                update: Arc::new(update),
                ttl: options.ttl.map(crate::streaming::time::millis),
                meter: meter.clone(),
            },
        );
        tracked.derive("update_state_by_key", |rdd, _| {
            Ok(rdd.pipe_chunks("state", true, |input, out| {
                out.extend(input.drain(..).map(|(k, t)| (k, t.value)))
            }))
        })
    }
}

type UpdateFn<K, V, S> = dyn Fn(Time, &K, Vec<V>, Option<S>) -> Option<S> + Send + Sync;

struct UpdateState<K, V, S> {
    parent: DStream<(K, V)>,
    partitioner: Partitioner,
    initial: Option<Rdd<(K, S)>>,
    update: Arc<UpdateFn<K, V, S>>,
    /// Time to live of a key without new values, in ms.
    ttl: Option<u64>,
    meter: StateMeter,
}

impl<K: Key, V: Value, S: Value> StreamOp<(K, Tracked<S>)> for UpdateState<K, V, S> {
    fn compute(
        &self,
        this: &DStream<(K, Tracked<S>)>,
        time: Time,
    ) -> Result<Option<Rdd<(K, Tracked<S>)>>> {
        let ctx = this.context().clone();
        let previous = previous_state(this, time, &self.initial, |r| r)?;
        let batch = self.parent.dataset_or_empty(time)?;
        let update = self.update.clone();
        let size = self.meter.for_batch(&ctx, time);
        let (ttl, now) = (self.ttl, time.millis());
        let state = previous
            .cogroup_with(&batch, self.partitioner.clone())
            .pipe_chunks("update_state_by_key", true, move |input, out| {
                let before = out.len();
                for (k, (old, new)) in input.drain(..) {
                    let old = old.into_iter().next();
                    let last_seen_ms = match (&old, new.is_empty()) {
                        (Some(t), true) => t.last_seen_ms,
                        _ => now,
                    };
                    if new.is_empty() && ttl.is_some_and(|ttl| last_seen_ms + ttl <= now) {
                        continue;
                    }
                    if let Some(value) = update(time, &k, new, old.map(|t| t.value)) {
                        out.push((
                            k,
                            Tracked {
                                value,
                                last_seen_ms,
                            },
                        ));
                    }
                }
                let added = &out[before..];
                let keys = added.len() as u64;
                size.add((keys, keys, crate::memory::estimate_size(added) as u64));
            });
        Ok(Some(this.graph().cut_lineage(state, this.id(), time)))
    }
}
