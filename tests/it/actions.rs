//! Actions against Vec references, with Spark's rules for zeros and empty data.

use crate::common;
use crate::common::{PARTITIONS, ctx, sorted};
use spate::{Error, Partitioner};
use std::collections::HashMap;

fn data() -> Vec<i64> {
    (0..97).map(|i| (i * 53) % 41 - 20).collect()
}

#[test]
fn collect_count_first_take_match() {
    let ctx = ctx();
    for p in PARTITIONS {
        let r = ctx.parallelize(data(), p);
        assert_eq!(r.collect().unwrap(), data());
        assert_eq!(r.count().unwrap(), 97);
        assert_eq!(r.first().unwrap(), data()[0]);
        for n in [0, 1, 5, 96, 97, 200] {
            assert_eq!(
                r.take(n).unwrap(),
                data().into_iter().take(n).collect::<Vec<_>>(),
                "take {n} p={p}"
            );
        }
        assert!(!r.is_empty().unwrap());
        // Sparse filter: take must keep scanning partitions.
        assert_eq!(r.filter(|x| *x == 20).take(1).unwrap(), vec![20]);
    }
}

#[test]
fn ordering_actions_match_sorting() {
    let ctx = ctx();
    let mut asc = data();
    asc.sort();
    for p in PARTITIONS {
        let r = ctx.parallelize(data(), p);
        assert_eq!(r.take_ordered(10).unwrap(), asc[..10].to_vec());
        assert_eq!(
            r.top(10).unwrap(),
            asc.iter().rev().take(10).copied().collect::<Vec<_>>()
        );
        assert_eq!(r.take_ordered(1000).unwrap(), asc);
        assert_eq!(r.take_ordered(0).unwrap(), Vec::<i64>::new());
        assert_eq!(r.min().unwrap(), asc[0]);
        assert_eq!(r.max().unwrap(), *asc.last().unwrap());
    }
}

#[test]
fn reduce_fold_aggregate_follow_sparks_zero_rule() {
    let ctx = ctx();
    for p in PARTITIONS {
        let r = ctx.parallelize(data(), p);
        let sum: i64 = data().iter().sum();
        assert_eq!(r.reduce(|a, b| a + b).unwrap(), sum);
        // The zero is applied once per partition and once on the driver.
        assert_eq!(r.fold(1, |a, b| a + b).unwrap(), sum + p as i64 + 1);
        assert_eq!(
            r.aggregate(
                (0i64, 0u32),
                |(s, n), x| (s + x, n + 1),
                |a, b| (a.0 + b.0, a.1 + b.1)
            )
            .unwrap(),
            (sum, 97)
        );
        for depth in [1, 2, 3] {
            assert_eq!(
                r.tree_aggregate(0i64, |a, x| a + x, |a, b| a + b, depth)
                    .unwrap(),
                sum
            );
        }
    }
    assert!(
        ctx.range(0, 10, 1, 2)
            .tree_aggregate(0i64, |a, x| a + x, |a, b| a + b, 0)
            .is_err()
    );
}

#[test]
fn empty_datasets_follow_sparks_rules() {
    let ctx = ctx();
    for r in [ctx.empty::<i64>(), ctx.parallelize(Vec::<i64>::new(), 3)] {
        assert_eq!(r.count().unwrap(), 0);
        assert_eq!(r.sum().unwrap(), 0);
        assert!(
            r.mean().unwrap().is_nan(),
            "the mean of nothing is NaN, as in Spark"
        );
        assert!(r.variance().unwrap().is_nan());
        assert!(r.sample_variance().unwrap().is_nan());
        assert!(r.is_empty().unwrap());
        assert_eq!(r.take(3).unwrap(), Vec::<i64>::new());
        assert!(matches!(
            r.reduce(|a, b| a + b),
            Err(Error::EmptyDataset("reduce"))
        ));
        assert!(matches!(r.first(), Err(Error::EmptyDataset("first"))));
        assert!(matches!(r.min(), Err(Error::EmptyDataset("min"))));
        assert!(matches!(r.max(), Err(Error::EmptyDataset("max"))));
        assert_eq!(
            r.fold(5, |a, b| a + b).unwrap(),
            5 * (r.num_partitions() as i64 + 1)
        );
        assert!(r.histogram(3).is_err());
    }
}

