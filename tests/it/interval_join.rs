//! Event-time interval joins on a manual clock: every joined pair, outer
//! row and late row is checked per batch against a reference that works
//! from the definition (pairs of on-time rows within the bound; an outer
//! row in the first batch whose watermark passes its bound).
#![allow(clippy::type_complexity)]

use crate::common;
use spate::streaming::{
    BatchInfo, IntervalJoinOutput, KeyedEventStream, ManualClock, StreamQueue, StreamingContext,
    WatermarkStrategy,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A row: (key, event time ms, id).
type Row = (char, i64, u32);
/// A joined row in its most general form.
type Joined = (char, (Option<Row>, Option<Row>));

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Inner,
    Left,
    Right,
    Full,
}

/// What a run gave: per batch the joined rows (sorted), the late rows of
/// each side (sorted), every batch's info.
struct Run {
    per_batch: Vec<Vec<Joined>>,
    late_left: Vec<Row>,
    late_right: Vec<Row>,
    batches: Vec<BatchInfo>,
}

/// Collects a stream's rows per batch, sorted.
fn collect<T: spate::Value + Ord>(
    stream: &spate::streaming::DStream<T>,
    to_joined: fn(T) -> Joined,
) -> Arc<Mutex<Vec<Vec<Joined>>>> {
    let seen: Arc<Mutex<Vec<Vec<Joined>>>> = Arc::default();
    let sink = seen.clone();
    stream
        .foreach_rdd(move |rdd, _| {
            let mut rows: Vec<Joined> = rdd.collect()?.into_iter().map(to_joined).collect();
            rows.sort();
            sink.lock().unwrap().push(rows);
            Ok(())
        })
        .unwrap();
    seen
}

/// Joins the batches of `left` and `right` (one dataset of `parts`
/// partitions per batch of 100 ms each), with watermarks `delay_ms` behind
/// the largest event time of each side.
fn run(
    left: &[Vec<Row>],
    right: &[Vec<Row>],
    parts: usize,
    delay_ms: u64,
    (lower, upper): (i64, i64),
    kind: Kind,
) -> Run {
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let tick = Duration::from_millis(100);
    let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    let (ql, qr) = (StreamQueue::new(), StreamQueue::new());
    assert_eq!(left.len(), right.len());
    for (l, r) in left.iter().zip(right) {
        ql.push(ctx.parallelize(l.clone(), parts));
        qr.push(ctx.parallelize(r.clone(), parts));
    }
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(delay_ms));
    let keyed = |q: &StreamQueue<Row>| -> KeyedEventStream<char, Row> {
        ssc.queue_stream(q, spate::streaming::Dequeue::OneAtATime)
            .with_timestamps(|r: &Row| r.1, strategy.clone())
            .key_by(|r| r.0)
    };
    let (l, r) = (keyed(&ql), keyed(&qr));
    let join = l.interval_join(&r, lower, upper);
    fn lates(out: &IntervalJoinOutput<impl spate::Value, Row, Row>) -> [Arc<Mutex<Vec<Row>>>; 2] {
        let (a, b): (Arc<Mutex<Vec<Row>>>, Arc<Mutex<Vec<Row>>>) = Default::default();
        let (sa, sb) = (a.clone(), b.clone());
        out.late_left
            .foreach_rdd(move |rdd, _| {
                sa.lock().unwrap().extend(rdd.collect()?);
                Ok(())
            })
            .unwrap();
        out.late_right
            .foreach_rdd(move |rdd, _| {
                sb.lock().unwrap().extend(rdd.collect()?);
                Ok(())
            })
            .unwrap();
        [a, b]
    }
    let (seen, [late_l, late_r]) = match kind {
        Kind::Inner => {
            let out = join.inner();
            (
                collect(&out.joined, |(k, (l, r))| (k, (Some(l), Some(r)))),
                lates(&out),
            )
        }
        Kind::Left => {
            let out = join.left_outer();
            (
                collect(&out.joined, |(k, (l, r))| (k, (Some(l), r))),
                lates(&out),
            )
        }
        Kind::Right => {
            let out = join.right_outer();
            (
                collect(&out.joined, |(k, (l, r))| (k, (l, Some(r)))),
                lates(&out),
            )
        }
        Kind::Full => {
            let out = join.full_outer();
            (collect(&out.joined, |j| j), lates(&out))
        }
    };
    ssc.start().unwrap();
    for _ in 0..left.len() {
        clock.advance(tick);
        ssc.wait_for_batch(clock.now()).unwrap();
    }
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    let sorted = |v: &Arc<Mutex<Vec<Row>>>| {
        let mut v = v.lock().unwrap().clone();
        v.sort();
        v
    };
    let per_batch = seen.lock().unwrap().clone();
    Run {
        per_batch,
        late_left: sorted(&late_l),
        late_right: sorted(&late_r),
        batches: ssc.batches(),
    }
}

