//! Event-time interval joins of two keyed event streams (Flink's interval
//! join, Structured Streaming's stream-stream join with a time bound):
//! left row `l` and right row `r` of one key join when
//! `l.time + lower <= r.time <= l.time + upper`.
//!
//! Semantics, per key, row by row in arrival order (the two inputs
//! unioned, each row carrying the combined watermark just before it, so
//! they do not depend on the batch interval):
//! - a row whose event time is below the watermark before it is *late*:
//!   it joins nothing, goes to its side's late stream and is counted in
//!   `BatchInfo::late_records`;
//! - any other row joins every buffered row of the other side within the
//!   bound (each pair is emitted once, when its second row arrives) and is
//!   buffered;
//! - a left row is dropped at the end of the first batch whose watermark
//!   passes `l.time + upper`, a right row when it passes `r.time - lower`:
//!   no on-time row of the other side can join it after that. An outer
//!   join then emits a row that joined nothing with `None` for the other
//!   side — never earlier.

use super::dstream::{DStream, StreamOp};
use super::event_window::KeyedEventStream;
use super::state::StateMeter;
use super::time::Time;
use super::watermark::{EventStream, EventTime, Stamped, WatermarkPolicy, keyed_in_arrival_order};
use crate::data::{Key, Value};
use crate::error::{Error, Result};
use crate::partitioner::{Partitioner, Partitioning};
use crate::rdd::Rdd;
use crate::shared::Accumulator;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A row of either input.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Side<L, R> {
    Left(L),
    Right(R),
}

/// Which unmatched rows an interval join emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Inner,
    LeftOuter,
    RightOuter,
    FullOuter,
}

impl Kind {
    fn keeps_left(self) -> bool {
        matches!(self, Kind::LeftOuter | Kind::FullOuter)
    }
    fn keeps_right(self) -> bool {
        matches!(self, Kind::RightOuter | Kind::FullOuter)
    }
}

/// A buffered row: event time, value, whether it joined a row yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Buffered<T> {
    time: EventTime,
    value: T,
    matched: bool,
}

/// One key's buffered rows of both sides.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyRows<L, R> {
    left: Vec<Buffered<L>>,
    right: Vec<Buffered<R>>,
}

/// What one batch of the operator produces.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Emit<K, L, R> {
    State(K, KeyRows<L, R>),
    Pair(K, Option<L>, Option<R>),
    Late(Side<L, R>),
}

/// The join condition: `l.time + lower <= r.time <= l.time + upper`.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    lower: EventTime,
    upper: EventTime,
}

/// Processing one key's rows within one batch.
struct KeyRun<'a, K, L, R> {
    key: &'a K,
    bounds: Bounds,
    kind: Kind,
    out: &'a mut Vec<Emit<K, L, R>>,
    late: &'a mut u64,
}

impl<K: Key, L: Value, R: Value> KeyRun<'_, K, L, R> {
    /// Drops the rows no on-time row can join any more, emitting the
    /// unmatched ones an outer join keeps.
    fn advance(&mut self, rows: &mut KeyRows<L, R>, watermark: EventTime) {
        let Bounds { lower, upper } = self.bounds;
        let (key, out) = (self.key, &mut *self.out);
        let keep_left = self.kind.keeps_left();
        rows.left.retain_mut(|l| {
            let alive = l.time.saturating_add(upper) >= watermark;
            if !alive && keep_left && !l.matched {
                out.push(Emit::Pair(key.clone(), Some(l.value.clone()), None));
            }
            alive
        });
        let keep_right = self.kind.keeps_right();
        rows.right.retain_mut(|r| {
            let alive = r.time.saturating_sub(lower) >= watermark;
            if !alive && keep_right && !r.matched {
                out.push(Emit::Pair(key.clone(), None, Some(r.value.clone())));
            }
            alive
        });
    }

    /// Joins a row (with the watermark just before it) with the other
    /// side's buffered rows and buffers it, or diverts it as late.
    fn add(&mut self, rows: &mut KeyRows<L, R>, s: Stamped<Side<L, R>>) {
        if s.time < s.watermark {
            *self.late += 1;
            self.out.push(Emit::Late(s.value));
            return;
        }
        let Bounds { lower, upper } = self.bounds;
        let time = s.time;
        match s.value {
            Side::Left(l) => {
                let (from, to) = (time.saturating_add(lower), time.saturating_add(upper));
                let mut matched = false;
                for r in rows
                    .right
                    .iter_mut()
                    .filter(|r| from <= r.time && r.time <= to)
                {
                    r.matched = true;
                    matched = true;
                    self.out.push(Emit::Pair(
                        self.key.clone(),
                        Some(l.clone()),
                        Some(r.value.clone()),
                    ));
                }
                rows.left.push(Buffered {
                    time,
                    value: l,
                    matched,
                });
            }
            Side::Right(r) => {
                let (from, to) = (time.saturating_sub(upper), time.saturating_sub(lower));
                let mut matched = false;
                for l in rows
                    .left
                    .iter_mut()
                    .filter(|l| from <= l.time && l.time <= to)
                {
                    l.matched = true;
                    matched = true;
                    self.out.push(Emit::Pair(
                        self.key.clone(),
                        Some(l.value.clone()),
                        Some(r.clone()),
                    ));
                }
                rows.right.push(Buffered {
                    time,
                    value: r,
                    matched,
                });
            }
        }
    }
}

