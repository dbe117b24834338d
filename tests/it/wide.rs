//! Wide transformations against HashMap/BTreeMap references.
#![allow(clippy::type_complexity)]

use crate::common::{PARTITIONS, ctx, logged_ctx, sorted};
use spate::{Partitioner, Str};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Skewed pairs: key 0 takes half of the records.
fn pairs() -> Vec<(u32, i64)> {
    (0..400i64)
        .map(|i| (if i % 2 == 0 { 0 } else { (i % 37) as u32 }, i))
        .collect()
}

fn grouped(p: &[(u32, i64)]) -> BTreeMap<u32, Vec<i64>> {
    let mut m: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for &(k, v) in p {
        m.entry(k).or_default().push(v);
    }
    m
}

#[test]
fn reduce_fold_aggregate_combine_by_key_match_a_hash_map() {
    let ctx = ctx();
    let expected: BTreeMap<u32, i64> = grouped(&pairs())
        .into_iter()
        .map(|(k, v)| (k, v.iter().sum()))
        .collect();
    let counts: BTreeMap<u32, i64> = grouped(&pairs())
        .into_iter()
        .map(|(k, v)| (k, v.len() as i64))
        .collect();
    for p in PARTITIONS {
        let r = ctx.parallelize(pairs(), p);
        let got: BTreeMap<_, _> = r
            .reduce_by_key(|a, b| a + b)
            .collect()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, expected, "reduce_by_key p={p}");
        let got: BTreeMap<_, _> = r
            .fold_by_key(0, |a, b| a + b)
            .collect()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, expected, "fold_by_key p={p}");
        let got: BTreeMap<_, _> = r
            .aggregate_by_key(0i64, |a, _| a + 1, |a, b| a + b)
            .collect()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, counts, "aggregate_by_key p={p}");
        let got: BTreeMap<_, _> = r
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
            .map_values(sorted)
            .collect()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, grouped(&pairs()), "combine_by_key p={p}");
        for n in [1, 3, 10] {
            let r2 = r.reduce_by_key_with(n, |a, b| a + b);
            assert_eq!(r2.num_partitions(), n);
            assert_eq!(
                r2.collect()
                    .unwrap()
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
                expected
            );
        }
    }
}

#[test]
fn fold_by_key_applies_the_zero_once_per_partition_and_key() {
    let ctx = ctx();
    // Two partitions each holding key 1: the zero (10) is applied twice.
    let r = ctx.parallelize(vec![(1, 1), (1, 2), (1, 3), (1, 4)], 2);
    assert_eq!(
        r.fold_by_key(10, |a, b| a + b).collect().unwrap(),
        vec![(1, 30)]
    );
}

#[test]
fn group_by_key_and_group_by() {
    let ctx = ctx();
    for p in PARTITIONS {
        let r = ctx.parallelize(pairs(), p);
        let got: BTreeMap<_, _> = r
            .group_by_key()
            .map_values(sorted)
            .collect()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, grouped(&pairs()));
        let g: BTreeMap<_, _> = ctx
            .parallelize((0..30).collect::<Vec<i32>>(), p)
            .group_by(|x| x % 4)
            .map_values(sorted)
            .collect()
            .unwrap()
            .into_iter()
            .collect();
        let mut expected: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        (0..30).for_each(|x| expected.entry(x % 4).or_default().push(x));
        assert_eq!(g, expected);
    }
}

#[test]
fn distinct_subtract_intersection_match_sets() {
    let ctx = ctx();
    let a: Vec<i32> = (0..200).map(|i| i % 53).collect();
    let b: Vec<i32> = (0..100).map(|i| (i * 3) % 71).collect();
    let sa: HashSet<i32> = a.iter().copied().collect();
    let sb: HashSet<i32> = b.iter().copied().collect();
    for p in PARTITIONS {
        let ra = ctx.parallelize(a.clone(), p);
        let rb = ctx.parallelize(b.clone(), 3);
        assert_eq!(
            sorted(ra.distinct().collect().unwrap()),
            sorted(sa.iter().copied().collect())
        );
        let sub: Vec<i32> = a.iter().copied().filter(|x| !sb.contains(x)).collect();
        assert_eq!(sorted(ra.subtract(&rb).collect().unwrap()), sorted(sub));
        assert_eq!(ra.subtract(&rb).num_partitions(), ra.num_partitions());
        let inter: Vec<i32> = sa.intersection(&sb).copied().collect();
        assert_eq!(
            sorted(ra.intersection(&rb).collect().unwrap()),
            sorted(inter)
        );
    }
}

