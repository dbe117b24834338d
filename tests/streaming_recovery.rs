//! Crash recovery: a streaming program is killed with SIGKILL in the middle
//! of its run and restarted from its checkpoint; the batches it writes
//! equal those of a run that was never interrupted, batch by batch.
//!
//! The program (run as a child process: this test binary again) reads a
//! directory of files one per batch (`text_file_stream_with(.., Some(1))`),
//! keeps running word totals with `update_state_by_key`, and saves each
//! batch's totals with `save_as_text_files`.

mod common;
use spate::Str;
use spate::streaming::StreamingContext;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SPATE_RECOVERY_CHILD";
const FILES: usize = 16;

/// The streaming program: runs until `FILES` batches were written.
fn program(checkpoint: &Path, input: &Path, out: &Path) -> spate::Result<()> {
    let ctx = common::ctx();
    let prefix = out.join("batch").to_string_lossy().into_owned();
    let ssc = StreamingContext::get_or_create(checkpoint, || {
        let ssc = StreamingContext::new(&ctx, Duration::from_millis(100))?;
        ssc.set_checkpoint_interval(Duration::from_millis(300))?;
        ssc.text_file_stream_with(input, Some(1))
            .flat_map(|line| {
                line.split_ascii_whitespace()
                    .map(Str::from)
                    .collect::<Vec<_>>()
            })
            .map(|w| (w, 1u64))
            .reduce_by_key(|a, b| a + b)
            .update_state_by_key(|_, new: Vec<u64>, total: Option<u64>| {
                Some(total.unwrap_or(0) + new.iter().sum::<u64>())
            })
            .map(|(w, n)| format!("{w}\t{n}"))
            .save_as_text_files(prefix.clone(), None)?;
        Ok(ssc)
    })?;
    ssc.start()?;
    while batch_dirs(out).len() < FILES {
        if ssc.await_termination_or_timeout(Duration::from_millis(20))? {
            break;
        }
    }
    ssc.stop(false)
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

fn spawn(checkpoint: &Path, input: &Path, out: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "recovery_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!(
                "{}|{}|{}",
                checkpoint.display(),
                input.display(),
                out.display()
            ),
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
        program(
            Path::new(parts[0]),
            Path::new(parts[1]),
            Path::new(parts[2]),
        )
        .unwrap();
    }
}

#[test]
fn a_run_killed_mid_way_and_restarted_writes_the_same_batches_as_an_uninterrupted_run() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input");
    std::fs::create_dir(&input).unwrap();
    for i in 0..FILES {
        let text = format!("w{} w{} common\nw{}\n", i % 3, i % 5, i % 7);
        std::fs::write(input.join(format!("f{i:02}.txt")), text).unwrap();
    }
    let dirs = |name: &str| {
        let d = root.path().join(name);
        std::fs::create_dir(&d).unwrap();
        (d.join("checkpoint"), d.join("out"))
    };

    let (clean_ckpt, clean_out) = dirs("clean");
    std::fs::create_dir(&clean_out).unwrap();
    wait_ok(
        spawn(&clean_ckpt, &input, &clean_out),
        "the uninterrupted run",
    );

    let (ckpt, out) = dirs("crashed");
    std::fs::create_dir(&out).unwrap();
    let mut first = spawn(&ckpt, &input, &out);
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
    let before_restart = batch_dirs(&out).len();
    assert!(before_restart < FILES, "killed before the end");
    wait_ok(spawn(&ckpt, &input, &out), "the restarted run");

    let clean: Vec<Vec<String>> = batch_dirs(&clean_out)[..FILES]
        .iter()
        .map(|d| common::read_part_lines(d))
        .collect();
    let recovered: Vec<Vec<String>> = batch_dirs(&out)[..FILES]
        .iter()
        .map(|d| common::read_part_lines(d))
        .collect();
    // Sanity: the last batch holds every word's total over all files.
    let common = format!("common\t{FILES}");
    assert!(clean[FILES - 1].contains(&common), "{:?}", clean[FILES - 1]);
    for (i, (a, b)) in clean.iter().zip(&recovered).enumerate() {
        assert_eq!(
            a,
            b,
            "batch {} differs (killed after {before_restart} batches)",
            i + 1
        );
    }
}