/// The stream operator: each batch, one key's buffered rows are cogrouped
/// with its new rows of both sides and replayed in arrival order.
struct IntervalJoinOp<K, L, R> {
    input: DStream<Stamped<Side<L, R>>>,
    watermarks: Arc<super::watermark::Watermarks>,
    key_of: Arc<dyn Fn(&Side<L, R>) -> K + Send + Sync>,
    bounds: Bounds,
    kind: Kind,
    partitioner: Partitioner,
    meter: StateMeter,
    late_meter: Arc<Mutex<BTreeMap<Time, Accumulator<u64>>>>,
}

impl<K: Key, L: Value, R: Value> StreamOp<Emit<K, L, R>> for IntervalJoinOp<K, L, R> {
    fn compute(
        &self,
        this: &DStream<Emit<K, L, R>>,
        time: Time,
    ) -> Result<Option<Rdd<Emit<K, L, R>>>> {
        let ctx = this.context().clone();
        let before = match this.previous_batch(time) {
            Some(b) => this.get_or_compute(b)?,
            None => None,
        };
        let previous: Rdd<(K, KeyRows<L, R>)> = match before {
            Some(r) => r.pipe_chunks("join_state", true, |input, out| {
                out.extend(input.drain(..).filter_map(|e| match e {
                    Emit::State(k, s) => Some((k, s)),
                    _ => None,
                }))
            }),
            None => ctx.empty(),
        };
        let batch = self.input.dataset_or_empty(time)?;
        let keyed = keyed_in_arrival_order(&batch, self.key_of.clone());
        let watermark = self.watermarks.at(time).watermark;
        let (bounds, kind) = (self.bounds, self.kind);
        let meter = self.meter.for_batch(&ctx, time);
        let late_count = ctx.sum_accumulator::<u64>("late records");
        self.late_meter.lock().insert(time, late_count.clone());
        let out = previous
            .cogroup_with(&keyed, self.partitioner.clone())
            .pipe_chunks("interval_join", true, move |input, out| {
                let start = out.len();
                let (mut keys, mut buffered, mut late) = (0u64, 0u64, 0u64);
                for (key, (state, mut records)) in input.drain(..) {
                    let mut rows = state.into_iter().next().unwrap_or(KeyRows {
                        left: Vec::new(),
                        right: Vec::new(),
                    });
                    records.sort_unstable_by_key(|(seq, _)| *seq);
                    let mut run = KeyRun {
                        key: &key,
                        bounds,
                        kind,
                        out,
                        late: &mut late,
                    };
                    // Rows expire only at batch ends: a union's rows carry
                    // watermarks that are not monotone in arrival order
                    // (each side's is capped by the other side's at the
                    // previous boundary), and a right row must still meet
                    // a left row a later-stamped left row outlived.
                    for (_, s) in records {
                        run.add(&mut rows, s);
                    }
                    run.advance(&mut rows, watermark);
                    if !(rows.left.is_empty() && rows.right.is_empty()) {
                        keys += 1;
                        buffered += (rows.left.len() + rows.right.len()) as u64;
                        out.push(Emit::State(key, rows));
                    }
                }
                let bytes = crate::memory::estimate_size(&out[start..]) as u64;
                meter.add((keys, buffered, bytes));
                late_count.add(late);
            });
        Ok(Some(this.graph().cut_lineage(out, this.id(), time)))
    }
}