#[test]
fn joins_match_nested_loop_joins() {
    let ctx = ctx();
    let left: Vec<(u8, i32)> = vec![(1, 10), (1, 11), (2, 20), (3, 30), (5, 50)];
    let right: Vec<(u8, char)> = vec![(1, 'a'), (2, 'b'), (2, 'c'), (4, 'd'), (6, 'e')];
    let lk: HashSet<u8> = left.iter().map(|p| p.0).collect();
    let rk: HashSet<u8> = right.iter().map(|p| p.0).collect();
    let mut inner = Vec::new();
    for &(k, v) in &left {
        for &(k2, w) in &right {
            if k == k2 {
                inner.push((k, (v, w)));
            }
        }
    }
    let mut lo: Vec<(u8, (i32, Option<char>))> =
        inner.iter().map(|&(k, (v, w))| (k, (v, Some(w)))).collect();
    lo.extend(
        left.iter()
            .filter(|p| !rk.contains(&p.0))
            .map(|&(k, v)| (k, (v, None))),
    );
    let mut ro: Vec<(u8, (Option<i32>, char))> =
        inner.iter().map(|&(k, (v, w))| (k, (Some(v), w))).collect();
    ro.extend(
        right
            .iter()
            .filter(|p| !lk.contains(&p.0))
            .map(|&(k, w)| (k, (None, w))),
    );
    let mut fo: Vec<(u8, (Option<i32>, Option<char>))> = inner
        .iter()
        .map(|&(k, (v, w))| (k, (Some(v), Some(w))))
        .collect();
    fo.extend(
        left.iter()
            .filter(|p| !rk.contains(&p.0))
            .map(|&(k, v)| (k, (Some(v), None))),
    );
    fo.extend(
        right
            .iter()
            .filter(|p| !lk.contains(&p.0))
            .map(|&(k, w)| (k, (None, Some(w)))),
    );
    for (pl, pr) in [(1, 1), (2, 3), (7, 2), (16, 16)] {
        let l = ctx.parallelize(left.clone(), pl);
        let r = ctx.parallelize(right.clone(), pr);
        assert_eq!(sorted(l.join(&r).collect().unwrap()), sorted(inner.clone()));
        assert_eq!(
            sorted(l.left_outer_join(&r).collect().unwrap()),
            sorted(lo.clone())
        );
        assert_eq!(
            sorted(l.right_outer_join(&r).collect().unwrap()),
            sorted(ro.clone())
        );
        assert_eq!(
            sorted(l.full_outer_join(&r).collect().unwrap()),
            sorted(fo.clone())
        );
        assert_eq!(
            l.join(&r).num_partitions(),
            pl.max(pr),
            "Spark's default: the largest input's count"
        );
        let cg: BTreeMap<u8, (Vec<i32>, Vec<char>)> = l
            .cogroup(&r)
            .map_values(|(a, b)| (sorted(a), sorted(b)))
            .collect()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(cg.len(), lk.union(&rk).count());
        assert_eq!(cg[&2], (vec![20], vec!['b', 'c']));
        assert_eq!(cg[&5], (vec![50], vec![]));
        let sbk: Vec<(u8, i32)> = left
            .iter()
            .copied()
            .filter(|p| !rk.contains(&p.0))
            .collect();
        assert_eq!(
            sorted(l.subtract_by_key(&r).collect().unwrap()),
            sorted(sbk)
        );
    }
}

