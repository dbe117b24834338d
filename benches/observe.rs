//! What observing a program costs: the word count example over the 1 GiB
//! corpus, run plain; with the event log and a live web UI nobody reads;
//! and with both while a client polls the API ten times a second (the
//! pages poll once a second), interleaved in one run.
//!
//! ```text
//! ../shared/bench/gen_data.sh       # the corpus, once
//! cargo bench --bench observe       # 5 runs of each, medians
//! cargo bench --bench observe -- --runs 3 --input FILE
//! ```
//! Every run's output must equal the plain run's, and every event log must
//! end complete with no dropped events. Environment: `DATA` (default
//! `~/.cache/spate-bench/data`), as for `benches/engine.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Unread,
    Polled,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Unread => "log + UI, no reader",
            Mode::Polled => "log + UI, polled 10/s",
        }
    }
}

/// One GET; the body, or `None` if the server is gone.
fn get(addr: &str, path: &str) -> Option<String> {
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    conn.read_to_string(&mut out).ok()?;
    Some(out.split_once("\r\n\r\n")?.1.to_string())
}

/// Polls what the Jobs, Stages and Stage pages read, every 100 ms, until
/// `done`; returns the number of requests answered.
fn poll(addr: String, done: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    let Some(apps) = get(&addr, "/api/v1/applications") else {
        return;
    };
    let Some(app) = apps
        .split("\"id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
    else {
        return;
    };
    let api = format!("/api/v1/applications/{app}");
    while !done.load(Ordering::Relaxed) {
        for path in [
            format!("{api}/jobs"),
            format!("{api}/stages"),
            format!("{api}/stages/0/0"),
            format!("{api}/executors"),
        ] {
            if get(&addr, &path).is_some() {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sorted lines of the part files in `dir`.
fn output(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the output directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .collect();
    parts.sort();
    for p in parts {
        let text = std::fs::read_to_string(&p).expect("a part file");
        lines.extend(text.lines().map(String::from));
    }
    lines.sort_unstable();
    lines
}

/// Checks that the one event log in `dir` ended complete with nothing dropped.
fn check_log(dir: &Path) {
    let logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the log directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    assert_eq!(logs.len(), 1, "one log: {logs:?}");
    assert!(
        logs[0].extension().is_some_and(|e| e == "jsonl"),
        "{logs:?} is complete"
    );
    let text = std::fs::read_to_string(&logs[0]).expect("the log");
    let last = text.lines().last().expect("a last line");
    assert!(last.contains(r#""ApplicationEnd":{"dropped":0}"#), "{last}");
}

/// Runs the example once in `mode`; returns its wall time in seconds and
/// the requests the poller had answered.
fn run(
    example: &Path,
    input: &Path,
    mode: Mode,
    scratch: &Path,
    reference: &mut Option<Vec<String>>,
) -> (f64, u64) {
    let out = scratch.join("out");
    let logs = scratch.join("logs");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&logs);
    let mut cmd = Command::new(example);
    cmd.arg(input)
        .arg("--output")
        .arg(&out)
        .env_remove("SPATE_UI_PORT")
        .env_remove("SPATE_EVENT_LOG_DIR")
        .env("SPATE_PROGRESS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if mode != Mode::Plain {
        std::fs::create_dir_all(&logs).expect("a log directory");
        cmd.env("SPATE_UI_PORT", "0")
            .env("SPATE_EVENT_LOG_DIR", &logs);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("the example");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (done, answered) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut poller = None;
    let mut said = String::new();
    for line in stderr.lines().map_while(Result::ok) {
        if let Some(url) = line.strip_prefix("spate: web UI at http://")
            && mode == Mode::Polled
        {
            let addr = url.trim_end_matches('/').to_string();
            let (done, answered) = (done.clone(), answered.clone());
            poller = Some(std::thread::spawn(move || poll(addr, done, answered)));
        }
        said.push_str(&line);
        said.push('\n');
    }
    let status = child.wait().expect("the example's exit");
    let wall = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    if let Some(p) = poller {
        p.join().expect("the poller");
    }
    assert!(status.success(), "{}: {said}", mode.name());
    let lines = output(&out);
    match reference {
        None => *reference = Some(lines),
        Some(r) => assert!(
            *r == lines,
            "{}: the output differs from the plain run's",
            mode.name()
        ),
    }
    if mode != Mode::Plain {
        check_log(&logs);
    }
    (wall, answered.load(Ordering::Relaxed))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let data = std::env::var_os("DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/spate-bench/data"));
    let mut input = data.join("corpus_1gb.txt");
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(5).max(1),
            "--input" => input = args.next().map(PathBuf::from).unwrap_or(input),
            _ => {}
        }
    }
    if !input.exists() {
        eprintln!(
            "missing input {}: run ../shared/bench/gen_data.sh first",
            input.display()
        );
        std::process::exit(2);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--example", "word_count", "--quiet"])
        .current_dir(manifest)
        .status()
        .expect("cargo build");
    assert!(built.success(), "building the example failed");
    let example = manifest.join("target/release/examples/word_count");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let modes = [Mode::Plain, Mode::Unread, Mode::Polled];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut requests = 0;
    let mut reference = None;
    for i in 0..runs {
        // Interleaved, in a rotating order, so drift hits every mode alike.
        for k in 0..modes.len() {
            let m = (i + k) % modes.len();
            let (wall, answered) = run(&example, &input, modes[m], scratch.path(), &mut reference);
            times[m].push(wall);
            requests += answered;
        }
    }
    println!(
        "word count over {} ({runs} runs each, interleaved)",
        input.display()
    );
    println!("{:<24}  {:>8}  {:>6}  runs", "mode", "median_s", "ratio");
    let plain = median(times[0].clone());
    for (m, t) in modes.iter().zip(&times) {
        let med = median(t.clone());
        let all: Vec<String> = t.iter().map(|x| format!("{x:.2}")).collect();
        println!(
            "{:<24}  {:>8.3}  {:>6.3}  {}",
            m.name(),
            med,
            med / plain,
            all.join(" ")
        );
    }
    println!("API requests answered while polled: {requests}");
}
