//! Streaming on a manual clock: every batch's output is exact. Each test
//! feeds a queue stream one dataset per batch and compares every batch's
//! output with a reference computed on plain vectors.
#![allow(clippy::type_complexity)]

use crate::common;
use crate::common::sorted;
use spate::streaming::{
    DStream, ManualClock, StateOptions, StateSpec, StreamQueue, StreamingContext, StreamingLog,
    Time,
};
use spate::{Context, Error, Rdd};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TICK: Duration = Duration::from_millis(100);

/// A streaming context on a manual clock with a 100 ms batch interval.
struct Harness {
    ctx: Context,
    clock: ManualClock,
    ssc: StreamingContext,
}

type Batches<T> = Arc<Mutex<Vec<(Time, Vec<T>)>>>;

impl Harness {
    fn new() -> Harness {
        let ctx = common::ctx();
        let clock = ManualClock::new();
        let ssc = StreamingContext::with_manual_clock(&ctx, TICK, clock.clone()).unwrap();
        Harness { ctx, clock, ssc }
    }

    /// A queue stream fed one dataset (of `parts` partitions) per batch.
    fn input<T: spate::Value>(&self, batches: Vec<Vec<T>>, parts: usize) -> DStream<T> {
        let q = StreamQueue::new();
        for b in batches {
            q.push(self.ctx.parallelize(b, parts));
        }
        self.ssc
            .queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
    }

    /// Collects every batch of `stream`, sorted within the batch.
    fn collect<T: spate::Value + Ord>(&self, stream: &DStream<T>) -> Batches<T> {
        let out: Batches<T> = Arc::default();
        let sink = out.clone();
        stream
            .foreach_rdd(move |rdd, time| {
                sink.lock().unwrap().push((time, sorted(rdd.collect()?)));
                Ok(())
            })
            .unwrap();
        out
    }

    /// Starts (if needed) and runs `n` more batches.
    fn run(&self, n: usize) {
        if self.clock.now() == Time::from_millis(0) {
            self.ssc.start().unwrap();
        }
        for _ in 0..n {
            self.clock.advance(TICK);
            self.ssc.wait_for_batch(self.clock.now()).unwrap();
        }
    }
}

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn outputs<T: Clone>(b: &Batches<T>) -> Vec<Vec<T>> {
    b.lock().unwrap().iter().map(|(_, v)| v.clone()).collect()
}

fn lines() -> Vec<Vec<String>> {
    vec![
        vec!["a b a".into(), "c".into()],
        vec![],
        vec!["b b".into(), "".into(), "d a".into()],
        vec!["c".into()],
    ]
}

