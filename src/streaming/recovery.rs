//! Checkpoint writing and restoring for a streaming context: where the
//! checkpoint goes, the stateful streams and their restore hooks, the state
//! datasets each batch wrote, the event streams' watermarks; the metadata
//! written at the start and end of every batch, and what a restart puts
//! back. The file format is `checkpoint.rs`; the directory's lock and
//! clean-up are `checkpoint_dir.rs`.

use super::checkpoint::{self, Checkpoint, ProgramPart, SavedState};
use super::checkpoint_dir::{self, DirLock};
use super::context::StreamingContext;
use super::graph::Graph;
use super::time::Time;
use super::watermark::Watermarks;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::rdd::Rdd;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Puts a stateful stream's checkpointed dataset back (at its time).
pub(crate) type Restorer = Box<dyn Fn(Time, &Path) -> Result<()> + Send + Sync>;

/// A stateful stream's dataset being checkpointed in the current batch:
/// its time and where it is written once the batch's job ran.
struct PendingState {
    stream: usize,
    time: Time,
    path: Box<dyn Fn() -> Option<PathBuf> + Send + Sync>,
}

/// The checkpoint side of a streaming context.
#[derive(Default)]
pub(crate) struct Recovery {
    settings: Mutex<CheckpointSettings>,
    /// The watermarks of each event stream, saved in checkpoints.
    watermark_stores: Mutex<Vec<(usize, Arc<Watermarks>)>>,
    /// The inputs, stateful streams and event streams a checkpoint of this
    /// program depends on.
    program: Mutex<Vec<ProgramPart>>,
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

impl Recovery {
    /// Registers an event stream's watermarks (`what` names the stream).
    pub(crate) fn add_watermark_store(&self, stream: usize, what: String, w: Arc<Watermarks>) {
        self.add_part(stream, what);
        self.watermark_stores.lock().push((stream, w));
    }

    /// Records a part of the program a checkpoint depends on.
    pub(crate) fn add_part(&self, stream: usize, what: String) {
        self.program.lock().push(ProgramPart { stream, what });
    }

    /// The program's parts, sorted by stream.
    fn program(&self) -> Vec<ProgramPart> {
        let mut parts = self.program.lock().clone();
        parts.sort();
        parts
    }