/// An interval join being defined: choose inner or outer.
#[must_use = "a join being defined does nothing until it gets an output operation"]
pub struct IntervalJoin<K, L, R> {
    union: EventStream<Side<L, R>>,
    key_of: Arc<dyn Fn(&Side<L, R>) -> K + Send + Sync>,
    bounds: Bounds,
    partitioning: Partitioning,
}

/// What an interval join gives: the joined rows, and the rows of each side
/// that came too late to join.
#[must_use = "join results do nothing without an output operation"]
pub struct IntervalJoinOutput<T, L, R> {
    /// The joined rows, as the join kind emits them.
    pub joined: DStream<T>,
    /// Left rows whose event time was below the watermark when they came.
    pub late_left: DStream<L>,
    /// Right rows whose event time was below the watermark when they came.
    pub late_right: DStream<R>,
}

impl<K: Key, L: Value> KeyedEventStream<K, L> {
    /// Joins this stream's rows with `other`'s of the same key whose event
    /// time is within `[lower, upper]` milliseconds of theirs: left row `l`
    /// and right row `r` join when `l.time + lower <= r.time <= l.time +
    /// upper` (Flink's `intervalJoin(..).between(lower, upper)`). The
    /// watermark is the smaller of the two inputs' ([`WatermarkPolicy::Min`]);
    /// rows are buffered only as long as the bound allows (see
    /// [`IntervalJoin`] for the kinds).
    ///
    /// [`start`](super::StreamingContext::start) is an `InvalidArgument` if
    /// `lower > upper` or the streams belong to different streaming
    /// contexts.
    ///
    /// Ad impressions `(ad, ms)` joined with the clicks `(ad, ms)` that
    /// came within 1 s after them:
    ///
    /// ```
    /// use spate::streaming::{ManualClock, StreamQueue, StreamingContext, Time, WatermarkStrategy};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let clock = ManualClock::new();
    /// let tick = Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    /// let (shown, clicked) = (StreamQueue::new(), StreamQueue::new());
    /// shown.push(ctx.parallelize(vec![('x', 1_000i64), ('y', 1_000)], 1));
    /// clicked.push(ctx.parallelize(vec![('x', 1_400i64), ('y', 2_500)], 1));
    /// // Both watermarks pass 2 000, so the unclicked 'y' is final.
    /// shown.push(ctx.parallelize(vec![('z', 9_000i64)], 1));
    /// clicked.push(ctx.parallelize(vec![('z', 9_000i64)], 1));
    /// let stamp = |q| ssc.queue_stream(q, spate::streaming::Dequeue::OneAtATime).with_timestamps(|e: &(char, i64)| e.1, WatermarkStrategy::monotonous());
    /// let impressions = stamp(&shown).key_by(|e| e.0);
    /// let clicks = stamp(&clicked).key_by(|e| e.0);
    /// let out = impressions.interval_join(&clicks, 0, 1_000).left_outer();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// out.joined.foreach_rdd(move |rdd, _| {
    ///     sink.lock().unwrap().extend(rdd.collect()?);
    ///     Ok(())
    /// })?;
    /// ssc.start()?;
    /// clock.advance(2 * tick);
    /// ssc.wait_for_batch(Time::from_millis(200))?;
    /// let mut seen = seen.lock().unwrap().clone();
    /// seen.sort();
    /// assert_eq!(seen, [
    ///     ('x', (('x', 1_000), Some(('x', 1_400)))),
    ///     ('y', (('y', 1_000), None)),
    ///     ('z', (('z', 9_000), Some(('z', 9_000)))),
    /// ]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn interval_join<R: Value>(
        &self,
        other: &KeyedEventStream<K, R>,
        lower: EventTime,
        upper: EventTime,
    ) -> IntervalJoin<K, L, R> {
        self.events.stamped.graph().refuse_unless(if lower > upper {
            Err(Error::InvalidArgument(format!(
                "interval_join: the lower bound {lower} ms is above the upper bound {upper} ms"
            )))
        } else {
            Ok(())
        });
        let left = tagged(&self.events, Side::Left);
        let right = tagged(&other.events, Side::Right);
        let union = left.union_with(&right, WatermarkPolicy::Min);
        let (key_left, key_right) = (self.key_of.clone(), other.key_of.clone());
        let key_of: Arc<dyn Fn(&Side<L, R>) -> K + Send + Sync> = Arc::new(move |s| match s {
            Side::Left(l) => key_left(l),
            Side::Right(r) => key_right(r),
        });
        IntervalJoin {
            union,
            key_of,
            bounds: Bounds { lower, upper },
            partitioning: Partitioning::Default,
        }
    }
}

