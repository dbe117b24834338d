//! Keyed event-time windows over an [`EventStream`]: tumbling, sliding,
//! session (merging) and custom assigners (count windows as an example),
//! with incremental or full-window aggregation, allowed lateness, a
//! late-data side stream and four output modes.
//!
//! Semantics, per key, record by record in arrival order (so they do not
//! depend on the batch interval):
//! - a window `[start, end)` *fires* when the watermark reaches `end`;
//! - a record whose windows all have `end + lateness <= watermark before
//!   it` is *late*: it goes to the side stream and is counted;
//! - any other record joins its windows (a session merges with the
//!   sessions it overlaps or touches, including two it bridges); joining a
//!   window that already fired *re-fires* it;
//! - a window is *closed* and its state dropped when the watermark reaches
//!   `end + lateness`.
//!
//! [`OutputMode::Append`] emits each window once, when it closes, with its
//! final value; [`OutputMode::Update`] emits, at the end of each batch, the
//! windows that records joined in it; [`OutputMode::Complete`] emits every
//! window each batch and closes none; [`OutputMode::EachFiring`] emits a
//! result at each firing and re-firing.

mod assigner;
mod builder;
mod key_state;

pub use assigner::{
    CountWindows, SessionWindows, SlidingWindows, Trigger, TumblingWindows, Window, WindowAssigner,
};
pub use builder::{KeyedEventStream, OutputMode, WindowResult, WindowedOutput, WindowedStream};

use super::dstream::{DStream, StreamOp};
use super::state::StateMeter;
use super::time::Time;
use super::watermark::{EventTime, NO_WATERMARK, Stamped, keyed_in_arrival_order};
use crate::data::{Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::rdd::Rdd;
use crate::shared::Accumulator;
use builder::WindowAgg;
use key_state::{Emit, KeyRun, KeyWindows, Out};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The stream operator: each batch, one key's previous windows are
/// cogrouped with its new records and replayed in arrival order.
pub(crate) struct EventWindowOp<K, T, G: WindowAgg<K, T>> {
    input: DStream<Stamped<T>>,
    watermarks: Arc<super::watermark::Watermarks>,
    key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
    assigner: Arc<dyn WindowAssigner>,
    lateness: EventTime,
    mode: OutputMode,
    agg: Arc<G>,
    partitioner: Partitioner,
    /// Per batch: state keys and bytes.
    meter: StateMeter,
    /// Per batch: late records.
    late_meter: Arc<Mutex<BTreeMap<Time, Accumulator<u64>>>>,
}

impl<K: Key, T: Value, G: WindowAgg<K, T>> StreamOp<Out<K, T, G>> for EventWindowOp<K, T, G> {
    fn compute(
        &self,
        this: &DStream<Out<K, T, G>>,
        time: Time,
    ) -> Result<Option<Rdd<Out<K, T, G>>>> {
        let ctx = this.context().clone();
        let before = match this.previous_batch(time) {
            Some(b) => this.get_or_compute(b)?,
            None => None,
        };
        let previous: Rdd<(K, KeyWindows<G::Acc>)> = match before {
            Some(r) => r.pipe_chunks("window_state", true, |input, out| {
                out.extend(input.drain(..).filter_map(|o| match o {
                    Emit::State(k, s) => Some((k, s)),
                    _ => None,
                }))
            }),
            None => ctx.empty(),
        };
        let batch = self.input.dataset_or_empty(time)?;
        // Arrival order travels with each record, for the per-key replay.
        let keyed = keyed_in_arrival_order(&batch, self.key_of.clone());
        let watermark = self.watermarks.at(time).watermark;
        let (assigner, agg, lateness, mode) = (
            self.assigner.clone(),
            self.agg.clone(),
            self.lateness,
            self.mode,
        );
        let meter = self.meter.for_batch(&ctx, time);
        let late_count = ctx.sum_accumulator::<u64>("late records");
        self.late_meter.lock().insert(time, late_count.clone());
        let out = previous
            .cogroup_with(&keyed, self.partitioner.clone())
            .pipe_chunks("event_windows", true, move |input, out| {
                let start = out.len();
                let (mut keys, mut rows, mut late) = (0u64, 0u64, 0u64);
                for (key, (state, mut records)) in input.drain(..) {
                    let mut state = state.into_iter().next().unwrap_or_else(KeyWindows::new);
                    records.sort_unstable_by_key(|(seq, _)| *seq);
                    let mut run = KeyRun {
                        key: &key,
                        assigner: assigner.as_ref(),
                        agg: agg.as_ref(),
                        lateness,
                        mode,
                        out,
                        late: &mut late,
                    };
                    // The watermark applied is monotone per key: a union's
                    // rows carry watermarks that are not (each side's is
                    // capped by the other's at the previous boundary), and
                    // a row stamped lower than one before it must not
                    // reopen a window that one closed.
                    let mut applied = NO_WATERMARK;
                    for (_, mut s) in records {
                        applied = applied.max(s.watermark);
                        s.watermark = applied;
                        run.advance(&mut state, applied);
                        run.add(&mut state, s);
                    }
                    run.advance(&mut state, watermark);
                    run.end_batch(&mut state);
                    if !state.is_empty() {
                        keys += 1;
                        rows += state.windows_open() as u64;
                        out.push(Emit::State(key, state));
                    }
                }
                let bytes = crate::memory::estimate_size(&out[start..]) as u64;
                meter.add((keys, rows, bytes));
                late_count.add(late);
            });
        Ok(Some(this.graph().cut_lineage(out, this.id(), time)))
    }
}
