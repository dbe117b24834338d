//! The stream graph: the registry of streams, inputs and output operations
//! that every stream of one streaming context shares.

use super::checkpoint::SavedInput;
use super::dstream::AnyStream;
use super::meters::Meters;
use super::pacing::Pacing;
use super::recovery::Recovery;
use super::time::Time;
use crate::context::Context;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::path::Path;
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
    /// Whether a restart from a checkpoint can get this input's data back
    /// (or, for a receiver, go on receiving); a queue of driver-side
    /// datasets cannot.
    fn recoverable(&self) -> bool {
        true
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
    /// Cluster mode, on the driver, after [`plan`](Input::plan): what an
    /// executor needs to build the batch at `time` exactly as the driver
    /// does (a replayable input's range, a receiver's record count).
    fn describe(&self, _time: Time) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
    /// Cluster mode, on an executor: takes what the driver's
    /// [`describe`](Input::describe) gave for the batch at `time`; the
    /// executor's input never decides a batch by itself.
    fn follow(&self, _time: Time, _plan: &[u8]) -> Result<()> {
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

/// The streams of one streaming context and what they share: the engine
/// context, the batch interval and zero time, the registered inputs and
/// output operations; and, each in a file of its own, the meters reported
/// after every batch (`meters.rs`), the pacing of batches (`pacing.rs`:
/// backpressure settings, adaptive batching, batch times) and checkpoint
/// writing and restoring (`recovery.rs`).
pub(crate) struct Graph {
    pub(crate) ctx: Context,
    pub(crate) batch: Duration,
    zero: Mutex<Option<Time>>,
    next_id: AtomicUsize,
    pub(crate) outputs: Mutex<Vec<Arc<OutputOp>>>,
    /// Inputs with the id of their stream.
    pub(crate) inputs: Mutex<Vec<(usize, Arc<dyn Input>)>>,
    pub(crate) meters: Meters,
    pub(crate) pacing: Pacing,
    pub(crate) recovery: Recovery,
    /// The first error found while the graph was built (a window that is
    /// not a multiple of its parent's slide, streams of different slides
    /// combined): `start()` reports it, so building a stream never returns
    /// a `Result`, as building a dataset does not.
    refusal: Mutex<Option<Error>>,
}

impl Graph {
    pub(crate) fn new(ctx: Context, batch: Duration) -> Graph {
        Graph {
            ctx,
            batch,
            zero: Mutex::new(None),
            next_id: AtomicUsize::new(0),
            outputs: Mutex::new(Vec::new()),
            inputs: Mutex::new(Vec::new()),
            meters: Meters::default(),
            pacing: Pacing::default(),
            recovery: Recovery::default(),
            refusal: Mutex::new(None),
        }
    }

    /// Records `check`'s error, if any, for `start()` to report.
    pub(crate) fn refuse_unless(&self, check: Result<()>) {
        if let Err(e) = check {
            self.refusal.lock().get_or_insert(e);
        }
    }

    /// The first error recorded while the graph was built.
    pub(crate) fn take_refusal(&self) -> Option<Error> {
        self.refusal.lock().take()
    }

    pub(crate) fn next_stream_id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The id the next stream will get.
    pub(crate) fn peek_stream_id(&self) -> usize {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Whether the program runs on several processes.
    pub(crate) fn in_cluster(&self) -> bool {
        self.ctx.num_processes() > 1
    }

    /// Whether this process is a cluster executor: its batches are the
    /// ones the driver plans, and it writes no checkpoint metadata.
    pub(crate) fn follows_driver(&self) -> bool {
        !self.ctx.is_driver()
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

    /// Registers `stream`'s input (`what` names it and its records).
    pub(crate) fn add_input_for(&self, stream: usize, what: String, input: Arc<dyn Input>) {
        self.recovery.add_part(stream, what);
        self.inputs.lock().push((stream, input));
    }

    /// The batch before the one at `time` for a stream with `slide`: one
    /// slide earlier, or with an adaptive interval the previous batch.
    pub(crate) fn before(&self, time: Time, slide: Duration) -> Time {
        if !self.pacing.is_adaptive() || slide != self.batch {
            return time - slide;
        }
        self.pacing
            .batch_before(time)
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
        if slide == self.batch && self.pacing.is_adaptive() {
            return true;
        }
        time.is_aligned(zero, slide)
    }
}
