//! Cluster mode with real processes: the examples, started as a user
//! starts them through `spate-launch`, give exactly the local-mode result
//! on 1, 2 and 4 processes; a killed executor's work is redone elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::example;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `name ARGS` in local mode (one process, two threads).
fn local(name: &str, args: &[&str]) -> Output {
    run(Command::new(example(name))
        .args(args)
        .env_remove("SPATE_RANK")
        .env_remove("SLURM_PROCID"))
}

/// `spate-launch -n N -- name ARGS`, one thread per process.
fn launched(n: usize, name: &str, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_spate-launch"))
        .args(["-n", &n.to_string(), "--"])
        .arg(example(name))
        .args(args)
        .env("SPATE_STARTUP_TIMEOUT_MS", "60000"))
}

/// The lines of every part file of `dir`, sorted (part boundaries may
/// differ with the partition count; the records may not).
fn output_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.contains(&"_SUCCESS".to_string()),
        "committed: {names:?}"
    );
    assert!(
        !names.contains(&"_temporary".to_string()),
        "no leftovers: {names:?}"
    );
    for name in names.iter().filter(|n| n.starts_with("part-")) {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        lines.extend(text.lines().map(String::from));
    }
    lines.sort();
    lines
}

fn write_inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    use std::fmt::Write;
    let mut text = String::new();
    let mut pairs = String::new();
    let mut orders = String::new();
    let mut customers = String::new();
    let mut x: u64 = 12345;
    for i in 0..20_000u64 {
        // A small LCG: skewed keys, repeatable.
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = (x >> 33) % if i % 3 == 0 { 7 } else { 5000 };
        writeln!(text, "w{key} w{} the", key % 13).unwrap();
        writeln!(pairs, "k{key}\t{}", (x >> 40) % 1000).unwrap();
        writeln!(orders, "{i}\t{}\t{}", key % 3000, (x >> 20) % 100).unwrap();
    }
    for c in 0..2500 {
        writeln!(customers, "{c}\tcustomer-{c}").unwrap();
    }
    // Malformed lines count in an accumulator, merged from every process.
    pairs.push_str("no tab here\nneither\n");
    let paths = (
        dir.join("text.txt"),
        dir.join("pairs.tsv"),
        dir.join("orders.tsv"),
        dir.join("customers.tsv"),
    );
    std::fs::write(&paths.0, text).unwrap();
    std::fs::write(&paths.1, pairs).unwrap();
    std::fs::write(&paths.2, orders).unwrap();
    std::fs::write(&paths.3, customers).unwrap();
    paths
}

#[test]
fn the_examples_give_the_local_result_on_one_two_and_four_processes() {
    let runs: Vec<(String, Launch)> = [1, 2, 4]
        .into_iter()
        .map(|n| {
            let run: Launch = Box::new(move |name, args| launched(n, name, args));
            (n.to_string(), run)
        })
        .collect();
    examples_match_local_mode(&runs);
}

/// Runs an example (name, arguments) as a cluster, somehow.
type Launch = Box<dyn Fn(&str, &[&str]) -> Output>;

/// A system test: needs the one-node Slurm cluster of
/// `scripts/services.sh start slurm` (run by `scripts/system-tests.sh`).
#[test]
#[ignore = "needs Slurm: scripts/system-tests.sh runs it"]
fn slurm_srun_runs_the_examples_with_the_local_result() {
    let port = free_port();
    let run: Launch = Box::new(move |name, args| {
        run(Command::new("srun")
            .args(["-n", "3"])
            .arg(example(name))
            .args(args)
            .env("SPATE_SECRET", "slurm-system-test")
            .env("SPATE_DRIVER_PORT", port.to_string()))
    });
    examples_match_local_mode(&[("srun-3".to_string(), run)]);
}

