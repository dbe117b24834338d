//! Event-time windows on a manual clock with explicit event times: every
//! emitted result, late record and watermark is checked exactly, and the
//! results are the same whatever the batch interval.
#![allow(clippy::type_complexity)]

use crate::common;
use spate::streaming::{
    BatchInfo, CountWindows, EventStream, ManualClock, OutputMode, SessionWindows, SlidingWindows,
    StreamQueue, StreamingContext, Time, TumblingWindows, WatermarkStrategy, Window, WindowResult,
    WindowedOutput,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A click: (user, event time in ms).
type Ev = (char, i64);

/// What a run emitted: results (all, and per batch), late records, and
/// every batch's info.
struct Run<R> {
    results: Vec<WindowResult<char, R>>,
    per_batch: Vec<(Time, Vec<WindowResult<char, R>>)>,
    late: Vec<Ev>,
    batches: Vec<BatchInfo>,
}

/// A queue with one dataset (of `parts` partitions) per batch of
/// `interval_ms`: a record arriving at `a` is in the batch at the first
/// multiple of the interval at or after `a`, and one more empty batch
/// follows. Returns the queue and its number of batches.
fn arrival_batches(
    ctx: &spate::Context,
    arrivals: &[(u64, Ev)],
    interval_ms: u64,
    parts: usize,
) -> (StreamQueue<Ev>, u64) {
    let queue = StreamQueue::new();
    let last = arrivals.iter().map(|(a, _)| *a).max().unwrap_or(0);
    let batches = last.div_ceil(interval_ms).max(1) + 1;
    for k in 1..=batches {
        let (lo, hi) = ((k - 1) * interval_ms, k * interval_ms);
        let batch: Vec<Ev> = arrivals
            .iter()
            .filter(|(a, _)| *a > lo && *a <= hi || (k == 1 && *a == 0))
            .map(|(_, e)| *e)
            .collect();
        queue.push(ctx.parallelize(batch, parts));
    }
    (queue, batches)
}

/// Feeds `arrivals` (arrival time in ms, record) through `build`, with
/// batches every `interval_ms`: a record arriving at `a` is in the batch
/// at the first multiple of the interval at or after `a`.
fn run<R: spate::Value + Ord>(
    interval_ms: u64,
    arrivals: &[(u64, Ev)],
    build: impl Fn(EventStream<Ev>) -> WindowedOutput<char, R, Ev>,
) -> Run<R> {
    // Three partitions: arrival order runs across them.
    run_in(interval_ms, 3, arrivals, build)
}

/// [`run`] with the batches' datasets in `parts` partitions.
fn run_in<R: spate::Value + Ord>(
    interval_ms: u64,
    parts: usize,
    arrivals: &[(u64, Ev)],
    build: impl Fn(EventStream<Ev>) -> WindowedOutput<char, R, Ev>,
) -> Run<R> {
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let interval = Duration::from_millis(interval_ms);
    let ssc = StreamingContext::with_manual_clock(&ctx, interval, clock.clone()).unwrap();
    let (queue, batches) = arrival_batches(&ctx, arrivals, interval_ms, parts);
    let events = ssc
        .queue_stream(&queue, spate::streaming::Dequeue::OneAtATime)
        .with_timestamps(
            |e: &Ev| e.1,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500)),
        );
    let out = build(events);
    let per_batch: Arc<Mutex<Vec<(Time, Vec<WindowResult<char, R>>)>>> = Arc::default();
    let late: Arc<Mutex<Vec<Ev>>> = Arc::default();
    let (r, l) = (per_batch.clone(), late.clone());
    out.results
        .foreach_rdd(move |rdd, time| {
            let mut batch = rdd.collect()?;
            batch.sort();
            r.lock().unwrap().push((time, batch));
            Ok(())
        })
        .unwrap();
    out.late
        .foreach_rdd(move |rdd, _| {
            l.lock().unwrap().extend(rdd.collect()?);
            Ok(())
        })
        .unwrap();
    run_batches(&ssc, &clock, interval, batches);
    let per_batch = per_batch.lock().unwrap().clone();
    let mut results: Vec<WindowResult<char, R>> =
        per_batch.iter().flat_map(|(_, b)| b.clone()).collect();
    results.sort();
    let mut late = late.lock().unwrap().clone();
    late.sort();
    Run {
        results,
        per_batch,
        late,
        batches: ssc.batches(),
    }
}

/// Starts `ssc`, runs `batches` batches on its manual clock, and stops it.
fn run_batches(ssc: &StreamingContext, clock: &ManualClock, interval: Duration, batches: u64) {
    ssc.start().unwrap();
    for _ in 0..batches {
        clock.advance(interval);
        ssc.wait_for_batch(clock.now()).unwrap();
    }
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
}

fn w(start: i64, end: i64) -> Window {
    Window { start, end }
}

fn res<R>(key: char, window: Window, value: R, late_updates: u32) -> WindowResult<char, R> {
    WindowResult {
        key,
        window,
        value,
        late_updates,
    }
}

