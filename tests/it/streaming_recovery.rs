//! Crash recovery: a streaming program is killed with SIGKILL in the middle
//! of its run and restarted from its checkpoint; the batches it writes
//! equal those of a run that was never interrupted, batch by batch.
//!
//! The programs (run as a child process: this test binary again) read a
//! directory of files one per batch (`text_file_stream_with` taking one file per batch)
//! and save each batch's output with `save_as_text_files`: running word
//! totals with `update_state_by_key` (over text, and over typed rows from
//! `csv_file_stream` and `json_lines_file_stream`), or event-time sessions
//! with allowed lateness (window state, watermarks and late records).

use crate::common;
use spate::Str;
use spate::streaming::{
    DStream, FileStreamOptions, OutputMode, SessionWindows, StreamingContext, WatermarkStrategy,
};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SPATE_RECOVERY_CHILD";
const FILES: usize = 16;

/// Which program a child runs.
#[derive(Clone, Copy)]
enum Program {
    /// Running word totals.
    Totals,
    /// Event-time sessions per user over `user time` lines.
    Sessions,
    /// Running totals of `word,count` CSV rows.
    CsvTotals,
    /// Running totals of `["word", count]` JSON lines.
    JsonTotals,
}

impl Program {
    const ALL: [(Program, &'static str); 4] = [
        (Program::Totals, "totals"),
        (Program::Sessions, "sessions"),
        (Program::CsvTotals, "csv"),
        (Program::JsonTotals, "json"),
    ];

    fn name(self) -> &'static str {
        Program::ALL
            .iter()
            .find(|(p, _)| std::mem::discriminant(p) == std::mem::discriminant(&self))
            .map(|(_, n)| *n)
            .unwrap()
    }
}

/// The streaming program: runs until `FILES` batches were written.
fn program(which: Program, checkpoint: &Path, input: &Path, out: &Path) -> spate::Result<()> {
    let ctx = common::ctx();
    let prefix = out.join("batch").to_string_lossy().into_owned();
    let ssc = match which {
        Program::Totals => totals(&ctx, checkpoint, input, prefix)?,
        Program::Sessions => sessions(&ctx, checkpoint, input, prefix)?,
        Program::CsvTotals | Program::JsonTotals => {
            typed_totals(&ctx, checkpoint, input, prefix, which)?
        }
    };
    ssc.start()?;
    while batch_dirs(out).len() < FILES {
        if ssc.await_termination_or_timeout(Duration::from_millis(20))? {
            break;
        }
    }
    ssc.stop(spate::streaming::StopMode::Immediately)
}

fn sessions(
    ctx: &spate::Context,
    checkpoint: &Path,
    input: &Path,
    prefix: String,
) -> spate::Result<StreamingContext> {
    one_file_per_batch(ctx, checkpoint, |ssc, one_file| {
        let lines = ssc.text_file_stream_with(input, one_file);
        let clicks = lines.map(|line| {
            let (user, t) = line.split_once(' ').unwrap_or(("?", "0"));
            (user.to_string(), t.parse::<i64>().unwrap_or(0))
        });
        let out = clicks
            .with_timestamps(
                |c: &(String, i64)| c.1,
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
            )
            .key_by(|c| c.0.clone())
            .window(SessionWindows::with_gap(Duration::from_millis(400)))
            .allowed_lateness(Duration::from_millis(200))
            .output_mode(OutputMode::EachFiring)
            .process(|_, _, clicks| {
                let mut t: Vec<i64> = clicks.iter().map(|c| c.1).collect();
                t.sort();
                t
            });
        let results = out.results.map(|r| {
            format!(
                "{} [{},{}) {:?} {}",
                r.key, r.window.start, r.window.end, r.value, r.late_updates
            )
        });
        let late = out.late.map(|(u, t)| format!("late {u} {t}"));
        results.union(&late).save_as_text_files(prefix, None)
    })
}

/// The programs' common frame: 100 ms batches, state checkpointed every
/// 300 ms, one file per batch, the rest defined by `define`.
fn one_file_per_batch(
    ctx: &spate::Context,
    checkpoint: &Path,
    define: impl FnOnce(&StreamingContext, FileStreamOptions) -> spate::Result<()>,
) -> spate::Result<StreamingContext> {
    StreamingContext::get_or_create(checkpoint, || {
        let ssc = StreamingContext::new(ctx, Duration::from_millis(100))?;
        ssc.set_checkpoint_interval(Duration::from_millis(300))?;
        let one_file = FileStreamOptions {
            new_files_only: false,
            max_files_per_batch: Some(1),
        };
        define(&ssc, one_file)?;
        Ok(ssc)
    })
}

