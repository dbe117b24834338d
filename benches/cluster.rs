//! Cluster mode against local mode on the same cores, measured in the same
//! run: the examples on one process × 2 threads and on two processes × 1
//! thread (`spate-launch -n 2 --threads 1`), alternately; then the shuffle
//! fetch throughput over loopback and the recovery time after an executor
//! is killed, both from this binary run as a cluster.
//!
//! ```text
//! ../shared/bench/gen_data.sh                      # the 1 GiB corpus, 10M pairs, join tables
//! cargo bench --bench cluster                      # 3 runs each
//! cargo bench --bench cluster -- wc --runs 1       # a selection
//! ```
//! Outputs of the two modes are compared (sorted lines; for sort, the
//! files as they are). Environment: `DATA` (default
//! `~/.cache/spate-bench/data`).

use spate::{Context, EventLog, FaultPlan, KillPoint};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

struct Workload {
    name: &'static str,
    example: &'static str,
    inputs: &'static [&'static str],
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "wc",
        example: "word_count",
        inputs: &["corpus_1gb.txt"],
    },
    Workload {
        name: "join",
        example: "join",
        inputs: &["join/orders.tsv", "join/customers.tsv"],
    },
    Workload {
        name: "sort",
        example: "sort",
        inputs: &["pairs_10m.tsv"],
    },
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed(cmd: &mut Command) -> f64 {
    let started = Instant::now();
    let out = cmd.output().expect("start the program");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

/// The part files of `dir`, concatenated in name order.
fn concat_parts(dir: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("part file"))
        .collect()
}

fn same_output(name: &str, local: &Path, cluster: &Path) -> bool {
    let (a, b) = (concat_parts(local), concat_parts(cluster));
    if name == "sort" {
        return a == b;
    }
    let mut a: Vec<&str> = a.lines().collect();
    let mut b: Vec<&str> = b.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

fn main() {
    if std::env::var_os("SPATE_RANK").is_some() {
        return as_cluster_process();
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let data = std::env::var_os("DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/spate-bench/data"));
    let mut selected: Vec<String> = Vec::new();
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(3).max(1),
            "--bench" => {}
            name => selected.push(name.to_string()),
        }
    }
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--examples", "--bins", "--quiet"])
        .current_dir(manifest)
        .status()
        .expect("cargo build");
    assert!(built.success(), "building the examples failed");
    let release = manifest.join("target/release");
    let launch = release.join("spate-launch");
    let out = tempfile::tempdir().expect("temp dir");

    println!("workload  local_s  cluster_s  ratio  same_output");
    for w in WORKLOADS
        .iter()
        .filter(|w| selected.is_empty() || selected.iter().any(|s| s == w.name))
    {
        let inputs: Vec<PathBuf> = w.inputs.iter().map(|i| data.join(i)).collect();
        if let Some(missing) = inputs.iter().find(|p| !p.exists()) {
            println!(
                "{:<8}  missing {} (run ../shared/bench/gen_data.sh)",
                w.name,
                missing.display()
            );
            continue;
        }
        let program = release.join("examples").join(w.example);
        let (mut local, mut cluster, mut same) = (Vec::new(), Vec::new(), true);
        for i in 0..runs {
            let local_out = out.path().join(format!("{}-local-{i}", w.name));
            let cluster_out = out.path().join(format!("{}-cluster-{i}", w.name));
            local.push(timed(
                Command::new(&program)
                    .args(&inputs)
                    .arg("--output")
                    .arg(&local_out)
                    .env("SPATE_THREADS", "2"),
            ));
            cluster.push(timed(
                Command::new(&launch)
                    .args(["-n", "2", "--threads", "1", "--"])
                    .arg(&program)
                    .args(&inputs)
                    .arg("--output")
                    .arg(&cluster_out),
            ));
            same &= same_output(w.name, &local_out, &cluster_out);
            let _ = std::fs::remove_dir_all(&local_out);
            let _ = std::fs::remove_dir_all(&cluster_out);
        }
        let (l, c) = (median(local), median(cluster));
        println!(
            "{:<8}  {l:>7.2}  {c:>9.2}  {:>5.2}  {}",
            w.name,
            c / l,
            if same { "yes" } else { "NO" }
        );
    }

    // This binary as a cluster of two: shuffle throughput, then recovery.
    let me = std::env::current_exe().expect("this benchmark");
    for scenario in ["fetch", "recovery"] {
        let out = Command::new(&launch)
            .args(["-n", "2", "--threads", "1", "--"])
            .arg(&me)
            .env("SPATE_BENCH_SCENARIO", scenario)
            .output()
            .expect("launch");
        assert!(
            out.status.success(),
            "{scenario}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// One process of the fetch or recovery measurement.
fn as_cluster_process() {
    let scenario = std::env::var("SPATE_BENCH_SCENARIO").unwrap_or_default();
    let ctx = Context::new().expect("context");
    let log = Arc::new(EventLog::default());
    ctx.add_listener(log.clone());
    // 2M records of ~100 encoded bytes (hashed numbers: neither varints
    // nor lz4 shrink them) in 4 map partitions, shuffled into 4 reduce
    // partitions: half the blocks cross between the two processes.
    let records = ctx.range(0, 2_000_000, 1, 4).map(|x| {
        let h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (
            x,
            [
                h,
                h.rotate_left(7),
                h.rotate_left(13),
                h.rotate_left(19),
                h.rotate_left(23),
                h.rotate_left(29),
                h.rotate_left(31),
                h.rotate_left(37),
                h.rotate_left(41),
                h.rotate_left(43),
                h.rotate_left(47),
            ],
        )
    });
    match scenario.as_str() {
        "fetch" => {
            let started = Instant::now();
            let n = records.repartition(4).count().expect("job");
            let secs = started.elapsed().as_secs_f64();
            let remote = log.total_metrics().remote_bytes_read;
            if ctx.is_driver() {
                let mb = remote as f64 / 1e6;
                println!(
                    "shuffle fetch: {n} records, {mb:.0} MB fetched from the other process by the driver's reducers in a {secs:.2} s job: {:.0} MB/s",
                    mb / secs
                );
            }
        }
        "recovery" => {
            // Sums over 40M numbers in 4 map partitions: each process
            // holds two map outputs. The same job runs clean, then with
            // executor 1 killed as the job's reduce stage starts.
            let job = |stage_kill: Option<u64>| {
                let sums = ctx
                    .range(0, 40_000_000, 1, 4)
                    .map(|x| (x % 1000, x))
                    .reduce_by_key(|a, b| a + b);
                if let Some(stage) = stage_kill {
                    ctx.set_fault_plan(
                        FaultPlan::new().kill_process(1, KillPoint::TaskStart { stage }),
                    );
                }
                let started = Instant::now();
                let mut got = sums.collect().expect("job");
                got.sort_unstable();
                (got, started.elapsed().as_secs_f64())
            };
            let (clean, clean_secs) = job(None);
            // Job 1's result stage is stage 2 (job 0 used 0 and 1).
            let (killed, killed_secs) = job(Some(2));
            let m = log.job_metrics();
            if ctx.is_driver() {
                assert_eq!(killed, clean, "the same result after the kill");
                println!(
                    "recovery: the same job took {clean_secs:.2} s clean and {killed_secs:.2} s with executor 1 killed as its reduce stage started: {:.2} s more ({} executor lost, {} map outputs recomputed)",
                    killed_secs - clean_secs,
                    m.executors_lost,
                    m.map_outputs_recomputed
                );
            }
        }
        other => panic!("unknown scenario {other:?}"),
    }
}