/// Runs word_count, group_sum, sort, join, page_rank and streaming_demo
/// locally, then with each launch, and compares reports and outputs.
fn examples_match_local_mode(runs: &[(String, Launch)]) {
    let tmp = tempfile::tempdir().unwrap();
    let (text, pairs, orders, customers) = write_inputs(tmp.path());
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = |name: &str| s(&tmp.path().join(name));

    // Local references.
    let wc_local = local("word_count", &[&s(&text), "--output", &out("wc-local")]);
    local("group_sum", &[&s(&pairs), "--output", &out("gs-local")]);
    local("sort", &[&s(&pairs), "--output", &out("sort-local")]);
    local(
        "join",
        &[&s(&orders), &s(&customers), "--output", &out("join-local")],
    );
    let pr_local = local("page_rank", &["--checkpoint-every", "2"]);
    // Streaming: running totals kept in checkpointed state, exact once
    // every line is counted.
    let stream_args = |dir: &str| -> Vec<String> {
        ["--lines", "20000", "--rate", "50000", "--seconds", "120"]
            .iter()
            .map(|a| a.to_string())
            .chain(["--checkpoint".to_string(), out(dir)])
            .collect()
    };
    let final_totals = |out: &Output| -> String {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("words counted: 60000"),
            "every line counted: {stdout}"
        );
        let line = stdout.lines().find(|l| l.starts_with("final totals:"));
        line.unwrap_or_else(|| panic!("no final totals: {stdout}"))
            .to_string()
    };
    let args = stream_args("stream-local");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stream_local = final_totals(&local("streaming_demo", &args));

    for (n, launch) in runs {
        let wc = launch(
            "word_count",
            &[
                &s(&text),
                "--threads",
                "1",
                "--output",
                &out(&format!("wc-{n}")),
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&wc.stdout),
            String::from_utf8_lossy(&wc_local.stdout),
            "word_count's report on {n} processes"
        );
        assert_eq!(
            output_lines(&tmp.path().join(format!("wc-{n}"))),
            output_lines(&tmp.path().join("wc-local")),
            "word_count's output on {n} processes"
        );
        let gs = launch(
            "group_sum",
            &[&s(&pairs), "--output", &out(&format!("gs-{n}"))],
        );
        assert_eq!(
            output_lines(&tmp.path().join(format!("gs-{n}"))),
            output_lines(&tmp.path().join("gs-local")),
            "group_sum on {n} processes"
        );
        let stderr = String::from_utf8_lossy(&gs.stderr);
        assert!(
            stderr.contains("skipped 2 malformed lines"),
            "the accumulator merged every process's updates once: {stderr}"
        );
        launch(
            "sort",
            &[&s(&pairs), "--output", &out(&format!("sort-{n}"))],
        );
        // Sorted output: compare the concatenation in part order as well.
        let concat = |dir: &str| crate::common::read_parts(&tmp.path().join(dir));
        // Keys in the same order; values of equal keys in any order (the
        // partition count differs from the local run's).
        let keys = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| l.split('\t').next().unwrap().to_string())
                .collect()
        };
        let (got, want) = (concat(&format!("sort-{n}")), concat("sort-local"));
        assert!(
            keys(&got) == keys(&want),
            "sort's key order on {n} processes"
        );
        assert_eq!(
            output_lines(&tmp.path().join(format!("sort-{n}"))),
            output_lines(&tmp.path().join("sort-local")),
            "sort's records on {n} processes"
        );
        launch(
            "join",
            &[
                &s(&orders),
                &s(&customers),
                "--output",
                &out(&format!("join-{n}")),
            ],
        );
        assert_eq!(
            output_lines(&tmp.path().join(format!("join-{n}"))),
            output_lines(&tmp.path().join("join-local")),
            "join on {n} processes"
        );
        let pr = launch("page_rank", &["--checkpoint-every", "2"]);
        assert_eq!(
            String::from_utf8_lossy(&pr.stdout),
            String::from_utf8_lossy(&pr_local.stdout),
            "page_rank (cached, checkpointed) on {n} processes"
        );
        let args = stream_args(&format!("stream-{n}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stream = launch("streaming_demo", &args);
        assert_eq!(
            final_totals(&stream),
            stream_local,
            "streaming_demo's running totals on {n} processes"
        );
    }
}

#[test]
fn a_failing_process_stops_the_launch_with_its_status() {
    let out = Command::new(env!("CARGO_BIN_EXE_spate-launch"))
        .args(["-n", "2", "--"])
        .arg(example("word_count"))
        .arg("/nonexistent/input.txt")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/input.txt"), "{stderr}");
}

/// The per-key sums the kill scenarios compute, as the child prints them.
fn expected_sums() -> String {
    let mut sums = std::collections::BTreeMap::<i64, u64>::new();
    for x in 0..60_000i64 {
        *sums.entry(x % 997).or_default() += x as u64;
    }
    let fingerprint = sums.iter().fold(0u64, |h, (k, v)| {
        h.wrapping_mul(31).wrapping_add(*k as u64 ^ v)
    });
    format!("keys={} fingerprint={fingerprint}", sums.len())
}