fn totals(
    ctx: &spate::Context,
    checkpoint: &Path,
    input: &Path,
    prefix: String,
) -> spate::Result<StreamingContext> {
    one_file_per_batch(ctx, checkpoint, |ssc, one_file| {
        let lines = ssc.text_file_stream_with(input, one_file);
        running_totals(
            lines
                .flat_map(|line| {
                    line.split_ascii_whitespace()
                        .map(Str::from)
                        .collect::<Vec<_>>()
                })
                .map(|w| (w.to_string(), 1u64)),
            prefix,
        )
    })
}

/// Each word's total so far, saved per batch as `word\tcount` lines.
fn running_totals(counts: DStream<(String, u64)>, prefix: String) -> spate::Result<()> {
    counts
        .reduce_by_key(|a, b| a + b)
        .update_state_by_key(|_, new: Vec<u64>, total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        })
        .map(|(w, n)| format!("{w}\t{n}"))
        .save_as_text_files(prefix, None)
}

/// Running totals over typed rows: `word,count` CSV or `["word", count]`
/// JSON lines.
fn typed_totals(
    ctx: &spate::Context,
    checkpoint: &Path,
    input: &Path,
    prefix: String,
    which: Program,
) -> spate::Result<StreamingContext> {
    one_file_per_batch(ctx, checkpoint, |ssc, one_file| {
        let rows: DStream<(String, u64)> = if matches!(which, Program::CsvTotals) {
            let csv = spate::CsvOptions::default().header(false);
            ssc.csv_file_stream(input, &csv, one_file)
        } else {
            ssc.json_lines_file_stream(input, &Default::default(), one_file)
        };
        running_totals(rows, prefix)
    })
}

