//! Event time: timestamps and watermarks on a stream.
//!
//! Every record gets its event time and the watermark *just before it* in
//! arrival order (the largest event time seen before it, minus the allowed
//! out-of-orderness). Computing it per record, not per batch, makes
//! everything downstream independent of the batch interval: a record is
//! late or on time whatever batch it lands in. The watermark reported per
//! batch (and used to fire windows of keys without records) is the one
//! after the batch's last record.
//!
//! Arrival order is partition order within a batch (receivers fill
//! partitions with consecutive records), then record order within a
//! partition. A per-batch job finds each partition's largest event time;
//! each partition then continues from the largest time of the partitions
//! before it.

use super::dstream::{DStream, NewStream, StreamOp};
use super::time::Time;
use crate::data::Value;
use crate::error::Result;
use crate::rdd::Rdd;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// An event time, in milliseconds (any epoch the timestamps use).
pub type EventTime = i64;

/// The watermark before any record: nothing is late yet.
pub const NO_WATERMARK: EventTime = EventTime::MIN;

/// How an input's watermark follows its event times.
#[derive(Clone, Debug, PartialEq)]
pub struct WatermarkStrategy {
    /// Records may arrive this much out of order: watermark = largest event
    /// time seen − this.
    pub out_of_orderness: Duration,
    /// An input without records for this long (in batch time) is idle: it
    /// no longer holds back the watermark of operations over several
    /// inputs, until it has records again.
    pub idle_timeout: Option<Duration>,
}

impl WatermarkStrategy {
    /// Watermark = largest event time seen − `d`.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::WatermarkStrategy;
    /// use std::time::Duration;
    /// // Events up to 1 s late still count: after event time 5 000 ms the
    /// // watermark is 4 000 ms.
    /// let out = run_batches(vec![vec![5_000i64], vec![4_500, 3_000]], |s| {
    ///     let events = s.with_timestamps(|t| *t, WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1)));
    ///     events.stamped().map(|r| (r.value, r.time < r.watermark))
    /// })?;
    /// // 3 000 is late (below the watermark), 4 500 is not.
    /// assert_eq!(out[1], [(3_000, true), (4_500, false)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn bounded_out_of_orderness(d: Duration) -> Self {
        WatermarkStrategy {
            out_of_orderness: d,
            idle_timeout: None,
        }
    }

    /// For timestamps that never decrease: watermark = largest event time.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::WatermarkStrategy;
    /// let out = run_batches(vec![vec![100i64], vec![200, 50]], |s| {
    ///     let events = s.with_timestamps(|t| *t, WatermarkStrategy::monotonous());
    ///     events.stamped().map(|r| (r.value, r.time < r.watermark))
    /// })?;
    /// // With timestamps that only rise, anything older than the newest is late.
    /// assert_eq!(out, [vec![(100, false)], vec![(50, true), (200, false)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn monotonous() -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO)
    }

    /// Marks the input idle after `d` without records.
    ///
    /// ```
    /// use spate::streaming::WatermarkStrategy;
    /// use std::time::Duration;
    /// // An input that stops sending for 10 s no longer holds a union's
    /// // watermark back.
    /// let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2))
    ///     .with_idleness(Duration::from_secs(10));
    /// # drop(strategy);
    /// ```
    pub fn with_idleness(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    fn lag(&self) -> EventTime {
        self.out_of_orderness.as_millis() as EventTime
    }
}

/// A record with its event time and the watermark just before it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamped<T> {
    /// The record.
    pub value: T,
    /// Its event time.
    pub time: EventTime,
    /// The watermark just before it arrived.
    pub watermark: EventTime,
}

/// How a union of event streams combines their watermarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WatermarkPolicy {
    /// The smaller (an idle input does not count): no input's on-time
    /// records are dropped as late (Spark's default).
    #[default]
    Min,
    /// The larger: results come as soon as the faster input allows, and the
    /// slower input's records may be late.
    Max,
}

/// The watermark of one input at each batch boundary.
#[derive(Default)]
pub(crate) struct Watermarks {
    /// After each batch: (watermark, largest event time seen, last batch
    /// with records).
    per_batch: Mutex<BTreeMap<Time, Progress>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub(crate) watermark: EventTime,
    max_seen: EventTime,
    last_active: Option<Time>,
    pub(crate) idle: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            watermark: NO_WATERMARK,
            max_seen: NO_WATERMARK,
            last_active: None,
            idle: false,
        }
    }
}