/// A program run as a cluster by the kill tests: per-key sums over six
/// partitions on three one-thread processes, with executor 1 killed where
/// `SPATE_TEST_KILL` says. The driver prints the result and the job
/// metrics. (A no-op in a normal test run.)
#[test]
fn kill_child() {
    use spate::{FaultPlan, KillPoint, ShuffleId};
    let Ok(scenario) = std::env::var("SPATE_TEST_KILL") else {
        return;
    };
    let ctx = spate::Context::builder().parallelism(1).build().unwrap();
    if scenario == "slow" {
        // For the driver-loss test: a job long enough to kill the driver in.
        use std::io::Write;
        println!("STARTED");
        std::io::stdout().flush().unwrap();
        let n = ctx
            .range(0, 600, 1, 6)
            .map(|x| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                x
            })
            .count()
            .unwrap();
        println!("RESULT count={n}");
        return;
    }
    let log = std::sync::Arc::new(spate::EventLog::default());
    ctx.add_listener(log.clone());
    if scenario.starts_with("stream") {
        stateful_stream(&ctx, &log, scenario == "stream-kill");
        return;
    }
    if scenario == "rejoin" {
        // Eight rounds of slow sums; executor 1 is killed and replaced
        // while they run.
        use std::io::Write;
        println!("STARTED");
        std::io::stdout().flush().unwrap();
        let mut fingerprint = 0u64;
        for _ in 0..8 {
            let mut got = ctx
                .range(0, 60_000, 1, 6)
                .map(|x| {
                    if x % 1000 == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    (x % 997, x as u64)
                })
                .reduce_by_key(|a, b| a + b)
                .collect()
                .unwrap();
            got.sort();
            fingerprint = got.iter().fold(fingerprint, |h, (k, v)| {
                h.wrapping_mul(31).wrapping_add(*k as u64 ^ v)
            });
        }
        if ctx.is_driver() {
            println!("RESULT rounds=8 fingerprint={fingerprint}");
        } else {
            println!("RAN tasks={}", log.tasks_run());
        }
        return;
    }
    if scenario == "driver-data" {
        // Every process builds a different vector and broadcast value (as
        // one read from a file only the driver sees would be); the
        // driver's are the dataset.
        let rank: u64 = std::env::var("SPATE_RANK").unwrap().parse().unwrap();
        let data: Vec<u64> = (0..6000).map(|x| x + rank * 1_000_000).collect();
        let offset = ctx.broadcast(rank * 7).unwrap();
        let total: u64 = ctx
            .parallelize(data, 6)
            .map(move |x| x + *offset.value())
            .reduce(|a, b| a + b)
            .unwrap();
        // Every process learns the action's result; the driver alone
        // prints the RESULT line the test reads first.
        let m = log.job_metrics();
        let tag = if ctx.is_driver() { "RESULT" } else { "ALSO" };
        println!(
            "{tag} rank={rank} total={total} remote_tasks={}",
            m.remote_tasks
        );
        return;
    }
    if scenario == "approx" {
        // The last of six partitions is slow: at the timeout the driver's
        // estimate counts the five done, wherever they ran.
        let slow = ctx.range(0, 600, 1, 6).map(|x| {
            if x == 500 {
                std::thread::sleep(std::time::Duration::from_secs(3));
            }
            x
        });
        let partial = slow
            .count_approx(std::time::Duration::from_millis(1500), 0.95)
            .unwrap();
        let initial = *partial.initial_value();
        let is_final = partial.is_initial_value_final();
        let exact = partial.final_value().unwrap();
        let tag = if ctx.is_driver() { "RESULT" } else { "ALSO" };
        println!(
            "{tag} initial={} low={} high={} final={} is_final={is_final} remote_tasks={}",
            initial.mean,
            initial.low,
            initial.high,
            exact.mean,
            log.job_metrics().remote_tasks
        );
        return;
    }
    if scenario == "in-flight" {
        // Per-key sums whose reducers each fetch several remote blocks;
        // the driver reports the largest bytes in flight of any reducer.
        struct Peak(std::sync::atomic::AtomicU64);
        impl spate::Listener for Peak {
            fn on_event(&self, event: &spate::Event) {
                if let spate::Event::TaskEnd { metrics, .. } = event {
                    self.0.fetch_max(
                        metrics.peak_bytes_in_flight,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }
        }
        let peak = std::sync::Arc::new(Peak(Default::default()));
        ctx.add_listener(peak.clone());
        let mut got = ctx
            .range(0, 60_000, 1, 6)
            .map(|x| (x % 997, x as u64))
            .reduce_by_key(|a, b| a + b)
            .collect()
            .unwrap();
        got.sort();
        let fingerprint = got.iter().fold(0u64, |h, (k, v)| {
            h.wrapping_mul(31).wrapping_add(*k as u64 ^ v)
        });
        if ctx.is_driver() {
            println!(
                "RESULT keys={} fingerprint={fingerprint} peak={}",
                got.len(),
                peak.0.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        return;
    }
    if scenario == "uneven" {
        // Executor 2 is slow (500 ms a task, 30 ms elsewhere): the first
        // job's twelve partitions go to whichever slot is free, and are
        // cached where they were computed. The second job reads the cache;
        // each of its tasks should run where its partition is.
        let rank: u32 = std::env::var("SPATE_RANK").unwrap().parse().unwrap();
        let places =
            |name: &str| ctx.accumulator(name, Vec::<(usize, u32)>::new(), |a, b| a.extend(b));
        let computed = places("computed");
        let used = places("used");
        let (c, u) = (computed.clone(), used.clone());
        let cached = ctx
            .range(0, 1200, 1, 12)
            .map_partitions_with_index(move |p, it| {
                let ms = if rank == 2 { 500 } else { 30 };
                std::thread::sleep(std::time::Duration::from_millis(ms));
                c.add(vec![(p, rank)]);
                it
            })
            .cache()
            .unwrap();
        let first = cached.count().unwrap();
        let sum = cached
            .map_partitions_with_index(move |p, it| {
                u.add(vec![(p, rank)]);
                it
            })
            .reduce(|a, b| a + b)
            .unwrap();
        let show = |mut v: Vec<(usize, u32)>| {
            v.sort();
            let v: Vec<String> = v.iter().map(|(p, r)| format!("{p}:{r}")).collect();
            v.join(",")
        };
        if ctx.is_driver() {
            println!(
                "RESULT count={first} sum={sum} computed={} used={} recomputed={}",
                show(computed.value()),
                show(used.value()),
                log.job_metrics().cached_partitions_recomputed
            );
        }
        return;
    }
    if scenario == "broken" {
        // Every task fails on executor 1, before and after the shuffle, at
        // once; elsewhere a map task takes 300 ms, so executor 1's slot
        // frees first and takes the next waiting task.
        let broken = || std::env::var("SPATE_RANK").as_deref() == Ok("1");
        let mut got = ctx
            .range(0, 60_000, 1, 6)
            .map(move |x| {
                assert!(!broken(), "this executor's disk is broken");
                if x % 10_000 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                }
                (x % 997, x as u64)
            })
            .reduce_by_key(|a, b| a + b)
            .map(move |kv| {
                assert!(!broken(), "this executor's disk is broken");
                kv
            })
            .collect()
            .unwrap();
        got.sort();
        let fingerprint = got.iter().fold(0u64, |h, (k, v)| {
            h.wrapping_mul(31).wrapping_add(*k as u64 ^ v)
        });
        let m = log.job_metrics();
        if ctx.is_driver() {
            println!(
                "RESULT keys={} fingerprint={fingerprint} failed={} excluded={}",
                got.len(),
                m.tasks_failed,
                m.executors_excluded
            );
        }
        return;
    }
    // "link-cut": the same sums, slowly (3 s of map work per process), so
    // the test can cut a link mid-job.
    let slow = scenario == "link-cut";
    // "after-map": every map task but map 1 takes a second, so executor 1
    // dies (300 ms after reporting map 1) while the map stage still runs,
    // before any reducer could read map 1's output.
    let slow_maps = scenario == "after-map";
    // How many map tasks executor 1 ran to the end: the outputs it held
    // when it was killed (each partition of 10 000 starts at a multiple).
    let held = ctx.sum_accumulator::<u64>("maps held by executor 1");
    let on_one = std::env::var("SPATE_RANK").as_deref() == Ok("1");
    let count_held = held.clone();
    let sums = ctx
        .range(0, 60_000, 1, 6)
        .map(move |x| {
            if slow && x % 1000 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            if slow_maps && x % 10_000 == 0 && x != 10_000 {
                std::thread::sleep(std::time::Duration::from_millis(1000));
            }
            if on_one && x % 10_000 == 0 {
                count_held.add(1);
            }
            (x % 997, x as u64)
        })
        .reduce_by_key(|a, b| a + b);
    // Stage ids: the first job's result stage is 0, its map stage 1; a
    // second job's result stage is 2.
    let at = match scenario.as_str() {
        "map" => KillPoint::TaskStart { stage: 1 },
        "after-map" => KillPoint::AfterMapOutput {
            shuffle: ShuffleId(0),
            map: 1,
        },
        "reduce" => KillPoint::TaskStart { stage: 0 },
        "cached" => KillPoint::TaskStart { stage: 2 },
        "link-cut" => KillPoint::TaskStart { stage: u64::MAX }, // never
        other => panic!("unknown scenario {other}"),
    };
    ctx.set_fault_plan(FaultPlan::new().kill_process(1, at));
    if slow {
        use std::io::Write;
        println!("STARTED");
        std::io::stdout().flush().unwrap();
    }
    let sums = if scenario == "cached" {
        sums.cache().unwrap()
    } else {
        sums
    };
    let before = if scenario == "cached" {
        sums.count().unwrap();
        log.job_metrics()
    } else {
        spate::JobMetrics::default()
    };
    // When the driver learnt of the loss, to report the time from it to
    // the job's end.
    struct LossClock(std::sync::Mutex<Option<std::time::Instant>>);
    impl spate::Listener for LossClock {
        fn on_event(&self, event: &spate::Event) {
            if let spate::Event::ExecutorLost { .. } = event {
                self.0
                    .lock()
                    .unwrap()
                    .get_or_insert_with(std::time::Instant::now);
            }
        }
    }
    let lost_at = std::sync::Arc::new(LossClock(std::sync::Mutex::new(None)));
    ctx.add_listener(lost_at.clone());
    let started = std::time::Instant::now();
    let mut got = sums.collect().unwrap();
    let secs = started.elapsed().as_secs_f64();
    let after_loss = lost_at
        .0
        .lock()
        .unwrap()
        .map_or(-1.0, |t| t.elapsed().as_secs_f64());
    got.sort();
    let fingerprint = got.iter().fold(0u64, |h, (k, v)| {
        h.wrapping_mul(31).wrapping_add(*k as u64 ^ v)
    });
    let m = log.job_metrics();
    if ctx.is_driver() {
        println!(
            "RESULT keys={} fingerprint={fingerprint} lost={} recomputed={} held={} secs={secs:.3} after_loss={after_loss:.3}",
            got.len(),
            m.executors_lost - before.executors_lost,
            m.map_outputs_recomputed - before.map_outputs_recomputed,
            held.value(),
        );
    }
}

/// Batches the stateful stream scenario compares.
const STREAM_BATCHES: usize = 16;
/// Records per batch of the stateful stream scenario.
const STREAM_BATCH_RECORDS: u64 = 600;

/// Batch `k` of a deterministic replayable input: offsets count batches,
/// and batch `k` holds the numbers `600·(k-1) .. 600·k`, in 3 partitions.
struct Numbers;

impl spate::streaming::ReplayableSource for Numbers {
    type Item = u64;
    type Offset = u64;
    fn initial_offset(&mut self) -> spate::Result<u64> {
        Ok(0)
    }
    fn next_end(&mut self, from: &u64, _max: Option<u64>) -> spate::Result<u64> {
        Ok(from + 1)
    }
    fn read(
        &mut self,
        ctx: &spate::Context,
        from: &u64,
        to: &u64,
    ) -> spate::Result<spate::Rdd<u64>> {
        let n = STREAM_BATCH_RECORDS as i64;
        Ok(ctx
            .range(*from as i64 * n, *to as i64 * n, 1, 3)
            .map(|x| x as u64))
    }
    fn count(&self, from: &u64, to: &u64) -> Option<u64> {
        Some((to - from) * STREAM_BATCH_RECORDS)
    }
}

/// Running totals per key (`update_state_by_key`) and per-key sums over a
/// sliding window of three batches, on 200 ms batches checkpointed every
/// second to `SPATE_TEST_CHECKPOINT`. With `kill`, executor 1 SIGKILLs
/// itself in its first task that reads batch 8 or later. The driver prints
/// a fingerprint of the first batches' outputs.
fn stateful_stream(ctx: &spate::Context, log: &spate::EventLog, kill: bool) {
    use spate::streaming::StreamingContext;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let ssc = StreamingContext::new(ctx, Duration::from_millis(200)).unwrap();
    ssc.checkpoint(std::env::var("SPATE_TEST_CHECKPOINT").unwrap())
        .unwrap();
    ssc.set_checkpoint_interval(Duration::from_secs(1)).unwrap();
    let killer = kill && std::env::var("SPATE_RANK").as_deref() == Ok("1");
    let pairs = ssc.replayable_stream(Numbers).map(move |x| {
        if killer && x >= 8 * STREAM_BATCH_RECORDS {
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
            std::thread::sleep(Duration::from_secs(60));
        }
        (x % 13, x)
    });
    let totals = pairs.update_state_by_key(|_, new: Vec<u64>, total: Option<u64>| {
        Some(total.unwrap_or(0) + new.iter().sum::<u64>())
    });
    let windowed = pairs.reduce_by_key_and_window(
        |a, b| a + b,
        Duration::from_millis(600),
        Duration::from_millis(200),
        3,
    );
    // Each batch's sorted output, per stream, in batch order.
    let outputs: [Arc<Mutex<Vec<Vec<(u64, u64)>>>>; 2] = Default::default();
    for (stream, sink) in [totals, windowed].into_iter().zip(outputs.iter().cloned()) {
        stream
            .foreach_rdd(move |rdd, _| {
                let mut batch = rdd.collect()?;
                batch.sort();
                sink.lock().unwrap().push(batch);
                Ok(())
            })
            .unwrap();
    }
    ssc.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while outputs
        .iter()
        .any(|o| o.lock().unwrap().len() < STREAM_BATCHES)
    {
        assert!(Instant::now() < deadline, "the batches did not come");
        std::thread::sleep(Duration::from_millis(20));
    }
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    let mut fingerprint = 0u64;
    for o in &outputs {
        for batch in &o.lock().unwrap()[..STREAM_BATCHES] {
            for (k, v) in batch {
                fingerprint = fingerprint
                    .wrapping_mul(31)
                    .wrapping_add(k ^ v.rotate_left(7));
            }
            fingerprint = fingerprint.wrapping_mul(1_000_003);
        }
    }
    let last = outputs[0].lock().unwrap()[STREAM_BATCHES - 1].clone();
    let total: u64 = last.iter().map(|(_, v)| v).sum();
    if ctx.is_driver() {
        let m = log.job_metrics();
        println!(
            "RESULT batches={STREAM_BATCHES} fingerprint={fingerprint} total={total} lost={} remote_tasks={}",
            m.executors_lost, m.remote_tasks
        );
    }
}

/// Runs `kill_child` with `scenario` on three processes through the
/// launcher, with `env` for every process; the driver's RESULT line and
/// the launcher's stderr.
fn launch_three_with(scenario: &str, env: &[(&str, &str)]) -> (String, String) {
    let (stdout, stderr) = launch_three_output(scenario, env);
    // The test harness may print "test ... " before it on the same line.
    let line = stdout
        .lines()
        .find_map(|l| l.find("RESULT ").map(|at| l[at..].to_string()))
        .unwrap_or_else(|| panic!("{scenario}: no result: {stdout}\n{stderr}"));
    eprintln!("{scenario}: {line}");
    (line, stderr)
}

/// Runs `scenario` on three processes under the local launcher; returns
/// what they all printed to stdout and stderr.
fn launch_three_output(scenario: &str, env: &[(&str, &str)]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spate-launch"))
        .args(["-n", "3", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cluster::kill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPATE_TEST_KILL", scenario)
        .env("SPATE_HEARTBEAT_TIMEOUT_MS", "3000")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{scenario}: {stdout}\n{stderr}");
    (stdout, stderr)
}

/// [`launch_three_with`] with executor 1 killed as `scenario` says.
fn run_kill(scenario: &str) -> String {
    run_kill_with(scenario, &[])
}

/// [`run_kill`] with more environment variables for every process.
fn run_kill_with(scenario: &str, env: &[(&str, &str)]) -> String {
    let (line, stderr) = launch_three_with(scenario, env);
    assert!(
        stderr.contains("executor 1 ended with signal: 9"),
        "{scenario}: executor 1 was killed: {stderr}"
    );
    line
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[test]
fn an_executor_killed_during_a_map_stage_changes_nothing_in_the_result() {
    let line = run_kill("map");
    assert!(line.contains(&expected_sums()), "{line}");
    assert_eq!(field(&line, "lost"), "1", "{line}");
}

#[test]
fn an_executor_killed_after_writing_map_output_has_only_its_outputs_recomputed() {
    let line = run_kill("after-map");
    assert!(line.contains(&expected_sums()), "{line}");
    assert_eq!(field(&line, "lost"), "1", "{line}");
    // It wrote map 1 (reported) and was killed while it ran another map:
    // only map 1's output is recomputed; the other simply runs elsewhere.
    assert_eq!(field(&line, "recomputed"), "1", "{line}");
}

#[test]
fn an_executor_killed_during_a_reduce_stage_has_only_its_map_outputs_recomputed() {
    // No locality wait: reducers take any free slot, so executor 1 gets
    // one even when it holds less than a fifth of their input.
    let line = run_kill_with("reduce", &[("SPATE_LOCALITY_WAIT_MS", "0")]);
    assert!(line.contains(&expected_sums()), "{line}");
    assert_eq!(field(&line, "lost"), "1", "{line}");
    // Exactly the map outputs executor 1 held (tasks go to free slots, so
    // how many it ran depends on timing, but it always ran some).
    assert_ne!(field(&line, "held"), "0", "{line}");
    assert_eq!(field(&line, "recomputed"), field(&line, "held"), "{line}");
}

#[test]
fn an_executor_killed_while_holding_cached_partitions_changes_nothing_in_the_result() {
    // No locality wait, so executor 1 computes (and caches) a partition in
    // the first job and takes a task of the second.
    let line = run_kill_with("cached", &[("SPATE_LOCALITY_WAIT_MS", "0")]);
    assert!(line.contains(&expected_sums()), "{line}");
    assert_eq!(field(&line, "lost"), "1", "{line}");
    assert_ne!(field(&line, "held"), "0", "{line}");
    assert_eq!(field(&line, "recomputed"), field(&line, "held"), "{line}");
}

/// A loopback port free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `kill_child` with `scenario` as process `rank` of `world`, started by
/// hand (no launcher), its output piped.
fn cluster_process(scenario: &str, rank: usize, world: usize, port: u16) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cluster::kill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPATE_TEST_KILL", scenario)
        .env("SPATE_RANK", rank.to_string())
        .env("SPATE_WORLD_SIZE", world.to_string())
        .env("SPATE_DRIVER", format!("127.0.0.1:{port}"))
        .env("SPATE_SECRET", format!("{scenario}-test"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn executors_exit_promptly_when_the_driver_is_killed() {
    use std::io::BufRead;
    let port = free_port();
    let start = |rank: usize| cluster_process("slow", rank, 2, port);
    let mut driver = start(0);
    let executor = start(1);
    // The driver says STARTED once every process has joined.
    let mut lines = std::io::BufReader::new(driver.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("STARTED")),
        "the cluster started"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    driver.kill().unwrap(); // SIGKILL, mid-job
    let killed = std::time::Instant::now();
    let out = executor.wait_with_output().unwrap();
    let took = killed.elapsed();
    let _ = driver.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the executor failed: {stderr}");
    assert!(
        stderr.contains("spate: executor 1: lost the connection to the driver")
            && stderr.contains("exiting"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("RESULT"),
        "the executor did not finish the job on its own"
    );
    assert!(
        took < std::time::Duration::from_secs(5),
        "exited {took:?} after the kill"
    );
}

/// Runs `cmd`, panicking with its output when it fails.
fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A second host simulated by a network namespace joined to this one by a
/// veth pair (10.78.0.1 here, 10.78.0.2 there); removed when dropped.
/// (One at a time: the namespace and the link have fixed names.)
struct OtherHost(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

static ONE_OTHER_HOST: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl OtherHost {
    fn new() -> OtherHost {
        let guard = ONE_OTHER_HOST.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("ip")
            .args(["netns", "del", "spate-t1"])
            .output();
        let _ = Command::new("ip").args(["link", "del", "spv0"]).output();
        sh("ip netns add spate-t1");
        sh("ip link add spv0 type veth peer name spv1");
        sh("ip link set spv1 netns spate-t1");
        sh("ip addr add 10.78.0.1/24 dev spv0 && ip link set spv0 up");
        sh(
            "ip netns exec spate-t1 sh -c 'ip addr add 10.78.0.2/24 dev spv1 && ip link set spv1 up && ip link set lo up'",
        );
        OtherHost(guard)
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", "spate-t1"])
            .output();
        let _ = Command::new("ip").args(["link", "del", "spv0"]).output();
    }
}

/// A system test (root: network namespaces): a driver and an executor on
/// this host and an executor on a simulated second host; the link to that
/// host is cut mid-job. The job ends with the exact result within the
/// heartbeat timeout of the cut, and the cut-off executor exits.
#[test]
#[ignore = "needs root for network namespaces: scripts/system-tests.sh runs it"]
fn netns_a_link_cut_mid_job_ends_in_the_exact_result() {
    let (result, far_err) = across_hosts("ip link set spv0 down");
    assert_eq!(field(&result, "lost"), "1", "{result}");
    assert!(
        far_err.contains("no word from the driver"),
        "the cut-off executor exits: {far_err}"
    );
}

/// As above with the link slowed down (a 1 Mbit/s token bucket both ways)
/// instead of cut: the exact result, nobody lost.
#[test]
#[ignore = "needs root for network namespaces: scripts/system-tests.sh runs it"]
fn netns_a_slow_link_ends_in_the_exact_result() {
    let (result, _) = across_hosts(
        "tc qdisc add dev spv0 root tbf rate 1mbit burst 32kbit latency 400ms && \
         ip netns exec spate-t1 tc qdisc add dev spv1 root tbf rate 1mbit burst 32kbit latency 400ms",
    );
    assert_eq!(field(&result, "lost"), "0", "{result}");
}

/// Runs the slow sums on three processes, one on the other host, applies
/// `disturb` (a shell command) a second into the job, and checks the
/// result is exact and came within 20 s. Returns the driver's RESULT line
/// and the far executor's stderr.
fn across_hosts(disturb: &str) -> (String, String) {
    use std::io::BufRead;
    let host = OtherHost::new();
    let port = std::net::TcpListener::bind("10.78.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exe = std::env::current_exe().unwrap();
    let start = |rank: usize, elsewhere: bool| {
        let mut cmd = if elsewhere {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", "spate-t1"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args([
            "--exact",
            "cluster::kill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPATE_TEST_KILL", "link-cut")
        .env("SPATE_RANK", rank.to_string())
        .env("SPATE_WORLD_SIZE", "3")
        .env("SPATE_DRIVER", format!("10.78.0.1:{port}"))
        .env("SPATE_SECRET", "netns-test")
        .env("SPATE_HEARTBEAT_TIMEOUT_MS", "2000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    let mut driver = start(0, false);
    let near = start(1, false);
    let far = start(2, true);
    let mut lines = std::io::BufReader::new(driver.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("STARTED")),
        "the cluster started"
    );
    std::thread::sleep(std::time::Duration::from_millis(1000));
    sh(disturb);
    let cut = std::time::Instant::now();
    let result = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| l.find("RESULT ").map(|at| l[at..].to_string()))
        .unwrap_or_default();
    let took = cut.elapsed();
    lines.for_each(drop); // read to the end: the driver is still writing
    let status = driver.wait().unwrap();
    let far = far.wait_with_output().unwrap();
    let near = near.wait_with_output().unwrap();
    drop(host);
    eprintln!("{disturb}: {result} ({took:?} after it)");
    assert!(status.success(), "the driver succeeded");
    assert!(near.status.success(), "the executor on this host succeeded");
    assert!(result.contains(&expected_sums()), "{result}");
    assert!(
        took < std::time::Duration::from_secs(20),
        "ended {took:?} after the disturbance"
    );
    (result, String::from_utf8_lossy(&far.stderr).into_owned())
}

#[test]
fn parallelized_data_and_broadcasts_are_the_drivers_in_every_process() {
    let (stdout, _) = launch_three_output("driver-data", &[]);
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| {
            let at = l.find("RESULT ").or_else(|| l.find("ALSO "))?;
            Some(&l[at..])
        })
        .collect();
    // The driver's vector 0..6000 with its broadcast 0: an executor that
    // used its own copy would add a million per element. Every process
    // knows the same total.
    let mut ranks: Vec<&str> = lines.iter().map(|l| field(l, "rank")).collect();
    ranks.sort();
    assert_eq!(ranks, ["0", "1", "2"], "{stdout}");
    for line in &lines {
        assert_eq!(
            field(line, "total"),
            (0..6000u64).sum::<u64>().to_string(),
            "{line}"
        );
    }
    let driver = lines.iter().find(|l| l.starts_with("RESULT ")).unwrap();
    assert_eq!(field(driver, "rank"), "0", "{driver}");
    assert!(
        field(driver, "remote_tasks").parse::<u64>().unwrap() >= 2,
        "{driver}"
    );
}

#[test]
fn count_approx_on_three_processes_counts_the_partitions_done_on_every_process() {
    let (stdout, _) = launch_three_output("approx", &[]);
    let driver = stdout
        .lines()
        .find_map(|l| Some(&l[l.find("RESULT ")?..]))
        .unwrap_or_else(|| panic!("no result: {stdout}"));
    // 500 counted in 5 of 6 partitions: 500 + Poisson(100). Had only the
    // driver's own tasks been counted, the mean would be the same (the
    // partitions are even) but the bounds far wider.
    assert_eq!(field(driver, "initial"), "600", "{driver}");
    let low = 500.0 + crate::approx::poisson_quantile(100.0, 0.025);
    let high = 500.0 + crate::approx::poisson_quantile(100.0, 0.975);
    assert_eq!(field(driver, "low"), low.to_string(), "{driver}");
    assert_eq!(field(driver, "high"), high.to_string(), "{driver}");
    assert_eq!(field(driver, "is_final"), "false", "{driver}");
    assert_eq!(field(driver, "final"), "600", "{driver}");
    assert!(
        field(driver, "remote_tasks").parse::<u64>().unwrap() >= 2,
        "{driver}"
    );
    let others: Vec<&str> = stdout.lines().filter(|l| l.contains("ALSO ")).collect();
    assert_eq!(others.len(), 2, "{stdout}");
    for line in others {
        assert_eq!(field(line, "final"), "600", "{line}");
    }
}

#[test]
fn a_reducer_keeps_its_remote_bytes_in_flight_within_the_budget() {
    // Unbounded (the 48 MiB default is far above these blocks), a reducer
    // asks for all its remote blocks at once; with a 1-byte budget it asks
    // for one at a time, so its peak is one block, smaller than all.
    let (narrow, _) = launch_three_with("in-flight", &[("SPATE_MAX_BYTES_IN_FLIGHT", "1")]);
    assert!(narrow.contains(&expected_sums()), "{narrow}");
    let peak = |line: &str| field(line, "peak").parse::<u64>().unwrap();
    assert!(peak(&narrow) > 0, "{narrow}");
    // How many of a reducer's blocks are remote depends on where the map
    // tasks ran, which a loaded machine skews: the unbounded run is tried
    // up to three times for one whose reducers fetch several blocks.
    let mut wides = Vec::new();
    for _ in 0..3 {
        let (wide, _) = launch_three_with("in-flight", &[]);
        assert!(wide.contains(&expected_sums()), "{wide}");
        let enough = peak(&narrow) * 2 <= peak(&wide);
        wides.push(wide);
        if enough {
            return;
        }
    }
    panic!("one block at a time ({narrow}) against all at once ({wides:?})");
}

#[test]
fn an_executor_whose_tasks_keep_failing_is_excluded_for_the_job() {
    // One slot per process: executor 1 runs one task at a time.
    // No backtraces: printing one for each failure can take longer, on a
    // loaded machine, than the healthy executors need for every task.
    let env = [("SPATE_THREADS", "1"), ("RUST_BACKTRACE", "0")];
    let (line, _) = launch_three_with("broken", &env);
    assert!(line.contains(&expected_sums()), "{line}");
    // Two map tasks failed there, one after the other (and ran elsewhere);
    // then it was excluded, so no later task went there.
    assert_eq!(field(&line, "failed"), "2", "{line}");
    assert_eq!(field(&line, "excluded"), "1", "{line}");
}

#[test]
fn tasks_go_to_free_slots_and_a_cached_partition_is_read_where_it_was_computed() {
    let (line, _) = launch_three_with("uneven", &[("SPATE_THREADS", "1")]);
    assert_eq!(field(&line, "count"), "1200", "{line}");
    assert_eq!(
        field(&line, "sum"),
        (0..1200i64).sum::<i64>().to_string(),
        "{line}"
    );
    // Each partition computed once, in the first job.
    let computed: Vec<&str> = field(&line, "computed").split(',').collect();
    let partitions: Vec<&str> = computed
        .iter()
        .map(|c| c.split(':').next().unwrap())
        .collect();
    let want: Vec<String> = (0..12).map(|p| p.to_string()).collect();
    let mut sorted = partitions.clone();
    sorted.sort_by_key(|p| p.parse::<usize>().unwrap());
    assert_eq!(sorted, want, "{line}");
    // The slow executor took fewer than the four that placing partition p
    // on process p mod 3 would have given it.
    let on_slow = computed.iter().filter(|c| c.ends_with(":2")).count();
    assert!(on_slow < 4, "the slow executor ran {on_slow} of 12: {line}");
    // The second job read every cached partition where it was computed,
    // and recomputed none.
    assert_eq!(field(&line, "used"), field(&line, "computed"), "{line}");
    assert_eq!(field(&line, "recomputed"), "0", "{line}");
}

#[test]
fn a_lost_executor_is_replaced_by_a_new_process_that_catches_up_and_takes_tasks() {
    use std::io::BufRead;
    let port = free_port();
    let start = |rank: usize| cluster_process("rejoin", rank, 3, port);
    let mut driver = start(0);
    let mut first = start(1);
    let other = start(2);
    let mut lines = std::io::BufReader::new(driver.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("STARTED")),
        "the cluster started"
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    first.kill().unwrap();
    let _ = first.wait();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = start(1);
    let result = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| l.find("RESULT ").map(|at| l[at..].to_string()))
        .unwrap_or_default();
    lines.for_each(drop);
    assert!(driver.wait().unwrap().success(), "the driver succeeded");
    let second = second.wait_with_output().unwrap();
    let other = other.wait_with_output().unwrap();
    assert!(other.status.success(), "executor 2 succeeded");
    let second_out = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "the replacement succeeded: {second_out}{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // The same eight results as in one process.
    let mut want = 0u64;
    let mut sums = std::collections::BTreeMap::<i64, u64>::new();
    for x in 0..60_000i64 {
        *sums.entry(x % 997).or_default() += x as u64;
    }
    for _ in 0..8 {
        want = sums.iter().fold(want, |h, (k, v)| {
            h.wrapping_mul(31).wrapping_add(*k as u64 ^ v)
        });
    }
    assert_eq!(field(&result, "fingerprint"), want.to_string(), "{result}");
    let ran: usize = second_out
        .lines()
        .find_map(|l| {
            l.find("RAN ")
                .map(|at| field(&l[at..], "tasks").parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no RAN line: {second_out}"));
    eprintln!("the replacement ran {ran} tasks");
    assert!(ran > 0, "the replacement took tasks: {second_out}");
}

/// `kill_child` with `scenario` in one process (local mode); its RESULT.
fn run_local_child(scenario: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cluster::kill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPATE_TEST_KILL", scenario)
        .env_remove("SPATE_RANK")
        .env_remove("SLURM_PROCID")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{scenario}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.find("RESULT ").map(|at| l[at..].to_string()))
        .unwrap_or_else(|| panic!("{scenario}: no result: {stdout}"))
}

#[test]
fn a_stateful_stream_on_three_processes_with_an_executor_killed_gives_the_local_outputs() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ckpt = |i: usize| dirs[i].path().to_str().unwrap().to_string();
    let local = run_local_child("stream", &[("SPATE_TEST_CHECKPOINT", &ckpt(0))]);
    let (whole, _) = launch_three_with("stream", &[("SPATE_TEST_CHECKPOINT", &ckpt(1))]);
    let (line, stderr) = launch_three_with("stream-kill", &[("SPATE_TEST_CHECKPOINT", &ckpt(2))]);
    assert!(
        stderr.contains("executor 1 ended with signal: 9"),
        "executor 1 was killed: {stderr}"
    );
    // 16 batches of 0..9600: the running totals end at the sum of them all.
    assert_eq!(field(&local, "total"), (9600u64 * 9599 / 2).to_string());
    assert_eq!(field(&local, "lost"), "0");
    for (what, got) in [("uninterrupted", &whole), ("killed", &line)] {
        assert_eq!(
            field(got, "fingerprint"),
            field(&local, "fingerprint"),
            "{what} run on 3 processes: {got} vs local {local}"
        );
        assert!(
            field(got, "remote_tasks").parse::<u64>().unwrap() > 0,
            "{what}: batches ran on the executors: {got}"
        );
    }
    assert_eq!(field(&line, "lost"), "1", "{line}");
}

#[test]
fn a_stateful_stream_without_a_checkpoint_directory_is_refused_in_cluster_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_spate-launch"))
        .args(["-n", "2", "--"])
        .arg(example("streaming_demo"))
        .args(["--seconds", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("keeps state, which in cluster mode needs a checkpoint directory"),
        "{stderr}"
    );
}
