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
    ///
    /// ```
    /// use spate::streaming::State;
    /// assert!(State::new(Some(1)).exists());
    /// assert!(!State::<u32>::new(None).exists());
    /// ```
    pub fn exists(&self) -> bool {
        self.value.is_some()
    }

    /// The state, if any.
    ///
    /// ```
    /// use spate::streaming::State;
    /// let mut s = State::new(Some(1));
    /// assert_eq!(s.get(), Some(&1));
    /// s.update(2);
    /// assert_eq!(s.get(), Some(&2));
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::State;
    /// let mut s = State::new(Some("session"));
    /// s.remove();
    /// assert!(!s.exists() && s.is_removed());
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::State;
    /// let mut s = State::new(Some(1));
    /// assert!(!s.is_updated());
    /// s.update(5);
    /// assert!(s.is_updated());
    /// ```
    pub fn is_updated(&self) -> bool {
        self.updated
    }

    /// Whether this call removed the state.
    ///
    /// ```
    /// use spate::streaming::State;
    /// let mut s = State::new(Some(1));
    /// assert!(!s.is_removed());
    /// s.remove();
    /// assert!(s.is_removed());
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec, WatermarkStrategy};
    /// // Remind each key 1 s (event time) after its first record.
    /// let spec = StateSpec::function(|_, key: &char, e: Option<(char, i64)>, s: &mut State<i64>| {
    ///     match e {
    ///         Some((_, ms)) if !s.exists() => {
    ///             s.update(ms);
    ///             s.set_event_timer(ms + 1_000);
    ///             None
    ///         }
    ///         Some(_) => None,
    ///         None => Some((*key, s.fired_timer()?)),
    ///     }
    /// });
    /// let out = run_batches(vec![vec![('a', 100i64)], vec![('b', 1_200)]], |s| {
    ///     s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///         .key_by(|e| e.0)
    ///         .map_with_state(spec)
    ///         .stream()
    ///         .clone()
    /// })?;
    /// // The watermark passes 1 100 ms in the second batch.
    /// assert_eq!(out, [vec![], vec![('a', 1_100)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn set_event_timer(&mut self, at: EventTime) {
        if !self.timers.contains(&at) {
            self.timers.push(at);
        }
    }

    /// Cancels an event-time timer.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec, WatermarkStrategy};
    /// // A timer set by the first record is cancelled by a 'done' record.
    /// let spec = StateSpec::function(|_, _: &char, e: Option<(char, i64, bool)>, s: &mut State<i64>| {
    ///     match e {
    ///         Some((_, ms, false)) => {
    ///             s.update(ms + 1_000);
    ///             s.set_event_timer(ms + 1_000);
    ///             None
    ///         }
    ///         Some((_, _, true)) => {
    ///             s.delete_event_timer(*s.get()?);
    ///             None
    ///         }
    ///         None => Some(s.fired_timer()?),
    ///     }
    /// });
    /// let batches = vec![vec![('a', 100i64, false), ('b', 100, false)], vec![('a', 200, true)], vec![('z', 5_000, false)]];
    /// let out = run_batches(batches, |s| {
    ///     s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///         .key_by(|e| e.0)
    ///         .map_with_state(spec)
    ///         .stream()
    ///         .clone()
    /// })?;
    /// assert_eq!(out, [vec![], vec![], vec![1_100]]); // only 'b''s timer fired
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn delete_event_timer(&mut self, at: EventTime) {
        self.timers.retain(|t| *t != at);
    }

    /// The event-time timer this call reports, if it reports one.
    ///
    /// ```
    /// use spate::streaming::State;
    /// // A call for a record reports no timer.
    /// assert_eq!(State::new(Some(1)).fired_timer(), None);
    /// ```
    pub fn fired_timer(&self) -> Option<EventTime> {
        self.fired
    }

    /// The watermark this call was made at (event streams only): the one
    /// just before the record, or for a timer firing after the key's last
    /// record of a batch, the batch's.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec, WatermarkStrategy};
    /// // Each record with the watermark just before it.
    /// let spec = StateSpec::function(|_, _: &u8, e: Option<(u8, i64)>, s: &mut State<()>| {
    ///     Some((e?.1, s.watermark()))
    /// });
    /// let out = run_batches(vec![vec![(1, 500i64)], vec![(1, 900)]], |s| {
    ///     s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///         .key_by(|e| e.0)
    ///         .map_with_state(spec)
    ///         .stream()
    ///         .clone()
    /// })?;
    /// assert_eq!(out[1], [(900, 500)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// Whether this call reports the key's idle timeout (the last call for
    /// this state; there is no new value).
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// use spate::streaming::{State, StateSpec};
    /// // A session closed after two idle batches, reporting its length.
    /// let spec = StateSpec::function(|_, user: &char, click: Option<u8>, s: &mut State<u32>| {
    ///     if s.is_timing_out() {
    ///         return Some((*user, *s.get()?));
    ///     }
    ///     click?;
    ///     s.update(s.get().copied().unwrap_or(0) + 1);
    ///     None
    /// })
    /// .timeout(2 * TEST_BATCH);
    /// let batches = vec![vec![('u', 1)], vec![('u', 1)], vec![], vec![], vec![]];
    /// let out = run_batches(batches, |s| s.map_with_state(spec).stream().clone())?;
    /// assert_eq!(out, [vec![], vec![], vec![], vec![], vec![('u', 2)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec};
    /// // The function gets the batch time, the key, the record's value and the
    /// // key's state; here it emits each key's running maximum.
    /// let spec = StateSpec::function(|_time, key: &char, v: Option<i32>, s: &mut State<i32>| {
    ///     let max = s.get().copied().unwrap_or(i32::MIN).max(v?);
    ///     s.update(max);
    ///     Some((*key, max))
    /// });
    /// let out = run_batches(vec![vec![('a', 3)], vec![('a', 1)]], |s| s.map_with_state(spec).stream().clone())?;
    /// assert_eq!(out, [vec![('a', 3)], vec![('a', 3)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// use spate::streaming::{State, StateSpec};
    /// // Counts per key, forgotten after two batches without records.
    /// let spec = StateSpec::function(|_, k: &char, v: Option<u32>, s: &mut State<u32>| {
    ///     let n = s.get().copied().unwrap_or(0) + v?;
    ///     s.update(n);
    ///     Some((*k, n))
    /// })
    /// .ttl(2 * TEST_BATCH);
    /// let batches = vec![vec![('a', 1)], vec![('a', 1)], vec![], vec![], vec![('a', 1)]];
    /// let out = run_batches(batches, |s| s.map_with_state(spec).stream().clone())?;
    /// assert_eq!(out[1], [('a', 2)]);
    /// assert_eq!(out[4], [('a', 1)], "the count started again");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// State the first batch starts from.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec};
    /// // Totals carried over from an earlier run, in the stream's context.
    /// let out = run_batches(vec![vec![('a', 1), ('b', 1)]], |s| {
    ///     let earlier = s.context().parallelize(vec![('a', 100)], 1);
    ///     let spec = StateSpec::function(|_, k: &char, v: Option<u32>, s: &mut State<u32>| {
    ///         let n = s.get().copied().unwrap_or(0) + v?;
    ///         s.update(n);
    ///         Some((*k, n))
    ///     })
    ///     .initial_state(earlier);
    ///     s.map_with_state(spec).stream().clone()
    /// })?;
    /// assert_eq!(out, [vec![('a', 101), ('b', 1)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn initial_state(mut self, initial: Rdd<(K, S)>) -> Self {
        self.initial = Some(initial);
        self
    }

    /// How the state is partitioned.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec};
    /// let spec = StateSpec::function(|_, k: &u32, v: Option<u32>, s: &mut State<u32>| {
    ///     s.update(v?);
    ///     Some(*k)
    /// })
    /// .partitioning(spate::Partitioner::hash(8)); // the state in 8 partitions
    /// let out = run_batches(vec![vec![(1, 1), (2, 2)]], |s| s.map_with_state(spec).stream().clone())?;
    /// assert_eq!(out, [vec![1, 2]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn partitioning(mut self, p: impl Into<Partitioning>) -> Self {
        self.partitioning = p.into();
        self
    }

    /// Removes a key that received no record for `idle`: in the first
    /// batch whose time is more than `idle` after the batch of the key's
    /// last record, the function is called once with `None` and a
    /// timing-out state, and the state is dropped.
    ///
    /// ```
    /// use spate::streaming::testing::{TEST_BATCH, run_batches};
    /// use spate::streaming::{State, StateSpec};
    /// // Reports a key once it has been idle for more than one batch.
    /// let spec = StateSpec::function(|_, k: &char, v: Option<u8>, s: &mut State<u8>| {
    ///     match v {
    ///         Some(v) => {
    ///             s.update(v);
    ///             None
    ///         }
    ///         None => Some((*k, s.is_timing_out())),
    ///     }
    /// })
    /// .timeout(TEST_BATCH);
    /// let out = run_batches(vec![vec![('a', 1)], vec![], vec![]], |s| s.map_with_state(spec).stream().clone())?;
    /// assert_eq!(out, [vec![], vec![], vec![('a', true)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
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
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec};
    /// let spec = StateSpec::function(|_, k: &char, v: Option<i32>, s: &mut State<i32>| {
    ///     s.update(v?);
    ///     Some(*k)
    /// });
    /// let out = run_batches(vec![vec![('x', 1)]], |s| s.map_with_state(spec).stream().clone())?;
    /// assert_eq!(out, [vec!['x']]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn stream(&self) -> &DStream<U> {
        &self.mapped
    }

    /// The full state (every key and its state) after each batch.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec};
    /// let spec = StateSpec::function(|_, _: &char, v: Option<i32>, s: &mut State<i32>| {
    ///     s.update(s.get().copied().unwrap_or(0) + v?);
    ///     None::<()>
    /// });
    /// let out = run_batches(vec![vec![('a', 1)], vec![('b', 2)]], |s| s.map_with_state(spec).state_snapshots())?;
    /// // Every key's state after each batch, also keys without new records.
    /// assert_eq!(out, [vec![('a', 1)], vec![('a', 1), ('b', 2)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
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
