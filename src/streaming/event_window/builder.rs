//! Defining keyed windows: keying an event stream, lateness and output
//! mode, and the aggregation adapters (reduce, aggregate, process) behind
//! one `WindowAgg` trait.

use super::EventWindowOp;
use super::assigner::{Window, WindowAssigner, ms};
use super::key_state::Emit;
use crate::data::{Key, Value};
use crate::partitioner::Partitioning;
use crate::shared::Accumulator;
use crate::streaming::dstream::DStream;
use crate::streaming::state::StateMeter;
use crate::streaming::watermark::{EventStream, EventTime};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Which window results are emitted, and when. `Append`, `Update` and
/// `Complete` mean what they mean in Spark Structured Streaming;
/// `EachFiring` is Flink's event-time trigger with allowed lateness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Each window once, with its final value, when it closes (the
    /// watermark passes its end plus the allowed lateness). Spark's
    /// append mode.
    #[default]
    Append,
    /// Each batch, the windows whose aggregate changed in that batch, with
    /// their value at the end of the batch, before and after they fire;
    /// a window's state is dropped when it closes. Spark's update mode.
    Update,
    /// Each batch, every window seen so far with its current value. No
    /// window ever closes and no record is late (the watermark and the
    /// allowed lateness only decide `late_updates`), so state grows with
    /// the windows seen. Spark's complete mode.
    Complete,
    /// A result when the watermark reaches the window's end, and again for
    /// each late record (within the allowed lateness) that joins it.
    /// Flink's `EventTimeTrigger` with allowed lateness.
    EachFiring,
}

/// One emitted window result.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowResult<K, R> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: Window,
    /// The aggregate.
    pub value: R,
    /// How many records had joined the window after it fired (the
    /// watermark reached its end), when this was emitted; 0 for its first
    /// firing.
    pub late_updates: u32,
}

/// A keyed event stream.
#[must_use = "a stream being defined does nothing until it gets an output operation"]
pub struct KeyedEventStream<K, T> {
    pub(crate) events: EventStream<T>,
    pub(crate) key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
}

impl<T: Value> EventStream<T> {
    /// Partitions the records by `key_of`, for keyed windows.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{TumblingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// let out = run_batches(vec![vec![("a b".to_string(), 10i64)], vec![("c".to_string(), 5_000)]], |s| {
    ///     s.with_timestamps(|l| l.1, WatermarkStrategy::monotonous())
    ///         .key_by(|l| l.0.len()) // any key computed from the record
    ///         .window(TumblingWindows::of(Duration::from_secs(1)))
    ///         .reduce(|a, _| a)
    ///         .results
    ///         .map(|r| (r.key, r.window.start))
    /// })?;
    /// assert_eq!(out, [vec![], vec![(3, 0)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn key_by<K: Key>(
        &self,
        key_of: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> KeyedEventStream<K, T> {
        KeyedEventStream {
            events: self.clone(),
            key_of: Arc::new(key_of),
        }
    }
}

/// Keyed windows being defined: set lateness and output mode, then give
/// the aggregation.
#[must_use = "a stream being defined does nothing until it gets an output operation"]
pub struct WindowedStream<K, T> {
    keyed: KeyedEventStream<K, T>,
    assigner: Arc<dyn WindowAssigner>,
    lateness: EventTime,
    mode: OutputMode,
    partitioning: Partitioning,
}

impl<K: Key, T: Value> KeyedEventStream<K, T> {
    /// Windows from `assigner` per key.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{TumblingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// let out = run_batches(vec![vec![(1u8, 200i64), (1, 700)], vec![(2, 2_500)]], |s| {
    ///     s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///         .key_by(|e| e.0)
    ///         .window(TumblingWindows::of(Duration::from_millis(500)))
    ///         .aggregate(|_| 1u32, |n, _| n + 1, |a, b| a + b, |n| *n)
    ///         .results
    ///         .map(|r| (r.key, r.window.start, r.value))
    /// })?;
    /// assert_eq!(out, [vec![(1, 0, 1)], vec![(1, 500, 1)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn window(&self, assigner: impl WindowAssigner) -> WindowedStream<K, T> {
        WindowedStream {
            keyed: KeyedEventStream {
                events: self.events.clone(),
                key_of: self.key_of.clone(),
            },
            assigner: Arc::new(assigner),
            lateness: 0,
            mode: OutputMode::Append,
            partitioning: Partitioning::Default,
        }
    }
}

/// The results of keyed windows and the records that came too late.
#[must_use = "window results do nothing without an output operation"]
pub struct WindowedOutput<K, R, T> {
    /// Window results, as the output mode emits them.
    pub results: DStream<WindowResult<K, R>>,
    /// Records later than the allowed lateness.
    pub late: DStream<T>,
}

/// How a window's records are aggregated.
pub(crate) trait WindowAgg<K, T>: Send + Sync + 'static {
    type Acc: Value;
    type Out: Value;
    fn start(&self, x: T) -> Self::Acc;
    fn add(&self, acc: Self::Acc, x: T) -> Self::Acc;
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
    fn result(&self, key: &K, window: &Window, acc: &Self::Acc) -> Self::Out;
}

