//! The stream graph: the engine context, the batch interval and zero time,
//! and the registered inputs and output operations. Shared by every stream
//! of one streaming context.

use super::adaptive::AdaptiveBatching;
use super::checkpoint::{self, Checkpoint, SavedInput, SavedState};
use super::checkpoint_dir::{self, DirLock};
use super::dstream::AnyStream;
use super::metrics::StateSize;
use super::rate::Backpressure;
use super::time::Time;
use super::watermark::{EventTime, Watermarks};
use crate::context::Context;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::rdd::Rdd;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// An output operation: runs a batch's job(s) for its stream.
pub(crate) struct OutputOp {
    pub(crate) stream: Arc<dyn AnyStream>,
    pub(crate) run: Box<dyn Fn(Time) -> Result<()> + Send + Sync>,
}

/// An input the context starts, stops and asks about pending data.
pub(crate) trait Input: Send + Sync {
    /// Starts receiving (receiver-based inputs); a no-op for others.
    fn start(&self) -> Result<()> {
        Ok(())
    }
    /// Stops receiving; data already received stays available.
    fn stop(&self) {}
    /// Whether data was received that no batch has taken yet (a graceful
    /// stop runs batches until there is none).
    fn has_pending(&self) -> bool;
    /// Records that could not be read since the last call, and warnings.
    fn take_warnings(&self) -> (u64, Vec<String>) {
        (0, Vec::new())
    }
    /// Whether the input is a receiver whose rate backpressure sets.
    fn rate_limited(&self) -> bool {
        false
    }
    /// Sets the receiving rate (records per second; `None`: unlimited).
    fn set_rate(&self, _rate: Option<f64>) {}
    /// Fixes the input of the batch at `time` before its outputs run, so
    /// the checkpoint records it (replayable inputs).
    fn plan(&self, _time: Time) -> Result<()> {
        Ok(())
    }
    /// What a recovery needs to replay the batches after `keep_after`.
    fn save(&self, _keep_after: Time) -> Result<Option<SavedInput>> {
        Ok(None)
    }
    /// Takes back what [`save`](Input::save) wrote; batches up to
    /// `catch_up_until` take at most the largest saved batch.
    fn restore(&self, _saved: &SavedInput, _dir: &Path, _catch_up_until: Time) -> Result<()> {
        Ok(())
    }
}

/// Puts a stateful stream's checkpointed dataset back (at its time).
pub(crate) type Restorer = Box<dyn Fn(Time, &Path) -> Result<()> + Send + Sync>;

/// A stateful stream's dataset being checkpointed in the current batch:
/// its time and where it is written once the batch's job ran.
struct PendingState {
    stream: usize,
    time: Time,
    path: Box<dyn Fn() -> Option<PathBuf> + Send + Sync>,
}

pub(crate) struct Graph {
    pub(crate) ctx: Context,
    pub(crate) batch: Duration,
    zero: Mutex<Option<Time>>,
    next_id: AtomicUsize,
    pub(crate) outputs: Mutex<Vec<Arc<OutputOp>>>,
    /// Inputs with the id of their stream.
    pub(crate) inputs: Mutex<Vec<(usize, Arc<dyn Input>)>>,
    backpressure: Mutex<Backpressure>,
    /// Records each input brought to each batch not yet reported.
    input_records: Mutex<BTreeMap<Time, u64>>,
    /// Report the state size of each stateful stream after a batch.
    state_meters: Mutex<Vec<StateMeter>>,
    /// Report the watermark of each event stream after a batch.
    watermark_meters: Mutex<Vec<WatermarkMeter>>,
    /// Report the late records of each event-time window operator.
    late_meters: Mutex<Vec<LateMeter>>,
    /// The watermarks of each event stream, saved in checkpoints.
    watermark_stores: Mutex<Vec<(usize, Arc<Watermarks>)>>,
    /// Set when the batch interval adapts to the load.
    adaptive: Mutex<Option<AdaptiveBatching>>,
    /// Recent batch times (with an adaptive interval they are not evenly
    /// spaced).
    batch_log: Mutex<std::collections::BTreeSet<Time>>,
    checkpoint: Mutex<CheckpointSettings>,
}