/// `events` with each value wrapped by `side`, keeping its event time,
/// watermark and watermark history.
fn tagged<T: Value, L: Value, R: Value>(
    events: &EventStream<T>,
    side: fn(T) -> Side<L, R>,
) -> EventStream<Side<L, R>> {
    EventStream {
        stamped: events.stamped.map(move |s| Stamped {
            value: side(s.value),
            time: s.time,
            watermark: s.watermark,
        }),
        watermarks: events.watermarks.clone(),
    }
}

impl<K: Key, L: Value, R: Value> IntervalJoin<K, L, R> {
    /// How keys are partitioned.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// use spate::streaming::{DStream, WatermarkStrategy};
    /// let out = run_batches2(vec![vec![(1u8, 100i64)]], vec![vec![(1u8, 150i64)]], |l, r| {
    ///     let keyed = |s: &DStream<(u8, i64)>| {
    ///         s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous()).key_by(|e| e.0)
    ///     };
    ///     keyed(l).interval_join(&keyed(r), 0, 100).partitioning(4).inner().joined
    /// })?;
    /// assert_eq!(out, [vec![(1, ((1, 100), (1, 150)))]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn partitioning(mut self, p: impl Into<Partitioning>) -> Self {
        self.partitioning = p.into();
        self
    }

    /// The pairs that join.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// use spate::streaming::{DStream, WatermarkStrategy};
    /// // Orders (id, ms) and the payments (id, ms) that came within 500 ms.
    /// let orders = vec![vec![('a', 1_000i64), ('b', 1_000)]];
    /// let payments = vec![vec![('a', 1_300i64), ('b', 2_000)]];
    /// let out = run_batches2(orders, payments, |o, p| {
    ///     let keyed = |s: &DStream<(char, i64)>| {
    ///         s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous()).key_by(|e| e.0)
    ///     };
    ///     keyed(o).interval_join(&keyed(p), 0, 500).inner().joined
    /// })?;
    /// assert_eq!(out, [vec![('a', (('a', 1_000), ('a', 1_300)))]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn inner(self) -> IntervalJoinOutput<(K, (L, R)), L, R> {
        self.build(Kind::Inner, |k, l, r| Some((k, (l?, r?))))
    }

    /// The pairs, and each left row that joined nothing, with `None`, once
    /// the watermark passes its time plus the upper bound.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// use spate::streaming::{DStream, WatermarkStrategy};
    /// let orders = vec![vec![('a', 1_000i64), ('b', 1_000)], vec![('z', 9_000)]];
    /// let payments = vec![vec![('a', 1_300i64)], vec![('z', 9_000)]];
    /// let out = run_batches2(orders, payments, |o, p| {
    ///     let keyed = |s: &DStream<(char, i64)>| {
    ///         s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous()).key_by(|e| e.0)
    ///     };
    ///     keyed(o).interval_join(&keyed(p), 0, 500).left_outer().joined
    /// })?;
    /// // 'b' is emitted unpaid once both watermarks pass 1 500 ms.
    /// assert_eq!(out[0], [('a', (('a', 1_000), Some(('a', 1_300))))]);
    /// assert_eq!(out[1], [('b', (('b', 1_000), None)), ('z', (('z', 9_000), Some(('z', 9_000))))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn left_outer(self) -> IntervalJoinOutput<(K, (L, Option<R>)), L, R> {
        self.build(Kind::LeftOuter, |k, l, r| Some((k, (l?, r))))
    }

    /// The pairs, and each right row that joined nothing, with `None`, once
    /// the watermark passes its time minus the lower bound.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// use spate::streaming::{DStream, WatermarkStrategy};
    /// let orders = vec![vec![('a', 1_000i64)], vec![('z', 9_000)]];
    /// let payments = vec![vec![('a', 1_300i64), ('c', 1_300)], vec![('z', 9_000)]];
    /// let out = run_batches2(orders, payments, |o, p| {
    ///     let keyed = |s: &DStream<(char, i64)>| {
    ///         s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous()).key_by(|e| e.0)
    ///     };
    ///     keyed(o).interval_join(&keyed(p), 0, 500).right_outer().joined
    /// })?;
    /// assert_eq!(out[0], [('a', (Some(('a', 1_000)), ('a', 1_300)))]);
    /// assert_eq!(out[1], [('c', (None, ('c', 1_300))), ('z', (Some(('z', 9_000)), ('z', 9_000)))]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn right_outer(self) -> IntervalJoinOutput<(K, (Option<L>, R)), L, R> {
        self.build(Kind::RightOuter, |k, l, r| Some((k, (l, r?))))
    }

    /// The pairs, and the rows of either side that joined nothing.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches2;
    /// use spate::streaming::{DStream, WatermarkStrategy};
    /// let orders = vec![vec![('a', 1_000i64), ('b', 1_000)], vec![('z', 9_000)]];
    /// let payments = vec![vec![('a', 1_300i64), ('c', 1_300)], vec![('z', 9_000)]];
    /// let out = run_batches2(orders, payments, |o, p| {
    ///     let keyed = |s: &DStream<(char, i64)>| {
    ///         s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous()).key_by(|e| e.0)
    ///     };
    ///     keyed(o).interval_join(&keyed(p), 0, 500).full_outer().joined
    /// })?;
    /// assert_eq!(out[0], [('a', (Some(('a', 1_000)), Some(('a', 1_300))))]);
    /// assert_eq!(
    ///     out[1],
    ///     [('b', (Some(('b', 1_000)), None)), ('c', (None, Some(('c', 1_300)))), ('z', (Some(('z', 9_000)), Some(('z', 9_000))))]
    /// );
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn full_outer(self) -> IntervalJoinOutput<(K, (Option<L>, Option<R>)), L, R> {
        self.build(Kind::FullOuter, |k, l, r| Some((k, (l, r))))
    }

    fn build<T: Value>(
        self,
        kind: Kind,
        shape: fn(K, Option<L>, Option<R>) -> Option<T>,
    ) -> IntervalJoinOutput<T, L, R> {
        let stamped = &self.union.stamped;
        let partitioner = self
            .partitioning
            .resolve(&[(None, stamped.context().default_parallelism())]);
        let meter = StateMeter::new();
        let late_meter = Arc::new(Mutex::new(BTreeMap::new()));
        let combined = stamped.stateful_child(
            "interval_join",
            &partitioner,
            &meter,
            IntervalJoinOp {
                input: stamped.clone(),
                watermarks: self.union.watermarks.clone(),
                key_of: self.key_of,
                bounds: self.bounds,
                kind,
                partitioner: partitioner.clone(),
                meter: meter.clone(),
                late_meter: late_meter.clone(),
            },
        );
        combined
            .graph()
            .meters
            .add_late_meter(Box::new(move |time| {
                late_meter
                    .lock()
                    .remove(&time)
                    .map_or(0, |a: Accumulator<u64>| a.value())
            }));
        let joined = combined.derive("interval_join_rows", move |rdd, _| {
            Ok(
                rdd.pipe_chunks("interval_join_rows", false, move |input, out| {
                    out.extend(input.drain(..).filter_map(|e| match e {
                        Emit::Pair(k, l, r) => shape(k, l, r),
                        _ => None,
                    }))
                }),
            )
        });
        let late_left = combined.derive("late_left_rows", |rdd, _| {
            Ok(rdd.pipe_chunks("late_left_rows", false, |input, out| {
                out.extend(input.drain(..).filter_map(|e| match e {
                    Emit::Late(Side::Left(l)) => Some(l),
                    _ => None,
                }))
            }))
        });
        let late_right = combined.derive("late_right_rows", |rdd, _| {
            Ok(rdd.pipe_chunks("late_right_rows", false, |input, out| {
                out.extend(input.drain(..).filter_map(|e| match e {
                    Emit::Late(Side::Right(r)) => Some(r),
                    _ => None,
                }))
            }))
        });
        IntervalJoinOutput {
            joined,
            late_left,
            late_right,
        }
    }
}