    /// An error if the checkpoint in `dir` was written by another program.
    pub(crate) fn check_program(&self, cp: &Checkpoint, dir: &Path) -> Result<()> {
        match checkpoint::program_difference(&cp.program, &self.program()) {
            None => Ok(()),
            Some(difference) => Err(Error::IncompatibleCheckpoint {
                path: dir.to_path_buf(),
                difference,
            }),
        }
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

    /// `lock` is `None` on a cluster executor (the driver holds it).
    pub(crate) fn set_checkpoint_dir(&self, dir: PathBuf, run: PathBuf, lock: Option<DirLock>) {
        let mut c = self.settings.lock();
        c.dir = Some(dir);
        c.run = run;
        c.lock = lock;
    }

    /// Lets another context use the checkpoint directory.
    pub(crate) fn release_checkpoint_dir(&self) {
        self.settings.lock().lock = None;
    }

    pub(crate) fn checkpoint_dir(&self) -> Option<PathBuf> {
        self.settings.lock().dir.clone()
    }

    pub(crate) fn set_checkpoint_every(&self, every: Duration) {
        self.settings.lock().every = Some(every);
    }

    /// How often stateful datasets are written: as set, else every 10
    /// batches but at least 1 s apart.
    fn checkpoint_every(&self, batch: Duration) -> Duration {
        let set = self.settings.lock().every;
        set.unwrap_or_else(|| {
            let ten = batch * 10;
            let second = Duration::from_secs(1);
            if ten >= second {
                ten
            } else {
                batch * (second.as_millis().div_ceil(batch.as_millis()) as u32)
            }
        })
    }

    pub(crate) fn set_restored(&self, cp: Checkpoint) {
        self.settings.lock().restored = Some(cp);
    }

    pub(crate) fn take_restored(&self) -> Option<Checkpoint> {
        self.settings.lock().restored.take()
    }

    /// The first stateful stream, if any.
    pub(crate) fn first_stateful(&self) -> Option<usize> {
        self.settings.lock().stateful.first().copied()
    }

    /// Registers a stateful stream (`what` names its operation and state
    /// type) and how to restore it.
    pub(crate) fn add_stateful(&self, stream: usize, what: String, restore: Restorer) {
        self.add_part(stream, what);
        let mut c = self.settings.lock();
        c.stateful.push(stream);
        c.restorers.push((stream, restore));
    }

    /// Puts the saved datasets of stateful streams back; forgets the hooks.
    pub(crate) fn restore_states(&self, cp: &Checkpoint, dir: &Path) -> Result<()> {
        let restorers = std::mem::take(&mut self.settings.lock().restorers);
        for saved in &cp.states {
            if let Some((_, restore)) = restorers.iter().find(|(id, _)| *id == saved.stream) {
                restore(Time::from_millis(saved.time_ms), &dir.join(&saved.dir))?;
                self.settings
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
        self.settings.lock().restorers.clear();
    }

    /// After a batch: the stateful datasets written by it.
    fn collect_written_states(&self) {
        let mut c = self.settings.lock();
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
}

impl Graph {
    /// Cuts the lineage of a dataset that the next batch builds on (state,
    /// incremental windows): its partitions are kept in memory and its
    /// parents forgotten after the job that computes it; every checkpoint
    /// interval, with a checkpoint directory, it is written there instead,
    /// for recovery after a crash. In cluster mode the in-memory cut is a
    /// plain cache that keeps the lineage back to the last written
    /// checkpoint: a lost executor takes its blocks with it, and they are
    /// recomputed from there.
    pub(crate) fn cut_lineage<T: Value>(&self, rdd: Rdd<T>, stream: usize, time: Time) -> Rdd<T> {
        let reliable = self.recovery.checkpoint_dir().is_some()
            && self.zero_time().is_some_and(|zero| {
                time.is_aligned(zero, self.recovery.checkpoint_every(self.batch))
            });
        if reliable && rdd.checkpoint().is_ok() {
            let written = rdd.clone();
            self.recovery.settings.lock().pending.push(PendingState {
                stream,
                time,
                path: Box::new(move || written.checkpoint_path()),
            });
            return rdd.kept();
        }
        if self.in_cluster() {
            return rdd.kept();
        }
        rdd.local_checkpoint()
    }

    /// Writes the checkpoint (if a directory is set): progress up to
    /// `last_done`, and the input ranges a recovery may need.
    pub(crate) fn write_checkpoint(
        &self,
        last_done: Option<Time>,
        remember: Duration,
    ) -> Result<()> {
        let Some(dir) = self.recovery.checkpoint_dir() else {
            return Ok(());
        };
        let Some(zero) = self.zero_time() else {
            return Ok(());
        };
        if self.follows_driver() {
            // The driver writes the metadata; the state datasets are
            // written by the jobs every process takes part in.
            self.recovery.settings.lock().pending.clear();
            return Ok(());
        }
        self.recovery.collect_written_states();
        let (states, oldest_state) = {
            let c = self.recovery.settings.lock();
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
            .recovery
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
            program: self.recovery.program(),
        };
        checkpoint::write(&dir, &cp)?;
        // What the metadata no longer names, no recovery can need.
        let referenced: Vec<PathBuf> = cp.states.iter().map(|s| s.dir.clone()).collect();
        let (run, superseded) = {
            let mut c = self.recovery.settings.lock();
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

impl StreamingContext {
    /// Saves progress in `dir` so that
    /// [`get_or_create`](StreamingContext::get_or_create) can restart the
    /// program after a crash: metadata every batch, and the datasets of
    /// stateful streams every checkpoint interval (see
    /// [`set_checkpoint_interval`](Self::set_checkpoint_interval)).
    ///
    /// The directory belongs to this context while it lives: a second
    /// streaming context (in this process or another) is refused with
    /// [`Error::CheckpointInUse`], and state datasets that a newer
    /// checkpoint supersedes are deleted, so its size stays bounded.
    ///
    /// In cluster mode the directory must be one path that every process
    /// reaches (a shared file system): the driver holds its lock and
    /// writes the metadata, and every process writes its share of the
    /// state datasets.
    ///
    /// ```
    /// use spate::streaming::StreamingContext;
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let ssc = StreamingContext::new(&ctx, Duration::from_secs(1))?;
    /// ssc.checkpoint(dir.path())?; // metadata and state are saved there
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        if self.graph().recovery.checkpoint_dir().as_deref() == Some(dir.as_path()) {
            return Ok(());
        }
        let mut lock = None;
        let run = self.context().on_driver("streaming checkpoint", || {
            lock = Some(DirLock::acquire(&dir)?);
            Ok(PathBuf::from(format!(
                "run-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            )))
        })?;
        self.context().set_checkpoint_dir(dir.join(&run))?;
        self.graph().recovery.set_checkpoint_dir(dir, run, lock);
        Ok(())
    }

    /// How often the datasets of stateful streams (state, incremental
    /// windows) are written to the checkpoint directory, cutting their
    /// lineage for good (default: every 10 batches, at least 1 s). Between
    /// those, lineage is cut with in-memory checkpoints.
    ///
    /// ```
    /// use spate::streaming::StreamingContext;
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(500))?;
    /// ssc.set_checkpoint_interval(Duration::from_secs(5))?;
    /// // Not a multiple of the batch interval.
    /// assert!(ssc.set_checkpoint_interval(Duration::from_millis(750)).is_err());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn set_checkpoint_interval(&self, every: Duration) -> Result<()> {
        let every = super::time::check_duration("checkpoint interval", every)?;
        if every.as_millis() % self.batch_interval().as_millis() != 0 {
            return Err(Error::InvalidArgument(format!(
                "checkpoint interval {every:?} is not a multiple of the batch interval {:?}",
                self.batch_interval()
            )));
        }
        self.graph().recovery.set_checkpoint_every(every);
        Ok(())
    }

    /// Restarts the program whose checkpoint is in `dir`, or starts it
    /// afresh. `build` defines the streaming context and its streams, the
    /// same way every time (it runs in both cases: no code is stored); if
    /// `dir` holds a checkpoint, the returned context continues from it
    /// when started: batches that were generated but not finished run
    /// again with the same input ranges, state continues from its last
    /// checkpoint, and the batch times missed while the program was down
    /// run one by one, each taking at most as much input as the largest
    /// batch before the crash. State is recomputed from its last
    /// checkpoint through the batches after it, by the code of the
    /// restarted program.
    ///
    /// The checkpoint records the program's inputs, stateful streams and
    /// event streams (by creation order, with their operations and element
    /// types); a program that differs in them is refused with
    /// [`Error::IncompatibleCheckpoint`] naming the first difference, even
    /// if no state had been saved yet. Changed closures and outputs
    /// defined after the stateful streams restart.
    ///
    /// ```
    /// use spate::streaming::StreamingContext;
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir().unwrap();
    /// let build = || {
    ///     let ssc = StreamingContext::new(&ctx, Duration::from_millis(100))?;
    ///     ssc.checkpoint(dir.path())?;
    ///     ssc.socket_text_stream("localhost", 9999).count().print(1)?;
    ///     Ok(ssc)
    /// };
    /// // The first run builds the program; after a crash, the same call
    /// // rebuilds it and restores its state and input offsets from `dir`.
    /// let ssc = StreamingContext::get_or_create(dir.path(), build)?;
    /// assert_eq!(ssc.batch_interval(), Duration::from_millis(100));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn get_or_create(
        dir: impl AsRef<Path>,
        build: impl FnOnce() -> Result<StreamingContext>,
    ) -> Result<StreamingContext> {
        let dir = dir.as_ref();
        let ssc = build()?;
        // The driver's reading, in every process.
        let saved = ssc
            .context()
            .on_driver("streaming checkpoint read", || checkpoint::read(dir))?;
        ssc.checkpoint(dir)?;
        if let Some(cp) = saved {
            let interval = super::time::millis(ssc.batch_interval());
            if cp.batch_ms != interval {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint in {} was written with a {} ms batch interval, not {interval} ms",
                    dir.display(),
                    cp.batch_ms
                )));
            }
            ssc.graph().recovery.check_program(&cp, dir)?;
            ssc.graph().recovery.set_restored(cp);
        }
        Ok(ssc)
    }

    /// Puts a checkpoint's state and input ranges back.
    pub(super) fn restore(&self, cp: &super::checkpoint::Checkpoint, now: Time) -> Result<()> {
        let graph = self.graph();
        let dir = graph.recovery.checkpoint_dir().unwrap_or_default();
        graph.recovery.restore_states(cp, &dir)?;
        graph.recovery.restore_watermarks(cp, &dir)?;
        let inputs = graph.inputs.lock().clone();
        for saved in &cp.inputs {
            let Some((_, input)) = inputs.iter().find(|(id, _)| *id == saved.stream) else {
                return Err(Error::CorruptCheckpoint {
                    path: dir.clone(),
                    reason: format!(
                        "the checkpoint has an input for stream {}, which is no replayable input in this program; was the stream graph changed?",
                        saved.stream
                    ),
                });
            };
            input.restore(saved, &dir, now)?;
        }
        Ok(())
    }
}
