//! The batch loop of a streaming context (Spark's `JobGenerator`): waits
//! for each batch time, writes the checkpoint ahead, runs the outputs'
//! jobs, reports the batch, and adapts the receiving rate and the batch
//! interval. It runs on its own thread from `start` until the context
//! stops; the lifecycle around it is `context.rs`.

use super::adaptive::Controller;
use super::context::{MAX_KEPT_BATCHES, Shared};
use super::dstream::AnyStream;
use super::metrics::{BatchInfo, StreamingEvent};
use super::rate::RateEstimator;
use super::time::Time;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The batch loop and what it alone uses.
pub(super) struct JobGenerator {
    pub(super) shared: Arc<Shared>,
    /// Set when backpressure is enabled.
    pub(super) rate_estimator: Option<Box<dyn RateEstimator>>,
    /// Set with adaptive batching.
    pub(super) controller: Option<Controller>,
    /// Rate-limited inputs (receivers).
    pub(super) receivers: usize,
    /// The longest any stream remembers its datasets: how far back a
    /// recovery may need input ranges.
    pub(super) max_remember: Duration,
}

impl JobGenerator {
    /// Backpressure: a new receiving rate from the rate estimator, capped
    /// by the maximum rate.
    fn adapt_rate(&mut self, info: &BatchInfo) -> Option<f64> {
        let estimator = self.rate_estimator.as_mut()?;
        let receivers = self.receivers.max(1);
        let records_per_receiver = info.input_records / receivers as u64;
        let rate = estimator.compute(
            info.time,
            records_per_receiver,
            info.processing_time,
            info.scheduling_delay,
        )?;
        let max = self
            .shared
            .graph
            .pacing
            .backpressure()
            .max_rate
            .unwrap_or(f64::INFINITY);
        Some(rate.min(max))
    }

    /// The batch loop: waits for each batch time (or, draining after a
    /// graceful stop, runs at once), runs the batch, adapts the interval.
    pub(super) fn run(mut self, first: Time) {
        let shared = self.shared.clone();
        let mut interval = shared.graph.batch;
        let mut next = first;
        let result = loop {
            if shared.stop_requested.load(Ordering::SeqCst) {
                let pending = shared
                    .graph
                    .inputs
                    .lock()
                    .iter()
                    .any(|(_, i)| i.has_pending());
                if !shared.graceful.load(Ordering::SeqCst) || !pending {
                    break Ok(());
                }
                // Draining: run the next batch now.
            } else {
                shared.progress.lock().next_due = Some(next);
                shared.changed.notify_all();
                let reached = shared
                    .clock
                    .wait_until(next, || shared.stop_requested.load(Ordering::SeqCst));
                shared.progress.lock().next_due = None;
                if !reached {
                    continue;
                }
            }
            shared.graph.pacing.note_batch(next);
            let processing = match self.run_batch(next, interval) {
                Ok(p) => p,
                Err(e) => break Err(e),
            };
            if let Some(c) = self.controller.as_ref() {
                let new = c.next(interval, processing);
                if new != interval {
                    interval = new;
                    shared.post(&StreamingEvent::IntervalChanged {
                        time: next,
                        interval,
                    });
                }
            }
            next = next + interval;
        };
        // A failed batch already told the executors; a stop tells them here.
        let result = match result {
            Ok(()) if shared.graph.in_cluster() => shared
                .graph
                .ctx
                .on_driver(BATCH_PLAN, || Ok(None::<BatchPlan>))
                .map(|_| ()),
            other => other,
        };
        terminate(&shared, result);
    }

    /// Runs the batch at `time`; returns its processing time. In cluster
    /// mode the driver tells the executors the batch's plan before its
    /// outputs run, and how it ended after: both are small jobs of their
    /// own (`on_driver`), so every process meets them at the same point.
    fn run_batch(&mut self, time: Time, interval: Duration) -> Result<Duration> {
        let shared = self.shared.clone();
        let graph = &shared.graph;
        let scheduling_delay = shared.clock.now() - time;
        shared.post(&StreamingEvent::BatchStarted { time });
        let started = Instant::now();
        let failed = |cause: Error| Error::BatchFailed {
            time_ms: time.millis(),
            cause: Box::new(cause),
        };
        let remember = self.max_remember;
        let last_done = shared.progress.lock().last_done;
        // Write ahead: the batch's input ranges are on disk before any of
        // its output is.
        let inputs: Vec<_> = graph.inputs.lock().clone();
        let planned = (|| {
            for (_, input) in &inputs {
                input.plan(time)?;
            }
            graph.write_checkpoint(last_done, remember)
        })();
        if graph.in_cluster() {
            let plan = planned.and_then(|()| {
                let described = inputs
                    .iter()
                    .map(|(stream, input)| Ok((*stream, input.describe(time)?)))
                    .collect::<Result<_>>()?;
                Ok(Some(BatchPlan {
                    time_ms: time.millis(),
                    interval_ms: super::time::millis(interval),
                    inputs: described,
                }))
            });
            graph.ctx.on_driver(BATCH_PLAN, || plan).map_err(failed)?;
        } else {
            planned.map_err(failed)?;
        }
        let ran =
            run_outputs(&shared, time).and_then(|()| graph.write_checkpoint(Some(time), remember));
        if graph.in_cluster() {
            graph.ctx.on_driver(BATCH_END, || ran).map_err(failed)?;
        } else {
            ran.map_err(failed)?;
        }
        let processing_time = started.elapsed();
        let info = finish_batch(&shared, time, interval, scheduling_delay, processing_time);
        if let Some(rate) = self.adapt_rate(&info) {
            for (_, input) in &inputs {
                input.set_rate(Some(rate));
            }
            shared.post(&StreamingEvent::RateChanged { time, rate });
        }
        shared.progress.lock().last_done = Some(time);
        shared.changed.notify_all();
        Ok(processing_time)
    }

