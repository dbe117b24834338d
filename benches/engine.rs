//! End-to-end benchmark: Spate's examples beside the hand-written Rust
//! baseline, DuckDB and Polars, interleaved in one run on the same inputs,
//! every output checked.
//!
//! ```text
//! cargo bench --bench engine                      # all workloads, 5 runs each
//! cargo bench --bench engine -- wc sort --runs 3  # a selection
//! ```
//! It stands on its own on a fresh clone:
//! - Inputs (`DATA`, default `~/.cache/spate-bench/data`): when a file is
//!   missing, `../shared/bench/gen_data.sh` makes them if it is there;
//!   otherwise this bench writes them itself, deterministically (the same
//!   shapes and sizes: a 1 GiB Zipf corpus, 10M `key\tvalue` pairs over 1M
//!   keys, 10M orders joined with 1M customers).
//! - Peers, each run when it is there and reported as skipped when not:
//!   the baseline (`BASELINE`, default
//!   `~/.cache/spate-bench/peers/build/baseline/release/baseline`; built by
//!   `../shared/bench/build_refs.sh` when that is there), and DuckDB and
//!   Polars through `../shared/bench/dfpeers/run.py` with the first Python
//!   that has them (`DFPEERS_PYTHON`, `$PEERS/df-venv`, or the test
//!   virtualenv `scripts/system-tests.sh` makes).
//! - Checks: the first run's output of every engine is compared with a
//!   reference: the baseline's, else one this bench computes itself with
//!   a `HashMap` (multisets of lines; for sort, the key sequence too).
//!
//! Times are whole-process wall times; peak RSS comes from `/usr/bin/time`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What a workload computes, in the baseline's output format.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `word\tcount` over a corpus.
    Wc,
    /// `key\tsum` over pairs.
    Groupby,
    /// `oid\tcid\tamount\tname`, orders joined with customers on `cid`.
    Join,
    /// `key\tvalue` ordered by key.
    Sort,
}

struct Workload {
    name: &'static str,
    kind: Kind,
    /// The Spate example that runs it.
    example: &'static str,
    /// dfpeers' subcommand (and the baseline's, but for word count).
    peer_kind: &'static str,
    inputs: &'static [&'static str],
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "wc",
        kind: Kind::Wc,
        example: "word_count",
        peer_kind: "wc",
        inputs: &["corpus_1gb.txt"],
    },
    Workload {
        name: "groupby",
        kind: Kind::Groupby,
        example: "group_sum",
        peer_kind: "groupby",
        inputs: &["pairs_10m.tsv"],
    },
    Workload {
        name: "join",
        kind: Kind::Join,
        example: "join",
        peer_kind: "join",
        inputs: &["join/orders.tsv", "join/customers.tsv"],
    },
    Workload {
        name: "sort",
        kind: Kind::Sort,
        example: "sort",
        peer_kind: "sort",
        inputs: &["pairs_10m.tsv"],
    },
];

/// An engine the bench can run: how to make its command for a workload.
#[derive(Clone)]
enum Engine {
    Spate(PathBuf),
    Baseline(PathBuf),
    /// A Python with the engine, `run.py`, and the engine's name.
    DfPeer(PathBuf, PathBuf, &'static str),
}

impl Engine {
    fn name(&self) -> &'static str {
        match self {
            Engine::Spate(_) => "spate",
            Engine::Baseline(_) => "baseline",
            Engine::DfPeer(_, _, name) => name,
        }
    }

    fn command(&self, w: &Workload, inputs: &[PathBuf], out: &Path) -> Command {
        match self {
            Engine::Spate(examples) => {
                let mut c = Command::new(examples.join(w.example));
                c.args(inputs).arg("--output").arg(out);
                c
            }
            Engine::Baseline(exe) => {
                // The baseline names word count in full.
                let kind = if w.kind == Kind::Wc {
                    "wordcount"
                } else {
                    w.peer_kind
                };
                let mut c = Command::new(exe);
                c.arg(kind).args(inputs).arg(out);
                c
            }
            Engine::DfPeer(python, run_py, name) => {
                let mut c = Command::new(python);
                c.arg(run_py)
                    .args([name, w.peer_kind])
                    .arg(out)
                    .args(inputs);
                c
            }
        }
    }
}

struct Run {
    wall: f64,
    rss_kib: Option<u64>,
}