#[test]
fn numeric_actions_match_direct_formulas() {
    let ctx = ctx();
    let xs: Vec<f64> = (0..1000)
        .map(|i| ((i * 7919) % 997) as f64 / 10.0)
        .collect();
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let svar = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    for p in PARTITIONS {
        let r = ctx.parallelize(xs.clone(), p);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
        assert!(close(r.sum().unwrap(), xs.iter().sum()));
        assert!(close(r.mean().unwrap(), mean));
        assert!(close(r.variance().unwrap(), var));
        assert!(close(r.sample_variance().unwrap(), svar));
        assert!(close(r.stdev().unwrap(), var.sqrt()));
        let s = r.stats().unwrap();
        assert_eq!(s.count(), 1000);
        assert_eq!(s.min(), xs.iter().cloned().fold(f64::INFINITY, f64::min));
        assert_eq!(
            s.max(),
            xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        );
    }
    assert_eq!(ctx.parallelize(vec![1u8, 2, 3], 2).sum().unwrap(), 6);
}

#[test]
fn histogram_counts_match_a_loop() {
    let ctx = ctx();
    let xs: Vec<f64> = (0..=100).map(|i| i as f64).collect();
    let h = ctx.parallelize(xs.clone(), 3).histogram(4).unwrap();
    assert_eq!(h.boundaries, vec![0.0, 25.0, 50.0, 75.0, 100.0]);
    assert_eq!(h.counts, vec![25, 25, 25, 26], "the last bucket is closed");
    let custom = ctx
        .parallelize(xs, 4)
        .histogram_by_bounds(&[10.0, 20.0, 50.0])
        .unwrap();
    assert_eq!(custom, vec![10, 31]);
    let same = ctx.parallelize(vec![3.0; 5], 2).histogram(10).unwrap();
    assert_eq!((same.boundaries, same.counts), (vec![3.0, 3.0], vec![5]));
    assert!(
        ctx.parallelize(vec![1.0, f64::NAN], 1)
            .histogram(2)
            .is_err()
    );
}

#[test]
fn counting_and_lookup_actions() {
    let ctx = ctx();
    let words = ["a", "b", "a", "c", "a", "b"];
    let mut expected: HashMap<String, u64> = HashMap::new();
    words
        .iter()
        .for_each(|w| *expected.entry(w.to_string()).or_default() += 1);
    for p in PARTITIONS {
        let r = ctx.parallelize(words.iter().map(|w| w.to_string()).collect(), p);
        assert_eq!(r.count_by_value().unwrap(), expected);
        let pairs = r.map(|w| (w, 1));
        assert_eq!(pairs.count_by_key().unwrap(), expected);
        let m = pairs.reduce_by_key(|a, b| a + b).collect_as_map().unwrap();
        assert_eq!(m["a"], 3);
        assert_eq!(sorted(pairs.lookup(&"b".to_string()).unwrap()), vec![1, 1]);
        assert_eq!(pairs.lookup(&"zzz".to_string()).unwrap(), Vec::<i32>::new());
    }
}

#[test]
fn lookup_with_a_partitioner_touches_one_partition() {
    let (ctx, log) = common::logged_ctx();
    let r = ctx
        .parallelize((0..100u32).map(|i| (i, i * 2)).collect(), 4)
        .partition_by(Partitioner::hash(8));
    r.count().unwrap();
    log.clear();
    assert_eq!(r.lookup(&13).unwrap(), vec![26]);
    assert_eq!(log.tasks_run(), 1, "only the owning partition is computed");
}

#[test]
fn foreach_runs_on_every_element() {
    let ctx = ctx();
    let acc = ctx.sum_accumulator::<i64>("sum");
    let a = acc.clone();
    ctx.parallelize(data(), 5)
        .foreach(move |x| a.add(x))
        .unwrap();
    assert_eq!(acc.value(), data().iter().sum::<i64>());
    let parts = ctx.sum_accumulator::<u32>("partitions");
    let p = parts.clone();
    ctx.parallelize(data(), 5)
        .foreach_partition(move |it| {
            p.add(1);
            it.for_each(drop)
        })
        .unwrap();
    assert_eq!(parts.value(), 5);
}

