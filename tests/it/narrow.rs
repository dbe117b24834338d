//! Narrow transformations against plain Vec computations.

use crate::common;
use crate::common::{PARTITIONS, ctx, sorted};
use spate::{Partitioner, Sampling};

fn data() -> Vec<i64> {
    (0..50).map(|i| (i * 37) % 23 - 5).collect()
}

#[test]
fn parallelize_follows_sparks_slicing_rule() {
    let ctx = ctx();
    let parts = ctx
        .parallelize((0..10).collect::<Vec<_>>(), 3)
        .glom()
        .collect()
        .unwrap();
    assert_eq!(parts, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8, 9]]);
    let parts = ctx.parallelize(vec![1, 2], 4).glom().collect().unwrap();
    assert_eq!(parts, vec![vec![], vec![1], vec![], vec![2]]);
    assert_eq!(ctx.empty::<u8>().num_partitions(), 0);
    assert_eq!(ctx.empty::<u8>().collect().unwrap(), Vec::<u8>::new());
}

#[test]
fn range_matches_a_stepped_iterator() {
    let ctx = ctx();
    for (start, end, step) in [
        (0, 10, 1),
        (0, 10, 3),
        (10, 0, -3),
        (5, 5, 1),
        (0, 10, -1),
        (-7, 8, 4),
    ] {
        let expected: Vec<i64> = if step > 0 {
            (start..end).step_by(step as usize).collect()
        } else {
            let mut v = Vec::new();
            let mut x = start;
            while x > end {
                v.push(x);
                x += step;
            }
            v
        };
        for p in PARTITIONS {
            assert_eq!(
                ctx.range(start, end, step, p).collect().unwrap(),
                expected,
                "{start} {end} {step} {p}"
            );
        }
    }
    // A zero step is refused, as Spark refuses it.
    assert!(matches!(
        ctx.range(0, 10, 0, 2).count(),
        Err(spate::Error::InvalidArgument(_))
    ));
}