#[test]
fn sort_by_key_gives_globally_ordered_partitions() {
    let ctx = ctx();
    let data: Vec<(i64, u32)> = (0..5000u32)
        .map(|i| (((i as i64) * 7919) % 1009 - 500, i))
        .collect();
    for p in PARTITIONS {
        for order in [spate::Order::Ascending, spate::Order::Descending] {
            for out in [None, Some(1), Some(5)] {
                let s = ctx
                    .parallelize(data.clone(), p)
                    .sort_by_key(order, out)
                    .unwrap();
                let got = s.collect().unwrap();
                let keys: Vec<i64> = got.iter().map(|x| x.0).collect();
                let mut expected_keys: Vec<i64> = data.iter().map(|x| x.0).collect();
                expected_keys.sort();
                if order == spate::Order::Descending {
                    expected_keys.reverse();
                }
                assert_eq!(keys, expected_keys, "p={p} {order:?} out={out:?}");
                assert_eq!(sorted(got), sorted(data.clone()));
                let parts = s.num_partitions();
                assert!(
                    parts >= 1 && parts <= out.unwrap_or(p),
                    "range partitions {parts}"
                );
            }
        }
    }
    let words = ctx.parallelize(
        ["pear", "fig", "apple", "kiwi"].map(String::from).to_vec(),
        2,
    );
    assert_eq!(
        words
            .sort_by(|w| w.len(), spate::Order::Ascending, None)
            .unwrap()
            .collect()
            .unwrap()[0],
        "fig"
    );
    let by_len = words
        .sort_by(|w| w.len(), spate::Order::Descending, Some(3))
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        by_len.iter().map(|w| w.len()).collect::<Vec<_>>(),
        [5, 4, 4, 3]
    );
}

#[test]
fn sort_handles_skewed_and_constant_keys() {
    let ctx = ctx();
    let same: Vec<(u8, usize)> = (0..1000).map(|i| (7, i)).collect();
    let s = ctx
        .parallelize(same.clone(), 4)
        .sort_by_key(spate::Order::Ascending, Some(4))
        .unwrap();
    assert_eq!(sorted(s.collect().unwrap()), same);
    let empty = ctx
        .parallelize(Vec::<(u8, u8)>::new(), 3)
        .sort_by_key(spate::Order::Ascending, None)
        .unwrap();
    assert_eq!(empty.collect().unwrap(), vec![]);
}

#[test]
fn partition_by_places_keys_by_the_partitioner() {
    let ctx = ctx();
    let p = Partitioner::hash(5);
    let r = ctx
        .parallelize((0..100u64).map(|i| (i, i)).collect(), 3)
        .partition_by(p.clone());
    for (i, part) in r.glom().collect().unwrap().into_iter().enumerate() {
        assert!(part.iter().all(|(k, _)| p.partition_of(k) == i));
        assert!(
            part.iter().all(|(k, _)| *k as usize % 5 == i),
            "integers hash to themselves"
        );
    }
    let custom = Partitioner::custom("parity", 2, |k: &u64| (*k % 2) as usize);
    let parts = r.partition_by(custom).glom().collect().unwrap();
    assert!(parts[1].iter().all(|(k, _)| k % 2 == 1));
    assert_eq!(parts[0].len(), 50);
    let strings = ctx
        .parallelize(vec![(Str::from("a"), 1)], 1)
        .partition_by(Partitioner::hash(3));
    assert_eq!(strings.count().unwrap(), 1);
}

#[test]
fn co_partitioned_operations_do_not_shuffle_again() {
    let (ctx, log) = logged_ctx();
    let p = Partitioner::hash(4);
    let a = ctx
        .parallelize((0..100u32).map(|i| (i % 10, i)).collect(), 3)
        .partition_by(p.clone());
    let b = ctx
        .parallelize((0..10u32).map(|i| (i, i * 2)).collect(), 2)
        .partition_by(p.clone());
    a.count().unwrap();
    b.count().unwrap();
    log.clear();
    let reduced = a.reduce_by_key(|x, y| x + y);
    assert_eq!(reduced.partitioner(), Some(&p));
    let joined = a.join(&b);
    assert_eq!(joined.partitioner(), Some(&p));
    let got: HashMap<u32, u32> = reduced.collect().unwrap().into_iter().collect();
    assert_eq!(got[&3], (0..100).filter(|i| i % 10 == 3).sum::<u32>());
    assert_eq!(joined.count().unwrap(), 100);
    assert_eq!(
        log.map_tasks_run(),
        0,
        "no map stage may run: inputs are co-partitioned and computed"
    );
    assert!(a.partition_by(p.clone()).id() == a.id());
}

