//! Keyed event-time windows over an [`EventStream`]: tumbling, sliding,
//! session (merging) and custom assigners (count windows as an example),
//! with incremental or full-window aggregation, allowed lateness, a
//! late-data side stream and two output modes.
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
//! [`OutputMode::Update`] emits a result at each firing and re-firing;
//! [`OutputMode::Append`] emits each window once, when it closes, with its
//! final value.

use super::dstream::{DStream, StreamOp};
use super::state::StateMeter;
use super::time::Time;
use super::watermark::{EventStream, EventTime, Stamped, keyed_in_arrival_order};
use crate::data::{Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::partitioner::Partitioning;
use crate::rdd::Rdd;
use crate::shared::Accumulator;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A window `[start, end)` in event time (or, for count windows, in the
/// key's record count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First instant in the window.
    pub start: EventTime,
    /// First instant after it.
    pub end: EventTime,
}

/// When the windows of an assigner fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// When the watermark reaches the window's end.
    EventTime,
    /// When the window holds this many records (it then closes at once;
    /// watermarks and lateness do not apply).
    Count(u64),
}

/// Assigns records to windows. Implement it for custom windows; see
/// [`CountWindows`].
pub trait WindowAssigner: Send + Sync + 'static {
    /// The windows of a record with event time `time` that is the key's
    /// `index`-th record (0, 1, 2, ... in arrival order).
    fn assign(&self, time: EventTime, index: u64) -> Vec<Window>;
    /// Whether overlapping or touching windows of a key merge (sessions).
    fn merges(&self) -> bool {
        false
    }
    /// When windows fire.
    fn trigger(&self) -> Trigger {
        Trigger::EventTime
    }
}

fn ms(d: Duration) -> EventTime {
    d.as_millis() as EventTime
}

/// Fixed-size, non-overlapping windows aligned to 0.
#[derive(Clone, Debug)]
pub struct TumblingWindows {
    size: EventTime,
}

impl TumblingWindows {
    /// Windows of `size`.
    pub fn of(size: Duration) -> Self {
        TumblingWindows {
            size: ms(size).max(1),
        }
    }
}

impl WindowAssigner for TumblingWindows {
    fn assign(&self, time: EventTime, _: u64) -> Vec<Window> {
        let start = time.div_euclid(self.size) * self.size;
        vec![Window {
            start,
            end: start + self.size,
        }]
    }
}

/// Windows of `size` starting every `slide`, aligned to 0.
#[derive(Clone, Debug)]
pub struct SlidingWindows {
    size: EventTime,
    slide: EventTime,
}

impl SlidingWindows {
    /// Windows of `size`, one starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingWindows {
            size: ms(size).max(1),
            slide: ms(slide).max(1),
        }
    }
}

impl WindowAssigner for SlidingWindows {
    fn assign(&self, time: EventTime, _: u64) -> Vec<Window> {
        let last_start = time.div_euclid(self.slide) * self.slide;
        let mut out = Vec::new();
        let mut start = last_start;
        while start > time - self.size {
            out.push(Window {
                start,
                end: start + self.size,
            });
            start -= self.slide;
        }
        out.reverse();
        out
    }
}

/// Sessions: a record opens `[time, time + gap)`; sessions of a key that
/// overlap or touch merge.
#[derive(Clone, Debug)]
pub struct SessionWindows {
    gap: EventTime,
}

impl SessionWindows {
    /// Sessions that end after `gap` without records.
    pub fn with_gap(gap: Duration) -> Self {
        SessionWindows {
            gap: ms(gap).max(1),
        }
    }
}

impl WindowAssigner for SessionWindows {
    fn assign(&self, time: EventTime, _: u64) -> Vec<Window> {
        vec![Window {
            start: time,
            end: time + self.gap,
        }]
    }
    fn merges(&self) -> bool {
        true
    }
}

/// Every `n` records of a key, in arrival order, form a window (its bounds
/// count records: `[k·n, (k+1)·n)`); it fires when full. An example of a
/// custom assigner.
#[derive(Clone, Debug)]
pub struct CountWindows {
    n: u64,
}

impl CountWindows {
    /// Windows of `n` records.
    pub fn of(n: u64) -> Self {
        CountWindows { n: n.max(1) }
    }
}

impl WindowAssigner for CountWindows {
    fn assign(&self, _: EventTime, index: u64) -> Vec<Window> {
        let start = (index / self.n * self.n) as EventTime;
        vec![Window {
            start,
            end: start + self.n as EventTime,
        }]
    }
    fn trigger(&self) -> Trigger {
        Trigger::Count(self.n)
    }
}

/// What is emitted: final results once, or every update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Each window once, when it closes (watermark past end + lateness).
    #[default]
    Append,
    /// At the firing and at every re-firing by a late record.
    Update,
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
    /// How many late records had re-fired the window when this was
    /// emitted (0 for the on-time firing).
    pub late_updates: u32,
}