/// Out-of-order clicks with a late straggler, arriving 50 ms apart. The
/// watermark is the largest event time seen minus 500 ms.
fn clicks() -> Vec<(u64, Ev)> {
    let evs: [Ev; 9] = [
        ('a', 1000),
        ('a', 1500),
        ('b', 1200),
        ('a', 2100), // watermark 1600
        ('a', 1900), // out of order, on time: [1000,2000) not fired
        ('a', 3000), // watermark 2500: [1000,2000) fires
        ('a', 1800), // late for [1000,2000) (fired, no lateness)
        ('b', 3600), // watermark 3100: [2000,3000) fires
        ('a', 4700), // watermark 4200: [3000,4000) fires
    ];
    evs.iter()
        .enumerate()
        .map(|(i, e)| (50 * (i as u64 + 1), *e))
        .collect()
}

/// Each window's event times, sorted.
fn times(
    lateness_ms: u64,
    mode: OutputMode,
) -> impl Fn(EventStream<Ev>) -> WindowedOutput<char, Vec<i64>, Ev> {
    move |events| {
        events
            .key_by(|e| e.0)
            .window(TumblingWindows::of(Duration::from_secs(1)))
            .allowed_lateness(Duration::from_millis(lateness_ms))
            .output_mode(mode)
            .process(|_, _, evs| {
                let mut t: Vec<i64> = evs.iter().map(|e| e.1).collect();
                t.sort();
                t
            })
    }
}

#[test]
fn tumbling_windows_fire_when_the_watermark_passes_and_late_records_go_aside() {
    let r = run(100, &clicks(), times(0, OutputMode::Append));
    assert_eq!(
        r.results,
        [
            res('a', w(1000, 2000), vec![1000, 1500, 1900], 0),
            res('a', w(2000, 3000), vec![2100], 0),
            res('a', w(3000, 4000), vec![3000], 0),
            res('b', w(1000, 2000), vec![1200], 0),
            res('b', w(3000, 4000), vec![3600], 0),
        ]
    );
    assert_eq!(r.late, [('a', 1800)]);
    // Batch by batch: each window when the watermark passes its end.
    assert_eq!(
        batch_windows(&r),
        [
            (100, vec![]),
            (200, vec![]),
            // Click 6 (arrived at 300) takes the watermark to 2500.
            (300, vec![('a', w(1000, 2000)), ('b', w(1000, 2000))]),
            // Click 8 (400): 3100.
            (400, vec![('a', w(2000, 3000))]),
            // Click 9 (450): 4200.
            (500, vec![('a', w(3000, 4000)), ('b', w(3000, 4000))]),
            (600, vec![]),
        ]
    );
    let late: u64 = r.batches.iter().map(|b| b.late_records).sum();
    assert_eq!(late, 1, "late records are counted");
    // The watermark is visible per batch and never goes back.
    let marks: Vec<i64> = r.batches.iter().map(|b| b.watermarks[0].1).collect();
    assert!(marks.windows(2).all(|m| m[0] <= m[1]), "{marks:?}");
    assert_eq!(*marks.last().unwrap(), 4200);
}

#[test]
fn allowed_lateness_re_fires_windows_for_each_late_record_and_then_closes_them() {
    // Lateness 1 s: the 1800 straggler (watermark 2500 < 2000 + 1000) re-fires.
    let mut arrivals = clicks();
    // Watermark is 4200 by then: [1000,2000) has closed, so this is late.
    arrivals.push((500, ('a', 1999)));
    let update = run(100, &arrivals, times(1000, OutputMode::EachFiring));
    // Sorted: the re-fired [1000,2000) result sorts before the first one.
    assert_eq!(
        update.results,
        [
            res('a', w(1000, 2000), vec![1000, 1500, 1800, 1900], 1),
            res('a', w(1000, 2000), vec![1000, 1500, 1900], 0),
            res('a', w(2000, 3000), vec![2100], 0),
            res('a', w(3000, 4000), vec![3000], 0),
            res('b', w(1000, 2000), vec![1200], 0),
            res('b', w(3000, 4000), vec![3600], 0),
        ]
    );
    assert_eq!(update.late, [('a', 1999)]);
    // Append emits each window once, when it closes, with its final value.
    let append = run(100, &arrivals, times(1000, OutputMode::Append));
    assert_eq!(
        append.results,
        [
            res('a', w(1000, 2000), vec![1000, 1500, 1800, 1900], 1),
            res('a', w(2000, 3000), vec![2100], 0),
            res('b', w(1000, 2000), vec![1200], 0),
        ]
    );
}

/// Event times of each window, sorted, for any assigner.
fn sorted_times(evs: &[Ev]) -> Vec<i64> {
    let mut t: Vec<i64> = evs.iter().map(|e| e.1).collect();
    t.sort();
    t
}

/// Records arriving 50 ms apart, in the order given.
fn in_order(evs: &[Ev]) -> Vec<(u64, Ev)> {
    evs.iter()
        .enumerate()
        .map(|(i, e)| (50 * (i as u64 + 1), *e))
        .collect()
}