#[test]
fn default_partitioner_reuses_an_input_partitioner() {
    let ctx = ctx();
    let p = Partitioner::hash(6);
    let a = ctx.parallelize(vec![(1, 1)], 3).partition_by(p.clone());
    let b = ctx.parallelize(vec![(1, 2)], 8);
    assert_eq!(a.join(&b).partitioner(), Some(&p), "6 is within 10x of 8");
    let big = ctx.parallelize(vec![(1, 2)], 80);
    assert_eq!(
        a.join(&big).num_partitions(),
        80,
        "6 is not eligible against 80"
    );
}

#[test]
fn repartition_and_sort_within_partitions_matches_partitioning_then_sorting() {
    let data: Vec<(u32, u32)> = (0..3000u32).map(|i| ((i * 7919) % 1009, i)).collect();
    for (budget, parts) in [(None, 1), (None, 5), (Some(16 << 10), 8)] {
        let mut builder = spate::Context::builder().parallelism(2);
        if let Some(b) = budget {
            builder = builder.memory_limit(b);
        }
        let ctx = builder.build().unwrap();
        let p = spate::Partitioner::hash(parts);
        let got = ctx
            .parallelize(data.clone(), 3)
            .repartition_and_sort_within_partitions(p.clone())
            .glom()
            .collect()
            .unwrap();
        assert_eq!(got.len(), parts);
        for (i, part) in got.iter().enumerate() {
            assert!(
                part.windows(2).all(|w| w[0].0 <= w[1].0),
                "sorted, partition {i}"
            );
            let mut expected: Vec<(u32, u32)> = data
                .iter()
                .copied()
                .filter(|(k, _)| p.partition_of(k) == i)
                .collect();
            let mut sorted_part = part.clone();
            expected.sort();
            sorted_part.sort();
            assert_eq!(sorted_part, expected, "partition {i} of {parts}");
        }
    }
}

/// Values per key of `pairs`, sorted, for every key in `keys`.
fn groups_of<V: Clone + Ord>(pairs: &[(u8, V)], keys: &HashSet<u8>) -> BTreeMap<u8, Vec<V>> {
    let mut m: BTreeMap<u8, Vec<V>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for (k, v) in pairs {
        m.get_mut(k).unwrap().push(v.clone());
    }
    m.values_mut().for_each(|v| v.sort());
    m
}

