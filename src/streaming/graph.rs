//! The stream graph: the engine context, the batch interval and zero time,
//! and the registered inputs and output operations. Shared by every stream
//! of one streaming context.

use super::dstream::AnyStream;
use super::metrics::StateSize;
use super::rate::Backpressure;
use super::time::Time;
use crate::context::Context;
use crate::data::Value;
use crate::error::Result;
use crate::rdd::Rdd;
use parking_lot::Mutex;
use std::collections::BTreeMap;
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
}

type StateMeter = Box<dyn Fn(Time) -> Option<StateSize> + Send + Sync>;

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
        }
    }

    pub(crate) fn next_stream_id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
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

    /// The state held by each stateful stream after the batch at `time`.
    pub(crate) fn state_sizes(&self, time: Time) -> Vec<StateSize> {
        self.state_meters
            .lock()
            .iter()
            .filter_map(|m| m(time))
            .collect()
    }

    /// Cuts the lineage of a dataset that the next batch builds on (state,
    /// incremental windows): its partitions are kept and its parents
    /// forgotten after the job that computes it.
    pub(crate) fn cut_lineage<T: Value>(&self, rdd: Rdd<T>) -> Rdd<T> {
        rdd.local_checkpoint()
    }
}
