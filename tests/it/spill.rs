//! Every shuffle operation under a 64 KiB memory budget (many spills)
//! against the same operation with an unbounded budget.

use crate::common;
use crate::common::sorted;
use spate::{Context, EventLog, Partitioner};
use std::sync::Arc;

fn pairs() -> Vec<(u32, String)> {
    (0..20_000u32)
        .map(|i| ((i * 7919) % 1_500, format!("value-{i}")))
        .collect()
}

fn run_all(ctx: &Context) -> Vec<Vec<String>> {
    let r = ctx.parallelize(pairs(), 6);
    let other = ctx.parallelize((0..3_000u32).map(|k| (k, k as u64)).collect(), 3);
    let show = |v: Vec<String>| sorted(v);
    vec![
        show(
            r.map_values(|v| v.len() as u64)
                .reduce_by_key(|a, b| a + b)
                .map(|p| format!("{p:?}"))
                .collect()
                .unwrap(),
        ),
        show(
            r.group_by_key()
                .map_values(|v| sorted(v).join(","))
                .map(|p| format!("{p:?}"))
                .collect()
                .unwrap(),
        ),
        show(
            r.combine_by_key(|v| v.len(), |c, v| c + v.len(), |a, b| a + b)
                .map(|p| format!("{p:?}"))
                .collect()
                .unwrap(),
        ),
        show(r.join(&other).map(|p| format!("{p:?}")).collect().unwrap()),
        show(
            r.left_outer_join(&other)
                .map(|p| format!("{p:?}"))
                .collect()
                .unwrap(),
        ),
        show(
            r.cogroup(&other)
                .map_values(|(a, b)| (sorted(a), b))
                .map(|p| format!("{p:?}"))
                .collect()
                .unwrap(),
        ),
        r.sort_by_key(spate::Order::Ascending, Some(4))
            .unwrap()
            .keys()
            .map(|k| k.to_string())
            .collect()
            .unwrap(),
        show(r.values().distinct().collect().unwrap()),
        show(r.values().repartition(5).collect().unwrap()),
        show(
            r.partition_by(Partitioner::hash(7))
                .map(|p| format!("{p:?}"))
                .collect()
                .unwrap(),
        ),
        show(
            r.keys()
                .map(|k| k.to_string())
                .subtract(&other.keys().map(|k| (k * 2).to_string()))
                .collect()
                .unwrap(),
        ),
        show(
            r.keys()
                .map(|k| k.to_string())
                .intersection(&other.keys().map(|k| (k * 3).to_string()))
                .collect()
                .unwrap(),
        ),
    ]
}

#[test]
fn every_shuffle_operation_spills_under_a_tiny_budget_and_matches_the_unbounded_run() {
    let unbounded = run_all(&Context::builder().parallelism(2).build().unwrap());
    let (tiny, log) = common::logged(Context::builder().memory_limit(64 << 10));
    let bounded = run_all(&tiny);
    for (i, (a, b)) in unbounded.iter().zip(&bounded).enumerate() {
        assert_eq!(a, b, "operation {i}");
    }
    let m = log.total_metrics();
    assert!(
        m.spills >= 12,
        "every operation spilled at least once: {m:?}"
    );
    assert!(m.spilled_bytes > 0, "{m:?}");
}

#[test]
fn a_map_side_combine_map_is_flushed_when_it_outgrows_the_budget() {
    let ctx = Context::builder()
        .parallelism(1)
        .memory_limit(32 << 10)
        .build()
        .unwrap();
    let log = Arc::new(EventLog::default());
    ctx.add_listener(log.clone());
    // 50,000 distinct keys in one partition: far more than 32 KiB of combiners.
    let counts = ctx
        .range(0, 100_000, 1, 1)
        .map(|x| (x % 50_000, 1u32))
        .reduce_by_key(|a, b| a + b);
    let got = counts.collect().unwrap();
    assert_eq!(got.len(), 50_000);
    assert!(got.iter().all(|(_, n)| *n == 2));
    assert!(log.total_metrics().spills >= 2);
}

