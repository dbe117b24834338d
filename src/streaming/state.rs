//! Stateful streams: state per key carried from batch to batch.
//! `update_state_by_key` calls the update function for every key that has
//! state or new values; `map_with_state` calls its function for every new
//! record, and once more for a key whose idle timeout passed.
//!
//! A batch's state dataset is the previous batch's, cogrouped with the new
//! values by the state's partitioner (so only the new values shuffle); it
//! is kept in memory and its lineage cut after the batch that computes it.

use super::dstream::{DStream, NewStream, StreamOp};
use super::metrics::StateSize;
use super::time::Time;
use super::watermark::EventTime;
use crate::data::{Data, Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::partitioner::Partitioning;
use crate::rdd::Rdd;
use crate::shared::Accumulator;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// Counts keys and estimated bytes of each batch's state, per batch time.
#[derive(Clone)]
pub(crate) struct StateMeter {
    per_batch: Arc<Mutex<BTreeMap<Time, Accumulator<(u64, u64)>>>>,
}

impl StateMeter {
    pub(crate) fn new() -> StateMeter {
        StateMeter {
            per_batch: Arc::default(),
        }
    }

    /// Reports the sizes counted for `stream` after each batch.
    pub(crate) fn attach(&self, stream: &DStream<impl Data>) {
        let m = self.clone();
        let id = stream.node.base.id;
        stream.graph().add_state_meter(Box::new(move |time| {
            let acc = m.per_batch.lock().remove(&time)?;
            let (keys, bytes) = acc.value();
            Some(StateSize {
                stream: id,
                keys,
                bytes,
            })
        }));
    }

    pub(crate) fn for_batch(&self, ctx: &crate::Context, time: Time) -> Accumulator<(u64, u64)> {
        let acc = ctx.accumulator("state size", (0u64, 0u64), |a, b| {
            a.0 += b.0;
            a.1 += b.1;
        });
        self.per_batch.lock().insert(time, acc.clone());
        acc
    }
}

impl<P: Data> DStream<P> {
    /// A stateful child of this stream (state, event windows): its datasets
    /// build on each other, so they are cached, their sizes metered, and a
    /// recovery restores them partitioned by `partitioner`.
    pub(crate) fn stateful_child<T: Value>(
        &self,
        name: &'static str,
        partitioner: &Partitioner,
        meter: &StateMeter,
        op: impl StreamOp<T>,
    ) -> DStream<T> {
        let mut spec = NewStream::child_of(name, self.as_any().as_ref());
        spec.parents.push(self.as_any());
        spec.persist = true;
        let stream = DStream::from_op(self.graph(), spec, op);
        meter.attach(&stream);
        stream.register_stateful(partitioner.clone());
        stream
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
    /// ssc.queue_stream(&q, true)
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
    pub fn update_state_by_key_with<S: Value>(
        &self,
        options: StateOptions<K, S>,
        update: impl Fn(&K, Vec<V>, Option<S>) -> Option<S> + Send + Sync + 'static,
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
                ttl: options.ttl.map(super::time::millis),
                meter: meter.clone(),
            },
        );
        tracked.derive("update_state_by_key", |rdd, _| {
            Ok(rdd.pipe("state", true, |input, out| {
                out.extend(input.drain(..).map(|(k, t)| (k, t.value)))
            }))
        })
    }
}

type UpdateFn<K, V, S> = dyn Fn(&K, Vec<V>, Option<S>) -> Option<S> + Send + Sync;

struct UpdateState<K, V, S> {
    parent: DStream<(K, V)>,
    partitioner: Partitioner,
    initial: Option<Rdd<(K, S)>>,
    update: Arc<UpdateFn<K, V, S>>,
    /// Time to live of a key without new values, in ms.
    ttl: Option<u64>,
    meter: StateMeter,
}

