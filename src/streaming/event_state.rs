//! `map_with_state` on a keyed event stream: like the processing-time one,
//! plus event-time timers. A key's function may set timers
//! ([`State::set_event_timer`]); a timer fires — the function is called
//! with no record and [`State::fired_timer`] set — once the watermark
//! has passed it (is later than the timer's time), as a window fires once
//! the watermark reaches its exclusive end. As with event-time windows, each key's records are replayed
//! in arrival order with the watermark just before each, so timers fire at
//! the same place in the input whatever the batch interval.

use super::dstream::{DStream, StreamOp};
use super::event_window::KeyedEventStream;
use super::state::{
    MapStateFn, MapWithStateStream, State, StateMeter, StateOut, StateSpec, Tracked, mapped_of,
};
use super::time::Time;
use super::watermark::{EventTime, Stamped, Watermarks, keyed_in_arrival_order};
use crate::data::{Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::rdd::Rdd;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A key's state and its pending timers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Keyed<S> {
    value: Option<S>,
    timers: Vec<EventTime>,
}

type Out<K, S, U> = StateOut<K, Keyed<S>, U>;

impl<K: Key, T: Value> KeyedEventStream<K, T> {
    /// Calls `spec`'s function for every record (in arrival order per key)
    /// with the key's state, and for every event-time timer the key set
    /// once the watermark reaches it; emits what the function returns.
    /// The spec's processing-time timeout and TTL do not apply here.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{State, StateSpec, WatermarkStrategy};
    /// // A count per key and second of event time, reported by a timer at the
    /// // second's end.
    /// let spec = StateSpec::function(|_, key: &char, e: Option<(char, i64)>, s: &mut State<u32>| {
    ///     match e {
    ///         Some((_, ms)) => {
    ///             s.update(s.get().copied().unwrap_or(0) + 1);
    ///             s.set_event_timer((ms / 1_000 + 1) * 1_000);
    ///             None
    ///         }
    ///         None => Some((*key, *s.get()?, s.fired_timer()?)),
    ///     }
    /// });
    /// let out = run_batches(vec![vec![('a', 100i64), ('a', 200)], vec![('b', 1_500)]], |s| {
    ///     s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///         .key_by(|e| e.0)
    ///         .map_with_state(spec)
    ///         .stream()
    ///         .clone()
    /// })?;
    /// assert_eq!(out, [vec![], vec![('a', 2, 1_000)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn map_with_state<S: Value, U: Value>(
        &self,
        spec: StateSpec<K, T, S, U>,
    ) -> MapWithStateStream<K, S, U> {
        let stamped = &self.events.stamped;
        let partitioner = spec
            .partitioning
            .resolve(&[(None, stamped.context().default_parallelism())]);
        let initial = spec.initial.map(|r| r.partition_by(partitioner.clone()));
        let meter = StateMeter::new();
        let combined = stamped.stateful_child(
            "event_map_with_state",
            &partitioner,
            &meter,
            EventMapWithState {
                input: stamped.clone(),
                watermarks: self.events.watermarks.clone(),
                key_of: self.key_of.clone(),
                partitioner: partitioner.clone(),
                initial,
                function: spec.function,
                meter: meter.clone(),
            },
        );
        let mapped = mapped_of(&combined);
        let snapshots = combined.derive("state_snapshots", |rdd, _| {
            Ok(rdd.pipe_chunks("state", true, |input, out| {
                out.extend(input.drain(..).filter_map(|o| match o {
                    StateOut::State(k, t) => t.value.value.map(|v| (k, v)),
                    StateOut::Mapped(_) => None,
                }))
            }))
        });
        MapWithStateStream { mapped, snapshots }
    }
}

struct EventMapWithState<K, T, S, U> {
    input: DStream<Stamped<T>>,
    watermarks: Arc<Watermarks>,
    key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
    partitioner: Partitioner,
    initial: Option<Rdd<(K, S)>>,
    function: Arc<MapStateFn<K, T, S, U>>,
    meter: StateMeter,
}