#[test]
fn map_filter_flat_map_match_iterators() {
    let ctx = ctx();
    let d = data();
    for p in PARTITIONS {
        let r = ctx.parallelize(d.clone(), p);
        assert_eq!(
            r.map(|x| x * 2).collect().unwrap(),
            d.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert_eq!(
            r.filter(|x| x % 3 == 0).collect().unwrap(),
            d.iter().copied().filter(|x| x % 3 == 0).collect::<Vec<_>>()
        );
        let fm: Vec<i64> = d
            .iter()
            .flat_map(|&x| (0..x.rem_euclid(4)).map(move |i| x + i))
            .collect();
        assert_eq!(
            r.flat_map(|x| (0..x.rem_euclid(4)).map(move |i| x + i))
                .collect()
                .unwrap(),
            fm
        );
        let half = |x: i64| (x % 2 == 0).then_some(x / 2);
        assert_eq!(
            r.filter_map(half).collect().unwrap(),
            d.iter().copied().filter_map(half).collect::<Vec<_>>()
        );
    }
}

#[test]
fn map_partitions_sees_each_partition_once() {
    let ctx = ctx();
    for p in PARTITIONS {
        let r = ctx.parallelize(data(), p);
        let sums = r
            .map_partitions(|it| std::iter::once(it.sum::<i64>()))
            .collect()
            .unwrap();
        let expected: Vec<i64> = r
            .glom()
            .collect()
            .unwrap()
            .iter()
            .map(|v| v.iter().sum())
            .collect();
        assert_eq!(sums, expected);
        let idx = r
            .map_partitions_with_index(|i, it| it.map(move |_| i))
            .collect()
            .unwrap();
        let expected: Vec<usize> = r
            .glom()
            .collect()
            .unwrap()
            .iter()
            .enumerate()
            .flat_map(|(i, v)| std::iter::repeat_n(i, v.len()))
            .collect();
        assert_eq!(idx, expected);
    }
}

#[test]
fn keyed_narrow_ops_match_and_keep_partitioner_where_spark_does() {
    let ctx = ctx();
    let pairs: Vec<(i64, i64)> = data().into_iter().map(|x| (x % 5, x)).collect();
    let r = ctx
        .parallelize(pairs.clone(), 3)
        .partition_by(Partitioner::hash(4));
    assert_eq!(
        sorted(r.keys().collect().unwrap()),
        sorted(pairs.iter().map(|p| p.0).collect())
    );
    assert_eq!(
        sorted(r.values().collect().unwrap()),
        sorted(pairs.iter().map(|p| p.1).collect())
    );
    let mv = r.map_values(|v| v + 1);
    assert_eq!(mv.partitioner(), Some(&Partitioner::hash(4)));
    assert_eq!(
        sorted(mv.collect().unwrap()),
        sorted(pairs.iter().map(|&(k, v)| (k, v + 1)).collect())
    );
    let fmv = r.flat_map_values(|v| vec![v, -v]);
    assert_eq!(fmv.partitioner(), Some(&Partitioner::hash(4)));
    assert_eq!(
        sorted(fmv.collect().unwrap()),
        sorted(pairs.iter().flat_map(|&(k, v)| [(k, v), (k, -v)]).collect())
    );
    assert_eq!(
        r.filter(|_| true).partitioner(),
        Some(&Partitioner::hash(4))
    );
    assert_eq!(r.map(|x| x).partitioner(), None);
    let kb = ctx.parallelize(vec!['a', 'b'], 2).key_by(|c| *c as u32);
    assert_eq!(kb.collect().unwrap(), vec![(97, 'a'), (98, 'b')]);
}

#[test]
fn glom_union_and_coalesce_layouts() {
    let ctx = ctx();
    let a = ctx.parallelize(vec![1, 2, 3], 2);
    let b = ctx.parallelize(vec![4, 5], 1);
    let u = a.union(&b);
    assert_eq!(
        u.glom().collect().unwrap(),
        vec![vec![1], vec![2, 3], vec![4, 5]]
    );
    assert_eq!(
        ctx.union(&[a.clone(), b.clone(), a.clone()])
            .collect()
            .unwrap(),
        vec![1, 2, 3, 4, 5, 1, 2, 3]
    );
    // Spark's coalescer without locality: contiguous ranges by the slicing rule.
    let c = ctx.parallelize((0..10).collect::<Vec<_>>(), 5).coalesce(3);
    assert_eq!(
        c.glom().collect().unwrap(),
        vec![vec![0, 1], vec![2, 3, 4, 5], vec![6, 7, 8, 9]]
    );
    assert_eq!(
        ctx.parallelize(vec![1, 2], 2).coalesce(5).num_partitions(),
        2
    );
    let s = ctx
        .parallelize((0..10).collect::<Vec<_>>(), 2)
        .repartition(4);
    assert_eq!(s.num_partitions(), 4);
    assert_eq!(sorted(s.collect().unwrap()), (0..10).collect::<Vec<_>>());
}

#[test]
fn union_of_co_partitioned_inputs_keeps_the_partitioner() {
    let ctx = ctx();
    let p = Partitioner::hash(3);
    let a = ctx
        .parallelize(vec![(1, 'a'), (2, 'b')], 2)
        .partition_by(p.clone());
    let b = ctx
        .parallelize(vec![(1, 'c'), (5, 'd')], 1)
        .partition_by(p.clone());
    let u = a.union(&b);
    assert_eq!(u.num_partitions(), 3);
    assert_eq!(u.partitioner(), Some(&p));
    assert_eq!(
        sorted(u.collect().unwrap()),
        vec![(1, 'a'), (1, 'c'), (2, 'b'), (5, 'd')]
    );
}

#[test]
fn zip_and_indexes() {
    let ctx = ctx();
    for p in PARTITIONS {
        let a = ctx.parallelize(data(), p);
        let z = a.zip(&a.map(|x| x * 10)).unwrap().collect().unwrap();
        assert_eq!(
            z,
            data().into_iter().map(|x| (x, x * 10)).collect::<Vec<_>>()
        );
        let zi = a.zip_with_index().unwrap().collect().unwrap();
        assert_eq!(zi, data().into_iter().zip(0u64..).collect::<Vec<_>>());
        let ids: Vec<u64> = a.zip_with_unique_id().values().collect().unwrap();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let n = a.num_partitions() as u64;
        for (k, part) in a
            .zip_with_unique_id()
            .glom()
            .collect()
            .unwrap()
            .into_iter()
            .enumerate()
        {
            for (i, (_, id)) in part.into_iter().enumerate() {
                assert_eq!(id, i as u64 * n + k as u64);
            }
        }
    }
    let a = ctx.parallelize(vec![1, 2, 3], 2);
    assert!(matches!(
        a.zip(&ctx.parallelize(vec![1, 2, 3], 3)),
        Err(spate::Error::ZipMismatch(_))
    ));
    let uneven = a
        .zip(&ctx.parallelize(vec![1, 2, 3, 4], 2))
        .unwrap()
        .collect();
    assert!(matches!(
        uneven.unwrap_err().root_cause(),
        spate::Error::ZipMismatch(_)
    ));
}

#[test]
fn sample_is_reproducible_and_respects_fraction() {
    let ctx = ctx();
    let r = ctx.range(0, 20_000, 1, 5);
    let a = r
        .sample(Sampling::WithoutReplacement, 0.25, 7)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        a,
        r.sample(Sampling::WithoutReplacement, 0.25, 7)
            .unwrap()
            .collect()
            .unwrap()
    );
    assert_ne!(
        a,
        r.sample(Sampling::WithoutReplacement, 0.25, 8)
            .unwrap()
            .collect()
            .unwrap()
    );
    assert!((4_500..5_500).contains(&a.len()), "{}", a.len());
    assert!(
        a.windows(2).all(|w| w[0] < w[1]),
        "without replacement keeps order and no duplicates"
    );
    let b = r
        .sample(Sampling::WithReplacement, 2.0, 7)
        .unwrap()
        .collect()
        .unwrap();
    assert!((38_000..42_000).contains(&b.len()), "{}", b.len());
    assert_eq!(
        r.sample(Sampling::WithoutReplacement, 0.0, 1)
            .unwrap()
            .count()
            .unwrap(),
        0
    );
    assert_eq!(
        r.sample(Sampling::WithoutReplacement, 1.0, 1)
            .unwrap()
            .count()
            .unwrap(),
        20_000
    );
    for (replace, fraction) in [
        (Sampling::WithoutReplacement, 1.5),
        (Sampling::WithReplacement, -0.1),
    ] {
        let err = r.sample(replace, fraction, 1).unwrap_err();
        assert!(
            matches!(&err, spate::Error::InvalidArgument(m) if m.contains(&fraction.to_string())),
            "{err}"
        );
    }
}