#[test]
fn sort_by_key_of_data_many_times_the_budget_merges_spilled_runs() {
    let (ctx, log) = common::logged(Context::builder().memory_limit(64 << 10));
    let data: Vec<(u64, String)> = (0..60_000u64)
        .map(|i| ((i * 2_654_435_761) % 100_003, format!("v{i}")))
        .collect();
    for order in [spate::Order::Ascending, spate::Order::Descending] {
        let sorted_rdd = ctx
            .parallelize(data.clone(), 5)
            .sort_by_key(order, Some(3))
            .unwrap();
        let got = sorted_rdd.collect().unwrap();
        let mut keys: Vec<u64> = data.iter().map(|p| p.0).collect();
        keys.sort();
        if order == spate::Order::Descending {
            keys.reverse();
        }
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), keys);
        assert_eq!(sorted(got), sorted(data.clone()));
    }
    assert!(
        log.total_metrics().spills >= 10,
        "{:?}",
        log.total_metrics()
    );
    let runs_left = std::fs::read_dir(ctx.scratch_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("sort-run-")
        })
        .count();
    assert_eq!(runs_left, 0, "sorted runs are deleted once merged");
}

#[test]
fn a_failed_map_task_leaves_no_spill_files_behind() {
    let ctx = Context::builder()
        .parallelism(2)
        .memory_limit(0)
        .max_task_failures(2)
        .build()
        .unwrap();
    let r = ctx
        .range(0, 20_000, 1, 2)
        .map(|x| {
            if x == 19_999 {
                panic!("late failure")
            } else {
                (x % 100, x)
            }
        })
        .group_by_key();
    let err = r.count().unwrap_err();
    assert!(
        matches!(err.root_cause(), spate::Error::Panicked(m) if m == "late failure"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(ctx.scratch_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    // Only the successful map task (partition 0) keeps its output files
    // (on disk: the budget is zero); the failed attempts left none.
    assert!(!left.is_empty(), "map 0's output is on disk");
    assert!(
        left.iter()
            .all(|f| f.to_string_lossy().starts_with("shuffle_0_0_")),
        "{left:?}"
    );
}

/// Spills counted by the result tasks (the reduce side) of all jobs so far.
fn result_task_spills(log: &EventLog) -> u64 {
    log.events()
        .iter()
        .filter_map(|e| match e {
            spate::Event::TaskEnd {
                kind: spate::StageKind::Result,
                failure: None,
                metrics,
                ..
            } => Some(metrics.spills),
            _ => None,
        })
        .sum()
}

#[test]
fn a_hot_key_with_values_many_times_the_budget_is_grouped_across_spilled_runs() {
    let (ctx, log) = common::logged(Context::builder().memory_limit(64 << 10));
    // Key 0 holds 150,000 values (several MiB); a few cold keys beside it.
    let data: Vec<(u32, String)> = (0..160_000u32)
        .map(|i| (if i % 16 == 0 { 1 + i % 7 } else { 0 }, format!("v{i}")))
        .collect();
    let mut expected: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for (k, v) in &data {
        expected.entry(*k).or_default().push(v.clone());
    }
    expected.values_mut().for_each(|v| v.sort());
    let got: std::collections::BTreeMap<u32, Vec<String>> = ctx
        .parallelize(data, 8)
        .group_by_key_with(2)
        .map_values(sorted)
        .collect()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    // The hot key's partition spilled many runs rather than hold them all.
    let spills = result_task_spills(&log);
    assert!(spills >= 10, "reduce tasks spilled: {spills}");
}

#[test]
fn cogroup_under_a_tiny_budget_matches_a_map_reference_with_a_hot_key_on_both_sides() {
    let (ctx, log) = common::logged(Context::builder().memory_limit(64 << 10));
    let left: Vec<(u32, u64)> = (0..60_000u64)
        .map(|i| ((i % 3 * (i % 500)) as u32, i))
        .collect();
    let right: Vec<(u32, String)> = (0..40_000u32)
        .map(|i| (if i % 2 == 0 { 0 } else { i % 900 }, format!("r{i}")))
        .collect();
    let mut expected: std::collections::BTreeMap<u32, (Vec<u64>, Vec<String>)> = Default::default();
    for (k, v) in &left {
        expected.entry(*k).or_default().0.push(*v);
    }
    for (k, w) in &right {
        expected.entry(*k).or_default().1.push(w.clone());
    }
    expected.values_mut().for_each(|(a, b)| {
        a.sort();
        b.sort();
    });
    let got: std::collections::BTreeMap<u32, (Vec<u64>, Vec<String>)> = ctx
        .parallelize(left, 5)
        .cogroup_with(&ctx.parallelize(right, 3), 3)
        .map_values(|(a, b)| (sorted(a), sorted(b)))
        .collect()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(got, expected);
    assert!(result_task_spills(&log) >= 6);
}

/// Inner, left outer, right outer and full outer join results.
type JoinResults = (
    Vec<(u32, (u32, u32))>,
    Vec<(u32, (u32, Option<u32>))>,
    Vec<(u32, (Option<u32>, u32))>,
    Vec<(u32, (Option<u32>, Option<u32>))>,
);

/// Every join flavour by nested loops, each sorted.
fn reference_joins(left: &[(u32, u32)], right: &[(u32, u32)]) -> JoinResults {
    let (mut inner, mut lo, mut ro, mut fo) = (vec![], vec![], vec![], vec![]);
    for &(k, v) in left {
        let ws: Vec<u32> = right.iter().filter(|r| r.0 == k).map(|r| r.1).collect();
        if ws.is_empty() {
            lo.push((k, (v, None)));
            fo.push((k, (Some(v), None)));
        }
        for w in ws {
            inner.push((k, (v, w)));
            lo.push((k, (v, Some(w))));
            ro.push((k, (Some(v), w)));
            fo.push((k, (Some(v), Some(w))));
        }
    }
    for &(k, w) in right {
        if !left.iter().any(|l| l.0 == k) {
            ro.push((k, (None, w)));
            fo.push((k, (None, Some(w))));
        }
    }
    (sorted(inner), sorted(lo), sorted(ro), sorted(fo))
}

#[test]
fn joins_whose_build_side_spills_merge_by_hash_and_match_nested_loops() {
    let (ctx, log) = common::logged(Context::builder().memory_limit(32 << 10));
    // Keys 0..400 on the left, 200..700 on the right: matched keys, and
    // unmatched keys on each side; key 300 is hot on both sides.
    let left: Vec<(u32, u32)> = (0..3_000u32)
        .map(|i| (if i % 5 == 0 { 300 } else { i % 400 }, i))
        .collect();
    let right: Vec<(u32, u32)> = (0..6_000u32)
        .map(|i| (if i % 7 == 0 { 300 } else { 200 + i % 500 }, i))
        .collect();
    let (inner, lo, ro, fo) = reference_joins(&left, &right);
    let (l, r) = (ctx.parallelize(left, 4), ctx.parallelize(right, 3));
    assert_eq!(sorted(l.join_with(&r, 3).collect().unwrap()), inner);
    let spills_after_inner = result_task_spills(&log);
    assert!(
        spills_after_inner >= 3,
        "the build side spilled: {spills_after_inner}"
    );
    assert_eq!(sorted(l.left_outer_join_with(&r, 3).collect().unwrap()), lo);
    assert_eq!(
        sorted(l.right_outer_join_with(&r, 3).collect().unwrap()),
        ro
    );
    assert_eq!(sorted(l.full_outer_join_with(&r, 3).collect().unwrap()), fo);
    assert_eq!(
        sorted(l.full_outer_join_with(&r, 1).collect().unwrap()),
        fo,
        "one partition"
    );
}

#[test]
fn reduce_side_aggregation_spills_hash_ordered_runs_and_merges_equal_keys() {
    let (ctx, log) = common::logged(Context::builder().memory_limit(64 << 10));
    // Many distinct keys per reduce partition, each seen in several map tasks.
    let data: Vec<(String, u64)> = (0..80_000u64)
        .map(|i| (format!("key{}", i % 20_000), i))
        .collect();
    let mut expected = std::collections::BTreeMap::new();
    for (k, v) in &data {
        *expected.entry(k.clone()).or_insert(0) += v;
    }
    let sums = ctx
        .parallelize(data.clone(), 8)
        .reduce_by_key_with(2, |a, b| a + b);
    let got: std::collections::BTreeMap<String, u64> =
        sums.collect().unwrap().into_iter().collect();
    assert_eq!(got, expected);
    let groups = ctx
        .parallelize(data, 8)
        .group_by_key_with(2)
        .map_values(|v| v.len());
    let got = groups.collect().unwrap();
    assert_eq!(got.len(), 20_000);
    assert!(got.iter().all(|(_, n)| *n == 4));
    let result_spills = result_task_spills(&log);
    assert!(result_spills >= 4, "reduce tasks spilled: {result_spills}");
    let job = log.job_metrics();
    assert!(
        job.spills >= result_spills && job.spilled_bytes > 0,
        "{job:?}"
    );
    assert!(
        job.peak_memory <= 64 << 10,
        "peak within the budget: {job:?}"
    );
}

/// Set in the child process of the many-partitions test: its partition count.
const MANY_PARTITIONS_CHILD: &str = "SPATE_TEST_MANY_PARTITIONS_CHILD";

/// The peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn shuffle_bookkeeping_grows_with_the_data_not_the_square_of_the_partition_count() {
    if let Ok(n) = std::env::var(MANY_PARTITIONS_CHILD) {
        // The child: n maps of one record each into n reduce partitions.
        let n: i64 = n.parse().unwrap();
        let (ctx, log) = common::logged(Context::builder().memory_limit(64 << 20));
        let sums = ctx
            .parallelize((0..n).map(|i| (i % 100, 1u64)).collect(), n as usize)
            .reduce_by_key(|a, b| a + b);
        let mut got = sums.collect().unwrap();
        got.sort();
        assert_eq!(got.len(), 100);
        assert!(got.iter().all(|&(_, c)| c == (n / 100) as u64));
        println!("PEAK_RSS={}", peak_rss());
        println!("PEAK_MEMORY={}", log.job_metrics().peak_memory);
        return;
    }
    let run = |n: usize| -> (u64, u64) {
        let out = common::run_child_test(&mut common::child_test(
            "spill::shuffle_bookkeeping_grows_with_the_data_not_the_square_of_the_partition_count",
            (MANY_PARTITIONS_CHILD, n.to_string().as_ref()),
        ));
        let value = |key: &str| -> u64 {
            out.lines()
                .find_map(|l| l.split(key).nth(1))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {out}"))
        };
        (value("PEAK_RSS="), value("PEAK_MEMORY="))
    };
    let (small_rss, small_peak) = run(500);
    let (big_rss, big_peak) = run(5_000);
    eprintln!("peak RSS {small_rss} -> {big_rss}; budget peak {small_peak} -> {big_peak}");
    // Ten times the partitions may cost ten times the bookkeeping (linear),
    // not a hundred (quadratic: 788 MB at 5,000 before the fix).
    assert!(
        big_rss < small_rss + (150 << 20),
        "peak RSS {small_rss} at 500 partitions, {big_rss} at 5,000"
    );
    assert!(big_peak > 0, "the bookkeeping is charged to the budget");
}