impl<K: Key, T: Value, S: Value, U: Value> StreamOp<Out<K, S, U>>
    for EventMapWithState<K, T, S, U>
{
    fn compute(
        &self,
        this: &DStream<Out<K, S, U>>,
        time: Time,
    ) -> Result<Option<Rdd<Out<K, S, U>>>> {
        let ctx = this.context().clone();
        let previous: Rdd<(K, Keyed<S>)> = if let Some(before) = this.previous_batch(time) {
            match this.get_or_compute(before)? {
                Some(r) => r.pipe_chunks("state", true, |input, out| {
                    out.extend(input.drain(..).filter_map(|o| match o {
                        StateOut::State(k, t) => Some((k, t.value)),
                        StateOut::Mapped(_) => None,
                    }))
                }),
                None => ctx.empty(),
            }
        } else {
            match &self.initial {
                Some(r) => r.pipe_chunks("initial_state", true, |input, out| {
                    out.extend(input.drain(..).map(|(k, v)| {
                        (
                            k,
                            Keyed {
                                value: Some(v),
                                timers: Vec::new(),
                            },
                        )
                    }))
                }),
                None => ctx.empty(),
            }
        };
        let batch = self.input.dataset_or_empty(time)?;
        let keyed = keyed_in_arrival_order(&batch, self.key_of.clone());
        let watermark = self.watermarks.at(time).watermark;
        let function = self.function.clone();
        let size = self.meter.for_batch(&ctx, time);
        let now = time.millis();
        let out = previous
            .cogroup_with(&keyed, self.partitioner.clone())
            .pipe_chunks("event_map_with_state", true, move |input, out| {
                let start = out.len();
                let mut keys = 0u64;
                for (k, (old, mut records)) in input.drain(..) {
                    let old = old.into_iter().next();
                    let mut state = State::new(old.as_ref().and_then(|o| o.value.clone()));
                    state.timers = old.map(|o| o.timers).unwrap_or_default();
                    records.sort_unstable_by_key(|(seq, _)| *seq);
                    for (_, s) in records {
                        // Monotone per key: a union's rows carry watermarks
                        // that are not (see `watermark::union_with`).
                        let wm = s.watermark.max(state.watermark);
                        fire_timers(&mut state, wm, time, &k, function.as_ref(), out);
                        state.watermark = wm;
                        state.begin_call();
                        if let Some(u) = function(time, &k, Some(s.value), &mut state) {
                            out.push(StateOut::Mapped(u));
                        }
                    }
                    fire_timers(&mut state, watermark, time, &k, function.as_ref(), out);
                    if state.value.is_some() || !state.timers.is_empty() {
                        keys += 1;
                        let kept = Keyed {
                            value: state.value,
                            timers: state.timers,
                        };
                        out.push(StateOut::State(
                            k,
                            Tracked {
                                value: kept,
                                last_seen_ms: now,
                            },
                        ));
                    }
                }
                size.add((
                    keys,
                    keys,
                    crate::memory::estimate_size(&out[start..]) as u64,
                ));
            });
        Ok(Some(this.graph().cut_lineage(out, this.id(), time)))
    }
}

/// Calls the function for each of the key's timers the watermark has
/// passed, earliest first (a timer set by such a call fires too if due).
fn fire_timers<K, T, S, U>(
    state: &mut State<S>,
    watermark: EventTime,
    time: Time,
    key: &K,
    function: &MapStateFn<K, T, S, U>,
    out: &mut Vec<Out<K, S, U>>,
) {
    state.watermark = watermark;
    // A timer at t fires once the watermark has passed t (all events at t
    // are in), as a window [start, end) fires once it reaches end.
    while let Some(&due) = state.timers.iter().filter(|t| **t < watermark).min() {
        state.timers.retain(|t| *t != due);
        state.fired = Some(due);
        state.begin_call();
        if let Some(u) = function(time, key, None, state) {
            out.push(StateOut::Mapped(u));
        }
        state.fired = None;
    }
}