/// The part files of `out`, read in name order, as one string: exact bytes
/// and order (`common::read_part_lines` sorts lines and drops newlines).
#[test]
fn saved_strings_and_formatted_values_are_written_alike() {
    // Strings and `Str`s are written as bytes, other types through Display:
    // each must give the same lines as `format!`.
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let words = [
        "",
        "a",
        "tab\there",
        "é日本",
        "a key well past twenty-three bytes",
    ];
    let expected: String = words.iter().map(|w| format!("{w}\n")).collect();
    let strings: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    ctx.parallelize(strings, 2)
        .save_as_text_file(dir.path().join("string"))
        .unwrap();
    assert_eq!(common::read_parts(&dir.path().join("string")), expected);
    let strs: Vec<spate::Str> = words.iter().map(|w| spate::Str::from(*w)).collect();
    ctx.parallelize(strs, 3)
        .save_as_text_file(dir.path().join("str"))
        .unwrap();
    assert_eq!(common::read_parts(&dir.path().join("str")), expected);
    let floats = vec![1.5f64, -0.0, f64::NAN];
    ctx.parallelize(floats, 2)
        .save_as_text_file(dir.path().join("float"))
        .unwrap();
    assert_eq!(
        common::read_parts(&dir.path().join("float")),
        "1.5\n-0\nNaN\n"
    );
}

#[test]
fn save_as_text_file_writes_one_part_per_partition_atomically() {
    let ctx = ctx();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ctx.parallelize((0..10).collect::<Vec<i32>>(), 3)
        .save_as_text_file(&out)
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    );
    let text: String = (0..3)
        .map(|i| std::fs::read_to_string(out.join(format!("part-{i:05}"))).unwrap())
        .collect();
    assert_eq!(text, (0..10).map(|i| format!("{i}\n")).collect::<String>());
    assert!(matches!(
        ctx.parallelize(vec![1], 1).save_as_text_file(&out),
        Err(Error::OutputExists(_))
    ));
}

#[test]
fn take_ordered_and_top_with_a_huge_n_return_everything_instead_of_aborting() {
    let r = ctx().parallelize(vec![5i64, 1, 4, 2, 3], 3);
    assert_eq!(r.take_ordered(usize::MAX / 2).unwrap(), [1, 2, 3, 4, 5]);
    assert_eq!(r.top(1 << 40).unwrap(), [5, 4, 3, 2, 1]);
}

/// Pairs (key, position) with repeated keys, so ties show which is kept.
fn ranked(n: usize, seed: u64) -> Vec<(i32, usize)> {
    (0..n)
        .map(|i| ((((i as u64 + 1) * seed) % 17) as i32 - 8, i))
        .collect()
}

#[test]
fn max_by_and_min_by_match_iterators_ties_included() {
    let ctx = ctx();
    for parts in PARTITIONS {
        let data = ranked(300, 7919);
        let r = ctx.parallelize(data.clone(), parts);
        let by_key = |a: &(i32, usize), b: &(i32, usize)| a.0.cmp(&b.0);
        assert_eq!(
            r.max_by(by_key).unwrap(),
            data.iter().copied().max_by(by_key).unwrap(),
            "{parts}"
        );
        assert_eq!(
            r.min_by(by_key).unwrap(),
            data.iter().copied().min_by(by_key).unwrap(),
            "{parts}"
        );
        assert_eq!(
            r.max_by_key(|p| p.0).unwrap(),
            data.iter().copied().max_by_key(|p| p.0).unwrap()
        );
        assert_eq!(
            r.min_by_key(|p| p.0).unwrap(),
            data.iter().copied().min_by_key(|p| p.0).unwrap()
        );
    }
    let empty = ctx.parallelize(Vec::<f64>::new(), 3);
    assert!(matches!(
        empty.max_by(f64::total_cmp),
        Err(Error::EmptyDataset("max_by"))
    ));
    assert!(matches!(
        empty.min_by_key(|x| *x as i64),
        Err(Error::EmptyDataset("min_by_key"))
    ));
    // Floats in a total order: NaN is the largest.
    let floats = ctx.parallelize(vec![1.5, f64::NAN, -0.0, 0.0, -7.0], 2);
    assert!(floats.max_by(f64::total_cmp).unwrap().is_nan());
    assert_eq!(floats.min_by(f64::total_cmp).unwrap(), -7.0);
}

