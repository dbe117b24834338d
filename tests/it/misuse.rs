//! Misuse of the API ends in a clear error, never a hang or an abort.

use crate::common::ctx;
use spate::{Error, StorageLevel};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `secs`: the bugs guarded here were hangs.
fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("finished instead of hanging")
}

#[test]
fn an_action_inside_a_task_of_the_same_context_is_an_error_not_a_deadlock() {
    let seen = within(60, || {
        let ctx = ctx();
        let inner = ctx.range(0, 10, 1, 2);
        ctx.range(0, 8, 1, 4)
            .map(move |_| match inner.count() {
                Err(Error::ActionInTask {
                    action: "count", ..
                }) => 1,
                other => panic!("unexpected {other:?}"),
            })
            .sum()
    });
    assert_eq!(seen.unwrap(), 8, "every task saw the error");
}

#[test]
fn an_action_on_another_context_inside_a_task_is_an_error_not_a_deadlock() {
    let seen = within(60, || {
        let (outer, other) = (ctx(), ctx());
        let inner = other.range(0, 10, 1, 2);
        outer
            .range(0, 8, 1, 4)
            .map(move |_| i64::from(matches!(inner.count(), Err(Error::ActionInTask { .. }))))
            .sum()
    });
    assert_eq!(seen.unwrap(), 8);
}

#[test]
fn an_unwrapped_action_inside_a_task_fails_the_job_with_the_reason() {
    let err = within(60, || {
        let ctx = ctx();
        let inner = ctx.range(0, 10, 1, 2);
        let r = ctx
            .range(0, 4, 1, 2)
            .map(move |x| x + inner.count().unwrap() as i64);
        let err = r.collect().unwrap_err();
        // The context is still usable.
        assert_eq!(ctx.range(0, 4, 1, 2).count().unwrap(), 4);
        err
    });
    // `unwrap` shows the error's Debug form: the variant names the misuse.
    assert!(err.to_string().contains("ActionInTask {"), "{err}");
}

/// A value whose drop panics, as a careless user type might.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("PanicsOnDrop dropped");
        }
    }
}

#[test]
fn a_panicking_drop_of_a_user_type_leaks_nothing_and_does_not_abort_the_thread() {
    let files_left = within(60, || {
        let ctx = ctx();
        let captured = PanicsOnDrop;
        let grandparent = ctx
            .range(0, 100, 1, 2)
            .persist(StorageLevel::DiskOnly)
            .unwrap();
        // The panic must strike inside the drop loop: in a parent's drop.
        let parent = grandparent.map(move |x| {
            let _keep = &captured;
            x + 1
        });
        let child = parent.map(|x| x * 2);
        assert_eq!(child.sum().unwrap(), 10_100);
        drop((grandparent, parent));
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(child)));
        assert!(dropped.is_err(), "the user's panic is passed on");
        let blocks = |ctx: &spate::Context| {
            std::fs::read_dir(ctx.scratch_dir())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("block")
                })
                .count()
        };
        // The grandparent's disk blocks went with it despite the panic.
        assert_eq!(blocks(&ctx), 0, "grandparent released");
        assert!(ctx.storage_info().is_empty());
        // Later drops on this thread still release their lineage, even of a
        // fresh context.
        let fresh = spate::Context::builder().parallelism(1).build().unwrap();
        let cached = fresh
            .range(0, 10, 1, 2)
            .persist(StorageLevel::DiskOnly)
            .unwrap();
        let mapped = cached.map(|x| x * 2);
        assert_eq!(mapped.sum().unwrap(), 90);
        assert_eq!(blocks(&fresh), 2);
        drop(cached);
        drop(mapped);
        assert_eq!(blocks(&fresh), 0, "later lineages are not leaked");
        blocks(&ctx)
        // The thread now exits: with a claimed drop queue it aborted here.
    });
    assert_eq!(files_left, 0);
}

/// Builds a context in a child process (the environment is the process's,
/// so each setting gets its own) and prints what `build` said.
#[test]
fn env_child() {
    if std::env::var("SPATE_TEST_ENV_CHILD").is_err() {
        return;
    }
    match spate::Context::builder().local().build() {
        Ok(_) => println!("BUILT"),
        Err(e) => println!("ERROR {e}"),
    }
}

fn build_with_env(name: &str, value: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "misuse::env_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPATE_TEST_ENV_CHILD", "1")
        .env(name, value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .lines()
        .find_map(|l| {
            ["BUILT", "ERROR "]
                .iter()
                .find_map(|w| l.find(w).map(|at| l[at..].to_string()))
        })
        .unwrap_or_else(|| panic!("{name}={value}: no outcome: {stdout}"))
}

#[test]
fn a_malformed_setting_in_the_environment_is_an_error_naming_it() {
    for (name, value) in [
        ("SPATE_LOCALITY_WAIT_MS", "soon"),
        ("SPATE_LOCALITY_WAIT_MS", "-5"),
        ("SPATE_THREADS", "0"),
        ("SPATE_MAX_BYTES_IN_FLIGHT", "lots"),
    ] {
        let got = build_with_env(name, value);
        assert!(
            got.starts_with("ERROR invalid argument")
                && got.contains(&format!("{name}=\"{value}\"")),
            "{name}={value}: {got}"
        );
    }
    // A zero locality wait is a setting, not an error.
    assert_eq!(build_with_env("SPATE_LOCALITY_WAIT_MS", "0"), "BUILT");
}

