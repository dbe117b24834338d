//! What the input format costs: group-by sum over the 10M pairs as TSV and
//! as Parquet (written by DuckDB), with DuckDB and Polars on the same
//! Parquet file; and word count over the 1 GiB corpus plain, gzipped and
//! zstd-compressed (by the `gzip` and `zstd` commands). Interleaved in one
//! run; every output is checked against the plain run's.
//!
//! ```text
//! ../shared/bench/gen_data.sh        # the inputs, once
//! cargo bench --bench formats        # 3 runs of each, medians
//! cargo bench --bench formats -- --runs 5
//! ```
//! Environment: `DATA` (default `~/.cache/spate-bench/data`), `PYTHON` (a
//! Python with duckdb and polars; default the one `scripts/system-tests.sh`
//! installs, `~/.cache/spate-test/pyenv/bin/python`). DuckDB and Polars are
//! skipped, and said so, when that Python lacks them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The sorted lines of the part files (or the one file) at `path`.
fn lines(path: &Path) -> Vec<String> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("an output directory")
            .map(|e| e.expect("an entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
            })
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("an output file");
        all.extend(text.lines().map(String::from));
    }
    all.sort_unstable();
    all
}

fn run(cmd: &mut Command) -> f64 {
    let started = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .expect("a benchmark command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const PEERS: &str = r#"
import sys
engine, parquet, out = sys.argv[1:4]
if engine == "duckdb":
    import duckdb
    duckdb.connect().execute(f"COPY (SELECT key, sum(value) FROM read_parquet('{parquet}') GROUP BY key) TO '{out}' (FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '')")
else:
    import polars as pl
    pl.scan_parquet(parquet).group_by("key").agg(pl.col("value").sum()).collect().write_csv(out, separator="\t", include_header=False)
"#;

fn main() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let data = std::env::var_os("DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/spate-bench/data"));
    let python = std::env::var_os("PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/spate-test/pyenv/bin/python"));
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(3).max(1);
        }
    }
    let (tsv, corpus) = (data.join("pairs_10m.tsv"), data.join("corpus_1gb.txt"));
    if !tsv.exists() || !corpus.exists() {
        eprintln!(
            "missing inputs in {}: run ../shared/bench/gen_data.sh first",
            data.display()
        );
        std::process::exit(2);
    }
    let peers = Command::new(&python)
        .args(["-c", "import duckdb, polars"])
        .status()
        .is_ok_and(|s| s.success());
    if !peers {
        eprintln!(
            "{} has no duckdb and polars: they are skipped",
            python.display()
        );
    }

    // The inputs in the other formats, made once.
    let formats = data.join("formats");
    std::fs::create_dir_all(&formats).expect("a directory for the inputs");
    let parquet = formats.join("pairs_10m.parquet");
    if !parquet.exists() {
        assert!(
            peers,
            "DuckDB writes the Parquet input: install it (scripts/system-tests.sh does)"
        );
        let copy = format!(
            "import duckdb; duckdb.connect().execute(\"COPY (SELECT * FROM read_csv('{}', delim='\\t', header=false, \
             columns={{'key': 'VARCHAR', 'value': 'BIGINT'}})) TO '{}' (FORMAT parquet)\")",
            tsv.display(),
            parquet.display()
        );
        run(Command::new(&python).args(["-c", &copy]));
    }
    for (tool, ext) in [("gzip", "gz"), ("zstd", "zst")] {
        let packed = formats.join(format!("corpus_1gb.txt.{ext}"));
        if !packed.exists() {
            let out = std::fs::File::create(&packed).expect("a compressed corpus");
            let ok = Command::new(tool)
                .args(["-c", "-q"])
                .arg(&corpus)
                .stdout(out)
                .status()
                .expect(tool);
            assert!(ok.success(), "{tool} failed");
        }
    }

    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--example",
            "group_sum",
            "--example",
            "word_count",
            "--quiet",
        ])
        .current_dir(manifest)
        .status()
        .expect("cargo build");
    assert!(built.success(), "building the examples failed");
    let examples = manifest.join("target/release/examples");
    let scratch = tempfile::tempdir().expect("a scratch directory");

    type Case = (&'static str, &'static str, Box<dyn Fn(&Path) -> Command>);
    let group_sum = examples.join("group_sum");
    let word_count = examples.join("word_count");
    let example = |program: &Path, input: PathBuf, extra: &'static [&'static str]| {
        let program = program.to_path_buf();
        Box::new(move |out: &Path| {
            let mut c = Command::new(&program);
            c.arg(&input).arg("--output").arg(out).args(extra);
            c
        }) as Box<dyn Fn(&Path) -> Command>
    };
    let mut cases: Vec<Case> = vec![
        (
            "groupby",
            "Spate, TSV",
            example(&group_sum, tsv.clone(), &[]),
        ),
        (
            "groupby",
            "Spate, Parquet",
            example(&group_sum, parquet.clone(), &["--format", "parquet"]),
        ),
        (
            "wc",
            "Spate, plain",
            example(&word_count, corpus.clone(), &[]),
        ),
        (
            "wc",
            "Spate, gzip",
            example(&word_count, formats.join("corpus_1gb.txt.gz"), &[]),
        ),
        (
            "wc",
            "Spate, zstd",
            example(&word_count, formats.join("corpus_1gb.txt.zst"), &[]),
        ),
    ];
    if peers {
        for engine in ["duckdb", "polars"] {
            let (python, parquet) = (python.clone(), parquet.clone());
            let name = if engine == "duckdb" {
                "DuckDB, Parquet"
            } else {
                "Polars, Parquet"
            };
            cases.push((
                "groupby",
                name,
                Box::new(move |out: &Path| {
                    let mut c = Command::new(&python);
                    c.args(["-c", PEERS, engine]).arg(&parquet).arg(out);
                    c
                }),
            ));
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut reference: Vec<Option<Vec<String>>> = vec![None, None];
    for i in 0..runs {
        for k in 0..cases.len() {
            let c = (i + k) % cases.len();
            let (workload, name, command) = &cases[c];
            let out = scratch.path().join(format!("out-{c}"));
            let _ = std::fs::remove_dir_all(&out);
            let _ = std::fs::remove_file(&out);
            times[c].push(run(command(&out).env("SPATE_PROGRESS", "0")));
            if i == 0 && *workload == "groupby" {
                let got = lines(&out);
                match &reference[0] {
                    None => reference[0] = Some(got),
                    Some(r) => assert!(*r == got, "{name}: the sums differ"),
                }
            } else if i == 0 {
                let got = lines(&out);
                match &reference[1] {
                    None => reference[1] = Some(got),
                    Some(r) => assert!(*r == got, "{name}: the counts differ"),
                }
            }
        }
    }
    println!("{runs} runs each, interleaved; medians; every output equal");
    println!("{:<8}  {:<18}  {:>8}", "workload", "case", "median_s");
    for ((workload, name, _), t) in cases.iter().zip(&times) {
        let all: Vec<String> = t.iter().map(|x| format!("{x:.2}")).collect();
        println!(
            "{workload:<8}  {name:<18}  {:>8.3}  ({})",
            median(t.clone()),
            all.join(" ")
        );
    }
}
