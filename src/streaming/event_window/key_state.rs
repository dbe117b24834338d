//! One key's windows as a state machine, replayed record by record in
//! arrival order: fire when the watermark reaches a window's end, re-fire
//! when a late record joins a fired window, close at end + lateness,
//! divert records whose windows all closed, merge touching sessions.

use super::assigner::{Trigger, Window, WindowAssigner};
use super::builder::{OutputMode, WindowAgg, WindowResult};
use crate::data::{Key, Value};
use crate::streaming::watermark::{EventTime, Stamped};
use serde::{Deserialize, Serialize};

/// What the operator emits for one key.
pub(crate) type Out<K, T, G> = Emit<K, <G as WindowAgg<K, T>>::Acc, <G as WindowAgg<K, T>>::Out, T>;

/// One key's open windows and how many records it has seen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyWindows<A> {
    records: u64,
    open: Vec<Open<A>>,
}

impl<A> KeyWindows<A> {
    /// A key seen for the first time.
    pub(super) fn new() -> Self {
        KeyWindows {
            records: 0,
            open: Vec::new(),
        }
    }

    /// Whether no window of the key is open (its state can go).
    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// How many windows of the key are open (state rows).
    pub(super) fn windows_open(&self) -> usize {
        self.open.len()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Open<A> {
    window: Window,
    acc: A,
    fired: bool,
    late_updates: u32,
    /// Whether a record joined the window in the batch being processed
    /// (for [`OutputMode::Update`]); always false between batches.
    #[serde(skip)]
    changed: bool,
}

/// What one batch of the operator produces.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Emit<K, A, R, T> {
    State(K, KeyWindows<A>),
    Result(WindowResult<K, R>),
    Late(T),
}

/// Processing one key's records within one batch.
pub(super) struct KeyRun<'a, K, T, G: WindowAgg<K, T>> {
    pub(super) key: &'a K,
    pub(super) assigner: &'a dyn WindowAssigner,
    pub(super) agg: &'a G,
    pub(super) lateness: EventTime,
    pub(super) mode: OutputMode,
    pub(super) out: &'a mut Vec<Out<K, T, G>>,
    pub(super) late: &'a mut u64,
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
    pub(super) fn advance(&mut self, state: &mut KeyWindows<G::Acc>, watermark: EventTime) {
        if self.assigner.trigger() != Trigger::EventTime {
            return;
        }
        let mut i = 0;
        while i < state.open.len() {
            let w = &mut state.open[i];
            if !w.fired && w.window.end <= watermark {
                w.fired = true;
                if self.mode == OutputMode::EachFiring {
                    Self::emit(self.out, self.key, self.agg, w);
                }
            }
            if self.mode != OutputMode::Complete
                && w.window.end.saturating_add(self.lateness) <= watermark
            {
                let w = state.open.remove(i);
                if self.mode == OutputMode::Append || self.mode == OutputMode::Update && w.changed {
                    Self::emit(self.out, self.key, self.agg, &w);
                }
                continue;
            }
            i += 1;
        }
    }

    /// Ends the key's batch: [`OutputMode::Update`] emits the windows
    /// records joined, [`OutputMode::Complete`] every window.
    pub(super) fn end_batch(&mut self, state: &mut KeyWindows<G::Acc>) {
        for w in &mut state.open {
            let emit = match self.mode {
                OutputMode::Update => w.changed,
                OutputMode::Complete => true,
                OutputMode::Append | OutputMode::EachFiring => false,
            };
            if emit {
                Self::emit(self.out, self.key, self.agg, w);
            }
            w.changed = false;
        }
    }