#[test]
fn datasets_of_two_contexts_combined_are_refused_not_mixed_up() {
    // Both contexts number their datasets from the same start, so without
    // the check a cached or shuffled block of one was read for the other.
    let (a, b) = (ctx(), ctx());
    let mine = a.parallelize(vec![(1, 'a'), (2, 'b')], 2).cache().unwrap();
    let theirs = b.parallelize(vec![(1, 'x'), (3, 'y')], 2).cache().unwrap();
    assert_eq!(mine.count().unwrap(), 2);
    assert_eq!(theirs.count().unwrap(), 2);
    let refused = |what: &str, r: spate::Result<usize>| match r {
        Err(Error::InvalidArgument(m)) => assert!(
            m.contains("of another Context; datasets of different contexts cannot be combined"),
            "{what}: {m}"
        ),
        other => panic!("{what}: {other:?}"),
    };
    refused("union", mine.union(&theirs).count().map(|n| n as usize));
    refused("join", mine.join(&theirs).collect().map(|v| v.len()));
    refused("cogroup", mine.cogroup(&theirs).count().map(|n| n as usize));
    refused(
        "cartesian",
        mine.cartesian(&theirs).count().map(|n| n as usize),
    );
    refused(
        "context union",
        a.union(&[mine.clone(), theirs.clone()])
            .count()
            .map(|n| n as usize),
    );
    refused(
        "descendant",
        mine.union(&theirs)
            .map(|(k, _)| k)
            .collect()
            .map(|v| v.len()),
    );
    // Each context goes on working with its own datasets.
    let mut joined = mine.join(&mine).collect().unwrap();
    joined.sort();
    assert_eq!(joined, [(1, ('a', 'a')), (2, ('b', 'b'))]);
    assert_eq!(theirs.keys().collect().unwrap().len(), 2);
}

#[test]
fn zero_partitions_or_a_zero_step_is_an_invalid_argument_naming_the_operation() {
    let ctx = ctx();
    let data = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2);
    let refused = |what: &str, r: spate::Result<usize>, op: &str| match r {
        Err(Error::InvalidArgument(m)) => assert!(m.contains(op), "{what}: {m}"),
        other => panic!("{what}: {other:?}"),
    };
    refused(
        "parallelize",
        ctx.parallelize(vec![1, 2], 0).count().map(|n| n as usize),
        "parallelize was asked for 0 partitions",
    );
    // Descendants inherit the refusal, whatever the action.
    let child = ctx
        .parallelize(vec![1, 2], 0)
        .map(|x| x * 2)
        .filter(|x| *x > 0);
    refused("child", child.collect().map(|v| v.len()), "parallelize");
    refused("first", child.first().map(|_| 1), "parallelize");
    refused(
        "range step",
        ctx.range(0, 10, 0, 2).count().map(|n| n as usize),
        "range(0, 10) with step 0",
    );
    refused(
        "range partitions",
        ctx.range(0, 10, 1, 0).count().map(|n| n as usize),
        "range was asked for 0",
    );
    refused(
        "coalesce",
        data.coalesce(0).count().map(|n| n as usize),
        "coalesce was asked for 0",
    );
    refused(
        "repartition",
        data.repartition(0).count().map(|n| n as usize),
        "repartition was asked for 0",
    );
    refused(
        "partition_by",
        data.partition_by(spate::Partitioner::hash(0))
            .count()
            .map(|n| n as usize),
        "HashPartitioner(1) was asked for 0 partitions",
    );
    refused(
        "reduce_by_key_with",
        data.reduce_by_key_with(0, |a, _| a)
            .collect()
            .map(|v| v.len()),
        "was asked for 0 partitions",
    );
    refused(
        "custom partitioner",
        data.partition_by(spate::Partitioner::custom("mine", 0, |_: &i32| 0))
            .count()
            .map(|n| n as usize),
        "Partitioner(mine, 1) was asked for 0",
    );
    refused(
        "sort_by_key",
        data.sort_by_key(spate::Order::Ascending, Some(0))
            .map(|r| r.num_partitions()),
        "sort_by_key was asked for 0",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "x\n").unwrap();
    refused(
        "text_file",
        ctx.text_file(dir.path(), 0).map(|r| r.num_partitions()),
        "text_file was asked for 0",
    );
    refused(
        "whole_text_files",
        ctx.whole_text_files(dir.path(), 0)
            .map(|r| r.num_partitions()),
        "whole_text_files was asked for 0",
    );
    // Nothing ran, and the same operations with one partition work.
    assert_eq!(ctx.parallelize(vec![1, 2], 1).count().unwrap(), 2);
    assert_eq!(ctx.range(0, 10, 3, 1).collect().unwrap(), [0, 3, 6, 9]);
    assert_eq!(data.repartition(1).count().unwrap(), 2);
}
