//! Recovery under injected faults: each test checks the answer and exactly
//! which work was redone.

use crate::common;
use crate::common::{logged, sorted};
use spate::{Context, Error, Event, EventLog, FaultPlan, ShuffleLoss, StageKind};
use std::collections::BTreeMap;

/// Map task starts per (shuffle, partition).
fn map_starts(log: &EventLog) -> BTreeMap<(u64, usize), usize> {
    let mut m = BTreeMap::new();
    for e in log.events() {
        if let Event::TaskStart {
            task,
            kind: StageKind::ShuffleMap { shuffle },
            ..
        } = e
        {
            *m.entry((shuffle.0, task.partition)).or_default() += 1;
        }
    }
    m
}

fn lost_outputs(log: &EventLog) -> Vec<(u64, usize)> {
    log.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::MapOutputLost { shuffle, map, .. } => Some((shuffle.0, map)),
            _ => None,
        })
        .collect()
}

fn result_stage(log: &EventLog) -> u64 {
    log.events()
        .iter()
        .find_map(|e| match e {
            Event::StageSubmitted {
                stage,
                kind: StageKind::Result,
                ..
            } => Some(*stage),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_task_failing_on_its_first_attempt_only_succeeds_with_exact_accumulators() {
    let (ctx, log) = logged(Context::builder());
    let seen = ctx.sum_accumulator::<u64>("seen");
    let s = seen.clone();
    let data = ctx.parallelize((0..100u64).collect(), 4);
    data.foreach(|_| ()).unwrap(); // job 0 learns the result stage id
    let stage = result_stage(&log) + 1; // job 1's result stage is the next id
    ctx.set_fault_plan(FaultPlan::new().fail_attempt(stage, 2, 0));
    log.clear();
    data.foreach(move |x| s.add(x)).unwrap();
    assert_eq!(
        seen.value(),
        (0..100).sum::<u64>(),
        "the failed attempt's updates never count"
    );
    let m = log.job_metrics();
    assert_eq!((m.tasks_run, m.tasks_failed, m.faults_injected), (5, 1, 1));
}

#[test]
fn a_task_that_always_fails_ends_the_job_and_leaves_the_context_usable() {
    let (ctx, _log) = logged(Context::builder().max_task_failures(3));
    ctx.set_fault_plan(FaultPlan::new().fail_tasks_with_probability(1.0, 1));
    let err = ctx.range(0, 10, 1, 2).count().unwrap_err();
    assert!(
        matches!(&err, Error::TaskFailed { attempts: 3, cause, .. } if matches!(**cause, Error::InjectedFault(_))),
        "{err}"
    );
    ctx.clear_fault_plan();
    assert_eq!(ctx.range(0, 10, 1, 2).count().unwrap(), 10);
}

#[test]
fn a_dropped_cache_block_recomputes_only_that_partition() {
    let (ctx, log) = logged(Context::builder());
    let (counted, computed) = common::counted_range(&ctx, 400, 4);
    let cached = counted.map(|x| x * 2).cache().unwrap();
    assert_eq!(cached.sum().unwrap(), 159_600);
    assert_eq!(computed.value(), 400);
    ctx.set_fault_plan(FaultPlan::new().drop_cached_block(cached.id(), 2));
    log.clear();
    assert_eq!(cached.sum().unwrap(), 159_600);
    assert_eq!(
        computed.value(),
        500,
        "only partition 2 (100 elements) is recomputed"
    );
    let recomputed: Vec<_> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::PartitionRecomputed { rdd, partition } => Some((rdd, partition)),
            _ => None,
        })
        .collect();
    assert_eq!(recomputed, vec![(cached.id(), 2)]);
    assert_eq!(log.job_metrics().cached_partitions_recomputed, 1);
}

fn keyed_sums(ctx: &Context) -> spate::Rdd<(u64, u64)> {
    ctx.parallelize((0..1000u64).collect(), 4)
        .map(|x| (x % 13, x))
        .reduce_by_key(|a, b| a + b)
}

fn expected_sums() -> Vec<(u64, u64)> {
    let mut m = BTreeMap::new();
    (0..1000u64).for_each(|x| *m.entry(x % 13).or_insert(0) += x);
    m.into_iter().collect()
}

#[test]
fn a_deleted_map_output_reruns_only_that_map_task() {
    for memory in [usize::MAX, 0] {
        let (ctx, log) = logged(Context::builder().memory_limit(memory));
        let r = keyed_sums(&ctx);
        ctx.set_fault_plan(FaultPlan::new().lose_map_output(0, 1, ShuffleLoss::Delete));
        assert_eq!(
            sorted(r.collect().unwrap()),
            expected_sums(),
            "memory {memory}"
        );
        assert_eq!(lost_outputs(&log), vec![(0, 1)]);
        let starts = map_starts(&log);
        assert_eq!(
            starts.values().copied().collect::<Vec<_>>(),
            vec![1, 2, 1, 1],
            "{starts:?}"
        );
        assert_eq!(log.job_metrics().map_outputs_recomputed, 1);
    }
}

#[test]
fn a_corrupted_map_output_is_detected_and_rerun() {
    for memory in [usize::MAX, 0] {
        let (ctx, log) = logged(Context::builder().memory_limit(memory));
        let r = keyed_sums(&ctx);
        ctx.set_fault_plan(FaultPlan::new().lose_map_output(0, 3, ShuffleLoss::Corrupt));
        assert_eq!(sorted(r.collect().unwrap()), expected_sums());
        let reasons: Vec<String> = log
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::MapOutputLost { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 1);
        if memory == 0 {
            assert!(
                reasons[0].contains("checksum"),
                "a real on-disk corruption is caught by the CRC: {reasons:?}"
            );
        }
        assert_eq!(map_starts(&log)[&(0, 3)], 2);
    }
}

#[test]
fn a_failure_during_a_stage_retry_is_retried_too() {
    let (ctx, log) = logged(Context::builder());
    let r = keyed_sums(&ctx);
    r.count().unwrap(); // job 0: map stage gets its id
    let map_stage = common::first_map_stage(&log).unwrap();
    // A new shuffle over the same data, so its map stage runs in job 1.
    let again = keyed_sums(&ctx);
    let shuffle = 1;
    let stage = map_stage + 2; // job 0 used ids map_stage and map_stage + 1
    ctx.set_fault_plan(
        FaultPlan::new()
            .lose_map_output(shuffle, 2, ShuffleLoss::Delete)
            .fail_attempt(stage, 2, 1), // the re-run of map 2 fails once
    );
    log.clear();
    assert_eq!(sorted(again.collect().unwrap()), expected_sums());
    assert_eq!(
        map_starts(&log)[&(shuffle, 2)],
        3,
        "first run, failed re-run, successful retry"
    );
    let m = log.job_metrics();
    assert_eq!(
        (
            m.faults_injected,
            m.map_outputs_recomputed,
            m.tasks_failed >= 1
        ),
        (2, 1, true)
    );
}

#[test]
fn losses_at_two_shuffle_levels_are_both_recovered() {
    let (ctx, log) = logged(Context::builder());
    let level1 = ctx
        .parallelize((0..600u64).collect(), 3)
        .map(|x| (x % 30, 1u64))
        .reduce_by_key(|a, b| a + b);
    let level2 = level1.map(|(k, n)| (k % 4, n)).group_by_key();
    ctx.set_fault_plan(
        FaultPlan::new()
            .lose_map_output(0, 0, ShuffleLoss::Delete)
            .lose_map_output(1, 1, ShuffleLoss::Corrupt),
    );
    let got: BTreeMap<u64, u64> = level2
        .map_values(|v| v.iter().sum())
        .collect()
        .unwrap()
        .into_iter()
        .collect();
    let mut expected = BTreeMap::new();
    for x in 0..600u64 {
        *expected.entry((x % 30) % 4).or_insert(0) += 1;
    }
    assert_eq!(got, expected);
    let mut lost = lost_outputs(&log);
    lost.sort();
    assert_eq!(lost, vec![(0, 0), (1, 1)]);
    assert_eq!(log.job_metrics().map_outputs_recomputed, 2);
}

#[test]
fn a_retried_repartition_gives_the_same_split() {
    let clean_ctx = Context::builder().parallelism(2).build().unwrap();
    let clean = clean_ctx
        .range(0, 500, 1, 5)
        .repartition(3)
        .glom()
        .collect()
        .unwrap();
    let (ctx, log) = logged(Context::builder().max_task_failures(10));
    ctx.set_fault_plan(
        FaultPlan::new()
            .fail_tasks_with_probability(0.4, 11)
            .lose_map_output(0, 2, ShuffleLoss::Delete),
    );
    let faulty = ctx
        .range(0, 500, 1, 5)
        .repartition(3)
        .glom()
        .collect()
        .unwrap();
    assert_eq!(
        faulty, clean,
        "same elements in the same partitions, in the same order"
    );
    assert!(log.job_metrics().faults_injected >= 2);
}

#[test]
fn many_lost_outputs_are_found_in_one_stage_attempt() {
    let (ctx, log) = logged(Context::builder());
    let r = keyed_sums(&ctx);
    let mut plan = FaultPlan::new();
    for map in 0..4 {
        plan = plan.lose_map_output(0, map, ShuffleLoss::Delete);
    }
    ctx.set_fault_plan(plan);
    assert_eq!(sorted(r.collect().unwrap()), expected_sums());
    assert_eq!(log.job_metrics().map_outputs_recomputed, 4);
    let result_attempts = log
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::StageSubmitted {
                    kind: StageKind::Result,
                    ..
                }
            )
        })
        .count();
    assert!(
        result_attempts <= 3,
        "reducers read maps in rotated order: {result_attempts}"
    );
}

#[test]
fn stage_attempts_are_limited() {
    let (ctx, log) = logged(Context::builder());
    let r = keyed_sums(&ctx);
    ctx.set_fault_plan(FaultPlan::new().lose_map_output_every_time(0, 1, ShuffleLoss::Delete));
    let err = r.collect().unwrap_err();
    assert!(
        matches!(&err, Error::StageFailed { attempts: 4, cause, .. } if matches!(**cause, Error::ShuffleFetch { map: 1, .. })),
        "{err}"
    );
    assert_eq!(map_starts(&log)[&(0, 1)], 4);
    ctx.clear_fault_plan();
    assert_eq!(
        sorted(r.collect().unwrap()),
        expected_sums(),
        "the context recovers once the fault is gone"
    );
}