struct Reduce<F>(F);

impl<K, T: Value, F: Fn(T, T) -> T + Send + Sync + 'static> WindowAgg<K, T> for Reduce<F> {
    type Acc = T;
    type Out = T;
    fn start(&self, x: T) -> T {
        x
    }
    fn add(&self, acc: T, x: T) -> T {
        (self.0)(acc, x)
    }
    fn merge(&self, a: T, b: T) -> T {
        (self.0)(a, b)
    }
    fn result(&self, _: &K, _: &Window, acc: &T) -> T {
        acc.clone()
    }
}

struct Process<F>(F);

impl<K, T: Value, U: Value, F> WindowAgg<K, T> for Process<F>
where
    F: Fn(&K, &Window, &[T]) -> U + Send + Sync + 'static,
{
    type Acc = Vec<T>;
    type Out = U;
    fn start(&self, x: T) -> Vec<T> {
        vec![x]
    }
    fn add(&self, mut acc: Vec<T>, x: T) -> Vec<T> {
        acc.push(x);
        acc
    }
    fn merge(&self, mut a: Vec<T>, mut b: Vec<T>) -> Vec<T> {
        a.append(&mut b);
        a
    }
    fn result(&self, key: &K, window: &Window, acc: &Vec<T>) -> U {
        (self.0)(key, window, acc)
    }
}

struct Aggregate<C, A, M, F> {
    create: C,
    add: A,
    merge: M,
    finish: F,
}

impl<K, T, Acc: Value, R: Value, C, A, M, F> WindowAgg<K, T> for Aggregate<C, A, M, F>
where
    C: Fn(T) -> Acc + Send + Sync + 'static,
    A: Fn(Acc, T) -> Acc + Send + Sync + 'static,
    M: Fn(Acc, Acc) -> Acc + Send + Sync + 'static,
    F: Fn(&Acc) -> R + Send + Sync + 'static,
{
    type Acc = Acc;
    type Out = R;
    fn start(&self, x: T) -> Acc {
        (self.create)(x)
    }
    fn add(&self, acc: Acc, x: T) -> Acc {
        (self.add)(acc, x)
    }
    fn merge(&self, a: Acc, b: Acc) -> Acc {
        (self.merge)(a, b)
    }
    fn result(&self, _: &K, _: &Window, acc: &Acc) -> R {
        (self.finish)(acc)
    }
}