#[test]
fn sliding_windows_take_a_record_in_every_window_that_is_not_yet_closed() {
    let arrivals = in_order(&[
        ('a', 1000),
        ('a', 2500),
        ('b', 4000), // watermark 3500: a's [0,2000) and [1000,3000) close
        ('a', 1900), // late for both its windows
        ('a', 2600), // late for [1000,3000), on time for [2000,4000)
        ('a', 3200),
        ('b', 6000), // watermark 5500
    ]);
    let r = run(100, &arrivals, |events| {
        events
            .key_by(|e| e.0)
            .window(SlidingWindows::of(
                Duration::from_secs(2),
                Duration::from_secs(1),
            ))
            .process(|_, _, evs| sorted_times(evs))
    });
    assert_eq!(
        r.results,
        [
            res('a', w(0, 2000), vec![1000], 0),
            res('a', w(1000, 3000), vec![1000, 2500], 0),
            res('a', w(2000, 4000), vec![2500, 2600, 3200], 0),
            res('a', w(3000, 5000), vec![3200], 0),
            res('b', w(3000, 5000), vec![4000], 0),
        ]
    );
    assert_eq!(r.late, [('a', 1900)]);
    assert_eq!(
        batch_windows(&r),
        [
            // Clicks 1-2 take the watermark to 2000.
            (100, vec![('a', w(0, 2000))]),
            // Click 3: 3500.
            (200, vec![('a', w(1000, 3000))]),
            (300, vec![]),
            // Click 7: 5500.
            (
                400,
                vec![
                    ('a', w(2000, 4000)),
                    ('a', w(3000, 5000)),
                    ('b', w(3000, 5000))
                ]
            ),
            (500, vec![]),
        ]
    );
}

/// The windows emitted by each batch.
fn batch_windows<R>(r: &Run<R>) -> Vec<(u64, Vec<(char, Window)>)> {
    r.per_batch
        .iter()
        .map(|(t, b)| (t.millis(), b.iter().map(|x| (x.key, x.window)).collect()))
        .collect()
}

#[test]
fn a_record_that_bridges_a_fired_and_an_open_session_merges_them_and_fires_at_the_new_end() {
    let arrivals = in_order(&[
        ('a', 1000),
        ('a', 1500), // session [1000,2500)
        ('a', 3200), // session [3200,4200); watermark 2700: the first fires
        ('a', 2300), // [2300,3300) touches both: one session [1000,4200)
        ('b', 6000), // watermark 5500: the merged session closes
        ('a', 1200), // its session would have closed long ago: late
    ]);
    let sessions = |mode| {
        move |events: EventStream<Ev>| {
            events
                .key_by(|e| e.0)
                .window(SessionWindows::with_gap(Duration::from_secs(1)))
                .allowed_lateness(Duration::from_secs(1))
                .output_mode(mode)
                .process(|_, _, evs| sorted_times(evs))
        }
    };
    let append = run(100, &arrivals, sessions(OutputMode::Append));
    // 2300 is not late for the merged session [1000,4200): no late update.
    assert_eq!(
        append.results,
        [res('a', w(1000, 4200), vec![1000, 1500, 2300, 3200], 0)]
    );
    assert_eq!(append.late, [('a', 1200)]);
    assert_eq!(
        batch_windows(&append),
        [
            (100, vec![]),
            (200, vec![]),
            // Click 5 takes the watermark to 5500: the session closes.
            (300, vec![('a', w(1000, 4200))]),
            (400, vec![]),
        ]
    );
    let update = run(100, &arrivals, sessions(OutputMode::EachFiring));
    assert_eq!(
        update.results,
        [
            res('a', w(1000, 2500), vec![1000, 1500], 0),
            res('a', w(1000, 4200), vec![1000, 1500, 2300, 3200], 0),
        ]
    );
    // The first session fires in the batch of click 4 (watermark 2700);
    // the bridging click merges it with [3200,4200), which has not fired,
    // so the merged session fires only once the watermark reaches 4200
    // (click 5), never early.
    assert_eq!(
        batch_windows(&update),
        [
            (100, vec![]),
            (200, vec![('a', w(1000, 2500))]),
            (300, vec![('a', w(1000, 4200))]),
            (400, vec![]),
        ]
    );
}

#[test]
fn count_windows_fire_when_full_whatever_the_event_times() {
    let arrivals = in_order(&[('a', 1000), ('b', 50), ('a', 900), ('a', 5000), ('a', 10)]);
    let r = run(100, &arrivals, |events| {
        events
            .key_by(|e| e.0)
            .window(CountWindows::of(2))
            .aggregate(|e: Ev| e.1, |acc, e| acc + e.1, |a, b| a + b, |acc| *acc)
    });
    assert_eq!(
        r.results,
        [res('a', w(0, 2), 1900, 0), res('a', w(2, 4), 5010, 0)]
    );
    assert!(r.late.is_empty());
}

#[test]
fn reduce_aggregates_incrementally() {
    let r = run(100, &clicks(), |events| {
        events
            .key_by(|e| e.0)
            .window(TumblingWindows::of(Duration::from_secs(1)))
            .reduce(|x, y| (x.0, x.1.max(y.1)))
    });
    let latest: Vec<(char, Window, i64)> = r
        .results
        .iter()
        .map(|r| (r.key, r.window, r.value.1))
        .collect();
    assert_eq!(
        latest,
        [
            ('a', w(1000, 2000), 1900),
            ('a', w(2000, 3000), 2100),
            ('a', w(3000, 4000), 3000),
            ('b', w(1000, 2000), 1200),
            ('b', w(3000, 4000), 3600),
        ]
    );
}

#[test]
fn window_state_is_dropped_once_it_can_no_longer_change() {
    let r = run(100, &clicks(), times(0, OutputMode::Append));
    let keys: Vec<u64> = r.batches.iter().map(|b| b.state[0].keys).collect();
    // Both keys hold windows mid-way; at the end only a's [4000,5000) is open.
    assert!(keys.contains(&2), "{keys:?}");
    assert_eq!(*keys.last().unwrap(), 1, "{keys:?}");
}