#[derive(Default)]
struct CheckpointSettings {
    /// Absolute.
    dir: Option<PathBuf>,
    /// This run's directory of state datasets, relative to `dir`.
    run: PathBuf,
    /// Held while the context lives.
    lock: Option<DirLock>,
    /// State directories recorded by this run (relative to `dir`), deleted
    /// once a newer one of their stream is in the metadata.
    written: BTreeSet<PathBuf>,
    every: Option<Duration>,
    /// A checkpoint to continue from, set by `get_or_create`.
    restored: Option<Checkpoint>,
    /// Stateful streams' restore hooks by stream id (until start).
    restorers: Vec<(usize, Restorer)>,
    pending: Vec<PendingState>,
    /// The last checkpointed dataset of each stateful stream.
    saved: BTreeMap<usize, SavedState>,
    /// Stateful streams (they need their checkpoints before ranges go).
    stateful: Vec<usize>,
}

type StateMeter = Box<dyn Fn(Time) -> Option<StateSize> + Send + Sync>;
type WatermarkMeter = Box<dyn Fn(Time) -> (usize, EventTime) + Send + Sync>;
type LateMeter = Box<dyn Fn(Time) -> u64 + Send + Sync>;

impl Graph {
    pub(crate) fn new(ctx: Context, batch: Duration) -> Graph {
        Graph {
            ctx,
            batch,
            zero: Mutex::new(None),
            next_id: AtomicUsize::new(0),
            outputs: Mutex::new(Vec::new()),
            inputs: Mutex::new(Vec::new()),
            backpressure: Mutex::new(Backpressure::default()),
            input_records: Mutex::new(BTreeMap::new()),
            state_meters: Mutex::new(Vec::new()),
            watermark_meters: Mutex::new(Vec::new()),
            late_meters: Mutex::new(Vec::new()),
            watermark_stores: Mutex::new(Vec::new()),
            adaptive: Mutex::new(None),
            batch_log: Mutex::new(std::collections::BTreeSet::new()),
            checkpoint: Mutex::new(CheckpointSettings::default()),
        }
    }

    pub(crate) fn next_stream_id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The id the next stream will get.
    pub(crate) fn peek_stream_id(&self) -> usize {
        self.next_id.load(Ordering::Relaxed)
    }

    /// The time before the first batch; `None` until the context starts.
    pub(crate) fn zero_time(&self) -> Option<Time> {
        *self.zero.lock()
    }

    pub(crate) fn set_zero_time(&self, t: Time) {
        *self.zero.lock() = Some(t);
    }

    pub(crate) fn add_output(&self, op: OutputOp) {
        self.outputs.lock().push(Arc::new(op));
    }

    pub(crate) fn add_input_for(&self, stream: usize, input: Arc<dyn Input>) {
        self.inputs.lock().push((stream, input));
    }

    pub(crate) fn backpressure(&self) -> Backpressure {
        self.backpressure.lock().clone()
    }

    pub(crate) fn set_backpressure(&self, b: Backpressure) {
        *self.backpressure.lock() = b;
    }

    /// Counts records an input brought to the batch at `time`.
    pub(crate) fn count_input(&self, time: Time, records: u64) {
        *self.input_records.lock().entry(time).or_default() += records;
    }

    /// The records counted for `time`, forgetting them.
    pub(crate) fn take_input_count(&self, time: Time) -> u64 {
        let mut m = self.input_records.lock();
        let n = m.remove(&time).unwrap_or(0);
        // Counts of batches that will never be reported (undefined times).
        let newer = m.split_off(&time);
        *m = newer;
        n
    }

    pub(crate) fn add_state_meter(&self, meter: StateMeter) {
        self.state_meters.lock().push(meter);
    }

    pub(crate) fn add_watermark_meter(&self, meter: WatermarkMeter) {
        self.watermark_meters.lock().push(meter);
    }

    pub(crate) fn set_adaptive(&self, a: AdaptiveBatching) {
        *self.adaptive.lock() = Some(a);
    }

    pub(crate) fn adaptive(&self) -> Option<AdaptiveBatching> {
        self.adaptive.lock().clone()
    }

    /// Notes that a batch runs at `time`.
    pub(crate) fn note_batch(&self, time: Time) {
        let mut log = self.batch_log.lock();
        log.insert(time);
        while log.len() > 4096 {
            log.pop_first();
        }
    }

    /// The batch before the one at `time` for a stream with `slide`: one
    /// slide earlier, or with an adaptive interval the previous batch.
    pub(crate) fn before(&self, time: Time, slide: Duration) -> Time {
        if self.adaptive.lock().is_none() || slide != self.batch {
            return time - slide;
        }
        let log = self.batch_log.lock();
        log.range(..time)
            .next_back()
            .copied()
            .unwrap_or_else(|| self.zero_time().unwrap_or_default())
    }

