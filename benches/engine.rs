//! End-to-end benchmark: Spate's examples against the hand-written Rust
//! baseline from `../shared/bench/`, measured in the same run.
//!
//! ```text
//! ../shared/bench/gen_data.sh && ../shared/bench/build_refs.sh
//! cargo bench --bench engine                      # all workloads, 3 runs each
//! cargo bench --bench engine -- wc sort --runs 1  # a selection
//! ```
//! Each workload runs the baseline and the Spate example (built here with
//! `cargo build --release --examples`) as separate processes, alternately,
//! and reports the median wall time, the peak RSS (via `/usr/bin/time`),
//! the ratio Spate/baseline, and whether `check.sh` accepts Spate's output.
//! Environment: `DATA` (default `~/.cache/spate-bench/data`), `BASELINE`
//! (default `~/.cache/spate-bench/peers/build/baseline/release/baseline`),
//! `SHARED` (default `../shared` beside this crate).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Workload {
    name: &'static str,
    check: &'static str,
    baseline: fn(&Path) -> Vec<String>,
    spate: fn(&Path) -> Vec<String>,
}

fn s(parts: &[&Path]) -> Vec<String> {
    parts.iter().map(|p| p.display().to_string()).collect()
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "wc",
        check: "wc",
        baseline: |d| [vec!["wordcount".into()], s(&[&d.join("corpus_1gb.txt")])].concat(),
        spate: |d| [vec!["word_count".into()], s(&[&d.join("corpus_1gb.txt")])].concat(),
    },
    Workload {
        name: "groupby",
        check: "groupby",
        baseline: |d| [vec!["groupby".into()], s(&[&d.join("pairs_10m.tsv")])].concat(),
        spate: |d| [vec!["group_sum".into()], s(&[&d.join("pairs_10m.tsv")])].concat(),
    },
    Workload {
        name: "join",
        check: "join",
        baseline: |d| {
            [
                vec!["join".into()],
                s(&[&d.join("join/orders.tsv"), &d.join("join/customers.tsv")]),
            ]
            .concat()
        },
        spate: |d| {
            [
                vec!["join".into()],
                s(&[&d.join("join/orders.tsv"), &d.join("join/customers.tsv")]),
            ]
            .concat()
        },
    },
    Workload {
        name: "sort",
        check: "sort",
        baseline: |d| [vec!["sort".into()], s(&[&d.join("pairs_10m.tsv")])].concat(),
        spate: |d| [vec!["sort".into()], s(&[&d.join("pairs_10m.tsv")])].concat(),
    },
];

struct Run {
    wall: f64,
    rss_kib: Option<u64>,
}

/// Runs a command under `/usr/bin/time` when available, for peak RSS.
fn timed(program: &Path, args: &[String]) -> Run {
    let time = Path::new("/usr/bin/time");
    let stats = std::env::temp_dir().join(format!("spate-bench-time-{}", std::process::id()));
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.arg("-f").arg("%M").arg("-o").arg(&stats).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let started = Instant::now();
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let wall = started.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "{} {:?} failed: {status}",
        program.display(),
        args
    );
    let rss_kib = std::fs::read_to_string(&stats)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    Run { wall, rss_kib }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let env_path =
        |var: &str, default: PathBuf| std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = env_path("DATA", Path::new(&home).join(".cache/spate-bench/data"));
    let baseline = env_path(
        "BASELINE",
        Path::new(&home).join(".cache/spate-bench/peers/build/baseline/release/baseline"),
    );
    let shared = env_path("SHARED", manifest.join("../shared"));

    let mut selected: Vec<&str> = Vec::new();
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(3).max(1),
            "--bench" => {}
            name => selected.push(
                WORKLOADS
                    .iter()
                    .find(|w| w.name == name)
                    .map_or("", |w| w.name),
            ),
        }
    }
    if !baseline.exists() || !data.join("pairs_10m.tsv").exists() {
        eprintln!(
            "missing inputs: run {0}/bench/gen_data.sh and {0}/bench/build_refs.sh first (DATA={1}, BASELINE={2})",
            shared.display(),
            data.display(),
            baseline.display()
        );
        std::process::exit(2);
    }
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--examples", "--quiet"])
        .current_dir(manifest)
        .status()
        .expect("cargo build");
    assert!(built.success(), "building the examples failed");
    let examples = manifest.join("target/release/examples");
    let out_root = tempfile::tempdir().expect("temp dir");

    println!(
        "workload  baseline_s  spate_s  ratio  baseline_rss_mib  spate_rss_mib  rss_ratio  check"
    );
    for w in WORKLOADS
        .iter()
        .filter(|w| selected.is_empty() || selected.contains(&w.name))
    {
        let (mut base_t, mut spate_t, mut base_rss, mut spate_rss) = (Vec::new(), Vec::new(), 0, 0);
        let mut check = String::from("not run");
        for i in 0..runs {
            let base_out = out_root.path().join(format!("{}-base-{i}.txt", w.name));
            let mut base_args = (w.baseline)(&data);
            base_args.push(base_out.display().to_string());
            let b = timed(&baseline, &base_args);
            let spate_out = out_root.path().join(format!("{}-spate-{i}", w.name));
            let mut spate_args = (w.spate)(&data);
            let program = examples.join(spate_args.remove(0));
            spate_args.extend(["--output".to_string(), spate_out.display().to_string()]);
            let r = timed(&program, &spate_args);
            base_t.push(b.wall);
            spate_t.push(r.wall);
            base_rss = base_rss.max(b.rss_kib.unwrap_or(0));
            spate_rss = spate_rss.max(r.rss_kib.unwrap_or(0));
            if i == 0 {
                let ok = Command::new("bash")
                    .arg(shared.join("bench/check.sh"))
                    .args([
                        w.check,
                        &spate_out.display().to_string(),
                        &base_out.display().to_string(),
                    ])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .map(|s| s.success());
                check = match ok {
                    Ok(true) => "OK".into(),
                    Ok(false) => "MISMATCH".into(),
                    Err(e) => format!("check.sh: {e}"),
                };
            }
            let _ = std::fs::remove_dir_all(&spate_out);
            let _ = std::fs::remove_file(&base_out);
        }
        let (bt, st) = (median(base_t), median(spate_t));
        println!(
            "{:<8}  {:>10.2}  {:>7.2}  {:>5.2}  {:>16}  {:>13}  {:>9.2}  {}",
            w.name,
            bt,
            st,
            st / bt,
            base_rss / 1024,
            spate_rss / 1024,
            spate_rss as f64 / base_rss.max(1) as f64,
            check
        );
    }
}