#[test]
fn cartesian_matches_nested_loops() {
    let ctx = ctx();
    let a = vec![1, 2, 3];
    let b = vec!['x', 'y'];
    for (pa, pb) in [(1, 1), (2, 2), (3, 1), (4, 3)] {
        let c = ctx
            .parallelize(a.clone(), pa)
            .cartesian(&ctx.parallelize(b.clone(), pb));
        assert_eq!(c.num_partitions(), pa * pb);
        let expected: Vec<(i32, char)> = a
            .iter()
            .flat_map(|&x| b.iter().map(move |&y| (x, y)))
            .collect();
        assert_eq!(sorted(c.collect().unwrap()), sorted(expected));
    }
}

#[test]
fn take_computes_only_what_it_needs() {
    let ctx = ctx();
    let seen = ctx.sum_accumulator::<u64>("seen");
    let s = seen.clone();
    let r = ctx.range(0, 1_000_000, 1, 4).map(move |x| {
        s.add(1);
        x
    });
    assert_eq!(r.take(1).unwrap(), vec![0]);
    assert_eq!(
        seen.value(),
        1,
        "take(1) must compute one element, not a partition"
    );
    assert_eq!(r.first().unwrap(), 0);
}

#[test]
fn sample_with_an_infinite_or_absurd_fraction_is_an_invalid_argument_not_an_empty_dataset() {
    let r = common::ctx().range(0, 100, 1, 2);
    for fraction in [f64::INFINITY, 1e300, f64::NAN, -1.0] {
        let err = r
            .sample(Sampling::WithReplacement, fraction, 1)
            .unwrap_err();
        assert!(
            matches!(err, spate::Error::InvalidArgument(_)),
            "{fraction}: {err}"
        );
    }
    assert!(matches!(
        r.sample(Sampling::WithoutReplacement, f64::INFINITY, 1),
        Err(spate::Error::InvalidArgument(_))
    ));
    assert_eq!(
        r.sample(Sampling::WithReplacement, 0.0, 1)
            .unwrap()
            .count()
            .unwrap(),
        0
    );
}