/// The previous state of a stateful stream: its own dataset of the batch
/// before, or `initial` (counted as seen now) for the first batch.
fn previous_state<K: Key, S: Value, T: Data>(
    this: &DStream<T>,
    time: Time,
    initial: &Option<Rdd<(K, S)>>,
    own: impl FnOnce(Rdd<T>) -> Rdd<(K, Tracked<S>)>,
) -> Result<Rdd<(K, Tracked<S>)>> {
    let now = time.millis();
    let prev = if let Some(before) = this.previous_batch(time) {
        this.get_or_compute(before)?.map(own)
    } else {
        initial.as_ref().map(|r| {
            r.pipe("initial_state", true, move |input, out| {
                out.extend(input.drain(..).map(|(k, value)| {
                    (
                        k,
                        Tracked {
                            value,
                            last_seen_ms: now,
                        },
                    )
                }))
            })
        })
    };
    Ok(prev.unwrap_or_else(|| this.context().empty()))
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
            .pipe("update_state_by_key", true, move |input, out| {
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
                    if let Some(value) = update(&k, new, old.map(|t| t.value)) {
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
                size.add((
                    added.len() as u64,
                    crate::memory::estimate_size(added) as u64,
                ));
            });
        Ok(Some(this.graph().cut_lineage(state, this.id(), time)))
    }
}

/// The state of one key as `map_with_state`'s function sees it.
#[derive(Debug)]
pub struct State<S> {
    pub(crate) value: Option<S>,
    pub(crate) timing_out: bool,
    /// Event-time timers of the key (event streams only).
    pub(crate) timers: Vec<EventTime>,
    /// The timer this call reports.
    pub(crate) fired: Option<EventTime>,
    pub(crate) watermark: EventTime,
}

impl<S> State<S> {
    pub(crate) fn new(value: Option<S>) -> Self {
        State {
            value,
            timing_out: false,
            timers: Vec::new(),
            fired: None,
            watermark: super::watermark::NO_WATERMARK,
        }
    }
}

impl<S> State<S> {
    /// Whether the key has state.
    pub fn exists(&self) -> bool {
        self.value.is_some()
    }

    /// The state, if any.
    pub fn get(&self) -> Option<&S> {
        self.value.as_ref()
    }

    /// Sets the state (not allowed while timing out: the key is removed
    /// anyway).
    pub fn update(&mut self, s: S) {
        if !self.timing_out {
            self.value = Some(s);
        }
    }

    /// Removes the key's state.
    pub fn remove(&mut self) {
        self.value = None;
    }

    /// On an event stream ([`KeyedEventStream::map_with_state`]): calls the
    /// function again, with no record and [`fired_timer`](Self::fired_timer)
    /// set, once the watermark reaches `at`. Ignored on streams without
    /// event time.
    ///
    /// [`KeyedEventStream::map_with_state`]: super::KeyedEventStream::map_with_state
    pub fn set_event_timer(&mut self, at: EventTime) {
        if !self.timers.contains(&at) {
            self.timers.push(at);
        }
    }

    /// Cancels an event-time timer.
    pub fn delete_event_timer(&mut self, at: EventTime) {
        self.timers.retain(|t| *t != at);
    }

    /// The event-time timer this call reports, if it reports one.
    pub fn fired_timer(&self) -> Option<EventTime> {
        self.fired
    }

    /// The watermark this call was made at (event streams only): the one
    /// just before the record, or for a timer firing after the key's last
    /// record of a batch, the batch's.
    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// Whether this call reports the key's idle timeout (the last call for
    /// this state; there is no new value).
    pub fn is_timing_out(&self) -> bool {
        self.timing_out
    }
}

/// The function and options of [`map_with_state`](DStream::map_with_state)
/// (Spark's `StateSpec`).
pub struct StateSpec<K, V, S, U> {
    pub(crate) function: Arc<MapStateFn<K, V, S, U>>,
    pub(crate) initial: Option<Rdd<(K, S)>>,
    pub(crate) partitioning: Partitioning,
    pub(crate) timeout: Option<Duration>,
    pub(crate) ttl: Option<Duration>,
}

pub(crate) type MapStateFn<K, V, S, U> =
    dyn Fn(Time, &K, Option<V>, &mut State<S>) -> Option<U> + Send + Sync;