#[test]
fn cogroup3_and_cogroup4_match_a_map_and_shuffle_each_input_once() {
    let a: Vec<(u8, i32)> = (0..200).map(|i| ((i * 7 % 31) as u8, i)).collect();
    let b: Vec<(u8, char)> = (0..150u32)
        .map(|i| ((i * 11 % 37) as u8, char::from(b'a' + (i % 26) as u8)))
        .collect();
    let c: Vec<(u8, u64)> = (0..90u64).map(|i| ((i * 5 % 41) as u8, i * 3)).collect();
    let d: Vec<(u8, String)> = (0..60)
        .map(|i| ((i * 3 % 29) as u8, format!("d{i}")))
        .collect();
    let keys: HashSet<u8> = a
        .iter()
        .map(|p| p.0)
        .chain(b.iter().map(|p| p.0))
        .chain(c.iter().map(|p| p.0))
        .collect();
    let keys4: HashSet<u8> = keys.iter().copied().chain(d.iter().map(|p| p.0)).collect();
    for parts in PARTITIONS {
        let (ctx, log) = logged_ctx();
        let (ra, rb, rc, rd) = (
            ctx.parallelize(a.clone(), parts),
            ctx.parallelize(b.clone(), 3),
            ctx.parallelize(c.clone(), 2),
            ctx.parallelize(d.clone(), 5),
        );
        let three = ra.cogroup3(&rb, &rc);
        assert!(three.partitioner().is_some(), "keeps its partitioner");
        let got: BTreeMap<u8, (Vec<i32>, Vec<char>, Vec<u64>)> = three
            .collect()
            .unwrap()
            .into_iter()
            .map(|(k, (mut x, mut y, mut z))| {
                x.sort();
                y.sort();
                z.sort();
                (k, (x, y, z))
            })
            .collect();
        let (ga, gb, gc) = (
            groups_of(&a, &keys),
            groups_of(&b, &keys),
            groups_of(&c, &keys),
        );
        let expected: BTreeMap<u8, (Vec<i32>, Vec<char>, Vec<u64>)> = keys
            .iter()
            .map(|k| (*k, (ga[k].clone(), gb[k].clone(), gc[k].clone())))
            .collect();
        assert_eq!(got, expected, "{parts}");
        let map_stages = log
            .events()
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    spate::Event::StageSubmitted {
                        kind: spate::StageKind::ShuffleMap { .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!(map_stages, 3, "each input shuffled once");
        let four = ra.cogroup4(&rb, &rc, &rd).collect().unwrap();
        assert_eq!(four.len(), keys4.len());
        let gd = groups_of(&d, &keys4);
        let (ga, gb, gc) = (
            groups_of(&a, &keys4),
            groups_of(&b, &keys4),
            groups_of(&c, &keys4),
        );
        for (k, (mut w, mut x, mut y, mut z)) in four {
            w.sort();
            x.sort();
            y.sort();
            z.sort();
            assert_eq!(
                (w, x, y, z),
                (
                    ga[&k].clone(),
                    gb[&k].clone(),
                    gc[&k].clone(),
                    gd[&k].clone()
                ),
                "key {k}"
            );
        }
    }
}

#[test]
fn filter_by_range_matches_a_filter_on_any_partitioning() {
    // Skewed keys with gaps; ranges inside, across, outside and inverted.
    let data: Vec<(u32, u32)> = (0..2000u32).map(|i| ((i * i) % 301 / 3, i)).collect();
    let ranges = [(10, 20), (0, 0), (95, 500), (200, 300), (30, 29), (0, 100)];
    for threads in [1, 2] {
        let ctx = spate::Context::builder()
            .parallelism(threads)
            .build()
            .unwrap();
        for parts in PARTITIONS {
            let plain = ctx.parallelize(data.clone(), parts);
            let asc = plain
                .sort_by_key(spate::Order::Ascending, Some(parts))
                .unwrap();
            let desc = plain
                .sort_by_key(spate::Order::Descending, Some(parts))
                .unwrap();
            for (lo, hi) in ranges {
                let expected: Vec<(u32, u32)> = sorted(
                    data.iter()
                        .copied()
                        .filter(|(k, _)| lo <= *k && *k <= hi)
                        .collect(),
                );
                for (name, rdd) in [("plain", &plain), ("asc", &asc), ("desc", &desc)] {
                    let got = rdd.filter_by_range(lo, hi);
                    assert_eq!(got.partitioner(), rdd.partitioner(), "{name}");
                    assert_eq!(
                        sorted(got.collect().unwrap()),
                        expected,
                        "{name}, {parts} partitions, {threads} threads, {lo}..={hi}"
                    );
                }
                // Sorted inputs stay sorted.
                let keys: Vec<u32> = asc.filter_by_range(lo, hi).keys().collect().unwrap();
                assert!(keys.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }
}

#[test]
fn filter_by_range_on_a_range_partitioned_dataset_reads_only_the_partitions_that_can_match() {
    let ctx = ctx();
    let sorted_pairs = ctx
        .parallelize((0..1000u32).map(|i| (i, i)).collect(), 4)
        .sort_by_key(spate::Order::Descending, Some(10))
        .unwrap();
    let sizes: Vec<usize> = sorted_pairs.glom().map(|p| p.len()).collect().unwrap();
    let p = sorted_pairs.partitioner().unwrap().clone();
    let (a, b) = (p.partition_of(&100u32), p.partition_of(&120u32));
    let expected_reads: usize = sizes[a.min(b)..=a.max(b)].iter().sum();
    assert!(expected_reads < 1000);
    let reads = ctx.sum_accumulator::<usize>("records read");
    let counter = reads.clone();
    let got = sorted_pairs
        .map_values(move |v| {
            counter.add(1);
            v
        })
        .filter_by_range(100, 120)
        .collect()
        .unwrap();
    assert_eq!(
        got,
        (100..=120u32).rev().map(|i| (i, i)).collect::<Vec<_>>()
    );
    assert_eq!(reads.value(), expected_reads);
}