/// The finished batch directories under `out`, in batch-time order.
fn batch_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<(u64, PathBuf)> = std::fs::read_dir(out)
        .map(|rd| {
            rd.filter_map(|e| {
                let p = e.ok()?.path();
                let name = p.file_name()?.to_str()?.to_string();
                let ms = name.strip_prefix("batch-")?.parse().ok()?;
                Some((ms, p))
            })
            .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter().map(|(_, p)| p).collect()
}

fn spawn(which: Program, checkpoint: &Path, input: &Path, out: &Path) -> Child {
    let args = format!(
        "{}|{}|{}|{}",
        which.name(),
        checkpoint.display(),
        input.display(),
        out.display()
    );
    common::child_test(
        "streaming_recovery::recovery_child",
        (CHILD_ENV, args.as_ref()),
    )
    .spawn()
    .expect("spawn the streaming program")
}

fn wait_ok(mut child: Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn recovery_child() {
    // The streaming program, when run by the test below; else nothing.
    if let Ok(args) = std::env::var(CHILD_ENV) {
        let parts: Vec<&str> = args.split('|').collect();
        let which = Program::ALL
            .iter()
            .find(|(_, name)| *name == parts[0])
            .map(|(p, _)| *p)
            .unwrap();
        program(
            which,
            Path::new(parts[1]),
            Path::new(parts[2]),
            Path::new(parts[3]),
        )
        .unwrap();
    }
}

/// Runs `which` over `files` uninterrupted and killed after 6 batches then
/// restarted; returns both runs' batches and when the kill happened.
fn clean_and_recovered(
    which: Program,
    files: &[String],
) -> (Vec<Vec<String>>, Vec<Vec<String>>, usize) {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    std::fs::create_dir(&input).unwrap();
    for (i, text) in files.iter().enumerate() {
        std::fs::write(input.join(format!("f{i:02}.txt")), text).unwrap();
    }
    let dirs = |name: &str| {
        let d = root.path().join(name);
        std::fs::create_dir(&d).unwrap();
        let out = d.join("out");
        std::fs::create_dir(&out).unwrap();
        (d.join("checkpoint"), out)
    };
    let (clean_ckpt, clean_out) = dirs("clean");
    wait_ok(
        spawn(which, &clean_ckpt, &input, &clean_out),
        "the uninterrupted run",
    );
    let (ckpt, out) = dirs("crashed");
    let mut first = spawn(which, &ckpt, &input, &out);
    let deadline = Instant::now() + Duration::from_secs(60);
    while batch_dirs(&out).len() < 6 {
        assert!(Instant::now() < deadline, "the first run made no progress");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let killed_after = batch_dirs(&out).len();
    assert!(killed_after < FILES, "killed before the end");
    wait_ok(spawn(which, &ckpt, &input, &out), "the restarted run");
    let read = |out: &Path| -> Vec<Vec<String>> {
        batch_dirs(out)[..FILES]
            .iter()
            .map(|d| common::read_part_lines(d))
            .collect()
    };
    (read(&clean_out), read(&out), killed_after)
}

#[test]
fn a_run_killed_mid_way_and_restarted_writes_the_same_batches_as_an_uninterrupted_run() {
    let files: Vec<String> = (0..FILES)
        .map(|i| format!("w{} w{} common\nw{}\n", i % 3, i % 5, i % 7))
        .collect();
    let (clean, recovered, killed_after) = clean_and_recovered(Program::Totals, &files);
    // Sanity: the last batch holds every word's total over all files.
    let common = format!("common\t{FILES}");
    assert!(clean[FILES - 1].contains(&common), "{:?}", clean[FILES - 1]);
    for (i, (a, b)) in clean.iter().zip(&recovered).enumerate() {
        assert_eq!(
            a,
            b,
            "batch {} differs (killed after {killed_after} batches)",
            i + 1
        );
    }
}

#[test]
fn event_time_sessions_recover_their_windows_watermarks_and_late_records() {
    // Per file, a click of each user 500 ms after the previous file's, so
    // each file's clicks form new sessions (gap 400 ms); some files add a
    // straggler that joins the previous, already fired session (re-fire),
    // or one for a session closed long ago (late).
    let files: Vec<String> = (0..FILES as i64)
        .map(|i| {
            let t = 1000 + i * 500;
            let mut text = format!("a {t}\nb {}\n", t + 30);
            if i % 5 == 2 {
                // Extends the previous session past the watermark: it fires
                // again only once the watermark reaches the new end.
                text.push_str(&format!("a {}\n", t - 450));
            }
            if i % 6 == 1 {
                // Inside the previous session, which has fired: a re-fire.
                text.push_str(&format!("a {}\n", t - 480));
            }
            if i % 4 == 3 {
                text.push_str(&format!("a {}\n", t - 1500));
            }
            if i == 3 {
                // An outlier from the future: the watermark jumps, and the
                // next files' clicks are late. A recovery must know it.
                text.push_str("b 6000\n");
            }
            text
        })
        .collect();
    let (clean, recovered, killed_after) = clean_and_recovered(Program::Sessions, &files);
    let all: Vec<&String> = clean.iter().flatten().collect();
    assert!(
        all.iter().any(|l| l.starts_with("late ")),
        "some clicks are late: {all:?}"
    );
    assert!(
        all.iter().any(|l| l.ends_with(" 1")),
        "some sessions re-fire: {all:?}"
    );
    for (i, (a, b)) in clean.iter().zip(&recovered).enumerate() {
        assert_eq!(
            a,
            b,
            "batch {} differs (killed after {killed_after} batches)",
            i + 1
        );
    }
}

#[test]
fn csv_and_json_lines_file_streams_killed_mid_way_recover_the_same_batches() {
    for which in [Program::CsvTotals, Program::JsonTotals] {
        let files: Vec<String> = (0..FILES)
            .map(|i| {
                let rows = [
                    (format!("w{}", i % 3), i as u64 + 1),
                    ("common, quoted".into(), 2),
                ];
                rows.iter()
                    .map(|(w, n)| match which {
                        Program::CsvTotals => format!("\"{w}\",{n}\n"),
                        _ => format!("{}\n", serde_json::to_string(&(w, n)).unwrap()),
                    })
                    .collect()
            })
            .collect();
        let (clean, recovered, killed_after) = clean_and_recovered(which, &files);
        // Sanity: the last batch holds the totals over every file.
        let common = format!("common, quoted\t{}", 2 * FILES);
        assert!(clean[FILES - 1].contains(&common), "{:?}", clean[FILES - 1]);
        let w0: u64 = (0..FILES as u64)
            .filter(|i| i % 3 == 0)
            .map(|i| i + 1)
            .sum();
        assert!(
            clean[FILES - 1].contains(&format!("w0\t{w0}")),
            "{:?}",
            clean[FILES - 1]
        );
        assert_eq!(
            clean,
            recovered,
            "{}: killed after {killed_after} batches",
            which.name()
        );
    }
}