#[test]
fn window_state_rows_are_the_open_key_window_pairs_after_each_batch() {
    let arrivals = clicks();
    let r = run(100, &arrivals, times(0, OutputMode::Append));
    // Reference from the outputs: a (key, window) pair is open from the
    // batch of its first on-time record until the batch it fires in (no
    // lateness: it goes when it fires; late records go aside, opening
    // nothing).
    let window_of = |t: i64| t.div_euclid(1000) * 1000;
    let batch_of = |a: u64| a.div_ceil(100).max(1);
    let mut opened: BTreeMap<(char, i64), u64> = BTreeMap::new();
    for (a, e) in &arrivals {
        if !r.late.contains(e) {
            opened.entry((e.0, window_of(e.1))).or_insert(batch_of(*a));
        }
    }
    let mut fired: BTreeMap<(char, i64), u64> = BTreeMap::new();
    for (k, (_, batch)) in r.per_batch.iter().enumerate() {
        for res in batch {
            fired.insert((res.key, res.window.start), k as u64 + 1);
        }
    }
    let mut want_rows = Vec::new();
    let mut want_keys = Vec::new();
    for b in 1..=r.batches.len() as u64 {
        let open: Vec<&(char, i64)> = opened
            .iter()
            .filter(|(kw, first)| **first <= b && fired.get(kw).is_none_or(|f| *f > b))
            .map(|(kw, _)| kw)
            .collect();
        want_rows.push(open.len() as u64);
        let keys: std::collections::BTreeSet<char> = open.iter().map(|kw| kw.0).collect();
        want_keys.push(keys.len() as u64);
    }
    let rows: Vec<u64> = r.batches.iter().map(|b| b.state[0].rows).collect();
    let keys: Vec<u64> = r.batches.iter().map(|b| b.state[0].keys).collect();
    assert_eq!(rows, want_rows);
    assert_eq!(keys, want_keys);
    assert!(
        rows.iter().zip(&keys).any(|(r, k)| r > k),
        "a key holds two windows at once: {rows:?}"
    );
}

#[test]
fn results_are_the_same_for_batch_intervals_of_10_ms_100_ms_and_1_s() {
    // A longer out-of-order stream over 3 s of arrivals.
    let mut evs = Vec::new();
    let mut x: u64 = 7;
    for i in 0..60i64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let user = ['a', 'b', 'c'][(x % 3) as usize];
        let jitter = (x % 4000) as i64;
        evs.push((user, 1000 + i * 100 - jitter));
    }
    let arrivals: Vec<(u64, Ev)> = evs
        .iter()
        .enumerate()
        .map(|(i, e)| (50 * (i as u64 + 1), *e))
        .collect();
    for mode in [OutputMode::Append, OutputMode::EachFiring] {
        let runs: Vec<Run<Vec<i64>>> = [10, 100, 1000]
            .into_iter()
            .map(|interval| run(interval, &arrivals, times(700, mode)))
            .collect();
        assert!(
            !runs[0].results.is_empty() && !runs[0].late.is_empty(),
            "the input exercises lateness"
        );
        for r in &runs[1..] {
            assert_eq!(r.results, runs[0].results, "{mode:?}");
            assert_eq!(r.late, runs[0].late, "{mode:?}");
        }
        let sessions: Vec<Run<Vec<i64>>> = [10, 100, 1000]
            .into_iter()
            .map(|interval| {
                run(interval, &arrivals, |events| {
                    events
                        .key_by(|e| e.0)
                        .window(SessionWindows::with_gap(Duration::from_millis(400)))
                        .allowed_lateness(Duration::from_millis(300))
                        .output_mode(mode)
                        .process(|_, _, evs| sorted_times(evs))
                })
            })
            .collect();
        for r in &sessions[1..] {
            assert_eq!(r.results, sessions[0].results, "sessions {mode:?}");
            assert_eq!(r.late, sessions[0].late, "sessions {mode:?}");
        }
    }
}

