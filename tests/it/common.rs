//! Helpers shared by the integration tests.
#![allow(dead_code)]

use spate::{Context, EventLog};
use std::sync::Arc;

/// The built example `name` (`cargo test` builds the examples), next to
/// this test binary's directory.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    target.join("examples").join(name)
}

/// The id of the first shuffle map stage `log` saw submitted.
pub fn first_map_stage(log: &EventLog) -> Option<u64> {
    log.events().iter().find_map(|e| match e {
        spate::Event::StageSubmitted {
            stage,
            kind: spate::StageKind::ShuffleMap { .. },
            ..
        } => Some(*stage),
        _ => None,
    })
}

/// A two-thread context, as on the CI machine.
pub fn ctx() -> Context {
    Context::builder().parallelism(2).build().expect("context")
}

/// A context with an event log attached.
pub fn logged_ctx() -> (Context, Arc<EventLog>) {
    logged(Context::builder())
}

/// A two-thread context from `builder`, with an event log attached.
pub fn logged(builder: spate::ContextBuilder) -> (Context, Arc<EventLog>) {
    let ctx = builder.parallelism(2).build().expect("context");
    let log = Arc::new(EventLog::default());
    ctx.add_listener(log.clone());
    (ctx, log)
}

pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Partition counts every operator is checked with: one, several, more
/// partitions than elements.
pub const PARTITIONS: [usize; 4] = [1, 2, 7, 64];

/// The lines of the `part-*` files in `dir` (a saved dataset or batch),
/// sorted.
pub fn read_part_lines(dir: &std::path::Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .expect("output directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .expect("part file")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// `0..n` in `parts` partitions, counting every element computed in the
/// returned accumulator: shows what was computed and what was reused.
pub fn counted_range(
    ctx: &Context,
    n: i64,
    parts: usize,
) -> (spate::Rdd<i64>, spate::Accumulator<u64>) {
    let computed = ctx.sum_accumulator::<u64>("computed");
    let c = computed.clone();
    let rdd = ctx.range(0, n, 1, parts).map(move |x| {
        c.add(1);
        x
    });
    (rdd, computed)
}

/// This test binary, set up to run only the test `name` (its full path,
/// `module::test`) with `env` set: for tests that need a process of their
/// own (a crash, a peak RSS, another working directory).
pub fn child_test(name: &str, env: (&str, &std::ffi::OsStr)) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1);
    cmd
}

/// Runs a child test to its end; its stdout, after checking it passed.
pub fn run_child_test(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The part files of a saved dataset, in part order.
pub fn part_files(out: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut parts: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .collect();
    parts.sort();
    parts
}

/// The part files of a saved dataset, concatenated in part order.
pub fn read_parts(out: &std::path::Path) -> String {
    part_files(out)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}