#[test]
fn narrow_operations_transform_each_batch_and_batch_times_follow_the_interval() {
    let h = Harness::new();
    let input = h.input(lines(), 2);
    let words =
        input.flat_map(|l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
    let long = h.collect(&words.filter(|w| w != "c").map(|w| w.to_uppercase()));
    let glommed = h.collect(&words.glom().map(|p| p.len()));
    let parts = h.collect(&words.map_partitions(|it| vec![it.count()]));
    let repart = h.collect(&words.repartition(3).glom().map(|p| p.len()));
    let short = h.collect(&words.filter_map(|w| (w != "a").then(|| w.to_uppercase())));
    h.run(4);
    let expected_short: Vec<Vec<String>> = lines()
        .iter()
        .map(|b| {
            sorted(
                b.iter()
                    .flat_map(|l| l.split_whitespace())
                    .filter(|w| *w != "a")
                    .map(|w| w.to_uppercase())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(outputs(&short), expected_short);
    let expected: Vec<Vec<String>> = lines()
        .iter()
        .map(|b| {
            sorted(
                b.iter()
                    .flat_map(|l| l.split_whitespace())
                    .filter(|w| *w != "c")
                    .map(|w| w.to_uppercase())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(outputs(&long), expected);
    let times: Vec<Time> = long.lock().unwrap().iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [ms(100), ms(200), ms(300), ms(400)]);
    // Two partitions per batch, whatever they hold.
    assert!(outputs(&glommed).iter().all(|b| b.len() == 2));
    let words_per_batch: Vec<usize> = lines()
        .iter()
        .map(|b| b.iter().flat_map(|l| l.split_whitespace()).count())
        .collect();
    let sums: Vec<usize> = outputs(&parts).iter().map(|b| b.iter().sum()).collect();
    assert_eq!(sums, words_per_batch);
    let repart_sums: Vec<usize> = outputs(&repart)
        .iter()
        .inspect(|b| assert_eq!(b.len(), 3))
        .map(|b| b.iter().sum())
        .collect();
    assert_eq!(repart_sums, words_per_batch);
}

#[test]
fn count_emits_zero_for_an_empty_batch_and_reduce_emits_nothing() {
    let h = Harness::new();
    let input = h.input(vec![vec![3, 4], vec![], vec![5]], 2);
    let counts = h.collect(&input.count());
    let sums = h.collect(&input.reduce(|a, b| a + b));
    let by_value = h.collect(&input.map(|x| x % 2).count_by_value());
    h.run(3);
    assert_eq!(outputs(&counts), [vec![2], vec![0], vec![1]]);
    assert_eq!(outputs(&sums), [vec![7], vec![], vec![5]]);
    assert_eq!(
        outputs(&by_value),
        [vec![(0, 1), (1, 1)], vec![], vec![(1, 1)]]
    );
}

#[test]
fn keyed_operations_per_batch_match_a_map_reference() {
    let h = Harness::new();
    let batches: Vec<Vec<(u32, u32)>> = vec![
        vec![(1, 10), (2, 20), (1, 11)],
        vec![],
        (0..200).map(|i| (i % 7, i)).collect(),
    ];
    let input = h.input(batches.clone(), 3);
    let reduced = h.collect(&input.reduce_by_key(|a, b| a + b));
    let grouped = h.collect(&input.group_by_key().map_values(sorted));
    let combined = h.collect(
        &input
            .combine_by_key(
                |v| vec![v],
                |mut c, v| {
                    c.push(v);
                    c
                },
                |mut a, mut b| {
                    a.append(&mut b);
                    a
                },
            )
            .map_values(sorted),
    );
    let mapped = h.collect(
        &input
            .map_values(|v| v * 2)
            .flat_map_values(|v| vec![v, v + 1]),
    );
    h.run(3);
    for (i, batch) in batches.iter().enumerate() {
        let mut sums: BTreeMap<u32, u32> = BTreeMap::new();
        let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &(k, v) in batch {
            *sums.entry(k).or_default() += v;
            groups.entry(k).or_default().push(v);
        }
        let groups: Vec<(u32, Vec<u32>)> =
            groups.into_iter().map(|(k, v)| (k, sorted(v))).collect();
        assert_eq!(outputs(&reduced)[i], sums.into_iter().collect::<Vec<_>>());
        assert_eq!(outputs(&grouped)[i], groups);
        assert_eq!(outputs(&combined)[i], groups);
        let flat: Vec<(u32, u32)> = sorted(
            batch
                .iter()
                .flat_map(|&(k, v)| [(k, v * 2), (k, v * 2 + 1)])
                .collect(),
        );
        assert_eq!(outputs(&mapped)[i], flat);
    }
}

#[test]
fn joins_and_cogroup_pair_the_batches_of_the_same_time() {
    let h = Harness::new();
    let left = h.input(vec![vec![(1, 'a'), (2, 'b')], vec![(3, 'c')]], 2);
    let right = h.input(vec![vec![(1, 10), (1, 11), (4, 40)], vec![]], 1);
    let inner = h.collect(&left.join(&right));
    let lo = h.collect(&left.left_outer_join(&right));
    let ro = h.collect(&left.right_outer_join(&right));
    let fo = h.collect(&left.full_outer_join(&right));
    let co = h.collect(&left.cogroup(&right));
    let both = h.collect(&left.map(|(k, _)| k).union(&right.map(|(k, _)| k)));
    h.run(2);
    assert_eq!(
        outputs(&inner),
        [vec![(1, ('a', 10)), (1, ('a', 11))], vec![]]
    );
    assert_eq!(
        outputs(&lo),
        [
            vec![(1, ('a', Some(10))), (1, ('a', Some(11))), (2, ('b', None))],
            vec![(3, ('c', None))]
        ]
    );
    assert_eq!(
        outputs(&ro),
        [
            vec![(1, (Some('a'), 10)), (1, (Some('a'), 11)), (4, (None, 40))],
            vec![]
        ]
    );
    assert_eq!(
        outputs(&fo),
        [
            vec![
                (1, (Some('a'), Some(10))),
                (1, (Some('a'), Some(11))),
                (2, (Some('b'), None)),
                (4, (None, Some(40)))
            ],
            vec![(3, (Some('c'), None))]
        ]
    );
    let co: Vec<Vec<(i32, (Vec<char>, Vec<i32>))>> = outputs(&co)
        .into_iter()
        .map(|b| {
            b.into_iter()
                .map(|(k, (a, b))| (k, (sorted(a), sorted(b))))
                .collect()
        })
        .collect();
    assert_eq!(
        co,
        [
            vec![
                (1, (vec!['a'], vec![10, 11])),
                (2, (vec!['b'], vec![])),
                (4, (vec![], vec![40]))
            ],
            vec![(3, (vec!['c'], vec![]))]
        ]
    );
    assert_eq!(outputs(&both), [vec![1, 1, 1, 2, 4], vec![3]]);
}

#[test]
fn transform_sees_the_batch_time_and_transform2_pairs_two_streams() {
    let h = Harness::new();
    let a = h.input(vec![vec![1, 2], vec![3]], 1);
    let b = h.input(vec![vec![10], vec![20, 30]], 1);
    let stamped = h.collect(&a.transform(|rdd, time| Ok(rdd.map(move |x| (time.millis(), x)))));
    let crossed = h.collect(&a.transform2(&b, |x, y, _| Ok(x.cartesian(y).map(|(p, q)| p * q))));
    h.run(2);
    assert_eq!(
        outputs(&stamped),
        [vec![(100, 1), (100, 2)], vec![(200, 3)]]
    );
    assert_eq!(outputs(&crossed), [vec![10, 20], vec![60, 90]]);
}

#[test]
fn a_window_at_time_t_holds_the_batches_in_t_minus_length_to_t() {
    let h = Harness::new();
    let input = h.input((1..=6).map(|i| vec![i]).collect(), 1);
    let w3 = h.collect(&input.window(3 * TICK, TICK));
    let w3s2 = h.collect(&input.window(3 * TICK, 2 * TICK));
    let counts = h.collect(&input.count_by_window(2 * TICK, 2 * TICK));
    let sums = h.collect(&input.reduce_by_window(|a, b| a + b, 3 * TICK, TICK));
    let sums_inv =
        h.collect(&input.reduce_by_window_inv(|a, b| a + b, |a, b| a - b, 3 * TICK, TICK));
    h.run(6);
    assert_eq!(
        outputs(&w3),
        [
            vec![1],
            vec![1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 5],
            vec![4, 5, 6]
        ]
    );
    let times: Vec<Time> = w3s2.lock().unwrap().iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [ms(200), ms(400), ms(600)]);
    assert_eq!(outputs(&w3s2), [vec![1, 2], vec![2, 3, 4], vec![4, 5, 6]]);
    assert_eq!(outputs(&counts), [vec![2], vec![2], vec![2]]);
    assert_eq!(
        outputs(&sums),
        [vec![1], vec![3], vec![6], vec![9], vec![12], vec![15]]
    );
    assert_eq!(outputs(&sums_inv), outputs(&sums));
}

/// Builds a graph with `build` on a fresh harness and starts it: the
/// error `start` gives, after checking that the context stays stopped.
fn start_error(build: impl FnOnce(&Harness) -> DStream<i32>) -> Error {
    let h = Harness::new();
    let out = h.collect(&build(&h));
    let err = h.ssc.start().unwrap_err();
    assert!(
        h.ssc.start().is_err(),
        "a refused context does not start later"
    );
    assert!(out.lock().unwrap().is_empty());
    err
}

#[test]
fn window_durations_that_are_not_multiples_of_the_slide_are_refused_at_start() {
    for (length, slide, expected) in [
        (
            Duration::from_millis(250),
            TICK,
            "window length 250ms is not a multiple",
        ),
        (
            3 * TICK,
            Duration::from_millis(150),
            "window slide 150ms is not a multiple",
        ),
        (Duration::ZERO, TICK, "window length"),
    ] {
        let err = start_error(|h| h.input(vec![vec![1]], 1).window(length, slide));
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains(expected)),
            "{length:?} {slide:?}: {err}"
        );
    }
    let err = start_error(|h| {
        h.input(vec![vec![1]], 1)
            .window(2 * TICK, 2 * TICK)
            .window(3 * TICK, 2 * TICK)
    });
    assert!(
        err.to_string()
            .contains("window length 300ms is not a multiple of the parent stream's slide 200ms"),
        "{err}"
    );
    let err = start_error(|h| {
        h.input(vec![vec![1]], 1)
            .map(|x| (x, 1))
            .reduce_by_key_and_window_inv(
                |a, b| a + b,
                |a, b| a - b,
                Duration::from_millis(150),
                TICK,
                2,
                None,
            )
            .map(|(k, _)| k)
    });
    assert!(err.to_string().contains("150ms"), "{err}");
}

#[test]
fn streams_of_different_slides_or_contexts_combined_are_refused_at_start() {
    let err = start_error(|h| {
        let input = h.input(vec![vec![1]], 1);
        input.union(&input.window(2 * TICK, 2 * TICK))
    });
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("different slide durations (100ms and 200ms)")),
        "{err}"
    );
    let err = start_error(|h| {
        let pairs = h.input(vec![vec![(1, 'a')]], 1);
        pairs
            .join(&pairs.window(2 * TICK, 2 * TICK))
            .map(|(k, _)| k)
    });
    assert!(
        err.to_string()
            .starts_with("invalid argument: join: streams with different slide"),
        "{err}"
    );
    let other = Harness::new();
    let foreign = other.input(vec![vec![2]], 1);
    let err = start_error(|h| h.input(vec![vec![1]], 1).union(&foreign));
    assert!(
        err.to_string()
            .contains("belong to different streaming contexts"),
        "{err}"
    );
    // The same graph with matching slides runs.
    let h = Harness::new();
    let input = h.input(vec![vec![1], vec![2]], 1);
    let both = h.collect(&input.union(&input.map(|x| x * 10)));
    h.run(2);
    assert_eq!(outputs(&both), [vec![1, 10], vec![2, 20]]);
}

/// Deterministic pseudo-random batches of (key, count) pairs.
fn random_batches(seed: u64, batches: usize) -> Vec<Vec<(u8, i64)>> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..batches)
        .map(|_| {
            let n = (next() % 12) as usize; // some batches are empty
            (0..n)
                .map(|_| ((next() % 6) as u8, (next() % 5) as i64 + 1))
                .collect()
        })
        .collect()
}