#[test]
fn random_split_puts_every_element_in_exactly_one_split_reproducibly() {
    let ctx = ctx();
    for parts in PARTITIONS {
        let data = ctx.range(0, 3000, 1, parts);
        let splits = data.random_split(&[1.0, 2.0, 0.0, 1.0], 42).unwrap();
        assert_eq!(splits.len(), 4);
        let got: Vec<Vec<i64>> = splits.iter().map(|s| s.collect().unwrap()).collect();
        let mut all: Vec<i64> = got.concat();
        all.sort();
        assert_eq!(
            all,
            (0..3000).collect::<Vec<_>>(),
            "disjoint and complete, {parts}"
        );
        assert!(got[2].is_empty(), "a zero weight gets nothing");
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert!((600..900).contains(&sizes[0]), "{sizes:?}");
        assert!((1300..1700).contains(&sizes[1]), "{sizes:?}");
        let again: Vec<Vec<i64>> = data
            .random_split(&[1.0, 2.0, 0.0, 1.0], 42)
            .unwrap()
            .iter()
            .map(|s| s.collect().unwrap())
            .collect();
        assert_eq!(again, got, "same seed, same split");
    }
    let r = ctx.range(0, 10, 1, 2);
    for bad in [
        &[][..],
        &[0.0, 0.0],
        &[1.0, -1.0],
        &[f64::NAN],
        &[f64::INFINITY, 1.0],
    ] {
        assert!(
            matches!(
                r.random_split(bad, 1),
                Err(spate::Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn take_sample_returns_exactly_n_elements_of_the_data_reproducibly() {
    let ctx = ctx();
    for parts in PARTITIONS {
        let data = ctx.range(0, 500, 1, parts);
        let s = data
            .take_sample(Sampling::WithoutReplacement, 37, 9)
            .unwrap();
        assert_eq!(s.len(), 37);
        let distinct: std::collections::BTreeSet<i64> = s.iter().copied().collect();
        assert_eq!(distinct.len(), 37, "no element twice without replacement");
        assert!(s.iter().all(|x| (0..500).contains(x)));
        assert_eq!(
            s,
            data.take_sample(Sampling::WithoutReplacement, 37, 9)
                .unwrap(),
            "same seed"
        );
        assert_ne!(
            s,
            data.take_sample(Sampling::WithoutReplacement, 37, 10)
                .unwrap(),
            "another seed"
        );
        let r = data.take_sample(Sampling::WithReplacement, 900, 3).unwrap();
        assert_eq!(r.len(), 900, "with replacement, more than the data");
        assert!(r.iter().all(|x| (0..500).contains(x)));
        let mut everything = data
            .take_sample(Sampling::WithoutReplacement, 10_000, 5)
            .unwrap();
        assert_ne!(everything, (0..500).collect::<Vec<_>>(), "shuffled");
        everything.sort();
        assert_eq!(everything, (0..500).collect::<Vec<_>>(), "all of it");
    }
    assert!(
        ctx.range(0, 10, 1, 2)
            .take_sample(Sampling::WithoutReplacement, 0, 1)
            .unwrap()
            .is_empty()
    );
    assert!(
        ctx.parallelize(Vec::<u8>::new(), 3)
            .take_sample(Sampling::WithReplacement, 5, 1)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn pipe_runs_a_command_per_partition_and_fails_naming_a_failing_one() {
    let ctx = ctx();
    for parts in PARTITIONS {
        let data = ctx.parallelize((0..100).map(|i| format!("line {i}")).collect(), parts);
        // `cat -n` numbers the lines of each partition from 1: one command
        // per partition, input in order.
        let numbered = data.pipe(&["cat", "-n"]).unwrap().collect().unwrap();
        assert_eq!(numbered.len(), 100);
        let mut expected = Vec::new();
        for p in 0..parts {
            let (a, b) = (100 * p / parts, 100 * (p + 1) / parts);
            for (n, i) in (a..b).enumerate() {
                expected.push(format!("{:>6}\tline {i}", n + 1));
            }
        }
        assert_eq!(numbered, expected, "{parts}");
        let upper = data.pipe(&["tr", "a-z", "A-Z"]).unwrap().collect().unwrap();
        assert_eq!(upper[7], "LINE 7");
    }
    // Empty partitions still run the command, which sees no input.
    let counted = ctx
        .parallelize(vec![1, 2, 3], 5)
        .pipe(&["wc", "-l"])
        .unwrap();
    let counts: Vec<String> = counted
        .collect()
        .unwrap()
        .iter()
        .map(|c| c.trim().to_string())
        .collect();
    assert_eq!(counts.len(), 5);
    assert_eq!(
        counts
            .iter()
            .map(|c| c.parse::<u32>().unwrap())
            .sum::<u32>(),
        3
    );
    // A command that stops reading early is fine if it succeeds.
    let head = ctx
        .range(0, 100_000, 1, 1)
        .pipe(&["head", "-n", "2"])
        .unwrap();
    assert_eq!(head.collect().unwrap(), ["0", "1"]);
    // Failures name the command and how it ended.
    let err = ctx
        .range(0, 3, 1, 1)
        .pipe(&["sh", "-c", "echo broken >&2; exit 3"])
        .unwrap()
        .collect()
        .unwrap_err();
    match err.root_cause() {
        spate::Error::CommandFailed {
            command,
            status,
            stderr,
        } => {
            assert_eq!(command, "sh -c echo broken >&2; exit 3");
            assert!(status.contains("exit status: 3"), "{status}");
            assert_eq!(stderr, "broken");
        }
        other => panic!("{other}"),
    }
    let err = ctx
        .range(0, 3, 1, 1)
        .pipe(&["no-such-command-here"])
        .unwrap()
        .count()
        .unwrap_err();
    assert!(
        matches!(err.root_cause(), spate::Error::CommandFailed { status, .. } if status.starts_with("could not start")),
        "{err}"
    );
    assert!(matches!(
        ctx.range(0, 3, 1, 1).pipe::<&str>(&[]),
        Err(spate::Error::InvalidArgument(_))
    ));
}