    /// Adds a record (with the watermark just before it) to its windows,
    /// or diverts it as late.
    pub(super) fn add(&mut self, state: &mut KeyWindows<G::Acc>, s: Stamped<T>) {
        let index = state.records;
        state.records += 1;
        let windows = self.assigner.assign(s.time, index);
        let event_time = self.assigner.trigger() == Trigger::EventTime;
        let (lateness, watermark) = (self.lateness, s.watermark);
        let closes = self.mode != OutputMode::Complete;
        let is_late =
            move |w: &Window| event_time && closes && w.end.saturating_add(lateness) <= watermark;
        if self.assigner.merges() {
            // A merging assigner gives one window per record.
            if let Some(w) = windows.into_iter().next() {
                self.add_merging(state, w, s.value, s.watermark, is_late);
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
                    o.changed = true;
                    if o.fired {
                        o.late_updates += 1;
                        if self.mode == OutputMode::EachFiring {
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
                            changed: true,
                        },
                    );
                    i
                }
            };
            if let Trigger::Count(n) = self.assigner.trigger() {
                let count = (index + 1) as EventTime - state.open[i].window.start;
                if count as u64 >= n && !state.open[i].fired {
                    if self.mode == OutputMode::Complete {
                        // Kept, and emitted with every window each batch.
                        state.open[i].fired = true;
                    } else {
                        let o = state.open.remove(i);
                        Self::emit(self.out, self.key, self.agg, &o);
                    }
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
        watermark: EventTime,
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
        // The merged session counts as fired only if the watermark has
        // reached its end: a record that bridges a fired session and a
        // later one must not fire the whole before its end.
        let fired = fired && merged.end <= watermark;
        let mut open = Open {
            window: merged,
            acc,
            fired,
            late_updates,
            changed: true,
        };
        if fired {
            open.late_updates += 1;
            if self.mode == OutputMode::EachFiring {
                Self::emit(self.out, self.key, self.agg, &open);
            }
        }
        let at = state.open.partition_point(|o| o.window < merged);
        state.open.insert(at, open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::event_window::assigner::{SessionWindows, TumblingWindows};
    use std::time::Duration;

    /// Sums a window's values.
    struct Sum;

    impl WindowAgg<u8, i64> for Sum {
        type Acc = i64;
        type Out = i64;
        fn start(&self, x: i64) -> i64 {
            x
        }
        fn add(&self, acc: i64, x: i64) -> i64 {
            acc + x
        }
        fn merge(&self, a: i64, b: i64) -> i64 {
            a + b
        }
        fn result(&self, _: &u8, _: &Window, acc: &i64) -> i64 {
            *acc
        }
    }

    /// A step of one key's replay: a record (event time, value, watermark
    /// before it), the watermark moving on, or the end of a batch at a
    /// watermark.
    enum Step {
        Record(EventTime, i64, EventTime),
        Watermark(EventTime),
        EndBatch(EventTime),
    }
    use Step::{EndBatch, Record, Watermark};

    /// What the steps emit: results as (start, end, value, late updates),
    /// and late values; and how many windows stay open.
    type Emitted = (Vec<(EventTime, EventTime, i64, u32)>, Vec<i64>, usize);

    fn replay(
        assigner: &dyn WindowAssigner,
        lateness: EventTime,
        mode: OutputMode,
        steps: &[Step],
    ) -> Emitted {
        let (mut out, mut late) = (Vec::new(), 0);
        let mut state = KeyWindows::new();
        let mut run = KeyRun {
            key: &1u8,
            assigner,
            agg: &Sum,
            lateness,
            mode,
            out: &mut out,
            late: &mut late,
        };
        for step in steps {
            match *step {
                Record(time, value, watermark) => {
                    run.advance(&mut state, watermark);
                    run.add(
                        &mut state,
                        Stamped {
                            value,
                            time,
                            watermark,
                        },
                    );
                }
                Watermark(w) => run.advance(&mut state, w),
                EndBatch(w) => {
                    run.advance(&mut state, w);
                    run.end_batch(&mut state);
                }
            }
        }
        let (mut results, mut late_values) = (Vec::new(), Vec::new());
        for e in out {
            match e {
                Emit::Result(r) => {
                    results.push((r.window.start, r.window.end, r.value, r.late_updates))
                }
                Emit::Late(v) => late_values.push(v),
                Emit::State(..) => unreachable!("the replay emits no state"),
            }
        }
        assert_eq!(late_values.len() as u64, late, "late count");
        (results, late_values, state.open.len())
    }

    fn tumbling_10() -> TumblingWindows {
        TumblingWindows::of(Duration::from_millis(10))
    }

    #[test]
    fn a_window_fires_when_the_watermark_reaches_its_end_not_before() {
        let steps = [
            Record(1, 5, 0),
            Record(9, 7, 0),
            Watermark(9),
            Watermark(10),
        ];
        let (results, late, open) = replay(&tumbling_10(), 5, OutputMode::EachFiring, &steps[..3]);
        assert_eq!(
            (results, late, open),
            (vec![], vec![], 1),
            "watermark 9 < end 10"
        );
        let (results, _, open) = replay(&tumbling_10(), 5, OutputMode::EachFiring, &steps);
        assert_eq!(results, [(0, 10, 12, 0)]);
        assert_eq!(open, 1, "fired but kept open for the lateness");
    }

    #[test]
    fn a_late_record_within_the_lateness_re_fires_its_window_with_a_count() {
        let steps = [
            Record(1, 5, 0),
            Watermark(10),
            Record(2, 3, 12),
            Record(3, 1, 13),
        ];
        let (results, late, _) = replay(&tumbling_10(), 5, OutputMode::EachFiring, &steps);
        assert_eq!(results, [(0, 10, 5, 0), (0, 10, 8, 1), (0, 10, 9, 2)]);
        assert!(late.is_empty());
    }

    #[test]
    fn a_window_closes_at_end_plus_lateness_and_a_record_for_it_then_is_late() {
        let steps = [
            Record(1, 5, 0),
            Watermark(15),
            Record(2, 3, 15),
            Record(12, 4, 15),
        ];
        let (results, late, open) = replay(&tumbling_10(), 5, OutputMode::Append, &steps);
        // Append emits each window once, when it closes, with its final value.
        assert_eq!(results, [(0, 10, 5, 0)]);
        assert_eq!(late, [3], "its window closed at 15");
        assert_eq!(open, 1, "[10, 20) holds the 4");
    }

    #[test]
    fn append_mode_emits_once_at_close_with_late_updates_included() {
        let steps = [
            Record(1, 5, 0),
            Watermark(10),
            Record(2, 3, 11),
            Watermark(14),
            Watermark(15),
        ];
        let (results, _, open) = replay(&tumbling_10(), 5, OutputMode::Append, &steps);
        assert_eq!(results, [(0, 10, 8, 1)]);
        assert_eq!(open, 0);
    }

    #[test]
    fn a_session_record_that_bridges_two_sessions_merges_them_into_one() {
        let gap = SessionWindows::with_gap(Duration::from_millis(5));
        // Sessions [0, 5) and [8, 13); a record at 4 spans [4, 9), touching both.
        let steps = [
            Record(0, 1, 0),
            Record(8, 2, 0),
            Record(4, 4, 0),
            Watermark(13),
        ];
        let (results, late, open) = replay(&gap, 0, OutputMode::EachFiring, &steps);
        assert_eq!(results, [(0, 13, 7, 0)]);
        assert!(late.is_empty());
        assert_eq!(open, 0, "closed: no lateness");
        // Without the bridge, two sessions fire on their own.
        let steps = [Record(0, 1, 0), Record(8, 2, 0), Watermark(13)];
        let (results, _, _) = replay(&gap, 0, OutputMode::EachFiring, &steps);
        assert_eq!(results, [(0, 5, 1, 0), (8, 13, 2, 0)]);
    }

    #[test]
    fn a_late_record_inside_a_fired_session_re_fires_it_at_once() {
        let gap = SessionWindows::with_gap(Duration::from_millis(5));
        // [0, 5) fired at 5; a record at 0 (watermark 6) keeps it [0, 5).
        let steps = [Record(0, 1, 0), Watermark(5), Record(0, 2, 6)];
        let (results, _, open) = replay(&gap, 10, OutputMode::EachFiring, &steps);
        assert_eq!(results, [(0, 5, 1, 0), (0, 5, 3, 1)]);
        assert_eq!(open, 1);
    }

    #[test]
    fn a_record_that_extends_a_fired_session_past_the_watermark_waits_for_the_new_end() {
        let gap = SessionWindows::with_gap(Duration::from_millis(5));
        // [0, 5) fired at 5; a record at 3 (watermark 6) makes it [0, 8),
        // whose end the watermark has not reached: no firing until 8.
        let steps = [Record(0, 1, 0), Watermark(5), Record(3, 2, 6), Watermark(7)];
        let (results, _, _) = replay(&gap, 10, OutputMode::EachFiring, &steps);
        assert_eq!(results, [(0, 5, 1, 0)]);
        let steps = [Record(0, 1, 0), Watermark(5), Record(3, 2, 6), Watermark(8)];
        let (results, _, _) = replay(&gap, 10, OutputMode::EachFiring, &steps);
        assert_eq!(results, [(0, 5, 1, 0), (0, 8, 3, 0)]);
    }

    #[test]
    fn a_late_record_bridging_a_fired_and_an_unfired_session_does_not_fire_the_merge_early() {
        let gap = SessionWindows::with_gap(Duration::from_millis(5));
        // [0, 5) fires at 6; [9, 14) is open; a record at 4 (watermark 6)
        // bridges them into [0, 14), which fires only at 14.
        let steps = [
            Record(0, 1, 0),
            Record(9, 2, 6),
            Record(4, 4, 6),
            Watermark(13),
            Watermark(14),
        ];
        let (results, late, open) = replay(&gap, 10, OutputMode::EachFiring, &steps);
        assert_eq!(results, [(0, 5, 1, 0), (0, 14, 7, 0)]);
        assert!(late.is_empty());
        assert_eq!(open, 1, "kept for the lateness");
    }

    #[test]
    fn update_mode_emits_each_batch_the_windows_records_joined_before_and_after_firing() {
        let steps = [
            Record(1, 5, 0),
            Record(12, 1, 0),
            EndBatch(0),
            // Nothing joined: nothing emitted, though [0, 10) fires at 10.
            EndBatch(10),
            Record(2, 3, 11),
            Record(3, 4, 11),
            EndBatch(11),
            // [0, 10) closes at 15 without a change, [10, 20) at 25 with one.
            Record(14, 2, 15),
            EndBatch(25),
        ];
        let (results, late, open) = replay(&tumbling_10(), 5, OutputMode::Update, &steps);
        assert_eq!(
            results,
            [
                (0, 10, 5, 0),
                (10, 20, 1, 0),
                (0, 10, 12, 2),
                (10, 20, 3, 0),
            ]
        );
        assert!(late.is_empty());
        assert_eq!(open, 0, "closed windows are dropped");
    }

    #[test]
    fn complete_mode_emits_every_window_each_batch_and_never_closes_one() {
        let steps = [
            Record(1, 5, 0),
            EndBatch(0),
            Record(12, 1, 0),
            EndBatch(100),
            // Long past [0, 10)'s end plus lateness: still joins it.
            Record(2, 3, 100),
            EndBatch(100),
        ];
        let (results, late, open) = replay(&tumbling_10(), 5, OutputMode::Complete, &steps);
        assert_eq!(
            results,
            [
                (0, 10, 5, 0),
                (0, 10, 5, 0),
                (10, 20, 1, 0),
                (0, 10, 8, 1),
                (10, 20, 1, 0),
            ]
        );
        assert!(late.is_empty(), "no record is late in complete mode");
        assert_eq!(open, 2);
    }

    #[test]
    fn update_mode_emits_a_merged_session_once_per_batch_with_its_merged_value() {
        let gap = SessionWindows::with_gap(Duration::from_millis(5));
        let steps = [
            Record(0, 1, 0),
            Record(8, 2, 0),
            EndBatch(0),
            Record(4, 4, 0),
            EndBatch(3),
        ];
        let (results, _, open) = replay(&gap, 0, OutputMode::Update, &steps);
        assert_eq!(results, [(0, 5, 1, 0), (8, 13, 2, 0), (0, 13, 7, 0)]);
        assert_eq!(open, 1);
    }
}