impl Watermarks {
    /// The progress after the latest batch at or before `time`.
    pub(crate) fn at(&self, time: Time) -> Progress {
        self.per_batch
            .lock()
            .range(..=time)
            .next_back()
            .map(|(_, p)| *p)
            .unwrap_or_default()
    }

    /// Every recorded boundary, for the checkpoint.
    pub(crate) fn save(&self) -> Vec<(u64, Progress)> {
        self.per_batch
            .lock()
            .iter()
            .map(|(t, p)| (t.millis(), *p))
            .collect()
    }

    /// Takes back what [`save`](Self::save) returned.
    pub(crate) fn restore(&self, saved: &[(u64, Progress)]) {
        let mut m = self.per_batch.lock();
        m.clear();
        m.extend(saved.iter().map(|(t, p)| (Time::from_millis(*t), *p)));
    }

    fn record(&self, time: Time, p: Progress) {
        let mut m = self.per_batch.lock();
        m.insert(time, p);
        // Only recent boundaries are ever asked for.
        while m.len() > 64 {
            m.pop_first();
        }
    }
}

/// A stream whose records carry event times and watermarks.
#[must_use = "an event stream does nothing without an output operation"]
pub struct EventStream<T> {
    pub(crate) stamped: DStream<Stamped<T>>,
    pub(crate) watermarks: Arc<Watermarks>,
}

impl<T> Clone for EventStream<T> {
    fn clone(&self) -> Self {
        EventStream {
            stamped: self.stamped.clone(),
            watermarks: self.watermarks.clone(),
        }
    }
}

impl<T: Value> DStream<T> {
    /// Event time from `time_of(record)` (milliseconds), with watermarks
    /// following `strategy`.
    ///
    /// Sessions of clicks `(user, event time ms)` per user, in event time:
    ///
    /// ```
    /// use spate::streaming::{ManualClock, SessionWindows, StreamQueue, StreamingContext, Time, WatermarkStrategy};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let clock = ManualClock::new();
    /// let tick = Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![('u', 1_000i64), ('u', 1_400)], 1));
    /// q.push(ctx.parallelize(vec![('u', 9_000i64)], 1)); // moves the watermark past the session
    /// let sessions = ssc
    ///     .queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
    ///     .with_timestamps(|c: &(char, i64)| c.1, WatermarkStrategy::monotonous())
    ///     .key_by(|c| c.0)
    ///     .window(SessionWindows::with_gap(Duration::from_secs(1)))
    ///     .aggregate(|_c| 1u32, |n, _| n + 1, |a, b| a + b, |n| *n);
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// sessions.results.foreach_rdd(move |rdd, _| {
    ///     let found = rdd.collect()?;
    ///     sink.lock().unwrap().extend(found.into_iter().map(|r| (r.window.start, r.window.end, r.value)));
    ///     Ok(())
    /// })?;
    /// ssc.start()?;
    /// clock.advance(2 * tick);
    /// ssc.wait_for_batch(Time::from_millis(200))?;
    /// assert_eq!(*seen.lock().unwrap(), [(1_000, 2_400, 2)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn with_timestamps(
        &self,
        time_of: impl Fn(&T) -> EventTime + Send + Sync + 'static,
        strategy: WatermarkStrategy,
    ) -> EventStream<T> {
        let watermarks = Arc::new(Watermarks::default());
        let mut spec = NewStream::child_of("with_timestamps", self.as_any().as_ref());
        spec.parents.push(self.as_any());
        let stamped = DStream::from_op(
            self.graph(),
            spec,
            Stamp {
                parent: self.clone(),
                time_of: Arc::new(time_of),
                strategy,
                watermarks: watermarks.clone(),
            },
        );
        register(&stamped, &watermarks);
        EventStream {
            stamped,
            watermarks,
        }
    }
}

