//! The streaming examples run as a user runs them (`cargo test` builds the
//! examples; these tests start the built binaries).

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::example;

#[test]
fn streaming_demo_runs_without_set_up_and_prints_its_summary() {
    let out = Command::new(example("streaming_demo"))
        .args(["--seconds", "1", "--rate", "2000", "--batch-ms", "100"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("totals at"), "{text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_default();
    let records: u64 = summary
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let words: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("words counted: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    // About 2000 lines were generated (a second at 2000 a second), and
    // every line received was counted: three words each.
    assert!(records >= 1500, "{summary}");
    assert_eq!(words, 3 * records, "{text}");
}

#[test]
fn network_word_count_writes_each_batch_s_counts() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("counts");
    let mut child = Command::new(example("network_word_count"))
        .arg(format!("127.0.0.1:{port}"))
        .args(["--batch-ms", "100", "--output"])
        .arg(&prefix)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.write_all(b"to be or not to be\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = Vec::new();
    while found.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("counts-")
            {
                continue;
            }
            for part in std::fs::read_dir(&path).unwrap() {
                let p = part.unwrap().path();
                if p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("part-")
                {
                    found.extend(
                        std::fs::read_to_string(p)
                            .unwrap()
                            .lines()
                            .map(str::to_owned),
                    );
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    found.sort();
    assert_eq!(found, ["be\t2", "not\t1", "or\t1", "to\t2"]);
}

#[test]
fn a_failing_example_prints_the_error_as_a_sentence_not_a_debug_dump() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-input.txt");
    let out = Command::new(example("word_count"))
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Error: I/O error on {}", missing.display())),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("no such file or directory"),
        "{err}"
    );
    assert!(!err.contains("Io {"), "a Debug dump: {err}");
}

/// Reads `from` into `out` until `out` holds `what`; panics after 60 s.
fn read_until(from: &mut impl std::io::Read, out: &mut String, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0; 4096];
    while !out.contains(what) {
        assert!(Instant::now() < deadline, "no {what:?} in {out:?}");
        let n = from.read(&mut buf).unwrap();
        assert!(n > 0, "ended before {what:?}: {out:?}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn with_ui_on_a_terminal_an_example_draws_progress_and_keeps_its_ui_up_until_enter() {
    // `script` (util-linux) runs the example on a pseudo-terminal, as a
    // person at a terminal would.
    let cmd = format!(
        "stty cols 120 rows 40; exec {} --ui --ui-port 0",
        example("word_count").display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env_remove("SPATE_PROGRESS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut out = child.stdout.take().unwrap();
    let mut seen = String::new();
    read_until(&mut out, &mut seen, "until you press Enter");
    // The progress line was drawn for the word count's stages.
    assert!(seen.contains("[Stage 0: "), "{seen:?}");
    assert!(seen.contains(") / "), "{seen:?}");
    // The UI is still up and shows the finished jobs.
    let url = seen
        .split("stays up at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let apps = crate::http::get_json(&url, "/api/v1/applications");
    let app = apps[0]["id"].as_str().unwrap();
    let jobs = crate::http::get_json(&url, &format!("/api/v1/applications/{app}/jobs"));
    let jobs = jobs.as_array().unwrap();
    assert!(jobs.len() >= 3, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["status"] == "SUCCEEDED"), "{jobs:?}");
    // Enter ends it.
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {seen}");
    assert!(std::net::TcpStream::connect(url.trim_start_matches("http://")).is_err());
}

#[test]
fn with_ui_but_no_terminal_an_example_draws_nothing_and_exits_when_done() {
    let out = Command::new(example("word_count"))
        .args(["--ui", "--ui-port", "0"])
        .env_remove("SPATE_PROGRESS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("spate: web UI at http://127.0.0.1:"), "{err}");
    assert!(!err.contains("[Stage"), "{err}");
    assert!(!err.contains("press Enter"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("distinct"),
        "stdout"
    );
}

#[test]
fn group_sum_gives_the_same_sums_from_text_csv_json_lines_and_parquet() {
    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct Pair {
        key: String,
        value: i64,
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::common::ctx();
    let pairs: Vec<Pair> = (0..3_000)
        .map(|i| Pair {
            key: format!("k{}", i % 41),
            value: i * 7 - 9_000,
        })
        .collect();
    let rdd = ctx.parallelize(pairs.clone(), 3);
    rdd.map(|p| format!("{}\t{}", p.key, p.value))
        .save_as_text_file(dir.path().join("text"))
        .unwrap();
    rdd.save_as_csv(dir.path().join("csv"), &Default::default())
        .unwrap();
    rdd.save_as_json_lines(dir.path().join("jsonl")).unwrap();
    rdd.save_as_parquet(dir.path().join("parquet"), &Default::default())
        .unwrap();
    // A malformed record in the CSV input is skipped and counted.
    std::fs::write(
        dir.path().join("csv/part-00009.csv"),
        "key,value\nk1,notanumber\n",
    )
    .unwrap();
    let mut expected = std::collections::BTreeMap::<String, i64>::new();
    for p in &pairs {
        *expected.entry(p.key.clone()).or_default() += p.value;
    }
    let expected: Vec<String> = expected.iter().map(|(k, v)| format!("{k}\t{v}")).collect();
    for format in ["text", "csv", "jsonl", "parquet"] {
        let out = dir.path().join(format!("out-{format}"));
        let run = Command::new(example("group_sum"))
            .arg(dir.path().join(format))
            .arg("--output")
            .arg(&out)
            .args(["--format", format])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{format}: {err}");
        assert_eq!(crate::common::read_part_lines(&out), expected, "{format}");
        assert_eq!(
            err.contains("skipped 1 malformed records"),
            format == "csv",
            "{format}: {err}"
        );
    }
}