impl<K, V, S, U> StateSpec<K, V, S, U> {
    /// `function(batch time, key, new value, state)` is called for every
    /// new record, and with `None` when the key times out; what it returns
    /// is the mapped stream's element.
    pub fn function(
        function: impl Fn(Time, &K, Option<V>, &mut State<S>) -> Option<U> + Send + Sync + 'static,
    ) -> Self {
        StateSpec {
            function: Arc::new(function),
            initial: None,
            partitioning: Partitioning::Default,
            timeout: None,
            ttl: None,
        }
    }

    /// Drops a key that received no record for `ttl` silently (without
    /// calling the function), bounding the state of keys that stop
    /// arriving; unlike [`timeout`](Self::timeout), nothing is reported.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// State the first batch starts from.
    pub fn initial_state(mut self, initial: Rdd<(K, S)>) -> Self {
        self.initial = Some(initial);
        self
    }

    /// How the state is partitioned.
    pub fn partitioning(mut self, p: impl Into<Partitioning>) -> Self {
        self.partitioning = p.into();
        self
    }

    /// Removes a key that received no record for `idle`: in the first
    /// batch whose time is more than `idle` after the batch of the key's
    /// last record, the function is called once with `None` and a
    /// timing-out state, and the state is dropped.
    pub fn timeout(mut self, idle: Duration) -> Self {
        self.timeout = Some(idle);
        self
    }
}

/// A key's state with the time of its last record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tracked<S> {
    pub(crate) value: S,
    pub(crate) last_seen_ms: u64,
}

/// What one batch of `map_with_state` produces: the new state of a key, or
/// a mapped element.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) enum StateOut<K, S, U> {
    State(K, Tracked<S>),
    Mapped(U),
}

/// The stream `map_with_state` returns: the mapped elements; its state is
/// available as [`state_snapshots`](MapWithStateStream::state_snapshots).
pub struct MapWithStateStream<K, S, U> {
    pub(crate) mapped: DStream<U>,
    pub(crate) snapshots: DStream<(K, S)>,
}

impl<K: Key, S: Value, U: Data> MapWithStateStream<K, S, U> {
    /// The mapped elements of each batch.
    pub fn stream(&self) -> &DStream<U> {
        &self.mapped
    }

    /// The full state (every key and its state) after each batch.
    pub fn state_snapshots(&self) -> DStream<(K, S)> {
        self.snapshots.clone()
    }
}

impl<K, S, U> std::ops::Deref for MapWithStateStream<K, S, U> {
    type Target = DStream<U>;
    fn deref(&self) -> &DStream<U> {
        &self.mapped
    }
}

impl<K: Key, V: Value> DStream<(K, V)> {
    /// Calls `spec`'s function for every record with the key's state, and
    /// emits what it returns (Spark's `mapWithState`). Keys with an idle
    /// timeout are reported on time: in the first batch past the deadline,
    /// exactly once.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, State, StateSpec, StreamQueue, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let clock = ManualClock::new();
    /// let tick = Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![('a', 1), ('a', 2)], 1));
    /// q.push(ctx.parallelize(vec![('a', 3)], 1));
    /// // A running total per key, emitted after every record.
    /// let spec = StateSpec::function(|_, _key: &char, v: Option<i32>, s: &mut State<i32>| {
    ///     let total = s.get().copied().unwrap_or(0) + v?;
    ///     s.update(total);
    ///     Some(total)
    /// });
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.queue_stream(&q, true)
    ///     .map_with_state(spec)
    ///     .foreach_rdd(move |rdd, _| {
    ///         sink.lock().unwrap().extend(rdd.collect()?);
    ///         Ok(())
    ///     })?;
    /// ssc.start()?;
    /// clock.advance(2 * tick);
    /// ssc.wait_for_batch(Time::from_millis(200))?;
    /// assert_eq!(*seen.lock().unwrap(), [1, 3, 6]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn map_with_state<S: Value, U: Value>(
        &self,
        spec: StateSpec<K, V, S, U>,
    ) -> MapWithStateStream<K, S, U> {
        let partitioner = spec
            .partitioning
            .resolve(&[(None, self.context().default_parallelism())]);
        let initial = spec.initial.map(|r| r.partition_by(partitioner.clone()));
        let meter = StateMeter::new();
        let combined = self.stateful_child(
            "map_with_state",
            &partitioner,
            &meter,
            MapWithState {
                parent: self.clone(),
                partitioner: partitioner.clone(),
                initial,
                function: spec.function,
                timeout: spec.timeout,
                ttl: spec.ttl,
                meter: meter.clone(),
            },
        );
        let mapped = mapped_of(&combined);
        let snapshots = combined.derive("state_snapshots", |rdd, _| {
            Ok(states_of(rdd).map(|(k, t)| (k, t.value)))
        });
        MapWithStateStream { mapped, snapshots }
    }
}

