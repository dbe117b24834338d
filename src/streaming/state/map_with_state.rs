//! `map_with_state`: the function runs for every new record, and once more
//! for a key whose idle timeout passed; its output is a stream of mapped
//! elements, its state is carried beside them.

use super::{StateMeter, Tracked, previous_state};
use crate::data::{Data, Key, Value};
use crate::error::Result;
use crate::partitioner::{Partitioner, Partitioning};
use crate::rdd::Rdd;
use crate::streaming::dstream::{DStream, StreamOp};
use crate::streaming::time::Time;
use crate::streaming::watermark::EventTime;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The state of one key as `map_with_state`'s function sees it.
#[derive(Debug)]
pub struct State<S> {
    pub(crate) value: Option<S>,
    pub(crate) timing_out: bool,
    /// Set by `update` / `remove` in the current call.
    updated: bool,
    removed: bool,
    /// Event-time timers of the key (event streams only).
    pub(crate) timers: Vec<EventTime>,
    /// The timer this call reports.
    pub(crate) fired: Option<EventTime>,
    pub(crate) watermark: EventTime,
}

impl<S> State<S> {
    /// A key's state holding `value`, outside any stream: for testing a
    /// state function on its own.
    ///
    /// ```
    /// use spate::streaming::State;
    /// let mut state = State::new(Some(1));
    /// state.update(2);
    /// assert!(state.is_updated() && !state.is_removed());
    /// assert_eq!(state.get(), Some(&2));
    /// ```
    pub fn new(value: Option<S>) -> Self {
        State {
            value,
            timing_out: false,
            updated: false,
            removed: false,
            timers: Vec::new(),
            fired: None,
            watermark: crate::streaming::watermark::NO_WATERMARK,
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

    /// Sets the state. As in Spark, this fails the task (a panic naming the
    /// misuse) after [`remove`](Self::remove) in the same call, or while
    /// the key is timing out (it is removed anyway).
    ///
    /// ```should_panic
    /// # use spate::streaming::State;
    /// # fn f(state: &mut State<u32>) {
    /// state.remove();
    /// state.update(1); // panics: the state was removed in this call
    /// # }
    /// # f(&mut State::new(Some(0)));
    /// ```
    pub fn update(&mut self, s: S) {
        assert!(
            !self.removed,
            "State::update after State::remove in the same call: the state has been removed"
        );
        assert!(
            !self.timing_out,
            "State::update while the key is timing out: its state is removed after this call"
        );
        self.value = Some(s);
        self.updated = true;
    }

    /// Removes the key's state. As in Spark, this fails the task (a panic
    /// naming the misuse) if the state was already removed in this call, or
    /// while the key is timing out (it is removed anyway).
    pub fn remove(&mut self) {
        assert!(
            !self.removed,
            "State::remove twice in the same call: the state has already been removed"
        );
        assert!(
            !self.timing_out,
            "State::remove while the key is timing out: its state is removed after this call"
        );
        self.value = None;
        self.removed = true;
    }

    /// Whether this call updated the state.
    pub fn is_updated(&self) -> bool {
        self.updated
    }

    /// Whether this call removed the state.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Starts a call of the user's function: `is_updated`, `is_removed` and
    /// the misuse checks are per call.
    pub(crate) fn begin_call(&mut self) {
        self.updated = false;
        self.removed = false;
    }

    /// On an event stream ([`KeyedEventStream::map_with_state`]): calls the
    /// function again, with no record and [`fired_timer`](Self::fired_timer)
    /// set, once the watermark has passed `at` (is later than it: every
    /// event at `at` has arrived). Ignored on streams without event time.
    ///
    /// [`KeyedEventStream::map_with_state`]: crate::streaming::KeyedEventStream::map_with_state
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
    /// ssc.queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
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
        Ok(rdd.pipe_chunks("mapped", false, |input, out| {
            out.extend(input.drain(..).filter_map(|o| match o {
                StateOut::Mapped(u) => Some(u),
                StateOut::State(..) => None,
            }))
        }))
    })
}

/// The state entries of a `map_with_state` batch, keeping its partitioner.
fn states_of<K: Key, S: Value, U: Value>(rdd: &Rdd<StateOut<K, S, U>>) -> Rdd<(K, Tracked<S>)> {
    rdd.pipe_chunks("state", true, |input, out| {
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
        let timeout = self.timeout.map(crate::streaming::time::millis);
        let ttl = self.ttl.map(crate::streaming::time::millis);
        let size = self.meter.for_batch(&ctx, time);
        let out = previous
            .cogroup_with(&batch, self.partitioner.clone())
            .pipe_chunks("map_with_state", true, move |input, out| {
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
                                state.begin_call();
                                if let Some(u) = function(time, &k, None, &mut state) {
                                    out.push(StateOut::Mapped(u));
                                }
                                continue;
                            }
                        }
                    } else {
                        last_seen_ms = now;
                        for v in new {
                            state.begin_call();
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
                size.add((keys, keys, crate::memory::estimate_size(added) as u64));
            });
        Ok(Some(this.graph().cut_lineage(out, this.id(), time)))
    }
}