    /// A cluster executor's batch loop: runs the batches the driver plans,
    /// in its order, until the driver says the batches ended (its context
    /// stopped) or one failed. No clock, no receivers: the driver decides
    /// every batch, and the executor builds the same datasets from its plan.
    pub(super) fn follow(self) {
        let shared = self.shared.clone();
        let graph = &shared.graph;
        let no_plan = || -> Result<Option<BatchPlan>> {
            Err(Error::Cluster("only the driver plans batches".into()))
        };
        let result = loop {
            let plan = match graph.ctx.on_driver(BATCH_PLAN, no_plan) {
                Ok(Some(plan)) => plan,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let time = Time::from_millis(plan.time_ms);
            let interval = Duration::from_millis(plan.interval_ms);
            let failed = |cause: Error| Error::BatchFailed {
                time_ms: time.millis(),
                cause: Box::new(cause),
            };
            shared.post(&StreamingEvent::BatchStarted { time });
            let started = Instant::now();
            graph.pacing.note_batch(time);
            let inputs: Vec<_> = graph.inputs.lock().clone();
            let ran = plan
                .inputs
                .iter()
                .try_for_each(|(stream, described)| {
                    let (_, input) = inputs.iter().find(|(id, _)| id == stream).ok_or_else(|| {
                        Error::Cluster(format!(
                            "the driver planned input stream {stream}, which this process does not have: every process must build the same streams"
                        ))
                    })?;
                    input.follow(time, described)
                })
                .and_then(|()| run_outputs(&shared, time))
                .and_then(|()| graph.write_checkpoint(Some(time), self.max_remember));
            // The driver's outcome decides; a failure of this process's own
            // is reported even if the driver's batch succeeded.
            let ended = graph.ctx.on_driver(BATCH_END, || Ok(())).and(ran);
            if let Err(e) = ended {
                break Err(failed(e));
            }
            finish_batch(&shared, time, interval, Duration::ZERO, started.elapsed());
            shared.progress.lock().last_done = Some(time);
            shared.changed.notify_all();
        };
        terminate(&shared, result);
    }
}

/// The name of the job that carries a batch's plan to the executors.
const BATCH_PLAN: &str = "streaming batch";
/// The name of the job that carries a batch's outcome to the executors.
const BATCH_END: &str = "streaming batch end";

/// What the driver tells the executors about a batch before its outputs
/// run (cluster mode): its time and interval, and what each input holds
/// for it. `None` in its place ends the executors' batch loops.
#[derive(Serialize, Deserialize)]
pub(super) struct BatchPlan {
    time_ms: u64,
    interval_ms: u64,
    /// Each input's [`describe`](super::graph::Input::describe), by stream.
    inputs: Vec<(usize, Vec<u8>)>,
}

/// Marks the batch loop as ended, keeping the error it ended with, and
/// wakes whoever waits for it.
fn terminate(shared: &Shared, result: Result<()>) {
    let mut p = shared.progress.lock();
    p.terminated = true;
    if let Err(e) = result {
        p.error = Some(e);
    }
    drop(p);
    shared.changed.notify_all();
}

/// Runs the output operations of the batch at `time`, in order.
fn run_outputs(shared: &Shared, time: Time) -> Result<()> {
    let outputs: Vec<_> = shared.graph.outputs.lock().clone();
    for op in &outputs {
        // Output closures run on this thread: a panic in one fails the
        // batch like an error, instead of killing the batch thread.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (op.run)(time)));
        run.unwrap_or_else(|payload| Err(crate::error::from_panic(payload)))?;
    }
    Ok(())
}

/// After a batch's outputs: forgets what no later batch reads, reports the
/// batch and keeps its info.
fn finish_batch(
    shared: &Shared,
    time: Time,
    interval: Duration,
    scheduling_delay: Duration,
    processing_time: Duration,
) -> BatchInfo {
    let graph = &shared.graph;
    let state = graph.meters.state_sizes(time);
    let watermarks = graph.meters.watermarks(time);
    let late_records = graph.meters.late_records(time);
    let outputs: Vec<_> = graph.outputs.lock().clone();
    let mut seen = HashSet::new();
    let mut stack: Vec<Arc<dyn AnyStream>> = outputs.iter().map(|o| o.stream.clone()).collect();
    while let Some(s) = stack.pop() {
        if seen.insert(s.base().id) {
            s.forget_old(time);
            stack.extend(s.base().parents.iter().cloned());
        }
    }
    let mut invalid_records = 0;
    let inputs: Vec<_> = graph.inputs.lock().clone();
    for (stream, input) in &inputs {
        let (invalid, warnings) = input.take_warnings();
        invalid_records += invalid;
        if invalid > 0 {
            shared.post(&StreamingEvent::InputWarning {
                stream: *stream,
                message: format!("{invalid} records could not be read and were skipped"),
            });
        }
        for message in warnings {
            shared.post(&StreamingEvent::InputWarning {
                stream: *stream,
                message,
            });
        }
    }
    let info = BatchInfo {
        time,
        interval,
        input_records: graph.meters.take_input_count(time),
        invalid_records,
        scheduling_delay,
        processing_time,
        total_delay: scheduling_delay + processing_time,
        state,
        watermarks,
        late_records,
    };
    {
        let mut batches = shared.batches.lock();
        // A long run keeps its recent batches only.
        if batches.len() >= MAX_KEPT_BATCHES {
            batches.drain(..MAX_KEPT_BATCHES / 10);
        }
        batches.push(info.clone());
    }
    shared.post(&StreamingEvent::BatchCompleted(info.clone()));
    info
}