/// What the join must give, from the definition. Watermarks: each side's
/// is its largest event time so far minus `delay`; a row's is the smaller
/// of its side's just before it and the other side's after the previous
/// batch (in a batch, left rows come before right rows); the join's after
/// a batch is the smaller of the two sides' then, and never decreases. A
/// row below its watermark is late. Every pair of on-time rows of one key
/// with `l.time + lower <= r.time <= l.time + upper` is emitted in the
/// batch of its later row; an on-time row in no pair, for the outer
/// kinds, in the first batch from its own on whose join watermark is
/// above `l.time + upper` (left) or `r.time - lower` (right).
fn reference(
    left: &[Vec<Row>],
    right: &[Vec<Row>],
    delay: i64,
    (lower, upper): (i64, i64),
    kind: Kind,
) -> (Vec<Vec<Joined>>, Vec<Row>, Vec<Row>) {
    const NONE: i64 = i64::MIN;
    let mark = |max: i64| if max == NONE { NONE } else { max - delay };
    let (mut max_l, mut max_r, mut joint) = (NONE, NONE, NONE);
    // On-time rows with their batch; the join watermark after each batch.
    let (mut on_l, mut on_r) = (Vec::new(), Vec::new());
    let (mut late_l, mut late_r) = (Vec::new(), Vec::new());
    let mut joint_after = Vec::new();
    for (b, (ls, rs)) in left.iter().zip(right).enumerate() {
        let (cap_l, cap_r) = (mark(max_r), mark(max_l));
        for &row in ls {
            if row.1 < mark(max_l).min(cap_l) {
                late_l.push(row);
            } else {
                on_l.push((b, row));
            }
            max_l = max_l.max(row.1);
        }
        for &row in rs {
            if row.1 < mark(max_r).min(cap_r) {
                late_r.push(row);
            } else {
                on_r.push((b, row));
            }
            max_r = max_r.max(row.1);
        }
        joint = joint.max(mark(max_l).min(mark(max_r)));
        joint_after.push(joint);
    }
    let mut out = vec![Vec::new(); left.len()];
    let (mut paired_l, mut paired_r) = (vec![false; on_l.len()], vec![false; on_r.len()]);
    for (i, &(bl, l)) in on_l.iter().enumerate() {
        for (j, &(br, r)) in on_r.iter().enumerate() {
            if l.0 == r.0 && l.1 + lower <= r.1 && r.1 <= l.1 + upper {
                out[bl.max(br)].push((l.0, (Some(l), Some(r))));
                paired_l[i] = true;
                paired_r[j] = true;
            }
        }
    }
    // The batch a row arrived in or a later one.
    let first_above =
        |bound: i64, from: usize| (from..joint_after.len()).find(|&b| joint_after[b] > bound);
    if matches!(kind, Kind::Left | Kind::Full) {
        for (i, &(arrived, l)) in on_l.iter().enumerate() {
            if let Some(b) = first_above(l.1 + upper, arrived).filter(|_| !paired_l[i]) {
                out[b].push((l.0, (Some(l), None)));
            }
        }
    }
    if matches!(kind, Kind::Right | Kind::Full) {
        for (j, &(arrived, r)) in on_r.iter().enumerate() {
            if let Some(b) = first_above(r.1 - lower, arrived).filter(|_| !paired_r[j]) {
                out[b].push((r.0, (None, Some(r))));
            }
        }
    }
    for b in &mut out {
        b.sort();
    }
    late_l.sort();
    late_r.sort();
    (out, late_l, late_r)
}

