//! What a streaming context reports about each batch, to listeners and in
//! a summary at stop.

use super::time::Time;
use parking_lot::Mutex;
use std::time::Duration;

/// The size of one stateful stream's state after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct StateSize {
    /// Id of the stateful stream.
    pub stream: usize,
    /// Keys held.
    pub keys: u64,
    /// Rows held: one per key for key state (`update_state_by_key`,
    /// `map_with_state`), one per open (key, window) pair for event-time
    /// windows (Spark's `numRowsTotal` of a state operator).
    pub rows: u64,
    /// Estimated bytes held.
    pub bytes: u64,
}

/// One finished batch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchInfo {
    /// The batch time.
    pub time: Time,
    /// The interval this batch covered (the batch interval, unless it
    /// adapts to the load).
    pub interval: Duration,
    /// Records the inputs brought to this batch.
    pub input_records: u64,
    /// Input records the receivers could not read since the previous batch
    /// (lines that are not UTF-8, a line cut off by a lost connection).
    pub invalid_records: u64,
    /// From the batch time to the start of its processing (on the
    /// context's clock).
    pub scheduling_delay: Duration,
    /// From the start to the end of its processing (wall time).
    pub processing_time: Duration,
    /// Scheduling delay plus processing time.
    pub total_delay: Duration,
    /// State held by each stateful stream after the batch.
    pub state: Vec<StateSize>,
    /// The watermark of each event-time stream after the batch, as
    /// `(stream id, watermark)`.
    pub watermarks: Vec<(usize, i64)>,
    /// Records that came later than their windows' allowed lateness (sent
    /// to the late-data side streams).
    pub late_records: u64,
}

/// Events a streaming context posts to its listeners.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum StreamingEvent {
    /// The context started; the first batch is at `zero + interval`.
    Started {
        /// The zero time.
        zero: Time,
        /// The batch interval.
        interval: Duration,
    },
    /// A batch starts processing.
    BatchStarted {
        /// The batch time.
        time: Time,
    },
    /// A batch finished.
    BatchCompleted(BatchInfo),
    /// An input reported a problem it recovered from or skipped (a lost
    /// connection, a line that is not UTF-8).
    InputWarning {
        /// The input's stream id.
        stream: usize,
        /// What happened.
        message: String,
    },
    /// Backpressure set a new receiving rate (records per second, per
    /// receiver).
    RateChanged {
        /// After the batch at this time.
        time: Time,
        /// The new rate.
        rate: f64,
    },
    /// The adaptive batch interval changed.
    IntervalChanged {
        /// After the batch at this time.
        time: Time,
        /// The new interval.
        interval: Duration,
    },
    /// The context stopped.
    Stopped(StreamingSummary),
}

/// Receives streaming events, on the thread that runs the batches.
pub trait StreamingListener: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: &StreamingEvent);
}

/// A listener that keeps every event (tests, post-mortems).
#[derive(Default)]
pub struct StreamingLog {
    events: Mutex<Vec<StreamingEvent>>,
}

impl StreamingLog {
    /// Every event so far.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, StreamingEvent, StreamingLog, Time};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let log = Arc::new(StreamingLog::default());
    /// ssc.add_listener(log.clone());
    /// ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(100));
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// assert!(matches!(log.events().first(), Some(StreamingEvent::Started { .. })));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn events(&self) -> Vec<StreamingEvent> {
        self.events.lock().clone()
    }

    /// The completed batches so far, in order.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, StreamingLog, Time};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let log = Arc::new(StreamingLog::default());
    /// ssc.add_listener(log.clone());
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![1, 2, 3], 1));
    /// ssc.queue_stream(&q, Dequeue::OneAtATime).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(200));
    /// ssc.wait_for_batch(Time::from_millis(200))?;
    /// let times: Vec<u64> = log.batches().iter().map(|b| b.time.millis()).collect();
    /// assert_eq!(times, [100, 200]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn batches(&self) -> Vec<BatchInfo> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                StreamingEvent::BatchCompleted(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }
}

impl StreamingListener for StreamingLog {
    fn on_event(&self, event: &StreamingEvent) {
        self.events.lock().push(event.clone());
    }
}

/// Totals over a context's batches.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StreamingSummary {
    /// Batches completed.
    pub batches: u64,
    /// Records received over all batches.
    pub input_records: u64,
    /// Input records that could not be read, over all batches.
    pub invalid_records: u64,
    /// Median and 99th percentile of the processing time.
    pub processing_p50: Duration,
    /// 99th percentile of the processing time.
    pub processing_p99: Duration,
    /// 99th percentile of the total delay.
    pub total_delay_p99: Duration,
    /// Longest total delay.
    pub total_delay_max: Duration,
}

impl StreamingSummary {
    pub(crate) fn of(batches: &[BatchInfo]) -> StreamingSummary {
        let pct = |mut v: Vec<Duration>, p: f64| -> Duration {
            if v.is_empty() {
                return Duration::ZERO;
            }
            v.sort();
            v[((v.len() - 1) as f64 * p).round() as usize]
        };
        let processing: Vec<Duration> = batches.iter().map(|b| b.processing_time).collect();
        let total: Vec<Duration> = batches.iter().map(|b| b.total_delay).collect();
        StreamingSummary {
            batches: batches.len() as u64,
            input_records: batches.iter().map(|b| b.input_records).sum(),
            invalid_records: batches.iter().map(|b| b.invalid_records).sum(),
            processing_p50: pct(processing.clone(), 0.5),
            processing_p99: pct(processing, 0.99),
            total_delay_p99: pct(total.clone(), 0.99),
            total_delay_max: total.iter().copied().max().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for StreamingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} batches, {} records ({} invalid); processing p50 {:?} p99 {:?}; total delay p99 {:?} max {:?}",
            self.batches,
            self.input_records,
            self.invalid_records,
            self.processing_p50,
            self.processing_p99,
            self.total_delay_p99,
            self.total_delay_max
        )
    }
}