/// Runs `cmd` under `/usr/bin/time` when there is one, for peak RSS.
fn timed(mut cmd: Command) -> Run {
    let time = Path::new("/usr/bin/time");
    let stats = std::env::temp_dir().join(format!("spate-bench-time-{}", std::process::id()));
    if time.exists() {
        let mut wrapped = Command::new(time);
        wrapped
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&stats)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        cmd = wrapped;
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
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

/// The lines of an output: a file, or a directory's `part-*` files.
fn output_lines(out: &Path) -> Vec<String> {
    let mut files = Vec::new();
    if out.is_dir() {
        for e in std::fs::read_dir(out).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
            {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(out.to_path_buf());
    }
    let mut lines = Vec::new();
    for f in files {
        let file = std::fs::File::open(&f).unwrap();
        lines.extend(std::io::BufReader::new(file).lines().map(Result::unwrap));
    }
    lines
}

/// Whether `got` is the reference's output: the same multiset of lines,
/// and for sort the same key sequence (ties in any order).
fn check(kind: Kind, got: &[String], reference: &[String]) -> Result<(), String> {
    if got.len() != reference.len() {
        return Err(format!("{} lines, not {}", got.len(), reference.len()));
    }
    if kind == Kind::Sort {
        let key = |l: &String| l.split('\t').next().unwrap_or("").to_string();
        if let Some(i) = (0..got.len()).find(|&i| key(&got[i]) != key(&reference[i])) {
            return Err(format!("key order differs at line {}", i + 1));
        }
    }
    let (mut a, mut b) = (got.to_vec(), reference.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    match (0..a.len()).find(|&i| a[i] != b[i]) {
        Some(i) => Err(format!("lines differ: {:?} vs {:?}", a[i], b[i])),
        None => Ok(()),
    }
}

/// The workload's result computed the plain way: the reference when no
/// baseline is there.
fn naive_reference(kind: Kind, inputs: &[PathBuf]) -> Vec<String> {
    let read = |p: &Path| -> Vec<String> {
        let file = std::fs::File::open(p).unwrap();
        std::io::BufReader::new(file)
            .lines()
            .map(Result::unwrap)
            .collect()
    };
    match kind {
        Kind::Wc => {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for line in read(&inputs[0]) {
                for w in line.split(' ').filter(|w| !w.is_empty()) {
                    *counts.entry(w.to_string()).or_default() += 1;
                }
            }
            counts.iter().map(|(w, c)| format!("{w}\t{c}")).collect()
        }
        Kind::Groupby => {
            let mut sums: HashMap<String, i64> = HashMap::new();
            for line in read(&inputs[0]) {
                let (k, v) = line.split_once('\t').unwrap();
                *sums.entry(k.to_string()).or_default() += v.parse::<i64>().unwrap();
            }
            sums.iter().map(|(k, s)| format!("{k}\t{s}")).collect()
        }
        Kind::Join => {
            let names: HashMap<String, String> = read(&inputs[1])
                .into_iter()
                .map(|l| {
                    let (cid, name) = l.split_once('\t').unwrap();
                    (cid.to_string(), name.to_string())
                })
                .collect();
            read(&inputs[0])
                .into_iter()
                .filter_map(|l| {
                    let cid = l.split('\t').nth(1).unwrap();
                    names.get(cid).map(|n| format!("{l}\t{n}"))
                })
                .collect()
        }
        Kind::Sort => {
            let mut lines = read(&inputs[0]);
            lines.sort_by(|a, b| a.split('\t').next().cmp(&b.split('\t').next()));
            lines
        }
    }
}

/// Writes the inputs this bench needs that `data` lacks: with
/// `gen_data.sh` when `shared` has it, else with [`generate`].
fn ensure_inputs(data: &Path, shared: &Path) {
    let needed = [
        "corpus_1gb.txt",
        "pairs_10m.tsv",
        "join/orders.tsv",
        "join/customers.tsv",
    ];
    if needed.iter().all(|f| data.join(f).exists()) {
        return;
    }
    let script = shared.join("bench/gen_data.sh");
    if script.exists() {
        eprintln!("generating the inputs with {}", script.display());
        let ok = Command::new("bash")
            .arg(&script)
            .env("DATA", data)
            .status()
            .map(|s| s.success());
        assert!(
            matches!(ok, Ok(true)),
            "{} failed: {ok:?}",
            script.display()
        );
        return;
    }
    eprintln!("no {}: generating the inputs here", script.display());
    generate(data);
}

/// Deterministic inputs of the shapes `gen_data.sh` makes (not its bytes).
fn generate(data: &Path) {
    std::fs::create_dir_all(data.join("join")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let write = |name: &str, fill: &mut dyn FnMut(&mut dyn Write)| {
        let path = data.join(name);
        let tmp = path.with_extension("tmp");
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
        fill(&mut out);
        out.flush().unwrap();
        drop(out);
        std::fs::rename(&tmp, &path).unwrap();
    };
    if !data.join("corpus_1gb.txt").exists() {
        // 200k words, shorter ones more frequent, drawn by a Zipf law
        // (s = 1.1); lines of 8 to 12 words, up to 1 GiB.
        let vocab: Vec<String> = (1..=200_000u32)
            .map(|rank| {
                let len = (2.0 + 0.85 * f64::from(rank).log2()) as usize;
                let mut w: String = (0..len.clamp(2, 16))
                    .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                    .collect();
                // Distinct words: the rank, in letters, ends each one.
                let mut r = rank;
                while r > 0 {
                    w.push(char::from(b'a' + (r % 26) as u8));
                    r /= 26;
                }
                w
            })
            .collect();
        let mut cdf: Vec<f64> = (1..=vocab.len())
            .scan(0.0, |acc, r| {
                *acc += 1.0 / (r as f64).powf(1.1);
                Some(*acc)
            })
            .collect();
        let total = *cdf.last().unwrap();
        cdf.iter_mut().for_each(|c| *c /= total);
        write("corpus_1gb.txt", &mut |out| {
            let mut written = 0usize;
            let mut line = String::new();
            while written < 1 << 30 {
                line.clear();
                for i in 0..rng.random_range(8..=12) {
                    if i > 0 {
                        line.push(' ');
                    }
                    let u: f64 = rng.random();
                    let at = cdf.partition_point(|&c| c < u).min(vocab.len() - 1);
                    line.push_str(&vocab[at]);
                }
                line.push('\n');
                if written + line.len() > 1 << 30 {
                    break;
                }
                out.write_all(line.as_bytes()).unwrap();
                written += line.len();
            }
        });
    }
    if !data.join("pairs_10m.tsv").exists() {
        write("pairs_10m.tsv", &mut |out| {
            for _ in 0..10_000_000 {
                let key = rng.random_range(0..1_000_000u32);
                let value = rng.random_range(0..1000u32);
                writeln!(out, "k{key:08}\t{value}").unwrap();
            }
        });
    }
    if !data.join("join/orders.tsv").exists() || !data.join("join/customers.tsv").exists() {
        write("join/customers.tsv", &mut |out| {
            for cid in 0..1_000_000u32 {
                writeln!(out, "{cid}\tCustomer#{cid:09}").unwrap();
            }
        });
        // A tenth more customer ids than customers: about 9% of orders
        // have no customer.
        write("join/orders.tsv", &mut |out| {
            for oid in 0..10_000_000u32 {
                let cid = rng.random_range(0..1_100_000u32);
                let amount = rng.random_range(1..100_000u32);
                writeln!(out, "{oid}\t{cid}\t{amount}").unwrap();
            }
        });
    }
}

/// The first Python of `candidates` that imports `module`.
fn python_with(module: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find_map(|py| {
        let ok = Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| py.clone())
    })
}

fn main() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let home = Path::new(&home);
    let env_path =
        |var: &str, default: PathBuf| std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = env_path("DATA", home.join(".cache/spate-bench/data"));
    let peers = env_path("PEERS", home.join(".cache/spate-bench/peers"));
    let baseline = env_path("BASELINE", peers.join("build/baseline/release/baseline"));
    let shared = env_path("SHARED", manifest.join("../shared"));

    let mut selected: Vec<&str> = Vec::new();
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(5).max(1),
            "--bench" => {}
            name => match WORKLOADS.iter().find(|w| w.name == name) {
                Some(w) => selected.push(w.name),
                None => {
                    eprintln!("unknown workload {name}; the workloads are wc, groupby, join, sort");
                    std::process::exit(2);
                }
            },
        }
    }

    ensure_inputs(&data, &shared);
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--examples", "--quiet"])
        .current_dir(manifest)
        .status()
        .expect("cargo build");
    assert!(built.success(), "building the examples failed");

    let mut engines = vec![Engine::Spate(manifest.join("target/release/examples"))];
    let mut skipped = Vec::new();
    let build_refs = shared.join("bench/build_refs.sh");
    if !baseline.exists() && build_refs.exists() {
        eprintln!("building the baseline with {}", build_refs.display());
        let _ = Command::new("bash")
            .arg(&build_refs)
            .env("PEERS", &peers)
            .stdout(Stdio::null())
            .status();
    }
    if baseline.exists() {
        engines.push(Engine::Baseline(baseline.clone()));
    } else {
        skipped.push(format!(
            "baseline (no {}; ../shared/bench/build_refs.sh builds it)",
            baseline.display()
        ));
    }
    let run_py = shared.join("bench/dfpeers/run.py");
    let pythons: Vec<PathBuf> = std::env::var_os("DFPEERS_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            peers.join("df-venv/bin/python"),
            home.join(".cache/spate-test/pyenv/bin/python"),
        ])
        .collect();
    for (module, name) in [("duckdb", "duckdb"), ("polars", "polars")] {
        match (run_py.exists(), python_with(module, &pythons)) {
            (true, Some(py)) => engines.push(Engine::DfPeer(py, run_py.clone(), name)),
            (false, _) => skipped.push(format!("{name} (no {})", run_py.display())),
            (true, None) => skipped.push(format!(
                "{name} (no Python with it: DFPEERS_PYTHON, {}, or ../shared/bench/install_peers.sh)",
                pythons[pythons.len() - 2].display()
            )),
        }
    }
    let names: Vec<&str> = engines.iter().map(Engine::name).collect();
    println!("engines: {}", names.join(", "));
    for s in &skipped {
        println!("skipped: {s}");
    }
    println!("runs: {runs} each, interleaved; whole-process wall time, medians");

    let baseline_at = engines
        .iter()
        .position(|e| matches!(e, Engine::Baseline(_)));
    let out_root = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    for w in WORKLOADS
        .iter()
        .filter(|w| selected.is_empty() || selected.contains(&w.name))
    {
        let inputs: Vec<PathBuf> = w.inputs.iter().map(|i| data.join(i)).collect();
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
        let mut rss: Vec<u64> = vec![0; engines.len()];
        // Each engine's first output stays until the checks below.
        let first = |e: usize| {
            out_root
                .path()
                .join(format!("{}-{}-0", w.name, engines[e].name()))
        };
        for i in 0..runs {
            for (e, engine) in engines.iter().enumerate() {
                let out = out_root
                    .path()
                    .join(format!("{}-{}-{i}", w.name, engine.name()));
                let run = timed(engine.command(w, &inputs, &out));
                times[e].push(run.wall);
                rss[e] = rss[e].max(run.rss_kib.unwrap_or(0));
                if i > 0 {
                    let _ = std::fs::remove_dir_all(&out);
                    let _ = std::fs::remove_file(&out);
                }
            }
        }
        let (reference, source) = match baseline_at {
            Some(b) => (output_lines(&first(b)), "baseline"),
            None => (naive_reference(w.kind, &inputs), "naive HashMap reference"),
        };
        let checks: Vec<String> = (0..engines.len())
            .map(|e| {
                let verdict = if Some(e) == baseline_at {
                    "reference".into()
                } else {
                    match check(w.kind, &output_lines(&first(e)), &reference) {
                        Ok(()) => "ok".into(),
                        Err(why) => format!("MISMATCH with the {source}: {why}"),
                    }
                };
                let _ = std::fs::remove_dir_all(first(e));
                let _ = std::fs::remove_file(first(e));
                verdict
            })
            .collect();
        let medians: Vec<f64> = times.into_iter().map(median).collect();
        rows.push((w.name, medians, rss, checks));
    }

    println!();
    let header: Vec<String> = names.iter().map(|n| format!("{n:>10}")).collect();
    print!("{:<8}  {}", "workload", header.join(" "));
    if baseline_at.is_some() {
        print!("  spate/baseline  rss_spate_mib  rss_baseline_mib  rss_ratio");
    }
    println!();
    let mut mismatches = Vec::new();
    for (name, medians, rss, checks) in &rows {
        let cells: Vec<String> = medians.iter().map(|t| format!("{t:>9.2}s")).collect();
        print!("{name:<8}  {}", cells.join(" "));
        if let Some(b) = baseline_at {
            print!(
                "  {:>14.2}  {:>13}  {:>16}  {:>9.2}",
                medians[0] / medians[b],
                rss[0] / 1024,
                rss[b] / 1024,
                rss[0] as f64 / rss[b].max(1) as f64
            );
        }
        println!();
        for (e, c) in checks.iter().enumerate() {
            if c.starts_with("MISMATCH") {
                mismatches.push(format!("{name}, {}: {c}", names[e]));
            }
        }
    }
    let checked: Vec<String> = rows
        .iter()
        .map(|(name, _, _, checks)| format!("{name}: {}", checks.join("/")))
        .collect();
    println!("\nchecks ({}): {}", names.join("/"), checked.join("; "));
    if !mismatches.is_empty() {
        for m in &mismatches {
            eprintln!("{m}");
        }
        std::process::exit(1);
    }
}