#[test]
fn reduce_by_key_and_window_with_and_without_inverse_agree_with_a_reference() {
    for seed in 1..=4 {
        let h = Harness::new();
        let data = random_batches(seed, 12);
        let input = h.input(data.clone(), 2);
        let (len, slide) = (4 * TICK, 2 * TICK);
        let plain = h.collect(&input.reduce_by_key_and_window(|a, b| a + b, len, slide, 3));
        let keep: spate::streaming::KeepFilter<u8, i64> = Arc::new(|(_, v)| *v != 0);
        let inv = h.collect(&input.reduce_by_key_and_window_inv(
            |a, b| a + b,
            |a, b| a - b,
            len,
            slide,
            3,
            Some(keep),
        ));
        let counts = h.collect(
            &input
                .map(|(k, _)| k)
                .count_by_value_and_window(len, slide, 2),
        );
        let groups = h.collect(
            &input
                .group_by_key_and_window(len, slide, 2)
                .map_values(sorted),
        );
        h.run(12);
        // Windows end at batches 2, 4, ..., 12 and hold the 4 batches up to it.
        for (w, end) in (2..=12usize).step_by(2).enumerate() {
            let window = &data[end.saturating_sub(4)..end];
            let mut sums: BTreeMap<u8, i64> = BTreeMap::new();
            let mut n: BTreeMap<u8, u64> = BTreeMap::new();
            let mut g: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
            for &(k, v) in window.iter().flatten() {
                *sums.entry(k).or_default() += v;
                *n.entry(k).or_default() += 1;
                g.entry(k).or_default().push(v);
            }
            let sums: Vec<(u8, i64)> = sums.into_iter().collect();
            assert_eq!(outputs(&plain)[w], sums, "seed {seed} window {w}");
            assert_eq!(outputs(&inv)[w], sums, "seed {seed} window {w} (inverse)");
            assert_eq!(outputs(&counts)[w], n.into_iter().collect::<Vec<_>>());
            let g: Vec<(u8, Vec<i64>)> = g.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            assert_eq!(outputs(&groups)[w], g);
        }
    }
}

#[test]
fn without_a_filter_keys_whose_window_value_falls_to_zero_stay() {
    let h = Harness::new();
    let input = h.input(vec![vec![('a', 1)], vec![], vec![]], 1);
    let inv = h.collect(&input.reduce_by_key_and_window_inv(
        |a, b| a + b,
        |a, b| a - b,
        2 * TICK,
        TICK,
        1,
        None,
    ));
    h.run(3);
    assert_eq!(
        outputs(&inv),
        [vec![('a', 1)], vec![('a', 1)], vec![('a', 0)]]
    );
}

#[test]
fn update_state_by_key_runs_for_keys_with_state_or_values_and_none_removes() {
    let h = Harness::new();
    let input = h.input(
        vec![
            vec![('a', 1), ('b', 2)],
            vec![('a', 3)],
            vec![],
            vec![('c', 1), ('b', 1)],
        ],
        2,
    );
    let calls: Arc<Mutex<Vec<(u64, char, Vec<i32>, Option<i32>)>>> = Arc::default();
    let seen = calls.clone();
    let initial = h.ctx.parallelize(vec![('z', 100)], 1);
    let state = input.update_state_by_key_with(
        StateOptions {
            partitioning: 3.into(),
            initial: Some(initial),
            ttl: None,
        },
        move |k: &char, new: Vec<i32>, old: Option<i32>| {
            seen.lock().unwrap().push((0, *k, sorted(new.clone()), old));
            let total = old.unwrap_or(0) + new.iter().sum::<i32>();
            // A key without new values for a batch is dropped, except z.
            if new.is_empty() && *k != 'z' {
                None
            } else {
                Some(total)
            }
        },
    );
    let out = h.collect(&state);
    h.run(4);
    assert_eq!(
        outputs(&out),
        [
            vec![('a', 1), ('b', 2), ('z', 100)],
            vec![('a', 4), ('z', 100)],
            vec![('z', 100)],
            vec![('b', 1), ('c', 1), ('z', 100)],
        ]
    );
    // b was called with no new values in batch 2 (and removed), then
    // started afresh in batch 4.
    let calls = calls.lock().unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.1 == 'b' && c.2.is_empty() && c.3 == Some(2))
    );
    assert_eq!(
        calls.iter().filter(|c| c.1 == 'z').count(),
        4,
        "z every batch"
    );
    let sizes: Vec<u64> = h.ssc.batches().iter().map(|b| b.state[0].keys).collect();
    assert_eq!(sizes, [3, 2, 1, 3], "state keys per batch");
    let rows: Vec<u64> = h.ssc.batches().iter().map(|b| b.state[0].rows).collect();
    assert_eq!(rows, sizes, "one row per key");
    assert!(h.ssc.batches()[0].state[0].bytes > 0);
}

#[test]
fn map_with_state_times_out_idle_keys_in_the_first_batch_past_the_deadline_once() {
    let h = Harness::new();
    // a arrives in batches 1 and 2, b in batch 1 only; timeout 300 ms.
    let input = h.input(
        vec![
            vec![('a', 1), ('b', 5)],
            vec![('a', 2)],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        ],
        2,
    );
    let spec = StateSpec::function(
        |time: Time, k: &char, v: Option<i32>, state: &mut spate::streaming::State<i32>| {
            if state.is_timing_out() {
                return Some(format!(
                    "{k} timed out at {} with {}",
                    time.millis(),
                    state.get().unwrap()
                ));
            }
            let total = state.get().copied().unwrap_or(0) + v.unwrap_or(0);
            state.update(total);
            Some(format!("{k}={total}"))
        },
    )
    .timeout(Duration::from_millis(300))
    .partitioning(2);
    let mapped = input.map_with_state(spec);
    let out = h.collect(mapped.stream());
    let snaps = h.collect(&mapped.state_snapshots());
    h.run(7);
    assert_eq!(
        outputs(&out),
        [
            vec!["a=1".to_string(), "b=5".to_string()],
            vec!["a=3".to_string()],
            vec![],
            // b was last seen at 100: at 400 it has been idle exactly the
            // timeout, not more.
            vec![],
            vec!["b timed out at 500 with 5".to_string()],
            vec!["a timed out at 600 with 3".to_string()],
            vec![],
        ]
    );
    assert_eq!(
        outputs(&snaps),
        [
            vec![('a', 1), ('b', 5)],
            vec![('a', 3), ('b', 5)],
            vec![('a', 3), ('b', 5)],
            vec![('a', 3), ('b', 5)],
            vec![('a', 3)],
            vec![],
            vec![],
        ]
    );
    let keys: Vec<u64> = h.ssc.batches().iter().map(|b| b.state[0].keys).collect();
    assert_eq!(keys, [2, 2, 2, 2, 1, 0, 0]);
}

#[test]
fn map_with_state_starts_from_the_initial_state() {
    let h = Harness::new();
    let input = h.input(vec![vec![('a', 1)]], 1);
    let initial = h.ctx.parallelize(vec![('a', 10), ('q', 7)], 2);
    let spec = StateSpec::function(
        |_, _k: &char, v: Option<i32>, s: &mut spate::streaming::State<i32>| {
            let t = s.get().copied().unwrap_or(0) + v.unwrap_or(0);
            s.update(t);
            Some(t)
        },
    )
    .initial_state(initial);
    let m = input.map_with_state(spec);
    let out = h.collect(m.stream());
    let snaps = h.collect(&m.state_snapshots());
    h.run(1);
    assert_eq!(outputs(&out), [vec![11]]);
    assert_eq!(outputs(&snaps), [vec![('a', 11), ('q', 7)]]);
}