/// A keyed event stream.
pub struct KeyedEventStream<K, T> {
    pub(crate) events: EventStream<T>,
    pub(crate) key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
}

impl<T: Value> EventStream<T> {
    /// Partitions the records by `key_of`, for keyed windows.
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
pub struct WindowedStream<K, T> {
    keyed: KeyedEventStream<K, T>,
    assigner: Arc<dyn WindowAssigner>,
    lateness: EventTime,
    mode: OutputMode,
    partitioning: Partitioning,
}

impl<K: Key, T: Value> KeyedEventStream<K, T> {
    /// Windows from `assigner` per key.
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
    /// Keeps windows open for records up to `d` late: each re-fires its
    /// window with an updated result.
    pub fn allowed_lateness(mut self, d: Duration) -> Self {
        self.lateness = ms(d);
        self
    }

    /// What is emitted (default [`OutputMode::Append`]).
    pub fn output_mode(mut self, mode: OutputMode) -> Self {
        self.mode = mode;
        self
    }

    /// How keys are partitioned.
    pub fn partitioning(mut self, p: impl Into<Partitioning>) -> Self {
        self.partitioning = p.into();
        self
    }

    /// Incremental aggregation with an associative `f`.
    pub fn reduce(self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> WindowedOutput<K, T, T> {
        self.build(Reduce(f))
    }

    /// Incremental aggregation: `create` an accumulator from a window's
    /// first record, `add` records, `merge` accumulators (merging
    /// sessions), and `finish` it into the result.
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
        combined.graph().add_late_meter(Box::new(move |time| {
            late_meter
                .lock()
                .remove(&time)
                .map_or(0, |a: Accumulator<u64>| a.value())
        }));
        let results = combined.derive("window_results", |rdd, _| {
            Ok(rdd.pipe("window_results", false, |input, out| {
                out.extend(input.drain(..).filter_map(|o| match o {
                    Emit::Result(r) => Some(r),
                    _ => None,
                }))
            }))
        });
        let late = combined.derive("late_records", |rdd, _| {
            Ok(rdd.pipe("late_records", false, |input, out| {
                out.extend(input.drain(..).filter_map(|o| match o {
                    Emit::Late(t) => Some(t),
                    _ => None,
                }))
            }))
        });
        WindowedOutput { results, late }
    }
}

/// One key's open windows and how many records it has seen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyWindows<A> {
    records: u64,
    open: Vec<Open<A>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Open<A> {
    window: Window,
    acc: A,
    fired: bool,
    late_updates: u32,
}

/// What one batch of the operator produces.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Emit<K, A, R, T> {
    State(K, KeyWindows<A>),
    Result(WindowResult<K, R>),
    Late(T),
}

struct EventWindowOp<K, T, G: WindowAgg<K, T>> {
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

type Out<K, T, G> = Emit<K, <G as WindowAgg<K, T>>::Acc, <G as WindowAgg<K, T>>::Out, T>;

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
            Some(r) => r.pipe("window_state", true, |input, out| {
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
            .pipe("event_windows", true, move |input, out| {
                let start = out.len();
                let (mut keys, mut late) = (0u64, 0u64);
                for (key, (state, mut records)) in input.drain(..) {
                    let mut state = state.into_iter().next().unwrap_or(KeyWindows {
                        records: 0,
                        open: Vec::new(),
                    });
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
                    for (_, s) in records {
                        run.advance(&mut state, s.watermark);
                        run.add(&mut state, s);
                    }
                    run.advance(&mut state, watermark);
                    if !state.open.is_empty() {
                        keys += 1;
                        out.push(Emit::State(key, state));
                    }
                }
                let bytes = crate::memory::estimate_size(&out[start..]) as u64;
                meter.add((keys, bytes));
                late_count.add(late);
            });
        Ok(Some(this.graph().cut_lineage(out, this.id(), time)))
    }
}

/// Processing one key's records within one batch.
struct KeyRun<'a, K, T, G: WindowAgg<K, T>> {
    key: &'a K,
    assigner: &'a dyn WindowAssigner,
    agg: &'a G,
    lateness: EventTime,
    mode: OutputMode,
    out: &'a mut Vec<Out<K, T, G>>,
    late: &'a mut u64,
}