#[test]
fn the_watermark_of_two_inputs_is_the_smaller_until_one_goes_idle() {
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let tick = Duration::from_millis(100);
    let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    let (qa, qb) = (StreamQueue::new(), StreamQueue::new());
    let batches_a: [Vec<Ev>; 5] = [vec![('a', 1000)], vec![('a', 5000)], vec![], vec![], vec![]];
    let batches_b: [Vec<Ev>; 5] = [vec![('b', 1100)], vec![], vec![], vec![], vec![]];
    for (a, b) in batches_a.into_iter().zip(batches_b) {
        qa.push(ctx.parallelize(a, 1));
        qb.push(ctx.parallelize(b, 1));
    }
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500));
    let a = ssc
        .queue_stream(&qa, spate::streaming::Dequeue::OneAtATime)
        .with_timestamps(|e: &Ev| e.1, strategy.clone());
    let b = ssc
        .queue_stream(&qb, spate::streaming::Dequeue::OneAtATime)
        .with_timestamps(
            |e: &Ev| e.1,
            strategy.with_idleness(Duration::from_millis(300)),
        );
    let both = a.union(&b);
    let out = both
        .key_by(|e| e.0)
        .window(TumblingWindows::of(Duration::from_secs(1)))
        .process(|_, _, evs| sorted_times(evs));
    let fired: Arc<Mutex<Vec<(Time, WindowResult<char, Vec<i64>>)>>> = Arc::default();
    let sink = fired.clone();
    out.results
        .foreach_rdd(move |rdd, time| {
            sink.lock()
                .unwrap()
                .extend(rdd.collect()?.into_iter().map(|r| (time, r)));
            Ok(())
        })
        .unwrap();
    ssc.start().unwrap();
    for _ in 0..5 {
        clock.advance(tick);
        ssc.wait_for_batch(clock.now()).unwrap();
    }
    // a alone would be at 4500 after batch 2; b holds the union at 600
    // until it has been quiet for 300 ms (batch 4).
    let union_marks: Vec<i64> = ssc.batches().iter().map(|b| b.watermarks[2].1).collect();
    assert_eq!(union_marks, [500, 600, 600, 4500, 4500]);
    let mut fired = fired.lock().unwrap().clone();
    fired.sort();
    assert_eq!(
        fired,
        [
            (
                Time::from_millis(400),
                res('a', w(1000, 2000), vec![1000], 0)
            ),
            (
                Time::from_millis(400),
                res('b', w(1000, 2000), vec![1100], 0)
            ),
        ]
    );
}

#[test]
fn an_adaptive_interval_changes_batches_but_not_event_time_results() {
    use spate::streaming::{AdaptiveBatching, StreamingEvent, StreamingLog};
    let arrivals = clicks();
    let expected = run(100, &arrivals, times(0, OutputMode::Append)).results;
    // The same clicks, arriving as before, with an interval that starts at
    // 200 ms and may shrink to 10 ms (the manual clock makes processing look
    // instantaneous, so it does).
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(200), clock.clone())
        .unwrap();
    ssc.set_adaptive_batching(AdaptiveBatching::new(
        Duration::from_millis(100),
        Duration::from_millis(10),
        Duration::from_millis(400),
    ))
    .unwrap();
    let log = Arc::new(StreamingLog::default());
    ssc.add_listener(log.clone());
    // A receiver-like input: records become visible when the clock passes
    // their arrival time.
    let pending = Arc::new(Mutex::new(arrivals.clone()));
    let (p, c) = (pending.clone(), clock.clone());
    let source = ssc
        .queue_stream(
            &StreamQueue::<u8>::new(),
            spate::streaming::Dequeue::OneAtATime,
        )
        .transform(move |rdd, _| {
            let now = c.now().millis();
            let mut p = p.lock().unwrap();
            let ready: Vec<Ev> = p
                .iter()
                .filter(|(a, _)| *a <= now)
                .map(|(_, e)| *e)
                .collect();
            p.retain(|(a, _)| *a > now);
            Ok(rdd.context().parallelize(ready, 2))
        });
    let out = times(0, OutputMode::Append)(source.with_timestamps(
        |e: &Ev| e.1,
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500)),
    ));
    let results: Arc<Mutex<Vec<WindowResult<char, Vec<i64>>>>> = Arc::default();
    let sink = results.clone();
    out.results
        .foreach_rdd(move |rdd, _| {
            sink.lock().unwrap().extend(rdd.collect()?);
            Ok(())
        })
        .unwrap();
    ssc.start().unwrap();
    for _ in 0..200 {
        clock.advance(Duration::from_millis(5));
        ssc.await_batches_until(clock.now()).unwrap();
    }
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    let mut got = results.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, expected);
    let intervals: Vec<Duration> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            StreamingEvent::IntervalChanged { interval, .. } => Some(interval),
            _ => None,
        })
        .collect();
    assert!(!intervals.is_empty(), "the interval adapted");
    assert!(
        intervals
            .iter()
            .all(|i| *i >= Duration::from_millis(10) && *i <= Duration::from_millis(400))
    );
    assert_eq!(
        *intervals.last().unwrap(),
        Duration::from_millis(10),
        "{intervals:?}"
    );
    // Batches are no longer evenly spaced.
    let gaps: std::collections::BTreeSet<Duration> =
        ssc.batches().iter().map(|b| b.interval).collect();
    assert!(gaps.len() > 2, "{gaps:?}");
}

#[test]
fn adaptive_batching_refuses_processing_time_windows() {
    use spate::streaming::AdaptiveBatching;
    let ctx = common::ctx();
    let ssc =
        StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), ManualClock::new())
            .unwrap();
    ssc.set_adaptive_batching(AdaptiveBatching::new(
        Duration::from_millis(100),
        Duration::from_millis(10),
        Duration::from_millis(400),
    ))
    .unwrap();
    ssc.queue_stream(
        &StreamQueue::<u8>::new(),
        spate::streaming::Dequeue::OneAtATime,
    )
    .window(Duration::from_millis(300), Duration::from_millis(100))
    .foreach_rdd(|_, _| Ok(()))
    .unwrap();
    let err = ssc.start().unwrap_err();
    assert!(err.to_string().contains("event-time windows"), "{err}");
}