impl<K: Key, T: Value> WindowedStream<K, T> {
    /// Keeps windows open for records up to `d` late (after the watermark
    /// reaches the window's end): such a record updates its window, and in
    /// [`OutputMode::EachFiring`] re-fires it. Ignored by
    /// [`OutputMode::Complete`], which never closes a window.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{OutputMode, TumblingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// // The record at 900 ms comes after the watermark passed 1 000 ms but
    /// // within the allowed second: it re-fires its window.
    /// let out = run_batches(vec![vec![('k', 100i64), ('k', 1_200)], vec![('k', 900)]], |s| {
    ///     s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///         .key_by(|e| e.0)
    ///         .window(TumblingWindows::of(Duration::from_secs(1)))
    ///         .allowed_lateness(Duration::from_secs(1))
    ///         .output_mode(OutputMode::EachFiring)
    ///         .aggregate(|_| 1u32, |n, _| n + 1, |a, b| a + b, |n| *n)
    ///         .results
    ///         .map(|r| (r.window.start, r.value, r.late_updates))
    /// })?;
    /// assert_eq!(out, [vec![(0, 1, 0)], vec![(0, 2, 1)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn allowed_lateness(mut self, d: Duration) -> Self {
        self.lateness = ms(d);
        self
    }

    /// What is emitted (default [`OutputMode::Append`]).
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{OutputMode, TumblingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// // Update: each batch, the windows that changed in it, before they close.
    /// let out = run_batches(vec![vec![('k', 100i64)], vec![('k', 300)], vec![]], |s| {
    ///     s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///         .key_by(|e| e.0)
    ///         .window(TumblingWindows::of(Duration::from_secs(1)))
    ///         .output_mode(OutputMode::Update)
    ///         .aggregate(|_| 1u32, |n, _| n + 1, |a, b| a + b, |n| *n)
    ///         .results
    ///         .map(|r| (r.window.start, r.value))
    /// })?;
    /// assert_eq!(out, [vec![(0, 1)], vec![(0, 2)], vec![]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn output_mode(mut self, mode: OutputMode) -> Self {
        self.mode = mode;
        self
    }

    /// How keys are partitioned.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{TumblingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// let out = run_batches(vec![vec![(1u8, 10i64), (2, 20)], vec![(3, 5_000)]], |s| {
    ///     s.with_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///         .key_by(|e| e.0)
    ///         .window(TumblingWindows::of(Duration::from_secs(1)))
    ///         .partitioning(8) // window state and results in 8 partitions
    ///         .reduce(|a, _| a)
    ///         .results
    ///         .map(|r| r.key)
    /// })?;
    /// assert_eq!(out, [vec![], vec![1, 2]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn partitioning(mut self, p: impl Into<Partitioning>) -> Self {
        self.partitioning = p.into();
        self
    }

    /// Incremental aggregation with an associative `f`.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{TumblingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// // The largest reading (sensor, ms, value) per sensor and second.
    /// let readings = vec![vec![('s', 100i64, 3), ('s', 400, 9), ('s', 800, 4)], vec![('s', 2_000, 0)]];
    /// let out = run_batches(readings, |s| {
    ///     s.with_timestamps(|r| r.1, WatermarkStrategy::monotonous())
    ///         .key_by(|r| r.0)
    ///         .window(TumblingWindows::of(Duration::from_secs(1)))
    ///         .reduce(|a, b| if b.2 > a.2 { b } else { a })
    ///         .results
    ///         .map(|r| (r.window.start, r.value.2))
    /// })?;
    /// assert_eq!(out, [vec![], vec![(0, 9)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reduce(self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> WindowedOutput<K, T, T> {
        self.build(Reduce(f))
    }

    /// Incremental aggregation: `create` an accumulator from a window's
    /// first record, `add` records, `merge` accumulators (merging
    /// sessions), and `finish` it into the result.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{TumblingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// // The mean value per key and second: (sum, count) accumulated, divided at the end.
    /// let out = run_batches(vec![vec![('k', 100i64, 2.0), ('k', 200, 4.0)], vec![('k', 1_500, 0.0)]], |s| {
    ///     s.with_timestamps(|r| r.1, WatermarkStrategy::monotonous())
    ///         .key_by(|r| r.0)
    ///         .window(TumblingWindows::of(Duration::from_secs(1)))
    ///         .aggregate(
    ///             |r| (r.2, 1u32),
    ///             |(sum, n), r| (sum + r.2, n + 1),
    ///             |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2),
    ///             |(sum, n)| ((sum / *n as f64) * 10.0) as i64,
    ///         )
    ///         .results
    ///         .map(|r| (r.window.start, r.value))
    /// })?;
    /// assert_eq!(out, [vec![], vec![(0, 30)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn aggregate<Acc: Value, R: Value>(
        self,
        create: impl Fn(T) -> Acc + Send + Sync + 'static,
        add: impl Fn(Acc, T) -> Acc + Send + Sync + 'static,
        merge: impl Fn(Acc, Acc) -> Acc + Send + Sync + 'static,
        finish: impl Fn(&Acc) -> R + Send + Sync + 'static,
    ) -> WindowedOutput<K, R, T> {
        self.build(Aggregate {
            create,
            add,
            merge,
            finish,
        })
    }

    /// A full-window function: `f(key, window, records in arrival order)`
    /// when the window is emitted (the records are kept until the window
    /// closes).
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{SessionWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// // The pages of each session, in arrival order.
    /// let visits = vec![vec![("u".to_string(), 0i64, 'a'), ("u".to_string(), 300, 'b')], vec![("v".to_string(), 9_000, 'c')]];
    /// let out = run_batches(visits, |s| {
    ///     s.with_timestamps(|v| v.1, WatermarkStrategy::monotonous())
    ///         .key_by(|v| v.0.clone())
    ///         .window(SessionWindows::with_gap(Duration::from_secs(1)))
    ///         .process(|user, _window, visits| (user.clone(), visits.iter().map(|v| v.2).collect::<String>()))
    ///         .results
    ///         .map(|r| r.value)
    /// })?;
    /// assert_eq!(out, [vec![], vec![("u".to_string(), "ab".to_string())]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn process<U: Value>(
        self,
        f: impl Fn(&K, &Window, &[T]) -> U + Send + Sync + 'static,
    ) -> WindowedOutput<K, U, T> {
        self.build(Process(f))
    }

    fn build<G: WindowAgg<K, T>>(self, agg: G) -> WindowedOutput<K, G::Out, T> {
        let stamped = &self.keyed.events.stamped;
        let partitioner = self
            .partitioning
            .resolve(&[(None, stamped.context().default_parallelism())]);
        let meter = StateMeter::new();
        let late_meter = Arc::new(Mutex::new(BTreeMap::new()));
        let combined = stamped.stateful_child(
            "event_windows",
            &partitioner,
            &meter,
            EventWindowOp {
                input: stamped.clone(),
                watermarks: self.keyed.events.watermarks.clone(),
                key_of: self.keyed.key_of.clone(),
                assigner: self.assigner.clone(),
                lateness: self.lateness,
                mode: self.mode,
                agg: Arc::new(agg),
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
        let results = combined.derive("window_results", |rdd, _| {
            Ok(rdd.pipe_chunks("window_results", false, |input, out| {
                out.extend(input.drain(..).filter_map(|o| match o {
                    Emit::Result(r) => Some(r),
                    _ => None,
                }))
            }))
        });
        let late = combined.derive("late_records", |rdd, _| {
            Ok(rdd.pipe_chunks("late_records", false, |input, out| {
                out.extend(input.drain(..).filter_map(|o| match o {
                    Emit::Late(t) => Some(t),
                    _ => None,
                }))
            }))
        });
        WindowedOutput { results, late }
    }
}