#[test]
fn slice_returns_the_remembered_batches_in_a_time_range() {
    let h = Harness::new();
    let input = h.input((1..=4).map(|i| vec![i]).collect(), 1);
    // A window keeps the input's last batches remembered.
    let _w = h.collect(&input.window(4 * TICK, TICK));
    h.run(4);
    let sliced: Vec<Vec<i32>> = input
        .slice(ms(200), ms(400))
        .unwrap()
        .iter()
        .map(|r: &Rdd<i32>| r.collect().unwrap())
        .collect();
    assert_eq!(sliced, [vec![2], vec![3], vec![4]]);
}

#[test]
fn lifecycle_errors_are_reported_and_the_engine_stays_usable() {
    let h = Harness::new();
    let input = h.input(vec![vec![1]], 1);
    let err = h.ssc.start().unwrap_err();
    assert!(err.to_string().contains("no output"), "{err}");
    let _ = h.collect(&input);
    h.ssc.start().unwrap();
    assert!(h.ssc.start().is_err(), "started twice");
    assert!(
        input.count().foreach_rdd(|_, _| Ok(())).is_err(),
        "output after start"
    );
    h.ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    assert_eq!(h.ctx.parallelize(vec![1, 2], 2).count().unwrap(), 2);
}

#[test]
fn a_failing_batch_stops_the_context_with_an_error_naming_its_time() {
    let h = Harness::new();
    let input = h.input(vec![vec![1], vec![2]], 1);
    input
        .foreach_rdd(|rdd, _| {
            if rdd.collect()? == [2] {
                return Err(Error::InvalidArgument("bad record 2".into()));
            }
            Ok(())
        })
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(TICK);
    h.ssc.wait_for_batch(ms(100)).unwrap();
    h.clock.advance(TICK);
    let err = h.ssc.await_termination().unwrap_err();
    assert!(
        matches!(&err, Error::BatchFailed { time_ms: 200, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bad record 2"));
    assert_eq!(h.ctx.parallelize(vec![1], 1).count().unwrap(), 1);
}

#[test]
fn a_graceful_stop_processes_queued_data_first() {
    let h = Harness::new();
    let q = StreamQueue::new();
    for i in 0..3 {
        q.push(h.ctx.parallelize(vec![i], 1));
    }
    let out = h.collect(
        &h.ssc
            .queue_stream(&q, spate::streaming::Dequeue::OneAtATime),
    );
    h.run(1);
    h.ssc.stop(spate::streaming::StopMode::Graceful).unwrap();
    assert_eq!(outputs(&out), [vec![0], vec![1], vec![2]]);
    assert!(q.is_empty());
    assert!(
        h.ssc
            .await_termination_or_timeout(Duration::from_millis(10))
            .unwrap()
    );
}

#[test]
fn an_immediate_stop_leaves_queued_data() {
    let h = Harness::new();
    let q = StreamQueue::new();
    for i in 0..3 {
        q.push(h.ctx.parallelize(vec![i], 1));
    }
    let out = h.collect(
        &h.ssc
            .queue_stream(&q, spate::streaming::Dequeue::OneAtATime),
    );
    h.run(1);
    h.ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    assert_eq!(outputs(&out), [vec![0]]);
    assert_eq!(q.len(), 2);
}

#[test]
fn listeners_see_every_batch_and_the_summary_at_stop() {
    let h = Harness::new();
    let log = Arc::new(StreamingLog::default());
    h.ssc.add_listener(log.clone());
    let input = h.input(vec![vec![1, 2], vec![3]], 1);
    let _ = h.collect(&input);
    h.run(2);
    h.ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    let times: Vec<Time> = log.batches().iter().map(|b| b.time).collect();
    assert_eq!(times, [ms(100), ms(200)]);
    let stopped = log.events().into_iter().find_map(|e| match e {
        spate::streaming::StreamingEvent::Stopped(s) => Some(s),
        _ => None,
    });
    assert_eq!(stopped.map(|s| s.batches), Some(2));
}

#[test]
fn queue_stream_all_at_once_takes_everything_queued() {
    let h = Harness::new();
    let q = StreamQueue::new();
    q.push(h.ctx.parallelize(vec![1, 2], 1));
    q.push(h.ctx.parallelize(vec![3], 1));
    let out = h.collect(&h.ssc.queue_stream(&q, spate::streaming::Dequeue::All));
    h.run(2);
    assert_eq!(outputs(&out), [vec![1, 2, 3], vec![]]);
}

#[test]
fn saved_batches_are_directories_per_batch_and_a_rerun_replaces_them() {
    let h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("out").to_string_lossy().into_owned();
    let input = h.input(vec![vec![1, 2], vec![3]], 2);
    input
        .save_as_text_files(prefix.clone(), Some("txt"))
        .unwrap();
    h.run(2);
    let read = |t: u64| common::read_part_lines(std::path::Path::new(&format!("{prefix}-{t}.txt")));
    assert_eq!(read(100), ["1", "2"]);
    assert_eq!(read(200), ["3"]);
    // No temporary directories are left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(sorted(names), ["out-100.txt", "out-200.txt"]);
    // Different stream, same prefix and batch time: replaced, not merged.
    let h2 = Harness::new();
    h2.input(vec![vec![9]], 1)
        .save_as_text_files(prefix.clone(), Some("txt"))
        .unwrap();
    h2.run(1);
    assert_eq!(read(100), ["9"]);
}

#[test]
fn results_do_not_depend_on_the_number_of_partitions() {
    let mut results = Vec::new();
    for parts in common::PARTITIONS {
        let h = Harness::new();
        let data = random_batches(9, 6);
        let input = h.input(data, parts);
        let state = input.update_state_by_key(|_, new: Vec<i64>, old: Option<i64>| {
            Some(old.unwrap_or(0) + new.iter().sum::<i64>())
        });
        let out = h.collect(&state);
        let windows =
            h.collect(&input.reduce_by_key_and_window(|a, b| a + b, 3 * TICK, TICK, parts));
        h.run(6);
        results.push((outputs(&out), outputs(&windows)));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    let _: HashMap<u8, i64> = HashMap::new();
}

/// Writes `name` in `dir` atomically: elsewhere first, then renamed in.
fn drop_file(dir: &std::path::Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Files already in the directory are read too (Spark's `newFilesOnly = false`).
fn every_file() -> spate::streaming::FileStreamOptions {
    spate::streaming::FileStreamOptions {
        new_files_only: false,
        max_files_per_batch: None,
    }
}

#[test]
fn text_file_stream_by_default_skips_the_files_there_when_it_is_defined() {
    let h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    drop_file(dir.path(), "old.txt", "old1\n");
    let out = h.collect(&h.ssc.text_file_stream(dir.path()));
    // After the definition, before the start: new.
    drop_file(dir.path(), "early.txt", "early1\n");
    h.run(1);
    drop_file(dir.path(), "late.txt", "late1\n");
    h.run(1);
    assert_eq!(
        outputs(&out),
        [vec!["early1".to_string()], vec!["late1".to_string()]]
    );
}

#[test]
fn text_file_stream_reads_each_new_file_once_in_the_batch_after_it_appears() {
    let h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    drop_file(dir.path(), "a.txt", "a1\na2\n");
    std::fs::write(dir.path().join("_ignored"), "x\n").unwrap();
    let out = h.collect(&h.ssc.text_file_stream_with(dir.path(), every_file()));
    h.run(1);
    drop_file(dir.path(), "b.txt", "b1\n");
    drop_file(dir.path(), "c.txt", "c1\r\nc2");
    h.run(2);
    drop_file(dir.path(), "d.txt", "");
    h.run(1);
    assert_eq!(
        outputs(&out),
        [
            vec!["a1".to_string(), "a2".to_string()],
            vec!["b1".to_string(), "c1".to_string(), "c2".to_string()],
            vec![],
            vec![],
        ]
    );
}

/// The input warnings the streaming context reported.
fn input_warnings(log: &StreamingLog) -> Vec<String> {
    log.events()
        .into_iter()
        .filter_map(|e| match e {
            spate::streaming::StreamingEvent::InputWarning { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[test]
fn text_file_stream_skips_and_reports_a_line_that_is_not_utf8_instead_of_stopping() {
    let h = Harness::new();
    let log = Arc::new(StreamingLog::default());
    h.ssc.add_listener(log.clone());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.bin");
    std::fs::write(dir.path().join(".bad.tmp"), b"ok1\nbr\xffoken\nok2\n").unwrap();
    std::fs::rename(dir.path().join(".bad.tmp"), &bad).unwrap();
    // Two outputs read the batch: the bad line still counts once.
    let stream = h.ssc.text_file_stream_with(dir.path(), every_file());
    let out = h.collect(&stream);
    stream.count().foreach_rdd(|_, _| Ok(())).unwrap();
    h.run(1);
    drop_file(dir.path(), "good.txt", "ok3\n");
    h.run(1);
    assert_eq!(
        outputs(&out),
        [
            vec!["ok1".to_string(), "ok2".to_string()],
            vec!["ok3".to_string()]
        ]
    );
    let invalid: Vec<u64> = log.batches().iter().map(|b| b.invalid_records).collect();
    assert_eq!(invalid, [1, 0]);
    let warnings = input_warnings(&log);
    let at = format!("{} that is not UTF-8 (bad byte at offset 6)", bad.display());
    assert!(warnings.iter().any(|w| w.contains(&at)), "{warnings:?}");
}

#[test]
fn csv_and_json_lines_file_streams_read_new_files_and_report_each_bad_record_once() {
    let h = Harness::new();
    let log = Arc::new(StreamingLog::default());
    h.ssc.add_listener(log.clone());
    let (csv_dir, json_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    drop_file(csv_dir.path(), "a.csv", "key,value\na,1\nb,oops\nc,3\n");
    let csv =
        h.ssc
            .csv_file_stream::<(String, u32)>(csv_dir.path(), &Default::default(), every_file());
    let json = h.ssc.json_lines_file_stream::<(String, u32)>(
        json_dir.path(),
        &Default::default(),
        every_file(),
    );
    // Two outputs read the CSV batch: its bad record is reported once.
    let csv_out = h.collect(&csv);
    csv.count().foreach_rdd(|_, _| Ok(())).unwrap();
    let json_out = h.collect(&json);
    h.run(1);
    drop_file(
        json_dir.path(),
        "b.jsonl",
        "[\"d\",4]\n{not json}\n[\"e\",5]\n",
    );
    drop_file(csv_dir.path(), "c.csv", "key,value\nf,6\n");
    h.run(1);
    let pair = |k: &str, v| (k.to_string(), v);
    assert_eq!(
        outputs(&csv_out),
        [vec![pair("a", 1), pair("c", 3)], vec![pair("f", 6)]]
    );
    assert_eq!(
        outputs(&json_out),
        [vec![], vec![pair("d", 4), pair("e", 5)]]
    );
    let invalid: Vec<u64> = log.batches().iter().map(|b| b.invalid_records).collect();
    assert_eq!(invalid, [1, 1]);
    let warnings = input_warnings(&log);
    let csv_at = format!(
        "{} at line 3, field 2",
        csv_dir.path().join("a.csv").display()
    );
    let json_at = format!(
        "{} at line 2, column",
        json_dir.path().join("b.jsonl").display()
    );
    assert_eq!(
        warnings.iter().filter(|w| w.contains(&csv_at)).count(),
        1,
        "{warnings:?}"
    );
    assert_eq!(
        warnings.iter().filter(|w| w.contains(&json_at)).count(),
        1,
        "{warnings:?}"
    );
}

#[test]
fn text_file_stream_on_a_missing_directory_fails_the_batch_naming_it() {
    let h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    h.ssc
        .text_file_stream(&missing)
        .foreach_rdd(|_, _| Ok(()))
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(TICK);
    let err = h.ssc.await_termination().unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

/// A temporary directory with a checkpoint path and an (existing) input
/// directory in it.
fn checkpoint_dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let (ckpt, input) = (root.path().join("ckpt"), root.path().join("in"));
    std::fs::create_dir(&input).unwrap();
    (root, ckpt, input)
}

/// Word totals over a file stream with a checkpoint, on a manual clock that
/// starts at `start`; `weight` is what one occurrence adds (the "code" that
/// may change between runs).
fn checkpointed_totals(
    ctx: &Context,
    checkpoint: &std::path::Path,
    input: &std::path::Path,
    start: Time,
    weight: u64,
) -> (
    StreamingContext,
    ManualClock,
    Batches<(String, u64)>,
    Arc<Mutex<Vec<usize>>>,
) {
    let clock = ManualClock::new();
    clock.set(start);
    let out: Batches<(String, u64)> = Arc::default();
    let files_per_batch: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (sink, sizes, c2) = (out.clone(), files_per_batch.clone(), clock.clone());
    let ssc = StreamingContext::get_or_create(checkpoint, move || {
        let ssc = StreamingContext::with_manual_clock(ctx, TICK, c2)?;
        ssc.set_checkpoint_interval(TICK)?;
        let lines = ssc.text_file_stream(input);
        lines.count().foreach_rdd(move |rdd, _| {
            sizes.lock().unwrap().push(rdd.collect()?[0] as usize);
            Ok(())
        })?;
        lines
            .map(move |w| (w, weight))
            .update_state_by_key(|_, new: Vec<u64>, total: Option<u64>| {
                Some(total.unwrap_or(0) + new.iter().sum::<u64>())
            })
            .foreach_rdd(move |rdd, time| {
                sink.lock().unwrap().push((time, sorted(rdd.collect()?)));
                Ok(())
            })?;
        Ok(ssc)
    })
    .unwrap();
    (ssc, clock, out, files_per_batch)
}

#[test]
fn a_restarted_program_with_changed_code_continues_from_the_checkpointed_state() {
    let ctx = common::ctx();
    let (_root, ckpt, input) = checkpoint_dirs();
    let (ssc, clock, out, _) = checkpointed_totals(&ctx, &ckpt, &input, ms(0), 1);
    ssc.start().unwrap();
    for (i, word) in ["a", "b", "a"].iter().enumerate() {
        drop_file(&input, &format!("f{i}"), &format!("{word}\n"));
        clock.advance(TICK);
        ssc.wait_for_batch(clock.now()).unwrap();
    }
    assert_eq!(
        outputs(&out)[2],
        [("a".to_string(), 2), ("b".to_string(), 1)]
    );
    drop(ssc); // the program ends (as if killed after its third batch)

    // The new version weighs each occurrence 10, and prints differently.
    drop_file(&input, "f3", "a\nc\n");
    let (ssc, clock, out, _) = checkpointed_totals(&ctx, &ckpt, &input, ms(300), 10);
    ssc.start().unwrap();
    clock.advance(TICK);
    ssc.wait_for_batch(ms(400)).unwrap();
    let b = out.lock().unwrap().clone();
    assert_eq!(b.len(), 1, "only the new batch runs: {b:?}");
    assert_eq!(b[0].0, ms(400));
    assert_eq!(
        b[0].1,
        [
            ("a".to_string(), 12),
            ("b".to_string(), 1),
            ("c".to_string(), 10)
        ]
    );
}

#[test]
fn after_a_restart_missed_batches_catch_up_at_most_the_largest_batch_each() {
    let ctx = common::ctx();
    let (_root, ckpt, input) = checkpoint_dirs();
    let (ssc, clock, _, sizes) = checkpointed_totals(&ctx, &ckpt, &input, ms(0), 1);
    ssc.start().unwrap();
    for b in 0..2 {
        drop_file(&input, &format!("f{}", 2 * b), "x\n");
        drop_file(&input, &format!("f{}", 2 * b + 1), "y\n");
        clock.advance(TICK);
        ssc.wait_for_batch(clock.now()).unwrap();
    }
    assert_eq!(*sizes.lock().unwrap(), [2, 2]);
    drop(ssc);
    // Down for five batch times, while five files arrive.
    for f in 4..9 {
        drop_file(&input, &format!("f{f}"), "z\n");
    }
    let (ssc, _clock, out, sizes) = checkpointed_totals(&ctx, &ckpt, &input, ms(700), 1);
    ssc.start().unwrap();
    ssc.wait_for_batch(ms(700)).unwrap();
    assert_eq!(
        *sizes.lock().unwrap(),
        [2, 2, 1, 0, 0],
        "one giant batch avoided"
    );
    let last = out.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last.1,
        [
            ("x".to_string(), 2),
            ("y".to_string(), 2),
            ("z".to_string(), 5)
        ]
    );
}

#[test]
fn a_checkpoint_of_another_batch_interval_is_refused() {
    let ctx = common::ctx();
    let (_root, ckpt, input) = checkpoint_dirs();
    let (ssc, clock, _, _) = checkpointed_totals(&ctx, &ckpt, &input, ms(0), 1);
    ssc.start().unwrap();
    clock.advance(TICK);
    ssc.wait_for_batch(ms(100)).unwrap();
    drop(ssc);
    let err = StreamingContext::get_or_create(&ckpt, || {
        let ssc = StreamingContext::new(&ctx, Duration::from_millis(250))?;
        ssc.queue_stream(
            &StreamQueue::<u8>::new(),
            spate::streaming::Dequeue::OneAtATime,
        )
        .foreach_rdd(|_, _| Ok(()))?;
        Ok(ssc)
    })
    .err()
    .expect("refused");
    assert!(err.to_string().contains("batch interval"), "{err}");
    std::fs::write(ckpt.join("metadata"), b"garbage").unwrap();
    let err = StreamingContext::get_or_create(&ckpt, || StreamingContext::new(&ctx, TICK))
        .err()
        .expect("corrupt");
    assert!(matches!(err, Error::CorruptCheckpoint { .. }), "{err}");
}

/// How a restarted word-total program differs from the first one.
#[derive(Clone, Copy, PartialEq)]
enum Change {
    None,
    /// Another map closure and an extra output at the end: compatible.
    ClosureAndOutput,
    StateType,
    Input,
    NoState,
}

/// Word totals over `input` checkpointed in `ckpt`, state checkpointed
/// every 10 batches (so one batch saves metadata but no state), changed by
/// `change`. Returns the context, its clock and the totals per batch.
fn word_totals(
    ctx: &Context,
    ckpt: &std::path::Path,
    input: &std::path::Path,
    start: Time,
    change: Change,
) -> spate::Result<(StreamingContext, ManualClock, Batches<(String, u64)>)> {
    let clock = ManualClock::new();
    clock.set(start);
    let out: Batches<(String, u64)> = Arc::default();
    let (sink, c2) = (out.clone(), clock.clone());
    let ssc = StreamingContext::get_or_create(ckpt, move || {
        let ssc = StreamingContext::with_manual_clock(ctx, TICK, c2)?;
        ssc.set_checkpoint_interval(10 * TICK)?;
        let lines = if change == Change::Input {
            ssc.socket_text_stream("127.0.0.1", 9)
        } else {
            ssc.text_file_stream(input)
        };
        let weight = if change == Change::ClosureAndOutput {
            2
        } else {
            1
        };
        let pairs = lines.map(move |w| (w, weight));
        if change == Change::NoState {
            pairs
                .reduce_by_key(|a, b| a + b)
                .foreach_rdd(|_, _| Ok(()))?;
            return Ok(ssc);
        }
        if change == Change::StateType {
            pairs
                .update_state_by_key(|_, new: Vec<u64>, total: Option<i64>| {
                    Some(total.unwrap_or(0) + new.iter().sum::<u64>() as i64)
                })
                .foreach_rdd(|_, _| Ok(()))?;
            return Ok(ssc);
        }
        let totals = pairs.update_state_by_key(|_, new: Vec<u64>, total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        });
        totals.foreach_rdd(move |rdd, time| {
            sink.lock().unwrap().push((time, sorted(rdd.collect()?)));
            Ok(())
        })?;
        if change == Change::ClosureAndOutput {
            totals.count().foreach_rdd(|_, _| Ok(()))?;
        }
        Ok(ssc)
    })?;
    Ok((ssc, clock, out))
}

#[test]
fn a_restart_by_an_incompatible_program_is_refused_naming_the_difference_even_without_saved_state()
{
    let ctx = common::ctx();
    let (_root, ckpt, input) = checkpoint_dirs();
    let (ssc, clock, _) = word_totals(&ctx, &ckpt, &input, ms(0), Change::None).unwrap();
    ssc.start().unwrap();
    drop_file(&input, "f0", "a\nb\n");
    clock.advance(TICK);
    ssc.wait_for_batch(ms(100)).unwrap();
    drop(ssc);
    let difference = |change| match word_totals(&ctx, &ckpt, &input, ms(100), change) {
        Err(Error::IncompatibleCheckpoint { path, difference }) => {
            assert_eq!(path, ckpt);
            difference
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("restarted"),
    };
    // Streams by creation order: 0 the input, 1 the map, 2 the state.
    let state = |t: &str| {
        format!(
            "update_state_by_key with state (alloc::string::String, spate::streaming::state::Tracked<{t}>)"
        )
    };
    assert_eq!(
        difference(Change::StateType),
        format!(
            "stream 2 is {} in the checkpoint but {} in this program",
            state("u64"),
            state("i64")
        )
    );
    assert_eq!(
        difference(Change::Input),
        "stream 0 is replayable_stream from \
         spate::streaming::replay::NewFiles<alloc::string::String> in the checkpoint but receiver_stream from spate::streaming::source::SocketLines in this \
         program"
    );
    assert_eq!(
        difference(Change::NoState),
        format!(
            "the checkpoint has stream 2 ({}), which this program does not have",
            state("u64")
        )
    );
    // A changed closure and a new output restart, and the totals go on.
    drop_file(&input, "f1", "a\n");
    let (ssc, clock, out) =
        word_totals(&ctx, &ckpt, &input, ms(100), Change::ClosureAndOutput).unwrap();
    ssc.start().unwrap();
    clock.advance(TICK);
    ssc.wait_for_batch(ms(200)).unwrap();
    let last = out.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.0, ms(200));
    // No state was saved: batch 100 is recomputed from its input, by the
    // new code (weight 2), then batch 200.
    assert_eq!(last.1, [("a".to_string(), 4), ("b".to_string(), 2)]);
}

#[test]
fn a_state_ttl_drops_keys_without_new_values_and_without_calling_the_function() {
    let h = Harness::new();
    let input = h.input(
        vec![
            vec![('a', 1), ('b', 1)],
            vec![('b', 1)],
            vec![],
            vec![('b', 1)],
        ],
        2,
    );
    let calls: Arc<Mutex<Vec<(char, usize)>>> = Arc::default();
    let seen = calls.clone();
    let state = input.update_state_by_key_with(
        StateOptions {
            ttl: Some(2 * TICK),
            ..StateOptions::default()
        },
        move |k: &char, new: Vec<i32>, old: Option<i32>| {
            seen.lock().unwrap().push((*k, new.len()));
            Some(old.unwrap_or(0) + new.iter().sum::<i32>())
        },
    );
    let out = h.collect(&state);
    let spec = StateSpec::function(
        |_, _k: &char, v: Option<i32>, s: &mut spate::streaming::State<i32>| {
            let t = s.get().copied().unwrap_or(0) + v.unwrap_or(0);
            s.update(t);
            None::<i32>
        },
    )
    .ttl(2 * TICK);
    let snaps = h.collect(&input.map_with_state(spec).state_snapshots());
    h.run(4);
    // a last had values at 100: kept at 200, dropped at 300 (idle 200 ms).
    // b had values at 200, none at 300 (idle 100 ms: kept), new at 400.
    assert_eq!(
        outputs(&out),
        [
            vec![('a', 1), ('b', 1)],
            vec![('a', 1), ('b', 2)],
            vec![('b', 2)],
            vec![('b', 3)],
        ]
    );
    assert_eq!(outputs(&snaps), outputs(&out));
    let calls = calls.lock().unwrap();
    assert_eq!(
        calls.iter().filter(|c| c.0 == 'a').count(),
        2,
        "not called when dropped: {calls:?}"
    );
}

#[test]
fn a_panicking_output_fails_its_batch_with_an_error_instead_of_hanging() {
    let h = Harness::new();
    let input = h.input(vec![vec![1], vec![2]], 1);
    input
        .foreach_rdd(|rdd, _| {
            if rdd.collect()? == [2] {
                panic!("output closure broke on 2");
            }
            Ok(())
        })
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(TICK);
    h.ssc.wait_for_batch(ms(100)).unwrap();
    h.clock.advance(TICK);
    let err = h.ssc.await_termination().unwrap_err();
    assert!(
        matches!(&err, Error::BatchFailed { time_ms: 200, .. }),
        "{err}"
    );
    assert!(
        matches!(err.root_cause(), Error::Panicked(m) if m.contains("broke on 2")),
        "{err}"
    );
    assert_eq!(h.ctx.parallelize(vec![1, 2, 3], 2).count().unwrap(), 3);
}

#[test]
fn an_output_may_stop_its_own_context() {
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let ssc = Arc::new(StreamingContext::with_manual_clock(&ctx, TICK, clock.clone()).unwrap());
    let q = StreamQueue::new();
    for i in 1..=3 {
        q.push(ctx.parallelize(vec![i], 1));
    }
    let seen: Arc<Mutex<Vec<i32>>> = Arc::default();
    let (sink, weak) = (seen.clone(), Arc::downgrade(&ssc));
    ssc.queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
        .foreach_rdd(move |rdd, _| {
            let batch = rdd.collect()?;
            sink.lock().unwrap().extend(&batch);
            if batch == [2] {
                if let Some(ssc) = weak.upgrade() {
                    ssc.stop(spate::streaming::StopMode::Immediately)?;
                }
            }
            Ok(())
        })
        .unwrap();
    ssc.start().unwrap();
    clock.advance(TICK);
    ssc.wait_for_batch(ms(100)).unwrap();
    clock.advance(TICK);
    assert!(
        ssc.await_termination_or_timeout(Duration::from_secs(10))
            .unwrap()
    );
    clock.advance(TICK);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(*seen.lock().unwrap(), [1, 2], "no batch after the stop");
}

/// The `rdd-*` state directories under a streaming checkpoint, and its
/// `run-*` directories.
fn state_dirs(ckpt: &std::path::Path) -> (usize, usize) {
    let (mut states, mut runs) = (0, 0);
    for run in std::fs::read_dir(ckpt).unwrap().map(|e| e.unwrap().path()) {
        if run
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("run-")
        {
            runs += 1;
            states += std::fs::read_dir(&run).unwrap().count();
        }
    }
    (states, runs)
}

#[test]
fn a_streaming_checkpoint_directory_stays_bounded_over_many_batches_and_restarts() {
    let ctx = common::ctx();
    let (_root, ckpt, input) = checkpoint_dirs();
    let mut start = ms(0);
    let mut file = 0;
    for restart in 0..4 {
        let (ssc, clock, out, _) = checkpointed_totals(&ctx, &ckpt, &input, start, 1);
        ssc.start().unwrap();
        for _ in 0..15 {
            drop_file(&input, &format!("f{file:03}"), "w\n");
            file += 1;
            clock.advance(TICK);
            ssc.wait_for_batch(clock.now()).unwrap();
            // One stateful stream: its current state, and at most the one
            // the batch just wrote before the metadata names it.
            let (states, runs) = state_dirs(&ckpt);
            assert!(states <= 2, "restart {restart}: {states} state dirs");
            assert!(runs <= 2, "restart {restart}: {runs} run dirs");
        }
        let last = out.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last.1, [("w".to_string(), file as u64)], "state carried on");
        start = clock.now();
        drop(ssc);
    }
    assert_eq!(state_dirs(&ckpt), (1, 1), "only what the metadata names");
}

#[test]
fn a_second_streaming_context_on_a_checkpoint_directory_is_refused_until_the_first_is_gone() {
    let ctx = common::ctx();
    let (_root, ckpt, input) = checkpoint_dirs();
    let (first, _, _, _) = checkpointed_totals(&ctx, &ckpt, &input, ms(0), 1);
    let second = StreamingContext::get_or_create(&ckpt, || {
        StreamingContext::with_manual_clock(&ctx, TICK, ManualClock::new())
    });
    match second {
        Err(Error::CheckpointInUse { pid, path }) => {
            assert_eq!(pid, std::process::id());
            assert!(path.starts_with(ckpt.canonicalize().unwrap()), "{path:?}");
        }
        other => panic!("expected CheckpointInUse, got {:?}", other.err()),
    }
    drop(first);
    let (again, _, _, _) = checkpointed_totals(&ctx, &ckpt, &input, ms(0), 1);
    drop(again);
}

#[test]
fn emptied_state_part_files_fail_the_restart_instead_of_continuing_with_empty_state() {
    let ctx = common::ctx();
    let (_root, ckpt, input) = checkpoint_dirs();
    let (ssc, clock, _, _) = checkpointed_totals(&ctx, &ckpt, &input, ms(0), 1);
    ssc.start().unwrap();
    for i in 0..3 {
        drop_file(&input, &format!("f{i}"), "a\nb\n");
        clock.advance(TICK);
        ssc.wait_for_batch(clock.now()).unwrap();
    }
    drop(ssc);
    let mut emptied = Vec::new();
    for run in std::fs::read_dir(&ckpt).unwrap().map(|e| e.unwrap().path()) {
        if !run.is_dir() {
            continue;
        }
        for state in std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().path()) {
            for part in std::fs::read_dir(&state)
                .unwrap()
                .map(|e| e.unwrap().path())
            {
                let name = part.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("part-") && std::fs::metadata(&part).unwrap().len() > 0 {
                    std::fs::write(&part, b"").unwrap();
                    emptied.push(name);
                }
            }
        }
    }
    assert!(!emptied.is_empty(), "the state had data");
    let (ssc, _, out, _) = checkpointed_totals(&ctx, &ckpt, &input, ms(300), 1);
    let err = ssc.start().unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::CorruptCheckpoint { path, .. }
            if emptied.iter().any(|n| path.ends_with(n))),
        "{err}"
    );
    assert!(
        out.lock().unwrap().is_empty(),
        "no batch ran on empty state"
    );
}

/// Set in the child process of the relative-path test: its working directory
/// holds `ckpt` and `in`.
const RELATIVE_CHILD: &str = "SPATE_TEST_RELATIVE_CHECKPOINT_CHILD";

#[test]
fn a_checkpoint_made_with_a_relative_path_restarts_from_elsewhere_and_a_copy_reads_its_own_state() {
    if std::env::var_os(RELATIVE_CHILD).is_some() {
        // The child: three batches with relative paths, then exit.
        let ctx = common::ctx();
        let rel = std::path::Path::new;
        let (ssc, clock, _, _) = checkpointed_totals(&ctx, rel("ckpt"), rel("in"), ms(0), 1);
        ssc.start().unwrap();
        for i in 0..3 {
            drop_file(rel("in"), &format!("f{i}"), "a\n");
            clock.advance(TICK);
            ssc.wait_for_batch(clock.now()).unwrap();
        }
        return;
    }
    let (root, ckpt, input) = checkpoint_dirs();
    let mut child = common::child_test(
        "streaming::a_checkpoint_made_with_a_relative_path_restarts_from_elsewhere_and_a_copy_reads_its_own_state",
        (RELATIVE_CHILD, "1".as_ref()),
    );
    common::run_child_test(child.current_dir(root.path()));
    // Copy the checkpoint, and take the original away.
    let copy = root.path().join("copy");
    copy_dir(&ckpt, &copy);
    std::fs::rename(&ckpt, root.path().join("gone")).unwrap();
    std::fs::remove_file(copy.join(".lock")).ok();
    let ctx = common::ctx();
    drop_file(&input, "f3", "a\n");
    let (ssc, clock, out, _) = checkpointed_totals(&ctx, &copy, &input, ms(300), 1);
    ssc.start().unwrap();
    clock.advance(TICK);
    ssc.wait_for_batch(ms(400)).unwrap();
    assert_eq!(
        out.lock().unwrap().last().unwrap().1,
        [("a".to_string(), 4)],
        "three a's from the checkpointed state, one new"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().map(|e| e.unwrap()) {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_queue_stream_with_a_default_gives_the_default_for_an_empty_queue() {
    let h = Harness::new();
    let q = StreamQueue::new();
    q.push(h.ctx.parallelize(vec![1, 2], 2));
    q.push(h.ctx.parallelize(vec![3], 1));
    let default = h.ctx.parallelize(vec![-1, -2], 2);
    let out = h.collect(&h.ssc.queue_stream_or_default(
        &q,
        spate::streaming::Dequeue::OneAtATime,
        default,
    ));
    h.run(4);
    assert_eq!(
        outputs(&out),
        [vec![1, 2], vec![3], vec![-2, -1], vec![-2, -1]]
    );
}

#[test]
fn a_queue_stream_with_a_checkpoint_is_refused_at_start() {
    let ctx = common::ctx();
    let dir = tempfile::tempdir().unwrap();
    let ssc = StreamingContext::with_manual_clock(&ctx, TICK, ManualClock::new()).unwrap();
    ssc.checkpoint(dir.path()).unwrap();
    ssc.queue_stream(
        &StreamQueue::<u8>::new(),
        spate::streaming::Dequeue::OneAtATime,
    )
    .foreach_rdd(|_, _| Ok(()))
    .unwrap();
    let err = ssc.start().unwrap_err();
    assert!(
        matches!(&err, Error::StreamingState(m) if m.contains("queue_stream") && m.contains("cannot be recovered")),
        "{err}"
    );
    // Without a checkpoint the same graph starts.
    let ssc = StreamingContext::with_manual_clock(&ctx, TICK, ManualClock::new()).unwrap();
    ssc.queue_stream(
        &StreamQueue::<u8>::new(),
        spate::streaming::Dequeue::OneAtATime,
    )
    .foreach_rdd(|_, _| Ok(()))
    .unwrap();
    ssc.start().unwrap();
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
}

#[test]
fn state_reports_updates_and_removals_and_refuses_misuse_as_spark_does() {
    use spate::streaming::State;
    let mut s = State::new(Some(5));
    assert!(!s.is_updated() && !s.is_removed());
    s.update(6);
    s.update(7);
    assert!(s.is_updated());
    assert_eq!(s.get(), Some(&7));
    s.remove();
    assert!(s.is_removed() && !s.exists());
    let misuse = |f: fn(&mut State<i32>)| {
        let mut s = State::new(Some(1));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut s)));
        let payload = caught.expect_err("the misuse panics");
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap()
    };
    assert!(
        misuse(|s| {
            s.remove();
            s.update(2)
        })
        .contains("after State::remove")
    );
    assert!(
        misuse(|s| {
            s.remove();
            s.remove()
        })
        .contains("remove twice")
    );
    // In a stream: a misuse fails the batch, naming it.
    let h = Harness::new();
    let input = h.input(vec![vec![('a', 1)]], 1);
    let spec = spate::streaming::StateSpec::function(
        |_: Time, _: &char, v: Option<i32>, state: &mut State<i32>| {
            state.remove();
            state.update(v.unwrap_or(0));
            None::<i32>
        },
    );
    input
        .map_with_state(spec)
        .stream()
        .foreach_rdd(|rdd, _| rdd.count().map(|_| ()))
        .unwrap();
    h.ssc.start().unwrap();
    h.clock.advance(TICK);
    let err = h.ssc.await_termination().unwrap_err();
    assert!(
        err.to_string()
            .contains("State::update after State::remove"),
        "{err}"
    );
}

#[test]
fn remember_keeps_every_streams_batches_for_slice() {
    let sliced = |remember: Option<Duration>| -> spate::Result<Vec<Vec<i32>>> {
        let h = Harness::new();
        if let Some(d) = remember {
            h.ssc.remember(d).unwrap();
        }
        let input = h.input((1..=6).map(|i| vec![i]).collect(), 1);
        let _out = h.collect(&input.map(|x| x * 10));
        h.run(6);
        Ok(input
            .slice(ms(100), ms(600))?
            .iter()
            .map(|r: &Rdd<i32>| r.collect().unwrap())
            .collect())
    };
    // By default a stream keeps its last batch: earlier times are computed
    // again, from a queue that is empty by now. With remember, all six.
    assert_eq!(
        sliced(None).unwrap(),
        [vec![], vec![], vec![], vec![], vec![], vec![6]]
    );
    assert_eq!(
        sliced(Some(6 * TICK)).unwrap(),
        [vec![1], vec![2], vec![3], vec![4], vec![5], vec![6]]
    );
    let h = Harness::new();
    h.collect(&h.input(vec![vec![1]], 1));
    h.run(1);
    assert!(matches!(
        h.ssc.remember(TICK),
        Err(Error::StreamingState(_))
    ));
}

#[test]
fn update_state_by_key_at_calls_the_function_with_each_batch_time() {
    let h = Harness::new();
    let input = h.input(
        vec![vec![('a', 1)], vec![('b', 1)], vec![], vec![('a', 1)]],
        1,
    );
    let calls = input.update_state_by_key_at(
        spate::streaming::StateOptions::default(),
        |time: Time, _k: &char, _new: Vec<i32>, seen: Option<Vec<u64>>| {
            let mut seen = seen.unwrap_or_default();
            seen.push(time.millis());
            Some(seen)
        },
    );
    let out = h.collect(&calls);
    h.run(4);
    // A key is called in every batch once it has state.
    assert_eq!(
        outputs(&out)[3],
        [('a', vec![100, 200, 300, 400]), ('b', vec![200, 300, 400])]
    );
}