/// Per user: the latest click, and a timer 1 s of event time after it; when
/// the timer fires the user is reported idle and forgotten.
fn idle_users(interval_ms: u64) -> (Vec<String>, Vec<Vec<(char, i64)>>) {
    use spate::streaming::{State, StateSpec};
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let interval = Duration::from_millis(interval_ms);
    let ssc = StreamingContext::with_manual_clock(&ctx, interval, clock.clone()).unwrap();
    let mut arrivals = vec![(10u64, ('c', 100i64))];
    arrivals.extend(clicks());
    let (queue, batches) = arrival_batches(&ctx, &arrivals, interval_ms, 2);
    let spec = StateSpec::function(
        |_, user: &char, click: Option<Ev>, state: &mut State<i64>| {
            if let Some(at) = state.fired_timer() {
                let last = *state.get()?;
                state.remove();
                assert!(
                    state.watermark() > at,
                    "fires once the watermark has passed it"
                );
                return Some(format!("{user} idle after {last} (timer {at})"));
            }
            let (_, t) = click?;
            let last = state.get().copied();
            if last.is_none_or(|l| t > l) {
                if let Some(l) = last {
                    state.delete_event_timer(l + 1000);
                }
                state.update(t);
                state.set_event_timer(t + 1000);
            }
            None
        },
    );
    let mapped = ssc
        .queue_stream(&queue, spate::streaming::Dequeue::OneAtATime)
        .with_timestamps(
            |e: &Ev| e.1,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500)),
        )
        .key_by(|e| e.0)
        .map_with_state(spec);
    let out: Arc<Mutex<Vec<String>>> = Arc::default();
    let snaps: Arc<Mutex<Vec<Vec<(char, i64)>>>> = Arc::default();
    let (o, s) = (out.clone(), snaps.clone());
    mapped
        .stream()
        .foreach_rdd(move |rdd, _| {
            let v = rdd.collect()?;
            o.lock().unwrap().extend(v);
            Ok(())
        })
        .unwrap();
    mapped
        .state_snapshots()
        .foreach_rdd(move |rdd, _| {
            let mut v = rdd.collect()?;
            v.sort();
            s.lock().unwrap().push(v);
            Ok(())
        })
        .unwrap();
    run_batches(&ssc, &clock, interval, batches);
    let mut out = out.lock().unwrap().clone();
    out.sort();
    let snaps = snaps.lock().unwrap().clone();
    (out, snaps)
}

#[test]
fn map_with_state_event_timers_fire_when_the_watermark_reaches_them() {
    let (fired, snaps) = idle_users(100);
    // c (last click 100) fires once the watermark reaches 1100 (2100 - 500
    // = 1600); b (1200) once it reaches 2200 (after a's 3000). a's timer
    // moved to 5700 and b's new one is at 4600: the watermark ends at 4200.
    assert_eq!(
        fired,
        [
            "b idle after 1200 (timer 2200)".to_string(),
            "c idle after 100 (timer 1100)".to_string(),
        ]
    );
    assert_eq!(*snaps.last().unwrap(), [('a', 4700), ('b', 3600)]);
    // Where timers fire in the input does not depend on the batch interval.
    assert_eq!(idle_users(10).0, fired);
    assert_eq!(idle_users(1000).0, fired);
}

#[test]
fn an_event_timer_fires_once_the_watermark_passes_its_time_not_when_it_equals_it() {
    use spate::streaming::{State, StateSpec};
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let interval = Duration::from_millis(100);
    let ssc = StreamingContext::with_manual_clock(&ctx, interval, clock.clone()).unwrap();
    // a at 0 sets a timer at 1000; b at 1000 brings the watermark to exactly
    // 1000 (first batch); b at 1001 passes it (second batch).
    let arrivals = [(10u64, ('a', 0i64)), (20, ('b', 1000)), (150, ('b', 1001))];
    let (queue, batches) = arrival_batches(&ctx, &arrivals, 100, 2);
    let spec = StateSpec::function(
        |_, user: &char, click: Option<Ev>, state: &mut State<i64>| {
            if let Some(at) = state.fired_timer() {
                return Some(format!("{user}:{at}@{}", state.watermark()));
            }
            let (_, t) = click?;
            if *user == 'a' {
                state.set_event_timer(t + 1000);
            }
            None
        },
    );
    let mapped = ssc
        .queue_stream(&queue, spate::streaming::Dequeue::OneAtATime)
        .with_timestamps(|e: &Ev| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .map_with_state(spec);
    let per_batch: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sink = per_batch.clone();
    mapped
        .stream()
        .foreach_rdd(move |rdd, _| {
            sink.lock().unwrap().push(rdd.collect()?);
            Ok(())
        })
        .unwrap();
    run_batches(&ssc, &clock, interval, batches);
    let got = per_batch.lock().unwrap().clone();
    assert_eq!(
        got[0],
        Vec::<String>::new(),
        "watermark 1000 = the timer: not yet"
    );
    assert_eq!(got[1], ["a:1000@1001"], "watermark 1001 passed it");
}

#[test]
fn a_max_watermark_policy_follows_the_faster_input_and_never_goes_back() {
    let marks = |policy: spate::streaming::WatermarkPolicy| -> Vec<i64> {
        let ctx = common::ctx();
        let clock = ManualClock::new();
        let tick = Duration::from_millis(100);
        let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
        let (qa, qb) = (StreamQueue::new(), StreamQueue::new());
        let batches_a: [Vec<Ev>; 4] = [
            vec![('a', 1000)],
            vec![('a', 5000)],
            vec![('a', 2000)],
            vec![],
        ];
        let batches_b: [Vec<Ev>; 4] = [
            vec![('b', 1100)],
            vec![('b', 1200)],
            vec![],
            vec![('b', 6000)],
        ];
        for (a, b) in batches_a.into_iter().zip(batches_b) {
            qa.push(ctx.parallelize(a, 1));
            qb.push(ctx.parallelize(b, 1));
        }
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500));
        let a = ssc
            .queue_stream(&qa, spate::streaming::Dequeue::OneAtATime)
            .with_timestamps(|e: &Ev| e.1, strategy.clone());
        let b = ssc
            .queue_stream(&qb, spate::streaming::Dequeue::OneAtATime)
            .with_timestamps(|e: &Ev| e.1, strategy);
        let both = a.union_with(&b, policy);
        both.stamped().foreach_rdd(|_, _| Ok(())).unwrap();
        ssc.start().unwrap();
        for _ in 0..4 {
            clock.advance(tick);
            ssc.wait_for_batch(clock.now()).unwrap();
        }
        ssc.batches().iter().map(|b| b.watermarks[2].1).collect()
    };
    use spate::streaming::WatermarkPolicy::{Max, Min};
    // a: 500, 4500, 4500 (its max stays), 4500; b: 600, 700, 700, 5500.
    assert_eq!(marks(Min), [500, 700, 700, 4500]);
    assert_eq!(marks(Max), [600, 4500, 4500, 5500]);
}