impl<T: Value> EventStream<T> {
    /// The records with their event times and watermarks.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::WatermarkStrategy;
    /// let out = run_batches(vec![vec![(7u8, 1_000i64)]], |s| {
    ///     s.with_timestamps(|r| r.1, WatermarkStrategy::monotonous())
    ///         .stamped()
    ///         .map(|r| (r.value.0, r.time))
    /// })?;
    /// assert_eq!(out, [vec![(7, 1_000)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn stamped(&self) -> &DStream<Stamped<T>> {
        &self.stamped
    }

    /// The watermark after the batch at `time` (or the latest batch
    /// before it); [`NO_WATERMARK`] before any record.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, NO_WATERMARK, StreamQueue, StreamingContext, Time, WatermarkStrategy};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![3_000i64, 1_000], 1));
    /// let events = ssc
    ///     .queue_stream(&q, Dequeue::OneAtATime)
    ///     .with_timestamps(|t| *t, WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500)));
    /// events.stamped().foreach_rdd(|_, _| Ok(()))?;
    /// assert_eq!(events.watermark_at(Time::from_millis(100)), NO_WATERMARK);
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(100));
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// assert_eq!(events.watermark_at(Time::from_millis(100)), 2_500);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn watermark_at(&self, time: Time) -> EventTime {
        self.watermarks.at(time).watermark
    }

    /// The records of both streams. The watermark is the smaller of the
    /// two inputs' (an idle input does not count): a record's watermark is
    /// the smaller of its own input's just before it and the other input's
    /// at the previous batch boundary. Same as
    /// [`union_with`](Self::union_with) and [`WatermarkPolicy::Min`].
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// use spate::streaming::WatermarkStrategy;
    /// let out = run_batches2(vec![vec![1_000i64]], vec![vec![5_000i64]], |a, b| {
    ///     let stamp = |s: &spate::streaming::DStream<i64>| s.with_timestamps(|t| *t, WatermarkStrategy::monotonous());
    ///     stamp(a).union(&stamp(b)).stamped().map(|r| r.time)
    /// })?;
    /// assert_eq!(out, [vec![1_000, 5_000]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn union(&self, other: &EventStream<T>) -> EventStream<T> {
        self.union_with(other, WatermarkPolicy::Min)
    }

    /// The records of both streams, with the watermark combined by
    /// `policy` (Spark's `multipleWatermarkPolicy`). With
    /// [`WatermarkPolicy::Max`] the faster input sets the pace: records of
    /// the slower one may then be late. Either way the combined watermark
    /// never decreases. Streams of different slides or streaming contexts
    /// make [`start`](super::StreamingContext::start) an error.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// use spate::streaming::{WatermarkPolicy, WatermarkStrategy};
    /// // Under the max policy the fast input (at 5 000 ms) sets the pace: the slow
    /// // one's record at 2 000 ms in the next batch is late.
    /// let out = run_batches2(vec![vec![1_000i64], vec![2_000]], vec![vec![5_000i64], vec![]], |a, b| {
    ///     let stamp = |s: &spate::streaming::DStream<i64>| s.with_timestamps(|t| *t, WatermarkStrategy::monotonous());
    ///     stamp(a)
    ///         .union_with(&stamp(b), WatermarkPolicy::Max)
    ///         .stamped()
    ///         .map(|r| (r.time, r.time < r.watermark))
    /// })?;
    /// assert_eq!(out[1], [(2_000, true)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn union_with(&self, other: &EventStream<T>, policy: WatermarkPolicy) -> EventStream<T> {
        let watermarks = Arc::new(Watermarks::default());
        let (a, b) = (self.clone(), other.clone());
        let out = watermarks.clone();
        let stamped = self
            .stamped
            .combined("union", &other.stamped, move |x, y, time| {
                let before = a.stamped.time_before(time);
                let (pa, pb) = (a.watermarks.at(before), b.watermarks.at(before));
                let (na, nb) = (a.watermarks.at(time), b.watermarks.at(time));
                let (xa, yb, combined) = match policy {
                    WatermarkPolicy::Min => {
                        let cap = |p: Progress| if p.idle { EventTime::MAX } else { p.watermark };
                        let (cap_a, cap_b) = (cap(pb), cap(pa));
                        let xa = x.map(move |mut s| {
                            s.watermark = s.watermark.min(cap_a);
                            s
                        });
                        let yb = y.map(move |mut s| {
                            s.watermark = s.watermark.min(cap_b);
                            s
                        });
                        let combined = match (na.idle, nb.idle) {
                            (true, false) => nb.watermark,
                            (false, true) => na.watermark,
                            _ => na.watermark.min(nb.watermark),
                        };
                        (xa, yb, combined)
                    }
                    WatermarkPolicy::Max => {
                        // The other input's watermark at the boundary lifts
                        // each record's; idleness does not matter.
                        let (lift_a, lift_b) = (pb.watermark, pa.watermark);
                        let xa = x.map(move |mut s| {
                            s.watermark = s.watermark.max(lift_a);
                            s
                        });
                        let yb = y.map(move |mut s| {
                            s.watermark = s.watermark.max(lift_b);
                            s
                        });
                        (xa, yb, na.watermark.max(nb.watermark))
                    }
                };
                out.record(
                    time,
                    Progress {
                        watermark: combined.max(out.at(before).watermark),
                        idle: na.idle && nb.idle,
                        ..Progress::default()
                    },
                );
                Ok(xa.union(&yb))
            });
        register(&stamped, &watermarks);
        EventStream {
            stamped,
            watermarks,
        }
    }
}