#[test]
fn a_left_outer_row_is_emitted_once_the_watermark_passes_its_bound_not_when_it_reaches_it() {
    // Monotonous watermarks; bound [-500, 500].
    let left = vec![
        vec![('a', 1000, 1)],
        vec![('c', 1500, 2)],
        vec![('d', 1501, 3)],
    ];
    let right = vec![
        vec![('b', 1500, 11), ('a', 1400, 12)],
        vec![('c', 1500, 13)],
        vec![('d', 1501, 14)],
    ];
    let r = run(&left, &right, 2, 0, (-500, 500), Kind::Left);
    assert_eq!(
        r.per_batch,
        [
            // No watermark yet in the first batch: nothing is late.
            vec![('a', (Some(('a', 1000, 1)), Some(('a', 1400, 12))))],
            vec![('c', (Some(('c', 1500, 2)), Some(('c', 1500, 13))))],
            // 'a' 1000 joined: it is never emitted alone; nothing is.
            vec![('d', (Some(('d', 1501, 3)), Some(('d', 1501, 14))))],
        ]
    );
    // Without its partner, 'a' 1000 is emitted alone.
    let mut right = right;
    right[0].retain(|r| r.0 != 'a');
    let r = run(&left, &right, 2, 0, (-500, 500), Kind::Left);
    assert_eq!(
        r.per_batch,
        [
            vec![],
            // Watermark 1500 = 1000 + 500: not yet.
            vec![('c', (Some(('c', 1500, 2)), Some(('c', 1500, 13))))],
            // 1501 passes it.
            vec![
                ('a', (Some(('a', 1000, 1)), None)),
                ('d', (Some(('d', 1501, 3)), Some(('d', 1501, 14))))
            ],
        ]
    );
    assert!(r.late_left.is_empty() && r.late_right.is_empty());
}

#[test]
fn rows_are_buffered_only_while_the_bound_allows_and_late_rows_go_aside() {
    // Bound [0, 100]; watermark delay 0.
    let left = vec![
        vec![('a', 1000, 1), ('a', 1050, 2)],
        vec![('a', 1200, 3)],
        vec![],
    ];
    let right = vec![
        vec![('a', 1100, 11)],
        // The watermark here is 1050 (the left side's after batch 1):
        // 'a' 1000 is late.
        vec![('a', 1000, 12), ('a', 1250, 13)],
        vec![('z', 5000, 14)],
    ];
    let r = run(&left, &right, 1, 0, (0, 100), Kind::Full);
    assert_eq!(
        r.per_batch,
        [
            vec![
                ('a', (Some(('a', 1000, 1)), Some(('a', 1100, 11)))),
                ('a', (Some(('a', 1050, 2)), Some(('a', 1100, 11)))),
            ],
            vec![('a', (Some(('a', 1200, 3)), Some(('a', 1250, 13))))],
            // The left watermark stays at 1200: 'z' 5000 is not final
            // (5000 - 0 >= 1200).
            vec![],
        ]
    );
    assert_eq!(r.late_right, [('a', 1000, 12)]);
    let late: u64 = r.batches.iter().map(|b| b.late_records).sum();
    assert_eq!(late, 1);
    // After batch 1 (join watermark 1050) all three rows can still join.
    // After batch 2 (1200) 'a' 1000 (bound 1100), 'a' 1050 (1150) and
    // 'a' 1100 (1100) cannot; 'a' 1200 (1300) and 'a' 1250 stay, and
    // 'z' 5000 joins them in batch 3.
    let rows: Vec<u64> = r.batches.iter().map(|b| b.state[0].rows).collect();
    assert_eq!(rows, [3, 2, 3]);
}

