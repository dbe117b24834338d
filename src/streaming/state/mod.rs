//! Stateful streams: state per key carried from batch to batch. This file
//! holds what every stateful stream shares (the state meter, the stateful
//! child stream, a key's state with its last-seen time, the previous
//! batch's state); `update.rs` and `map_with_state.rs` build on it.
//! `update_state_by_key` calls the update function for every key that has
//! state or new values; `map_with_state` calls its function for every new
//! record, and once more for a key whose idle timeout passed.
//!
//! A batch's state dataset is the previous batch's, cogrouped with the new
//! values by the state's partitioner (so only the new values shuffle); it
//! is kept in memory and its lineage cut after the batch that computes it.

mod map_with_state;
mod update;

pub(crate) use map_with_state::{MapStateFn, StateOut, mapped_of};
pub use map_with_state::{MapWithStateStream, State, StateSpec};
pub use update::StateOptions;

use super::dstream::{DStream, NewStream, StreamOp};
use super::metrics::StateSize;
use super::time::Time;
use crate::data::{Data, Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::rdd::Rdd;
use crate::shared::Accumulator;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Counts keys, rows and estimated bytes of each batch's state, per batch
/// time.
#[derive(Clone)]
pub(crate) struct StateMeter {
    per_batch: Arc<Mutex<BTreeMap<Time, Accumulator<(u64, u64, u64)>>>>,
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
        stream.graph().meters.add_state_meter(Box::new(move |time| {
            let acc = m.per_batch.lock().remove(&time)?;
            let (keys, rows, bytes) = acc.value();
            Some(StateSize {
                stream: id,
                keys,
                rows,
                bytes,
            })
        }));
    }

    /// The accumulator a batch's tasks add `(keys, rows, bytes)` to.
    pub(crate) fn for_batch(
        &self,
        ctx: &crate::Context,
        time: Time,
    ) -> Accumulator<(u64, u64, u64)> {
        let acc = ctx.accumulator("state size", (0u64, 0u64, 0u64), |a, b| {
            a.0 += b.0;
            a.1 += b.1;
            a.2 += b.2;
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

/// The previous state of a stateful stream: its own dataset of the batch
/// before, or `initial` (counted as seen now) for the first batch.
pub(crate) fn previous_state<K: Key, S: Value, T: Data>(
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
            r.pipe_chunks("initial_state", true, move |input, out| {
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

/// A key's state with the time of its last record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tracked<S> {
    pub(crate) value: S,
    pub(crate) last_seen_ms: u64,
}