/// Position of a record in its batch's arrival order: partition, then
/// index. Per-key replays sort by it.
pub(crate) type ArrivalSeq = u64;

/// A batch's records keyed by `key_of`, each with its arrival position.
pub(crate) fn keyed_in_arrival_order<K: crate::data::Data, T: Value>(
    batch: &Rdd<Stamped<T>>,
    key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
) -> Rdd<(K, (ArrivalSeq, Stamped<T>))> {
    batch.map_partitions_with_index(move |p, it| {
        let key_of = key_of.clone();
        it.enumerate()
            .map(move |(i, s)| (key_of(&s.value), (((p as u64) << 40) | i as u64, s)))
    })
}

/// Reports an event stream's watermark per batch and saves it in
/// checkpoints.
fn register<T: Value>(stamped: &DStream<Stamped<T>>, watermarks: &Arc<Watermarks>) {
    let id = stamped.id();
    let w = watermarks.clone();
    let graph = stamped.graph();
    graph
        .meters
        .add_watermark_meter(Box::new(move |time| (id, w.at(time).watermark)));
    let what = format!(
        "{} of {}",
        stamped.node.base.name,
        std::any::type_name::<T>()
    );
    graph
        .recovery
        .add_watermark_store(id, what, watermarks.clone());
}

struct Stamp<T> {
    parent: DStream<T>,
    time_of: Arc<dyn Fn(&T) -> EventTime + Send + Sync>,
    strategy: WatermarkStrategy,
    watermarks: Arc<Watermarks>,
}

impl<T: Value> StreamOp<Stamped<T>> for Stamp<T> {
    fn compute(&self, this: &DStream<Stamped<T>>, time: Time) -> Result<Option<Rdd<Stamped<T>>>> {
        let batch = self.parent.dataset_or_empty(time)?;
        let before = self.watermarks.at(this.time_before(time));
        // The largest event time of each partition, in partition order.
        let time_of = self.time_of.clone();
        let maxima: Vec<Option<EventTime>> = batch
            .map_partitions(move |it| [it.map(|x| time_of(&x)).max()])
            .collect()?;
        let lag = self.strategy.lag();
        let mut starts = Vec::with_capacity(maxima.len());
        let mut running = before.max_seen;
        for m in &maxima {
            starts.push(running);
            if let Some(m) = m {
                running = running.max(*m);
            }
        }
        let active = maxima.iter().any(Option::is_some);
        let last_active = if active {
            Some(time)
        } else {
            before.last_active
        };
        let idle = match (self.strategy.idle_timeout, last_active) {
            (Some(limit), Some(t)) => time - t >= limit,
            (Some(limit), None) => time - this.graph().zero_time().unwrap_or_default() >= limit,
            (None, _) => false,
        };
        let floor = before.watermark;
        let watermark = move |max_seen: EventTime| {
            if max_seen == NO_WATERMARK {
                floor
            } else {
                floor.max(max_seen.saturating_sub(lag))
            }
        };
        self.watermarks.record(
            time,
            Progress {
                watermark: watermark(running),
                max_seen: running,
                last_active,
                idle,
            },
        );
        let time_of = self.time_of.clone();
        let starts = Arc::new(starts);
        Ok(Some(batch.map_partitions_with_index(move |p, it| {
            let mut seen = starts[p];
            let time_of = time_of.clone();
            it.map(move |value| {
                let t = time_of(&value);
                let before = watermark(seen);
                seen = seen.max(t);
                Stamped {
                    value,
                    time: t,
                    watermark: before,
                }
            })
        })))
    }
}