/// The elements a `map_with_state` stream emits.
pub(crate) fn mapped_of<K: Key, S: Value, U: Value>(
    combined: &DStream<StateOut<K, S, U>>,
) -> DStream<U> {
    combined.derive("map_with_state_mapped", |rdd, _| {
        Ok(rdd.pipe("mapped", false, |input, out| {
            out.extend(input.drain(..).filter_map(|o| match o {
                StateOut::Mapped(u) => Some(u),
                StateOut::State(..) => None,
            }))
        }))
    })
}

/// The state entries of a `map_with_state` batch, keeping its partitioner.
fn states_of<K: Key, S: Value, U: Value>(rdd: &Rdd<StateOut<K, S, U>>) -> Rdd<(K, Tracked<S>)> {
    rdd.pipe("state", true, |input, out| {
        out.extend(input.drain(..).filter_map(|o| match o {
            StateOut::State(k, t) => Some((k, t)),
            StateOut::Mapped(_) => None,
        }))
    })
}

struct MapWithState<K, V, S, U> {
    parent: DStream<(K, V)>,
    partitioner: Partitioner,
    initial: Option<Rdd<(K, S)>>,
    function: Arc<MapStateFn<K, V, S, U>>,
    timeout: Option<Duration>,
    ttl: Option<Duration>,
    meter: StateMeter,
}

impl<K: Key, V: Value, S: Value, U: Value> StreamOp<StateOut<K, S, U>>
    for MapWithState<K, V, S, U>
{
    fn compute(
        &self,
        this: &DStream<StateOut<K, S, U>>,
        time: Time,
    ) -> Result<Option<Rdd<StateOut<K, S, U>>>> {
        let ctx = this.context().clone();
        let now = time.millis();
        let previous = previous_state(this, time, &self.initial, |r| states_of(&r))?;
        let batch = self.parent.dataset_or_empty(time)?;
        let function = self.function.clone();
        let timeout = self.timeout.map(super::time::millis);
        let ttl = self.ttl.map(super::time::millis);
        let size = self.meter.for_batch(&ctx, time);
        let out = previous
            .cogroup_with(&batch, self.partitioner.clone())
            .pipe("map_with_state", true, move |input, out| {
                let before = out.len();
                let mut keys = 0u64;
                for (k, (old, new)) in input.drain(..) {
                    let old = old.into_iter().next();
                    let mut last_seen_ms = old.as_ref().map_or(now, |t| t.last_seen_ms);
                    let mut state = State::new(old.map(|t| t.value));
                    if new.is_empty() && ttl.is_some_and(|ttl| last_seen_ms + ttl <= now) {
                        continue;
                    }
                    if new.is_empty() {
                        if let (Some(idle), true) = (timeout, state.exists()) {
                            if last_seen_ms + idle < now {
                                state.timing_out = true;
                                if let Some(u) = function(time, &k, None, &mut state) {
                                    out.push(StateOut::Mapped(u));
                                }
                                continue;
                            }
                        }
                    } else {
                        last_seen_ms = now;
                        for v in new {
                            if let Some(u) = function(time, &k, Some(v), &mut state) {
                                out.push(StateOut::Mapped(u));
                            }
                        }
                    }
                    if let Some(value) = state.value {
                        let tracked = Tracked {
                            value,
                            last_seen_ms,
                        };
                        keys += 1;
                        out.push(StateOut::State(k, tracked));
                    }
                }
                // Sampled size of this partition's output, attributed to
                // its state entries.
                let added = &out[before..];
                size.add((keys, crate::memory::estimate_size(added) as u64));
            });
        Ok(Some(this.graph().cut_lineage(out, this.id(), time)))
    }
}