#[test]
fn tree_reduce_matches_reduce_at_every_depth() {
    let ctx = ctx();
    for parts in PARTITIONS {
        let r = ctx.range(1, 1001, 1, parts);
        for depth in [1, 2, 3, 5] {
            assert_eq!(
                r.tree_reduce(|a, b| a + b, depth).unwrap(),
                500_500,
                "{parts} {depth}"
            );
            assert_eq!(r.tree_reduce(i64::max, depth).unwrap(), 1000);
        }
    }
    assert!(matches!(
        ctx.parallelize(Vec::<i64>::new(), 4)
            .tree_reduce(|a, b| a + b, 2),
        Err(Error::EmptyDataset("tree_reduce"))
    ));
    assert!(matches!(
        ctx.range(0, 5, 1, 2).tree_reduce(|a, b| a + b, 0),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn to_local_iterator_computes_one_partition_per_job_lazily_and_stops_at_a_failure() {
    let (ctx, log) = crate::common::logged_ctx();
    let r = ctx.range(0, 50, 1, 5);
    let jobs = |log: &spate::EventLog| {
        log.events()
            .iter()
            .filter(|e| matches!(e, spate::Event::JobStart { .. }))
            .count()
    };
    let first: Vec<i64> = r.to_local_iterator().take(3).map(|x| x.unwrap()).collect();
    assert_eq!(first, [0, 1, 2]);
    assert_eq!(jobs(&log), 1, "only the first partition was computed");
    let all: Vec<i64> = r.to_local_iterator().map(|x| x.unwrap()).collect();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
    assert_eq!(jobs(&log), 1 + 5);
    // Empty partitions are skipped; a failing partition ends the iteration.
    let sparse = ctx.parallelize(vec![1, 2], 6);
    assert_eq!(
        sparse
            .to_local_iterator()
            .map(|x| x.unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let failing = ctx
        .range(0, 30, 1, 3)
        .map(|x| if x == 15 { panic!("bad record") } else { x });
    let got: Vec<spate::Result<i64>> = failing.to_local_iterator().collect();
    assert_eq!(got.len(), 11, "10 records, then the error");
    assert!(got[..10].iter().all(|x| x.is_ok()));
    assert!(
        got[10]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("bad record")
    );
}

#[test]
fn reduce_by_key_locally_matches_a_map_and_runs_no_shuffle() {
    let (ctx, log) = crate::common::logged_ctx();
    for parts in PARTITIONS {
        let data: Vec<(u32, u64)> = (0..500u64).map(|i| ((i * 31 % 23) as u32, i)).collect();
        let mut expected = HashMap::new();
        for &(k, v) in &data {
            *expected.entry(k).or_insert(0) += v;
        }
        let got = ctx
            .parallelize(data, parts)
            .reduce_by_key_locally(|a, b| a + b)
            .unwrap();
        assert_eq!(got, expected, "{parts}");
    }
    assert!(
        !log.events().iter().any(|e| matches!(
            e,
            spate::Event::StageSubmitted {
                kind: spate::StageKind::ShuffleMap { .. },
                ..
            }
        )),
        "no shuffle stage"
    );
}

#[test]
fn run_job_runs_on_the_chosen_partitions_in_the_order_asked() {
    let ctx = ctx();
    let r = ctx.range(0, 100, 1, 7);
    let parts = r.glom().collect().unwrap();
    let asked = [6, 0, 3, 3];
    let got = r
        .run_job(&asked, |i, it| (i, it.collect::<Vec<_>>()))
        .unwrap();
    let expected: Vec<(usize, Vec<i64>)> = asked.iter().map(|&i| (i, parts[i].clone())).collect();
    assert_eq!(got, expected);
    assert!(r.run_job(&[], |_, it| it.count()).unwrap().is_empty());
    assert!(matches!(
        r.run_job(&[7], |_, it| it.count()),
        Err(Error::InvalidArgument(m)) if m.contains("partition 7 of a dataset with 7")
    ));
    // An input error is the job's error, not a short iterator.
    let bad = ctx
        .range(0, 10, 1, 2)
        .map(|x| if x == 7 { panic!("bad input") } else { x });
    let err = bad.run_job(&[1], |_, it| it.count()).unwrap_err();
    assert!(err.to_string().contains("bad input"), "{err}");
}

#[test]
fn histogram_by_bounds_matches_a_loop_for_any_ordered_type() {
    let ctx = ctx();
    let words: Vec<String> = (0..300)
        .map(|i| format!("w{:03}", (i * 7919) % 1000))
        .collect();
    let bounds: Vec<String> = ["w100", "w250", "w500", "w999"].map(String::from).to_vec();
    let mut expected = vec![0u64; 3];
    for w in &words {
        if w >= &bounds[0] && w <= &bounds[3] {
            let i = if w == &bounds[3] {
                2
            } else {
                bounds.partition_point(|b| b <= w) - 1
            };
            expected[i] += 1;
        }
    }
    for parts in PARTITIONS {
        let got = ctx
            .parallelize(words.clone(), parts)
            .histogram_by_bounds(&bounds)
            .unwrap();
        assert_eq!(got, expected, "{parts}");
    }
    // The last bucket includes its upper bound; the others exclude theirs.
    let ints = ctx.parallelize(vec![0, 5, 10, 10, 15, 20, 25], 3);
    assert_eq!(ints.histogram_by_bounds(&[0, 10, 20]).unwrap(), [2, 4]);
    for bad in [&[1][..], &[1, 1], &[3, 2]] {
        assert!(
            matches!(
                ints.histogram_by_bounds(bad),
                Err(Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    // Floats: NaN elements are not counted, a NaN bound is refused.
    let xs = ctx.parallelize(vec![0.0, 0.5, f64::NAN, 1.0, 2.0, 2.5, -1.0], 3);
    assert_eq!(xs.histogram_by_bounds(&[0.0, 1.0, 2.0]).unwrap(), [2, 2]);
    assert!(matches!(
        xs.histogram_by_bounds(&[0.0, f64::NAN, 2.0]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn reading_or_resetting_an_accumulator_inside_a_task_fails_the_task() {
    let ctx = ctx();
    let acc = ctx.sum_accumulator::<u64>("seen");
    let a = acc.clone();
    let err = ctx
        .range(0, 4, 1, 2)
        .map(move |x| x + a.value() as i64)
        .count()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Accumulator::value() of 'seen' was called inside a task"),
        "{err}"
    );
    let a = acc.clone();
    let err = ctx
        .range(0, 4, 1, 2)
        .foreach(move |_| a.reset())
        .unwrap_err();
    assert!(err.to_string().contains("Accumulator::reset()"), "{err}");
    // On the driver all three work; tasks start from the zero.
    acc.set_value(40);
    let a = acc.clone();
    ctx.range(0, 2, 1, 2).foreach(move |_| a.add(1)).unwrap();
    assert_eq!(acc.value(), 42);
    acc.reset();
    assert_eq!(acc.value(), 0);
}

#[test]
fn count_approx_distinct_is_close_exact_when_small_and_the_same_for_any_partitioning() {
    let ctx = ctx();
    let data: Vec<u64> = (0..200_000u64).map(|i| (i * 7919) % 50_000).collect();
    let mut estimates = Vec::new();
    for parts in PARTITIONS {
        let r = ctx.parallelize(data.clone(), parts);
        for sd in [0.05, 0.01] {
            let n = r.count_approx_distinct(sd).unwrap();
            let error = (n as f64 - 50_000.0).abs() / 50_000.0;
            assert!(error < 3.0 * sd, "{n} with sd {sd}, {parts} partitions");
            estimates.push((sd.to_bits(), n));
        }
    }
    // Sketches merge exactly: the estimate does not depend on partitioning.
    estimates.sort();
    estimates.dedup();
    assert_eq!(estimates.len(), 2, "{estimates:?}");
    let words = ctx.parallelize(
        vec!["a", "b", "c", "a", "b"]
            .into_iter()
            .map(String::from)
            .collect(),
        3,
    );
    assert_eq!(
        words.count_approx_distinct(0.05).unwrap(),
        3,
        "small counts are exact"
    );
    assert_eq!(
        ctx.parallelize(Vec::<u8>::new(), 2)
            .count_approx_distinct(0.05)
            .unwrap(),
        0
    );
    for bad in [0.0, -0.1, f64::NAN, 0.0001, 0.5] {
        assert!(
            matches!(
                ctx.range(0, 5, 1, 1).count_approx_distinct(bad),
                Err(Error::InvalidArgument(_))
            ),
            "{bad}"
        );
    }
}