/// Out-of-order clicks of three users over 3 s of arrivals, 50 ms apart,
/// up to 4 s late, from a xorshift generator seeded with `seed`.
fn jittered_clicks(seed: u64, n: i64) -> Vec<(u64, Ev)> {
    let mut x = seed;
    let evs: Vec<Ev> = (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let user = ['a', 'b', 'c'][(x % 3) as usize];
            (user, 1000 + i * 100 - (x % 4000) as i64)
        })
        .collect();
    in_order(&evs)
}

/// What tumbling 1 s windows emit per batch in `mode`, worked out record by
/// record with a map of windows: the batches as `arrival_batches` makes
/// them, the watermark the largest event time so far minus 500 ms, a
/// record late when its window's end plus `lateness` is at most the
/// watermark before it (never in complete mode), and a late update one
/// that joins a window (started by an earlier record) whose end the
/// watermark has reached.
fn tumbling_reference(
    arrivals: &[(u64, Ev)],
    interval_ms: u64,
    lateness: i64,
    mode: OutputMode,
) -> (Vec<(u64, Vec<WindowResult<char, Vec<i64>>>)>, Vec<Ev>) {
    let last = arrivals.iter().map(|(a, _)| *a).max().unwrap_or(0);
    let batches = last.div_ceil(interval_ms).max(1) + 1;
    // (key, window start) -> (event times, late updates)
    let mut windows: BTreeMap<(char, i64), (Vec<i64>, u32)> = BTreeMap::new();
    let (mut watermark, mut late) = (i64::MIN, Vec::new());
    let mut out = Vec::new();
    let result = |(key, start): (char, i64), (times, late_updates): &(Vec<i64>, u32)| {
        let mut value = times.clone();
        value.sort();
        res(key, w(start, start + 1000), value, *late_updates)
    };
    for k in 1..=batches {
        let (lo, hi) = ((k - 1) * interval_ms, k * interval_ms);
        let mut changed = Vec::new();
        for &(_, (key, time)) in arrivals
            .iter()
            .filter(|(a, _)| *a > lo && *a <= hi || (k == 1 && *a == 0))
        {
            let start = time.div_euclid(1000) * 1000;
            if mode != OutputMode::Complete && start + 1000 + lateness <= watermark {
                late.push((key, time));
            } else {
                let existed = windows.contains_key(&(key, start));
                let entry = windows.entry((key, start)).or_default();
                entry.0.push(time);
                if existed && watermark >= start + 1000 {
                    entry.1 += 1;
                }
                changed.push((key, start));
            }
            watermark = watermark.max(time - 500);
        }
        let mut emitted: Vec<WindowResult<char, Vec<i64>>> = match mode {
            OutputMode::Update => changed.iter().map(|&k| result(k, &windows[&k])).collect(),
            OutputMode::Complete => windows.iter().map(|(&k, v)| result(k, v)).collect(),
            _ => panic!("the reference covers update and complete"),
        };
        emitted.sort();
        emitted.dedup();
        if mode == OutputMode::Update {
            windows.retain(|&(_, start), _| start + 1000 + lateness > watermark);
        }
        out.push((k * interval_ms, emitted));
    }
    late.sort();
    (out, late)
}