#[test]
fn lower_above_upper_is_an_invalid_argument() {
    let ctx = common::ctx();
    let ssc =
        StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), ManualClock::new())
            .unwrap();
    let q = StreamQueue::<Row>::new();
    let keyed = ssc
        .queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
        .with_timestamps(|r: &Row| r.1, WatermarkStrategy::monotonous())
        .key_by(|r| r.0);
    keyed
        .interval_join(&keyed, 10, 5)
        .inner()
        .joined
        .foreach_rdd(|_, _| Ok(()))
        .unwrap();
    let err = ssc.start().unwrap_err();
    assert!(
        matches!(&err, spate::Error::InvalidArgument(m) if m.contains("lower bound 10 ms is above the upper bound 5 ms")),
        "{err}"
    );
}

/// Random rows of keys a-c, 0-4 per side per batch, event times advancing
/// 60 ms a batch with up to 500 ms of disorder, then a batch far ahead on
/// both sides that closes everything.
fn random_batches(seed: u64, batches: usize) -> (Vec<Vec<Row>>, Vec<Vec<Row>>) {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut id = 0;
    let mut side = |b: usize, next: &mut dyn FnMut() -> u64| -> Vec<Row> {
        (0..next() % 5)
            .map(|_| {
                id += 1;
                let key = ['a', 'b', 'c'][(next() % 3) as usize];
                (key, 1000 + 60 * b as i64 - (next() % 500) as i64, id)
            })
            .collect()
    };
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for b in 0..batches {
        left.push(side(b, &mut next));
        right.push(side(b, &mut next));
    }
    left.push(vec![('z', 1_000_000, 0)]);
    right.push(vec![('z', 1_000_000, 0)]);
    (left, right)
}

#[test]
fn every_kind_agrees_with_the_reference_on_random_rows_for_any_partitions() {
    let mut late_seen = 0;
    let mut outer_seen = 0;
    for seed in [3, 17, 2024] {
        let (left, right) = random_batches(seed, 14);
        for bounds in [(-300, 200), (100, 400), (0, 0)] {
            for kind in [Kind::Inner, Kind::Left, Kind::Right, Kind::Full] {
                for parts in [1, 3] {
                    let (expected, late_l, late_r) = reference(&left, &right, 150, bounds, kind);
                    let r = run(&left, &right, parts, 150, bounds, kind);
                    let what = format!("seed {seed}, {bounds:?}, {kind:?}, {parts} partitions");
                    assert_eq!(r.per_batch, expected, "{what}");
                    assert_eq!((&r.late_left, &r.late_right), (&late_l, &late_r), "{what}");
                    late_seen += late_l.len() + late_r.len();
                    outer_seen += expected
                        .iter()
                        .flatten()
                        .filter(|(_, (l, r))| l.is_none() || r.is_none())
                        .count();
                }
            }
        }
    }
    assert!(
        late_seen > 0 && outer_seen > 0,
        "the inputs exercise lateness and outer rows"
    );
}

#[test]
fn the_state_rows_after_the_last_batch_are_the_rows_still_within_their_bound() {
    let (left, right) = random_batches(99, 10);
    let bounds = (-200, 300);
    let r = run(&left, &right, 2, 150, bounds, Kind::Inner);
    // Recount from the definition: on-time rows whose bound the final
    // join watermark has not passed.
    let (_, late_l, late_r) = reference(&left, &right, 150, bounds, Kind::Inner);
    // Without idleness the join's watermark is the smaller side's.
    let final_mark = r
        .batches
        .last()
        .unwrap()
        .watermarks
        .iter()
        .map(|w| w.1)
        .min()
        .unwrap();
    let alive = |rows: &[Vec<Row>], late: &[Row], bound: i64| {
        rows.iter()
            .flatten()
            .filter(|row| !late.contains(row) && row.1 + bound >= final_mark)
            .count() as u64
    };
    let expected = alive(&left, &late_l, bounds.1) + alive(&right, &late_r, -bounds.0);
    let rows = r.batches.last().unwrap().state[0].rows;
    assert_eq!(rows, expected);
    assert!(expected > 0, "some rows are still buffered");
}
