//! Stages, shuffle reuse, caching, retries, errors and events.

use crate::common;
use crate::common::{ctx, logged_ctx, sorted};
use rayon::prelude::*;
use spate::{Error, Event, StageKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn submitted(events: &[Event]) -> Vec<StageKind> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StageSubmitted { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

#[test]
fn map_reduce_by_key_map_join_runs_three_map_stages_and_a_result_stage() {
    let (ctx, log) = logged_ctx();
    let words = ctx
        .parallelize(vec!['a', 'b', 'a', 'c'], 2)
        .map(|w| (w.to_string(), 1));
    let counts = words.reduce_by_key(|a, b| a + b).map(|(w, c)| (w, c * 10));
    let names = ctx.parallelize(vec![("a".to_string(), 'A'), ("c".to_string(), 'C')], 3);
    let joined = counts.join(&names);
    assert_eq!(
        sorted(joined.collect().unwrap()),
        vec![("a".into(), (20, 'A')), ("c".into(), (10, 'C'))]
    );
    let kinds = submitted(&log.events());
    // reduce_by_key's map stage, then the join's two map stages (counts is
    // not partitioned after `map`, names never was), then the result.
    assert_eq!(
        kinds
            .iter()
            .filter(|k| matches!(k, StageKind::ShuffleMap { .. }))
            .count(),
        3
    );
    assert_eq!(kinds.last(), Some(&StageKind::Result));
    assert_eq!(kinds.len(), 4);
    let debug = joined.to_debug_string();
    assert_eq!(debug.matches("+-").count(), 3, "{debug}");
}

/// The stages reported skipped, as (job, stage).
fn skipped(log: &spate::EventLog) -> Vec<(u64, u64)> {
    log.events()
        .iter()
        .filter_map(|e| match e {
            Event::StageSkipped { job, stage, .. } => Some((*job, *stage)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_second_action_reuses_shuffle_output_and_only_it_reports_the_stage_skipped() {
    let (ctx, log) = logged_ctx();
    let counts = ctx
        .range(0, 1000, 1, 4)
        .map(|x| (x % 10, 1))
        .reduce_by_key(|a, b| a + b);
    assert_eq!(counts.count().unwrap(), 10);
    assert_eq!(log.map_tasks_run(), 4);
    // The job that ran the map stage did not skip it (it once said so,
    // when it looked for missing outputs after its result stage).
    assert_eq!(skipped(&log), []);
    let map_stage = common::first_map_stage(&log).unwrap();
    log.clear();
    assert_eq!(counts.values().sum().unwrap(), 1000);
    assert_eq!(log.map_tasks_run(), 0, "the map stage's outputs are reused");
    assert_eq!(skipped(&log), [(1, map_stage)]);
}

#[test]
fn cached_partitions_are_computed_once() {
    let ctx = ctx();
    let (counted, computed) = common::counted_range(&ctx, 100, 4);
    let r = counted.map(|x| x * 2).cache().unwrap();
    assert_eq!(r.sum().unwrap(), 9900);
    assert_eq!(r.count().unwrap(), 100);
    assert_eq!(r.collect().unwrap().len(), 100);
    assert_eq!(
        computed.value(),
        100,
        "each element computed once across three jobs"
    );
    let r = r.unpersist();
    r.count().unwrap();
    assert_eq!(
        computed.value(),
        200,
        "after unpersist the data is recomputed"
    );
}

#[test]
fn a_cached_shuffled_dataset_hides_its_map_stage() {
    let (ctx, log) = logged_ctx();
    let r = ctx
        .range(0, 100, 1, 4)
        .map(|x| (x % 3, x))
        .group_by_key()
        .cache()
        .unwrap();
    r.count().unwrap();
    log.clear();
    r.map_values(|v| v.len()).collect().unwrap();
    assert!(
        !log.events().iter().any(|e| matches!(
            e,
            Event::StageSkipped { .. }
                | Event::StageSubmitted {
                    kind: StageKind::ShuffleMap { .. },
                    ..
                }
        )),
        "a fully cached dataset needs no parent stage"
    );
}

#[test]
fn a_task_that_panics_once_is_retried_and_counts_its_accumulator_once() {
    let (ctx, log) = logged_ctx();
    let attempts = Arc::new(AtomicUsize::new(0));
    let acc = ctx.sum_accumulator::<u64>("seen");
    let (a, t) = (acc.clone(), attempts.clone());
    let r = ctx.parallelize((0..10).collect::<Vec<u64>>(), 2);
    r.foreach_partition(move |it| {
        for x in it {
            a.add(x);
            if x == 7 && t.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first attempt fails");
            }
        }
    })
    .unwrap();
    assert_eq!(
        acc.value(),
        45,
        "updates of the failed attempt are discarded"
    );
    assert_eq!(log.failed_tasks(), 1);
    assert_eq!(log.tasks_run(), 3);
}

#[test]
fn accumulator_adds_from_a_tasks_own_parallel_code_count_once_through_its_scope() {
    let (ctx, log) = logged_ctx();
    let attempts = Arc::new(AtomicUsize::new(0));
    let acc = ctx.sum_accumulator::<u64>("seen");
    let (a, t) = (acc.clone(), attempts.clone());
    ctx.parallelize((0..1000).collect::<Vec<u64>>(), 3)
        .foreach_partition(move |it| {
            let task = spate::TaskScope::current().expect("inside a task");
            let v: Vec<u64> = it.collect();
            // Work spread over the pool and over threads of our own.
            v.par_iter().for_each(|&x| a.add_in(&task, x));
            std::thread::scope(|s| {
                s.spawn(|| a.add_in(&task, 1));
            });
            if v.contains(&999) && t.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first attempt fails");
            }
        })
        .unwrap();
    assert_eq!(
        acc.value(),
        499_500 + 3,
        "the failed attempt's adds are discarded"
    );
    assert_eq!(log.failed_tasks(), 1);
}

#[test]
fn an_accumulator_add_stolen_onto_an_idle_worker_fails_the_task_instead_of_counting_for_no_task() {
    let ctx = ctx();
    let acc = ctx.sum_accumulator::<u64>("seen");
    let a = acc.clone();
    // One partition on two workers: the other worker runs no task, and a
    // broadcast runs the closure on it.
    let err = ctx
        .range(0, 4, 1, 1)
        .foreach_partition(move |_| {
            rayon::broadcast(|_| a.add(1));
        })
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "Accumulator::add() of 'seen' ran on an engine worker thread outside any task"
        ),
        "{err}"
    );
    assert_eq!(acc.value(), 0, "no attempt counted");
}

#[test]
fn an_add_through_a_scope_whose_task_has_ended_is_ignored() {
    let ctx = ctx();
    let acc = ctx.sum_accumulator::<u64>("seen");
    let kept = Arc::new(parking_lot::Mutex::new(None));
    let (a, k) = (acc.clone(), kept.clone());
    ctx.range(0, 4, 1, 1)
        .foreach_partition(move |_| {
            a.add(5);
            *k.lock() = spate::TaskScope::current();
        })
        .unwrap();
    let scope = kept.lock().take().expect("the task stored its scope");
    acc.add_in(&scope, 100);
    assert_eq!(acc.value(), 5);
    assert!(
        spate::TaskScope::current().is_none(),
        "the driver runs no task"
    );
}

#[test]
fn a_task_that_always_panics_fails_the_job_with_a_clear_error_and_the_context_stays_usable() {
    let (ctx, log) = logged_ctx();
    let r = ctx
        .range(0, 10, 1, 2)
        .map(|x| if x == 7 { panic!("bad record {x}") } else { x });
    let err = r.collect().unwrap_err();
    match &err {
        Error::TaskFailed {
            partition,
            attempts,
            cause,
            ..
        } => {
            assert_eq!(*partition, 1);
            assert_eq!(*attempts, 4);
            assert!(cause.to_string().contains("bad record 7"), "{cause}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("partition 1") && text.contains("stage") && text.contains("bad record 7"),
        "{text}"
    );
    assert_eq!(log.failed_tasks(), 4);
    assert_eq!(
        ctx.range(0, 10, 1, 2).sum().unwrap(),
        45,
        "the context still runs jobs"
    );
}

#[test]
fn max_task_failures_is_honoured() {
    let ctx = spate::Context::builder()
        .parallelism(2)
        .max_task_failures(1)
        .build()
        .unwrap();
    let err = ctx
        .range(0, 4, 1, 1)
        .map(|_| -> i64 { panic!("always") })
        .count()
        .unwrap_err();
    assert!(matches!(err, Error::TaskFailed { attempts: 1, .. }));
}

#[test]
fn a_failure_in_a_map_stage_names_that_stage() {
    let (ctx, log) = logged_ctx();
    let r = ctx
        .range(0, 10, 1, 2)
        .map(|x| {
            if x == 3 {
                panic!("map side")
            } else {
                (x % 2, x)
            }
        })
        .reduce_by_key(|a, b| a + b);
    let err = r.collect().unwrap_err();
    let map_stage = common::first_map_stage(&log);
    assert!(
        matches!(err, Error::TaskFailed { stage, partition: 0, .. } if Some(stage) == map_stage)
    );
}

#[test]
fn events_carry_metrics() {
    let (ctx, log) = logged_ctx();
    ctx.range(0, 1000, 1, 4)
        .map(|x| (x % 10, 1))
        .reduce_by_key(|a, b| a + b)
        .collect()
        .unwrap();
    let m = log.total_metrics();
    assert_eq!(
        m.shuffle_records_written, 40,
        "map-side combine: 10 keys per map task"
    );
    assert_eq!(m.shuffle_records_read, 40);
    assert_eq!(m.records_out, 10);
    let jobs = log
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::JobEnd {
                    succeeded: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(jobs, 1);
}

#[test]
fn ids_are_assigned_in_creation_order() {
    let run = || {
        let ctx = ctx();
        let a = ctx.range(0, 10, 1, 2);
        let b = a.map(|x| x + 1);
        let c = b.map(|x| (x, x)).reduce_by_key(|a, b| a + b);
        (a.id(), b.id(), c.id())
    };
    assert_eq!(run(), run());
    let (a, b, c) = run();
    assert!(a < b && b < c);
}

#[test]
fn shuffle_blocks_go_to_disk_when_the_budget_is_exhausted() {
    let (ctx, log) = {
        let ctx = spate::Context::builder()
            .parallelism(2)
            .memory_limit(0)
            .build()
            .unwrap();
        let log = Arc::new(spate::EventLog::default());
        ctx.add_listener(log.clone());
        (ctx, log)
    };
    let r = ctx
        .range(0, 10_000, 1, 4)
        .map(|x| (x % 100, x))
        .group_by_key();
    let got: std::collections::BTreeMap<i64, usize> = r
        .map_values(|v| v.len())
        .collect()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(got.len(), 100);
    assert!(got.values().all(|&n| n == 100));
    let m = log.total_metrics();
    assert!(m.shuffle_bytes_written > 0 && m.shuffle_bytes_read == m.shuffle_bytes_written);
    assert_eq!(m.shuffle_blocks_in_memory, 0);
    let files = std::fs::read_dir(ctx.scratch_dir()).unwrap().count();
    assert!(
        files >= 4,
        "at least one shuffle file per map task (more when they spill): {files}"
    );
    assert!(m.spills > 0, "a zero budget makes map tasks spill");
    drop(r);
    assert_eq!(
        std::fs::read_dir(ctx.scratch_dir()).unwrap().count(),
        0,
        "files go with their dataset"
    );
}

#[test]
fn corrupt_shuffle_files_are_detected_and_recomputed() {
    let ctx = spate::Context::builder()
        .parallelism(2)
        .memory_limit(0)
        .build()
        .unwrap();
    let log = Arc::new(spate::EventLog::default());
    ctx.add_listener(log.clone());
    let r = ctx
        .range(0, 1000, 1, 3)
        .map(|x| (x % 7, x))
        .reduce_by_key(|a, b| a + b);
    let expected = sorted(r.collect().unwrap());
    for entry in std::fs::read_dir(ctx.scratch_dir()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
    }
    log.clear();
    assert_eq!(
        sorted(r.collect().unwrap()),
        expected,
        "corruption is detected, never read"
    );
    assert!(log.map_tasks_run() >= 1, "lost map outputs are recomputed");
}

#[test]
fn broadcast_values_reach_tasks() {
    let ctx = ctx();
    let table = ctx
        .broadcast(std::collections::HashMap::from([
            (1, "one".to_string()),
            (2, "two".to_string()),
        ]))
        .unwrap();
    let r = ctx
        .parallelize(vec![1, 2, 3], 2)
        .map(move |k| table.get(&k).cloned().unwrap_or_else(|| "?".to_string()));
    assert_eq!(r.collect().unwrap(), ["one", "two", "?"]);
}

#[test]
fn a_destroyed_broadcast_fails_the_next_job_at_its_first_attempt_and_the_context_stays_usable() {
    for threads in [1, 3] {
        let ctx = spate::Context::builder()
            .parallelism(threads)
            .build()
            .unwrap();
        let log = Arc::new(spate::EventLog::default());
        ctx.add_listener(log.clone());
        let table = ctx.broadcast(vec![10u64, 20, 30]).unwrap();
        let t = table.clone();
        let looked_up = ctx
            .parallelize((0..30usize).collect(), 3)
            .map(move |i| t[i % 3]);
        assert_eq!(looked_up.sum().unwrap(), 600);
        table.destroy();
        let err = looked_up.sum().unwrap_err();
        let Error::TaskFailed {
            attempts, cause, ..
        } = &err
        else {
            panic!("not a task failure: {err:?}");
        };
        assert_eq!(*attempts, 1, "not retried: {err}");
        assert!(
            matches!(**cause, Error::BroadcastDestroyed(id) if id == table.id()),
            "{err}"
        );
        let said = format!("broadcast {} was used after destroy()", table.id());
        assert!(err.to_string().contains(&said), "{err}");
        // Other broadcasts and jobs are untouched.
        let other = ctx.broadcast(2u64).unwrap();
        let o = other.clone();
        log.clear();
        assert_eq!(
            ctx.range(0, 4, 1, 2)
                .map(move |x| x as u64 * *o)
                .sum()
                .unwrap(),
            12
        );
        assert!(log.events().iter().all(|e| !matches!(
            e,
            Event::TaskEnd {
                failure: Some(_),
                ..
            }
        )));
    }
}

#[test]
fn custom_accumulators_merge_with_their_function() {
    let ctx = ctx();
    let longest = ctx.accumulator("longest", String::new(), |a: &mut String, b: String| {
        if b.len() > a.len() {
            *a = b
        }
    });
    let l = longest.clone();
    ctx.parallelize(vec![2, 4, 3], 3)
        .foreach(move |n| l.add("abcd"[..n].to_string()))
        .unwrap();
    assert_eq!(longest.value(), "abcd");
    longest.reset();
    assert_eq!(longest.value(), "");
}

#[test]
fn contexts_are_independent() {
    let a = ctx();
    let b = ctx();
    assert_ne!(a.scratch_dir(), b.scratch_dir());
    let ra = a.range(0, 10, 1, 2);
    let rb = b.range(0, 20, 1, 2);
    assert_eq!((ra.count().unwrap(), rb.count().unwrap()), (10, 20));
    let dir = a.scratch_dir().to_path_buf();
    drop(ra);
    drop(a);
    assert!(
        !dir.exists(),
        "the default scratch directory is removed with the context"
    );
}

#[test]
fn debug_string_shows_lineage_and_stage_boundaries() {
    let ctx = ctx();
    let counts = ctx
        .parallelize(vec!["a b".to_string(), "b".to_string()], 2)
        .flat_map(|l| l.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|w| (w, 1))
        .reduce_by_key(|a, b| a + b)
        .cache()
        .unwrap();
    let s = counts.to_debug_string();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 4, "{s}");
    assert!(
        lines[0].starts_with("(2) reduce_by_key[") && lines[0].ends_with("[MemoryOnly]"),
        "{s}"
    );
    assert!(lines[1].starts_with(" +-(2) map["), "{s}");
    assert!(
        lines[2].contains("flat_map[") && lines[3].contains("parallelize["),
        "{s}"
    );
}

#[test]
fn errors_no_retry_can_change_fail_the_task_at_once_and_others_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"fine\n\xff\xfe not utf-8\n").unwrap();
    let (ctx, log) = common::logged_ctx();
    let err = ctx.text_file(&bad, 1).unwrap().count().unwrap_err();
    assert!(
        matches!(&err, Error::TaskFailed { attempts: 1, cause, .. } if matches!(**cause, Error::InvalidUtf8 { .. })),
        "{err}"
    );
    let started = |log: &spate::EventLog| {
        log.events()
            .iter()
            .filter(|e| matches!(e, spate::Event::TaskStart { .. }))
            .count()
    };
    assert_eq!(started(&log), 1, "one attempt");
    let err = ctx
        .range(0, 2, 1, 1)
        .map(|_| -> i64 { panic!("flaky") })
        .count()
        .unwrap_err();
    assert!(
        matches!(&err, Error::TaskFailed { attempts, .. } if *attempts == ctx.max_task_failures()),
        "a panic may be transient: {err}"
    );
}

/// A meeting point for `n` threads that gives up after `timeout`: whether
/// all of them arrived in time.
struct Meeting {
    arrived: std::sync::Mutex<usize>,
    all_here: std::sync::Condvar,
    n: usize,
}

impl Meeting {
    fn new(n: usize) -> Arc<Meeting> {
        Arc::new(Meeting {
            arrived: std::sync::Mutex::new(0),
            all_here: std::sync::Condvar::new(),
            n,
        })
    }

    fn meet(&self, timeout: std::time::Duration) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        let (arrived, _) = self
            .all_here
            .wait_timeout_while(arrived, timeout, |a| *a < self.n)
            .unwrap();
        *arrived >= self.n
    }
}

#[test]
fn jobs_from_two_threads_run_at_the_same_time() {
    let ctx = spate::Context::builder().parallelism(2).build().unwrap();
    // Each job's one task waits for the other job's task: if the jobs ran
    // one after the other, neither would see the other arrive.
    let meeting = Meeting::new(2);
    let started = std::time::Instant::now();
    let met: Vec<bool> = std::thread::scope(|s| {
        let jobs: Vec<_> = (0..2)
            .map(|j| {
                let (ctx, meeting) = (&ctx, meeting.clone());
                s.spawn(move || {
                    ctx.parallelize(vec![j], 1)
                        .map(move |x| (x, meeting.meet(std::time::Duration::from_secs(10))))
                        .collect()
                        .unwrap()
                })
            })
            .collect();
        jobs.into_iter()
            .flat_map(|j| j.join().unwrap())
            .map(|(_, met)| met)
            .collect()
    });
    assert_eq!(met, [true, true], "both jobs' tasks ran at once");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn concurrent_jobs_on_one_shuffled_dataset_compute_each_map_output_once() {
    static MAPPED: AtomicUsize = AtomicUsize::new(0);
    let (ctx, log) = common::logged(spate::Context::builder());
    let input: Vec<u64> = (0..20_000).collect();
    let sums = ctx
        .parallelize(input.clone(), 6)
        .map(|x| {
            MAPPED.fetch_add(1, Ordering::SeqCst);
            (x % 101, x)
        })
        .reduce_by_key(|a, b| a + b);
    let mut want = std::collections::HashMap::<u64, u64>::new();
    for x in &input {
        *want.entry(x % 101).or_default() += x;
    }
    let want = sorted(want.into_iter().collect::<Vec<_>>());
    let results: Vec<Vec<(u64, u64)>> = std::thread::scope(|s| {
        let jobs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| sorted(sums.collect().unwrap())))
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for r in &results {
        assert_eq!(r, &want);
    }
    // Every input record went through the map side once, whichever job
    // ran the map stage; the other jobs found its outputs.
    assert_eq!(MAPPED.load(Ordering::SeqCst), input.len());
    let events = log.events();
    let map_tasks = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TaskEnd {
                    kind: StageKind::ShuffleMap { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(map_tasks, 6);
}

#[test]
fn a_job_failing_in_one_thread_leaves_a_concurrent_job_in_another_whole() {
    let ctx = spate::Context::builder()
        .parallelism(2)
        .max_task_failures(2)
        .build()
        .unwrap();
    let meeting = Meeting::new(2);
    std::thread::scope(|s| {
        let m = meeting.clone();
        let failing = s.spawn(|| {
            let m = m;
            ctx.parallelize(vec![1u32, 2, 3], 1)
                .map(move |x| {
                    m.meet(std::time::Duration::from_secs(5));
                    if x == 2 {
                        panic!("bad record {x}");
                    }
                    x
                })
                .count()
        });
        let m = meeting.clone();
        let good = s.spawn(|| {
            let m = m;
            ctx.parallelize((0..1000u64).collect(), 4)
                .map(move |x| {
                    if x == 0 {
                        m.meet(std::time::Duration::from_secs(5));
                    }
                    x * 2
                })
                .reduce(|a, b| a + b)
        });
        let err = failing.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("bad record 2"), "{err}");
        assert_eq!(good.join().unwrap().unwrap(), 999 * 1000);
    });
}

#[test]
fn a_stream_and_a_batch_job_on_one_context_both_progress() {
    use spate::streaming::{Dequeue, StopMode, StreamQueue, StreamingContext};
    let ctx = common::ctx();
    let ssc = StreamingContext::new(&ctx, std::time::Duration::from_millis(50)).unwrap();
    let batches = Arc::new(AtomicUsize::new(0));
    let seen = batches.clone();
    let queue = StreamQueue::new();
    ssc.queue_stream_or_default(
        &queue,
        Dequeue::OneAtATime,
        ctx.parallelize(vec![1u8, 2, 3], 2),
    )
    .foreach_rdd(move |rdd, _| {
        // Each batch is a job of its own on the shared context.
        assert_eq!(rdd.count()?, 3);
        seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
    .unwrap();
    ssc.start().unwrap();
    // A batch job whose task lasts until the stream has run three more
    // batches: with one job at a time it would wait for itself.
    let watched = batches.clone();
    let waited = ctx
        .parallelize(vec![0u8], 1)
        .map(move |_| {
            let from = watched.load(Ordering::SeqCst);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while watched.load(Ordering::SeqCst) < from + 3 {
                if std::time::Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            true
        })
        .collect()
        .unwrap();
    ssc.stop(StopMode::Immediately).unwrap();
    assert_eq!(
        waited,
        [true],
        "three stream batches ran during the batch job"
    );
}

/// Tasks that say when they start and end only when the test lets them,
/// so the test sees which task each freed slot goes to.
#[derive(Default)]
struct Gates {
    state: std::sync::Mutex<(Vec<String>, std::collections::HashSet<String>)>,
    changed: std::sync::Condvar,
}

const GATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

impl Gates {
    /// Called by a task: records its start, waits for its release.
    fn enter(&self, name: String) {
        let mut state = self.state.lock().unwrap();
        state.0.push(name.clone());
        self.changed.notify_all();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, GATE_TIMEOUT, |s| !s.1.contains(&name))
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "{name} was never released: {:?}",
            state.0
        );
    }

    /// The tasks started so far, once there are `n`.
    fn started(&self, n: usize) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, GATE_TIMEOUT, |s| s.0.len() < n)
            .unwrap();
        assert!(
            state.0.len() >= n,
            "only {:?} started, waited for {n}",
            state.0
        );
        state.0.clone()
    }

    /// Lets `name` end, then waits for the task its slot goes to; returns
    /// that task's name (`None` when nothing starts in its place).
    fn release_then_next(&self, name: &str, next: bool) -> Option<String> {
        let before = {
            let mut state = self.state.lock().unwrap();
            assert!(state.0.iter().any(|s| s == name), "{name} has not started");
            state.1.insert(name.to_string());
            self.changed.notify_all();
            state.0.len()
        };
        next.then(|| self.started(before + 1)[before].clone())
    }
}

/// Runs `tasks` gated tasks named `tag0`, `tag1`, ... as one job on a
/// thread of `s` whose jobs go to `pool`; the job's count.
fn gated_job<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    ctx: &'s spate::Context,
    gates: &Arc<Gates>,
    pool: &'s str,
    tag: &'static str,
    tasks: usize,
) -> std::thread::ScopedJoinHandle<'s, usize> {
    let gates = gates.clone();
    s.spawn(move || {
        ctx.set_pool(Some(pool)).unwrap();
        ctx.parallelize((0..tasks).collect::<Vec<_>>(), tasks)
            .map(move |i| gates.enter(format!("{tag}{i}")))
            .count()
            .unwrap() as usize
    })
}