#[test]
fn update_mode_emits_each_batch_the_windows_that_changed_in_it() {
    let r = run(100, &clicks(), times(0, OutputMode::Update));
    let per_batch: Vec<(u64, Vec<WindowResult<char, Vec<i64>>>)> = r
        .per_batch
        .iter()
        .map(|(t, b)| (t.millis(), b.clone()))
        .collect();
    assert_eq!(
        per_batch,
        [
            // Clicks arrive two per batch.
            (100, vec![res('a', w(1000, 2000), vec![1000, 1500], 0)]),
            (
                200,
                vec![
                    res('a', w(2000, 3000), vec![2100], 0),
                    res('b', w(1000, 2000), vec![1200], 0)
                ]
            ),
            // Click 5 (1900) updates [1000, 2000) before it fires.
            (
                300,
                vec![
                    res('a', w(1000, 2000), vec![1000, 1500, 1900], 0),
                    res('a', w(3000, 4000), vec![3000], 0)
                ]
            ),
            // Click 7 (1800) comes after the watermark reached 2500: too
            // late without lateness.
            (400, vec![res('b', w(3000, 4000), vec![3600], 0)]),
            (500, vec![res('a', w(4000, 5000), vec![4700], 0)]),
            (600, vec![]),
        ]
    );
    assert_eq!(r.late, [('a', 1800)]);
}

#[test]
fn complete_mode_emits_the_whole_table_each_batch_and_takes_every_record() {
    let r = run(100, &clicks(), times(0, OutputMode::Complete));
    let last = &r.per_batch.last().unwrap().1;
    assert_eq!(
        last,
        &[
            res('a', w(1000, 2000), vec![1000, 1500, 1800, 1900], 1),
            res('a', w(2000, 3000), vec![2100], 0),
            res('a', w(3000, 4000), vec![3000], 0),
            res('a', w(4000, 5000), vec![4700], 0),
            res('b', w(1000, 2000), vec![1200], 0),
            res('b', w(3000, 4000), vec![3600], 0),
        ]
    );
    assert!(r.late.is_empty(), "nothing is late in complete mode");
    assert_eq!(
        r.per_batch[0].1,
        [res('a', w(1000, 2000), vec![1000, 1500], 0)],
        "the table after the first batch"
    );
    // Nothing is dropped: the state holds every window after the last batch.
    let rows = r.batches.last().unwrap().state[0].rows;
    assert_eq!(rows, 6);
}

#[test]
fn update_and_complete_modes_agree_with_a_reference_on_random_clicks_for_any_partitions() {
    for seed in [7, 11, 1234567] {
        let arrivals = jittered_clicks(seed, 60);
        for mode in [OutputMode::Update, OutputMode::Complete] {
            for (interval, parts) in [(100, 1), (100, 3), (250, 2), (1000, 4)] {
                let (expected, expected_late) = tumbling_reference(&arrivals, interval, 700, mode);
                let r = run_in(interval, parts, &arrivals, times(700, mode));
                let got: Vec<(u64, Vec<WindowResult<char, Vec<i64>>>)> = r
                    .per_batch
                    .iter()
                    .map(|(t, b)| (t.millis(), b.clone()))
                    .collect();
                let what = format!("seed {seed}, {mode:?}, {interval} ms, {parts} partitions");
                assert_eq!(got, expected, "{what}");
                assert_eq!(r.late, expected_late, "{what}");
                if mode == OutputMode::Update {
                    assert!(!expected_late.is_empty(), "the input exercises lateness");
                }
            }
        }
    }
}

#[test]
fn a_union_row_stamped_below_an_earlier_one_does_not_reopen_a_closed_window() {
    // In a union each side's rows are capped by the other side's watermark
    // at the previous boundary, so the stamps are not monotone in arrival
    // order: here 'a' 4500 (left) carries 4000, 'a' 1500 (right, after it)
    // 1000. [1000, 2000) of 'a' closed at 4000; 'a' 1500 is late for it,
    // not a second window with the same bounds.
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let tick = Duration::from_millis(100);
    let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    let (ql, qr) = (StreamQueue::new(), StreamQueue::new());
    let left: [Vec<Ev>; 3] = [
        vec![('a', 1000)],
        vec![('x', 4000), ('a', 4500)],
        vec![('z', 10_000)],
    ];
    let right: [Vec<Ev>; 3] = [vec![('b', 5000)], vec![('a', 1500)], vec![('z', 10_000)]];
    for (l, r) in left.into_iter().zip(right) {
        ql.push(ctx.parallelize(l, 1));
        qr.push(ctx.parallelize(r, 1));
    }
    let stamp = |q: &StreamQueue<Ev>| {
        ssc.queue_stream(q, spate::streaming::Dequeue::OneAtATime)
            .with_timestamps(|e: &Ev| e.1, WatermarkStrategy::monotonous())
    };
    let out = times(0, OutputMode::Append)(stamp(&ql).union(&stamp(&qr)));
    let (results, late): (Arc<Mutex<Vec<_>>>, Arc<Mutex<Vec<Ev>>>) = Default::default();
    let (r, l) = (results.clone(), late.clone());
    out.results
        .foreach_rdd(move |rdd, _| {
            r.lock().unwrap().extend(rdd.collect()?);
            Ok(())
        })
        .unwrap();
    out.late
        .foreach_rdd(move |rdd, _| {
            l.lock().unwrap().extend(rdd.collect()?);
            Ok(())
        })
        .unwrap();
    run_batches(&ssc, &clock, tick, 3);
    let mut results = results.lock().unwrap().clone();
    results.sort();
    assert_eq!(
        results,
        [
            res('a', w(1000, 2000), vec![1000], 0),
            res('a', w(4000, 5000), vec![4500], 0),
            res('b', w(5000, 6000), vec![5000], 0),
            res('x', w(4000, 5000), vec![4000], 0),
        ]
    );
    assert_eq!(*late.lock().unwrap(), [('a', 1500)]);
}