    /// Whether a stream with `slide` is defined at `time`.
    pub(crate) fn is_batch_time(&self, time: Time, slide: Duration) -> bool {
        let Some(zero) = self.zero_time() else {
            return false;
        };
        if time <= zero {
            return false;
        }
        if slide == self.batch && self.adaptive.lock().is_some() {
            return true;
        }
        time.is_aligned(zero, slide)
    }

    pub(crate) fn add_watermark_store(&self, stream: usize, w: Arc<Watermarks>) {
        self.watermark_stores.lock().push((stream, w));
    }

    /// Puts saved watermarks back.
    pub(crate) fn restore_watermarks(&self, cp: &Checkpoint, dir: &Path) -> Result<()> {
        let stores = self.watermark_stores.lock();
        for (stream, saved) in &cp.watermarks {
            let Some((_, w)) = stores.iter().find(|(id, _)| id == stream) else {
                return Err(Error::CorruptCheckpoint {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "stream {stream} has saved watermarks but is no event stream in this program; was the stream graph changed?"
                    ),
                });
            };
            w.restore(saved);
        }
        Ok(())
    }

    pub(crate) fn add_late_meter(&self, meter: LateMeter) {
        self.late_meters.lock().push(meter);
    }

    /// Records later than their windows' lateness in the batch at `time`.
    pub(crate) fn late_records(&self, time: Time) -> u64 {
        self.late_meters.lock().iter().map(|m| m(time)).sum()
    }

    /// The watermark of each event stream after the batch at `time`.
    pub(crate) fn watermarks(&self, time: Time) -> Vec<(usize, EventTime)> {
        self.watermark_meters
            .lock()
            .iter()
            .map(|m| m(time))
            .collect()
    }

    /// The state held by each stateful stream after the batch at `time`.
    pub(crate) fn state_sizes(&self, time: Time) -> Vec<StateSize> {
        self.state_meters
            .lock()
            .iter()
            .filter_map(|m| m(time))
            .collect()
    }

    pub(crate) fn set_checkpoint_dir(&self, dir: PathBuf, run: PathBuf, lock: DirLock) {
        let mut c = self.checkpoint.lock();
        c.dir = Some(dir);
        c.run = run;
        c.lock = Some(lock);
    }

    /// Lets another context use the checkpoint directory.
    pub(crate) fn release_checkpoint_dir(&self) {
        self.checkpoint.lock().lock = None;
    }

    pub(crate) fn checkpoint_dir(&self) -> Option<PathBuf> {
        self.checkpoint.lock().dir.clone()
    }

    pub(crate) fn set_checkpoint_every(&self, every: Duration) {
        self.checkpoint.lock().every = Some(every);
    }

    /// How often stateful datasets are written: as set, else every 10
    /// batches but at least 1 s apart.
    fn checkpoint_every(&self) -> Duration {
        let set = self.checkpoint.lock().every;
        set.unwrap_or_else(|| {
            let ten = self.batch * 10;
            let second = Duration::from_secs(1);
            if ten >= second {
                ten
            } else {
                self.batch * (second.as_millis().div_ceil(self.batch.as_millis()) as u32)
            }
        })
    }

    pub(crate) fn set_restored(&self, cp: Checkpoint) {
        self.checkpoint.lock().restored = Some(cp);
    }

    pub(crate) fn take_restored(&self) -> Option<Checkpoint> {
        self.checkpoint.lock().restored.take()
    }

    /// Registers a stateful stream and how to restore it.
    pub(crate) fn add_stateful(&self, stream: usize, restore: Restorer) {
        let mut c = self.checkpoint.lock();
        c.stateful.push(stream);
        c.restorers.push((stream, restore));
    }

    /// Puts the saved datasets of stateful streams back; forgets the hooks.
    pub(crate) fn restore_states(&self, cp: &Checkpoint, dir: &Path) -> Result<()> {
        let restorers = std::mem::take(&mut self.checkpoint.lock().restorers);
        for saved in &cp.states {
            if let Some((_, restore)) = restorers.iter().find(|(id, _)| *id == saved.stream) {
                restore(Time::from_millis(saved.time_ms), &dir.join(&saved.dir))?;
                self.checkpoint
                    .lock()
                    .saved
                    .insert(saved.stream, saved.clone());
            } else {
                return Err(Error::CorruptCheckpoint {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "stream {} has saved state but is not stateful in this program; was the stream graph changed?",
                        saved.stream
                    ),
                });
            }
        }
        Ok(())
    }

    /// Forgets restore hooks (they hold their streams).
    pub(crate) fn drop_restorers(&self) {
        self.checkpoint.lock().restorers.clear();
    }

    /// Cuts the lineage of a dataset that the next batch builds on (state,
    /// incremental windows): its partitions are kept in memory and its
    /// parents forgotten after the job that computes it; every checkpoint
    /// interval, with a checkpoint directory, it is written there instead,
    /// for recovery after a crash.
    pub(crate) fn cut_lineage<T: Value>(&self, rdd: Rdd<T>, stream: usize, time: Time) -> Rdd<T> {
        let reliable = self.checkpoint_dir().is_some()
            && self
                .zero_time()
                .is_some_and(|zero| time.is_aligned(zero, self.checkpoint_every()));
        if reliable && rdd.checkpoint().is_ok() {
            let written = rdd.clone();
            self.checkpoint.lock().pending.push(PendingState {
                stream,
                time,
                path: Box::new(move || written.checkpoint_path()),
            });
            return rdd.cache();
        }
        rdd.local_checkpoint()
    }

    /// After a batch: the stateful datasets written by it.
    fn collect_written_states(&self) {
        let mut c = self.checkpoint.lock();
        let pending = std::mem::take(&mut c.pending);
        let root = c.dir.clone().unwrap_or_default();
        for p in pending {
            let Some(written) = (p.path)() else { continue };
            let dir = written
                .strip_prefix(&root)
                .expect("state is written inside the checkpoint directory")
                .to_path_buf();
            c.written.insert(dir.clone());
            c.saved.insert(
                p.stream,
                SavedState {
                    stream: p.stream,
                    time_ms: p.time.millis(),
                    dir,
                },
            );
        }
    }

    /// Writes the checkpoint (if a directory is set): progress up to
    /// `last_done`, and the input ranges a recovery may need.
    pub(crate) fn write_checkpoint(
        &self,
        last_done: Option<Time>,
        remember: Duration,
    ) -> Result<()> {
        let Some(dir) = self.checkpoint_dir() else {
            return Ok(());
        };
        let Some(zero) = self.zero_time() else {
            return Ok(());
        };
        self.collect_written_states();
        let (states, oldest_state) = {
            let c = self.checkpoint.lock();
            let states: Vec<SavedState> = c.saved.values().cloned().collect();
            // A stateful stream without a saved dataset recomputes from zero.
            let oldest = c
                .stateful
                .iter()
                .map(|id| {
                    c.saved
                        .get(id)
                        .map_or(zero, |s| Time::from_millis(s.time_ms))
                })
                .min();
            (states, oldest)
        };
        // Ranges are kept back to what the oldest state (or the last batch)
        // needs, plus what windows read back.
        let from = oldest_state.or(last_done).unwrap_or(zero);
        let keep_after = from - remember;
        let mut inputs = Vec::new();
        for (_, input) in self.inputs.lock().iter() {
            if let Some(saved) = input.save(keep_after)? {
                inputs.push(saved);
            }
        }
        let watermarks = self
            .watermark_stores
            .lock()
            .iter()
            .map(|(id, w)| (*id, w.save()))
            .collect();
        let cp = Checkpoint {
            version: checkpoint::VERSION,
            batch_ms: super::time::millis(self.batch),
            zero_ms: zero.millis(),
            last_done_ms: last_done.map(Time::millis),
            inputs,
            states,
            watermarks,
        };
        checkpoint::write(&dir, &cp)?;
        // What the metadata no longer names, no recovery can need.
        let referenced: Vec<PathBuf> = cp.states.iter().map(|s| s.dir.clone()).collect();
        let (run, superseded) = {
            let mut c = self.checkpoint.lock();
            let superseded: Vec<PathBuf> = c
                .written
                .iter()
                .filter(|w| !referenced.contains(w))
                .cloned()
                .collect();
            c.written.retain(|w| referenced.contains(w));
            (c.run.clone(), superseded)
        };
        checkpoint_dir::remove_unreferenced(&dir, &run, &referenced, &superseded);
        Ok(())
    }
}