impl<K: Key, T: Value, G: WindowAgg<K, T>> KeyRun<'_, K, T, G> {
    /// Emits `w`'s current result. Takes the fields it needs rather than
    /// `self`, so callers can pass a window still inside the key's state.
    fn emit(out: &mut Vec<Out<K, T, G>>, key: &K, agg: &G, w: &Open<G::Acc>) {
        out.push(Emit::Result(WindowResult {
            key: key.clone(),
            window: w.window,
            value: agg.result(key, &w.window, &w.acc),
            late_updates: w.late_updates,
        }));
    }

    /// Fires the windows the watermark has reached and closes those it
    /// has passed by the lateness. Keeps the open windows in order.
    fn advance(&mut self, state: &mut KeyWindows<G::Acc>, watermark: EventTime) {
        if self.assigner.trigger() != Trigger::EventTime {
            return;
        }
        let mut i = 0;
        while i < state.open.len() {
            let w = &mut state.open[i];
            if !w.fired && w.window.end <= watermark {
                w.fired = true;
                if self.mode == OutputMode::Update {
                    Self::emit(self.out, self.key, self.agg, w);
                }
            }
            if w.window.end.saturating_add(self.lateness) <= watermark {
                let w = state.open.remove(i);
                if self.mode == OutputMode::Append {
                    Self::emit(self.out, self.key, self.agg, &w);
                }
                continue;
            }
            i += 1;
        }
    }

    fn add(&mut self, state: &mut KeyWindows<G::Acc>, s: Stamped<T>) {
        let index = state.records;
        state.records += 1;
        let windows = self.assigner.assign(s.time, index);
        let event_time = self.assigner.trigger() == Trigger::EventTime;
        let (lateness, watermark) = (self.lateness, s.watermark);
        let is_late = move |w: &Window| event_time && w.end.saturating_add(lateness) <= watermark;
        if self.assigner.merges() {
            // A merging assigner gives one window per record.
            if let Some(w) = windows.into_iter().next() {
                self.add_merging(state, w, s.value, is_late);
            }
            return;
        }
        if windows.iter().all(is_late) {
            *self.late += 1;
            self.out.push(Emit::Late(s.value));
            return;
        }
        let joined: Vec<Window> = windows.into_iter().filter(|w| !is_late(w)).collect();
        let mut value = Some(s.value);
        for (j, w) in joined.iter().enumerate() {
            // The last window takes the record; earlier ones get copies.
            let x = if j + 1 == joined.len() {
                value.take().expect("taken by the last window only")
            } else {
                value.clone().expect("present until the last window")
            };
            let i = match state.open.binary_search_by_key(w, |o| o.window) {
                Ok(i) => {
                    let mut o = state.open.remove(i);
                    o.acc = self.agg.add(o.acc, x);
                    if o.fired {
                        o.late_updates += 1;
                        if self.mode == OutputMode::Update {
                            Self::emit(self.out, self.key, self.agg, &o);
                        }
                    }
                    state.open.insert(i, o);
                    i
                }
                Err(i) => {
                    let acc = self.agg.start(x);
                    state.open.insert(
                        i,
                        Open {
                            window: *w,
                            acc,
                            fired: false,
                            late_updates: 0,
                        },
                    );
                    i
                }
            };
            if let Trigger::Count(n) = self.assigner.trigger() {
                let count = (index + 1) as EventTime - state.open[i].window.start;
                if count as u64 >= n {
                    let o = state.open.remove(i);
                    Self::emit(self.out, self.key, self.agg, &o);
                }
            }
        }
    }

    /// Adds a record whose window is `w` to a merging assigner's windows:
    /// `w` merges with every open window it overlaps or touches.
    fn add_merging(
        &mut self,
        state: &mut KeyWindows<G::Acc>,
        w: Window,
        value: T,
        is_late: impl Fn(&Window) -> bool,
    ) {
        let touching: Vec<usize> = (0..state.open.len())
            .filter(|&i| {
                let o = state.open[i].window;
                o.start <= w.end && w.start <= o.end
            })
            .collect();
        let mut merged = w;
        for &i in &touching {
            merged.start = merged.start.min(state.open[i].window.start);
            merged.end = merged.end.max(state.open[i].window.end);
        }
        if is_late(&merged) {
            *self.late += 1;
            self.out.push(Emit::Late(value));
            return;
        }
        // The open windows are in order, so removing the touching ones
        // from the back and reversing gives them earliest first, and the
        // accumulators merge in time order.
        let mut parts: Vec<Open<G::Acc>> = touching
            .iter()
            .rev()
            .map(|&i| state.open.remove(i))
            .collect();
        parts.reverse();
        let (mut fired, mut late_updates) = (false, 0);
        let mut merged_acc: Option<G::Acc> = None;
        for p in parts {
            fired |= p.fired;
            late_updates = late_updates.max(p.late_updates);
            merged_acc = Some(match merged_acc {
                Some(a) => self.agg.merge(a, p.acc),
                None => p.acc,
            });
        }
        let acc = match merged_acc {
            Some(m) => self.agg.add(m, value),
            None => self.agg.start(value),
        };
        let mut open = Open {
            window: merged,
            acc,
            fired,
            late_updates,
        };
        if fired {
            open.late_updates += 1;
            if self.mode == OutputMode::Update {
                Self::emit(self.out, self.key, self.agg, &open);
            }
        }
        let at = state.open.partition_point(|o| o.window < merged);
        state.open.insert(at, open);
    }
}