/// Waits until `pool` has `n` tasks waiting for a slot.
fn wait_for_waiting(ctx: &spate::Context, pool: &str, n: usize) {
    let deadline = std::time::Instant::now() + GATE_TIMEOUT;
    loop {
        let pools = ctx.pools();
        let p = pools.iter().find(|p| p.pool.name() == pool).unwrap();
        if p.waiting_tasks == n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{pools:?}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Job X (`x` tasks, pool `px`) fills all slots; then job Y (`y` tasks,
/// pool `py`) arrives; then the tasks are released in `order`: the names
/// of the tasks that took each freed slot, in turn.
fn slot_trace(
    ctx: &spate::Context,
    (px, x): (&str, usize),
    (py, y): (&str, usize),
    order: &[&str],
) -> Vec<String> {
    let gates = Arc::new(Gates::default());
    let slots = ctx.default_parallelism();
    std::thread::scope(|s| {
        let jx = gated_job(s, ctx, &gates, px, "X", x);
        let mut first = gates.started(slots);
        first.sort();
        let want: Vec<String> = (0..slots).map(|i| format!("X{i}")).collect();
        assert_eq!(first, want, "job X alone takes every slot");
        let jy = gated_job(s, ctx, &gates, py, "Y", y);
        let x_waiting = if px == py { x - slots } else { 0 };
        wait_for_waiting(ctx, py, y + x_waiting);
        let trace: Vec<String> = order
            .iter()
            .enumerate()
            .filter_map(|(i, name)| gates.release_then_next(name, i + slots < x + y))
            .collect();
        assert_eq!(jx.join().unwrap(), x);
        assert_eq!(jy.join().unwrap(), y);
        trace
    })
}

#[test]
fn fifo_gives_every_freed_slot_to_the_earlier_job_until_it_has_no_task_waiting() {
    let ctx = spate::Context::builder().parallelism(2).build().unwrap();
    let trace = slot_trace(
        &ctx,
        ("default", 4),
        ("default", 2),
        &["X0", "X1", "X2", "X3", "Y0", "Y1"],
    );
    assert_eq!(trace, ["X2", "X3", "Y0", "Y1"]);
}

fn fair(threads: usize, pools: Vec<spate::Pool>) -> spate::Context {
    let mut b = spate::Context::builder()
        .parallelism(threads)
        .scheduling_mode(spate::SchedulingMode::Fair);
    for p in pools {
        b = b.pool(p);
    }
    b.build().unwrap()
}

#[test]
fn fair_pools_of_equal_weight_take_turns_with_the_slots() {
    use spate::Pool;
    let ctx = fair(2, vec![Pool::new("a"), Pool::new("b")]);
    let trace = slot_trace(
        &ctx,
        ("a", 4),
        ("b", 3),
        &["X0", "X1", "Y0", "X2", "Y1", "X3", "Y2"],
    );
    // Each freed slot goes to the pool running fewer tasks.
    assert_eq!(trace, ["Y0", "X2", "Y1", "X3", "Y2"]);
}

#[test]
fn a_fair_pool_of_weight_two_runs_twice_the_tasks_of_a_pool_of_weight_one() {
    use spate::Pool;
    let ctx = fair(3, vec![Pool::new("a").weight(2), Pool::new("b")]);
    let trace = slot_trace(
        &ctx,
        ("a", 6),
        ("b", 3),
        &["X0", "X1", "X2", "Y0", "X3", "X4", "X5", "Y1", "Y2"],
    );
    // Once b has its one slot, a holds two: X3 X4 beside Y0, X5 beside Y1.
    assert_eq!(trace, ["Y0", "X3", "X4", "Y1", "X5", "Y2"]);
}

#[test]
fn a_pool_below_its_minimum_share_goes_before_a_heavier_pool() {
    use spate::Pool;
    let ctx = fair(
        2,
        vec![Pool::new("a").weight(10), Pool::new("b").min_share(2)],
    );
    let trace = slot_trace(
        &ctx,
        ("a", 4),
        ("b", 3),
        &["X0", "X1", "Y0", "Y1", "Y2", "X2", "X3"],
    );
    // b runs fewer than its 2 slots until it has no task waiting.
    assert_eq!(trace, ["Y0", "Y1", "Y2", "X2", "X3"]);
}

#[test]
fn within_a_fair_pool_in_fair_mode_the_stage_running_fewer_tasks_goes_first() {
    use spate::{Pool, SchedulingMode};
    let ctx = fair(2, vec![Pool::new("shared").mode(SchedulingMode::Fair)]);
    let trace = slot_trace(
        &ctx,
        ("shared", 3),
        ("shared", 2),
        &["X0", "X1", "Y0", "X2", "Y1"],
    );
    // In a FIFO pool X would keep both slots: here Y gets the first.
    assert_eq!(trace, ["Y0", "X2", "Y1"]);
}

#[test]
fn a_stream_started_on_a_thread_runs_its_batches_in_that_threads_pool() {
    use spate::Pool;
    use spate::streaming::{Dequeue, StopMode, StreamQueue, StreamingContext};
    let ctx = fair(2, vec![Pool::new("streams")]);
    let gates = Arc::new(Gates::default());
    let ssc = StreamingContext::new(&ctx, std::time::Duration::from_millis(20)).unwrap();
    let queue = StreamQueue::new();
    queue.push(ctx.parallelize(vec![0u8], 1));
    let g = gates.clone();
    ssc.queue_stream(&queue, Dequeue::OneAtATime)
        .foreach_rdd(move |rdd, _| {
            let g = g.clone();
            rdd.map(move |_| g.enter("batch".into())).count()?;
            Ok(())
        })
        .unwrap();
    ctx.set_pool(Some("streams")).unwrap();
    ssc.start().unwrap();
    ctx.set_pool(None).unwrap();
    gates.started(1);
    let running: Vec<(String, usize)> = ctx
        .pools()
        .iter()
        .map(|p| (p.pool.name().to_string(), p.running_tasks))
        .collect();
    assert_eq!(running, [("default".into(), 0), ("streams".into(), 1)]);
    gates.release_then_next("batch", false);
    ssc.stop(StopMode::Immediately).unwrap();
}

#[test]
fn an_undeclared_pool_is_refused_by_name_and_the_thread_keeps_its_pool() {
    use spate::Pool;
    let ctx = fair(2, vec![Pool::new("etl")]);
    ctx.set_pool(Some("etl")).unwrap();
    let err = ctx.set_pool(Some("elt")).unwrap_err().to_string();
    assert!(
        err.contains("no scheduling pool named 'elt'") && err.contains("default, etl"),
        "{err}"
    );
    assert_eq!(ctx.pool(), "etl");
    let other = std::thread::scope(|s| s.spawn(|| ctx.pool()).join().unwrap());
    assert_eq!(other, "default", "the pool is the thread's own");
}
