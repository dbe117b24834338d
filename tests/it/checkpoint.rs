//! Checkpoints: round trips, truncation, corruption, long iterative jobs.

use crate::common;
use crate::common::{ctx, sorted};
use spate::{Context, Error, FaultPlan};

#[test]
fn a_checkpoint_round_trips_through_a_new_context() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let ctx = ctx();
        ctx.set_checkpoint_dir(dir.path()).unwrap();
        let r = ctx
            .parallelize(
                (0..1000u32).map(|i| (format!("k{}", i % 17), i)).collect(),
                5,
            )
            .reduce_by_key(|a, b| a + b)
            .cache()
            .unwrap();
        r.checkpoint().unwrap();
        assert!(!r.is_checkpointed(), "written by the next job, not now");
        let before = sorted(r.collect().unwrap());
        assert!(r.is_checkpointed());
        assert!(!r.is_locally_checkpointed(), "a reliable checkpoint");
        let lineage = r.to_debug_string();
        assert_eq!(lineage.lines().count(), 2, "lineage truncated: {lineage}");
        let parent = format!(
            " | (5) reliable checkpoint data at {}",
            dir.path().display()
        );
        assert!(
            lineage.lines().nth(1).unwrap().starts_with(&parent),
            "{lineage}"
        );
        assert_eq!(sorted(r.collect().unwrap()), before);
        (r.checkpoint_path().unwrap(), before)
    };
    let fresh = Context::builder().parallelism(3).build().unwrap();
    let back = fresh.checkpoint_file::<(String, u32)>(&written.0).unwrap();
    assert_eq!(back.num_partitions(), 5);
    assert_eq!(sorted(back.collect().unwrap()), written.1);
    let wrong = fresh.checkpoint_file::<(String, u64)>(&written.0);
    assert!(
        matches!(wrong, Err(Error::CorruptCheckpoint { .. })),
        "type is checked"
    );
}

#[test]
fn a_corrupt_checkpoint_is_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    ctx.set_checkpoint_dir(dir.path()).unwrap();
    let r = ctx.range(0, 10_000, 1, 2);
    r.checkpoint().unwrap();
    r.count().unwrap();
    let path = r.checkpoint_path().unwrap();
    let part = path.join("part-00001");
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&part, bytes).unwrap();
    let err = ctx
        .checkpoint_file::<i64>(&path)
        .unwrap()
        .count()
        .unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::CorruptCheckpoint { reason, .. } if reason.contains("checksum")),
        "{err}"
    );
    std::fs::write(path.join("_metadata"), b"not a checkpoint").unwrap();
    assert!(matches!(
        ctx.checkpoint_file::<i64>(&path),
        Err(Error::CorruptCheckpoint { .. })
    ));
    assert!(matches!(
        ctx.checkpoint_file::<i64>(dir.path().join("nothing")),
        Err(Error::Io { .. })
    ));
    assert!(ctx.range(0, 1, 1, 1).checkpoint().is_ok());
    let no_dir = spate::Context::new()
        .unwrap()
        .range(0, 1, 1, 1)
        .checkpoint()
        .unwrap_err();
    assert!(
        matches!(&no_dir, Error::InvalidArgument(m) if m.contains("set_checkpoint_dir")),
        "{no_dir}"
    );
}

#[test]
fn a_local_checkpoint_truncates_lineage_and_a_lost_block_is_a_clear_error() {
    let ctx = ctx();
    let (counted, computed) = common::counted_range(&ctx, 100, 4);
    let r = counted.local_checkpoint();
    assert_eq!(r.sum().unwrap(), 4950);
    assert!(r.is_checkpointed() && r.is_locally_checkpointed());
    assert_eq!(r.count().unwrap(), 100);
    assert_eq!(
        computed.value(),
        100,
        "computed once, then read from memory"
    );
    ctx.set_fault_plan(FaultPlan::new().drop_cached_block(r.id(), 1));
    let err = r.count().unwrap_err();
    assert!(
        matches!(
            err.root_cause(),
            Error::LostLocalCheckpoint { partition: 1, .. }
        ),
        "{err}"
    );
}

#[test]
fn an_iterative_job_of_1000_steps_checkpointing_every_50_keeps_lineage_short() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    ctx.set_checkpoint_dir(dir.path()).unwrap();
    let mut ranks = ctx.parallelize((0..20u64).map(|k| (k, 1.0f64)).collect(), 2);
    let mut longest = 0;
    for i in 1..=1000 {
        ranks = ranks
            .map_values(|r| r * 0.5 + 0.5)
            .reduce_by_key(|a, b| a + b);
        if i % 50 == 0 {
            ranks = ranks.cache().unwrap();
            ranks.checkpoint().unwrap();
            ranks.count().unwrap();
            assert!(ranks.is_checkpointed());
        }
        longest = longest.max(ranks.to_debug_string().lines().count());
    }
    assert!(
        longest <= 2 * 50 + 1,
        "lineage never grows past one checkpoint interval: {longest}"
    );
    let got = ranks.collect().unwrap();
    assert_eq!(got.len(), 20);
    assert!(
        got.iter().all(|(_, r)| (r - 1.0).abs() < 1e-9),
        "fixed point of r/2 + 1/2 is 1"
    );
}

/// Set in the child process: the directory to write a checkpoint into.
const CHILD_ENV: &str = "SPATE_TEST_CHECKPOINT_CHILD_DIR";

#[test]
fn a_checkpoint_written_by_another_process_reads_back() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // The child: write a checkpoint and print where it went.
        let ctx = ctx();
        ctx.set_checkpoint_dir(&dir).unwrap();
        let r = ctx
            .parallelize((0..500u64).map(|i| (i % 9, i * 3)).collect(), 4)
            .reduce_by_key(|a, b| a + b);
        r.checkpoint().unwrap();
        r.count().unwrap();
        println!("CHECKPOINT_PATH={}", r.checkpoint_path().unwrap().display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stdout = common::run_child_test(&mut common::child_test(
        "checkpoint::a_checkpoint_written_by_another_process_reads_back",
        (CHILD_ENV, dir.path().as_os_str()),
    ));
    let path = stdout
        .lines()
        .find_map(|l| l.split("CHECKPOINT_PATH=").nth(1))
        .expect("the child prints the checkpoint path");
    let ctx = ctx();
    let back = ctx.checkpoint_file::<(u64, u64)>(path).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    (0..500u64).for_each(|i| *expected.entry(i % 9).or_insert(0) += i * 3);
    assert_eq!(
        sorted(back.collect().unwrap()),
        expected.into_iter().collect::<Vec<_>>()
    );
}

/// A checkpoint of `0..10_000` in two parts of two frames each.
fn two_part_checkpoint(ctx: &Context, root: &std::path::Path) -> std::path::PathBuf {
    ctx.set_checkpoint_dir(root).unwrap();
    let r = ctx.range(0, 10_000, 1, 2);
    r.checkpoint().unwrap();
    r.count().unwrap();
    r.checkpoint_path().unwrap()
}

/// Reading the checkpoint back: the error of opening it or of reading it.
fn read_back_error(ctx: &Context, path: &std::path::Path) -> Error {
    match ctx.checkpoint_file::<i64>(path) {
        Err(e) => e,
        Ok(r) => r
            .collect()
            .map(|v| panic!("a damaged checkpoint read back {} records", v.len()))
            .unwrap_err(),
    }
}

fn assert_names_part(err: &Error, part: &str, what: &str) {
    match err.root_cause() {
        Error::CorruptCheckpoint { path, reason } => {
            assert!(path.ends_with(part), "{err}");
            assert!(reason.contains(what), "{err}");
        }
        _ => panic!("not a corrupt checkpoint error: {err}"),
    }
}

#[test]
fn a_checkpoint_part_truncated_to_zero_bytes_is_an_error_not_fewer_records() {
    let (dir, ctx) = (tempfile::tempdir().unwrap(), ctx());
    let path = two_part_checkpoint(&ctx, dir.path());
    std::fs::write(path.join("part-00001"), b"").unwrap();
    assert_names_part(&read_back_error(&ctx, &path), "part-00001", "0 bytes long");
}

#[test]
fn a_checkpoint_part_cut_after_its_first_frame_is_an_error() {
    let (dir, ctx) = (tempfile::tempdir().unwrap(), ctx());
    let path = two_part_checkpoint(&ctx, dir.path());
    let part = path.join("part-00000");
    let bytes = std::fs::read(&part).unwrap();
    let first_frame = 8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert!(first_frame < bytes.len(), "the part has a second frame");
    std::fs::write(&part, &bytes[..first_frame]).unwrap();
    assert_names_part(&read_back_error(&ctx, &path), "part-00000", "bytes long");
}

#[test]
fn a_checkpoint_part_replaced_by_a_copy_of_another_is_an_error_not_duplicates() {
    let (dir, ctx) = (tempfile::tempdir().unwrap(), ctx());
    let path = two_part_checkpoint(&ctx, dir.path());
    std::fs::copy(path.join("part-00000"), path.join("part-00001")).unwrap();
    let err = read_back_error(&ctx, &path);
    // Same length or not, the part cannot pass as itself.
    assert!(
        matches!(err.root_cause(), Error::CorruptCheckpoint { path, .. } if path.ends_with("part-00001")),
        "{err}"
    );
}

#[test]
fn a_checkpoint_part_damaged_at_its_recorded_length_fails_its_whole_file_checksum() {
    let (dir, ctx) = (tempfile::tempdir().unwrap(), ctx());
    let path = two_part_checkpoint(&ctx, dir.path());
    let part = path.join("part-00000");
    let mut bytes = std::fs::read(&part).unwrap();
    // Swap the two frames: every frame is intact, the part is not.
    let first_frame = 8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    bytes.rotate_left(first_frame);
    std::fs::write(&part, &bytes).unwrap();
    assert_names_part(
        &read_back_error(&ctx, &path),
        "part-00000",
        "checksum of part 0",
    );
}

#[test]
fn a_reliable_checkpoint_restores_a_hash_partitioner_so_a_join_needs_no_shuffle() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    ctx.set_checkpoint_dir(dir.path()).unwrap();
    let pairs: Vec<(u32, u32)> = (0..200).map(|k| (k % 23, k)).collect();
    let by_key = ctx
        .parallelize(pairs.clone(), 3)
        .partition_by(spate::Partitioner::hash(4));
    by_key.checkpoint().unwrap();
    by_key.count().unwrap();
    let fresh = Context::builder().parallelism(2).build().unwrap();
    let back = fresh
        .checkpoint_file::<(u32, u32)>(by_key.checkpoint_path().unwrap())
        .unwrap();
    assert_eq!(back.partitioner(), Some(&spate::Partitioner::hash(4)));
    // Restored, so a join with a dataset of the same partitioner is narrow
    // on this side: one shuffle (the other side's), not two.
    let other = fresh
        .parallelize((0..23u32).map(|k| (k, k * 10)).collect(), 2)
        .partition_by(spate::Partitioner::hash(4));
    let joined = back.join(&other);
    let lineage = joined.to_debug_string();
    assert_eq!(lineage.matches("+-").count(), 1, "{lineage}");
    let mut want: Vec<(u32, (u32, u32))> = pairs.iter().map(|&(k, v)| (k, (v, k * 10))).collect();
    want.sort_unstable();
    assert_eq!(sorted(joined.collect().unwrap()), want);
}

#[test]
fn a_custom_partitioner_is_given_back_and_checked_by_name_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    ctx.set_checkpoint_dir(dir.path()).unwrap();
    let tens = || spate::Partitioner::custom("tens", 3, |k: &u32| (*k / 10) as usize);
    let r = ctx
        .parallelize((0..30u32).map(|k| (k, k)).collect(), 2)
        .partition_by(tens());
    r.checkpoint().unwrap();
    r.count().unwrap();
    let path = r.checkpoint_path().unwrap();
    let back = ctx
        .checkpoint_file_partitioned_by::<(u32, u32)>(&path, tens())
        .unwrap();
    assert_eq!(
        back.glom().collect().unwrap(),
        r.glom().collect().unwrap(),
        "the same partitions"
    );
    let four = spate::Partitioner::custom("tens", 4, |k: &u32| (*k / 10) as usize);
    let err = ctx
        .checkpoint_file_partitioned_by::<(u32, u32)>(&path, four)
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m)
            if m.contains("Keyed { name: \"tens\", num_partitions: 3 }")
                && m.contains("Partitioner(tens, 4)")),
        "{err}"
    );
}

#[test]
fn a_local_checkpoint_is_kept_on_disk_when_memory_runs_out_instead_of_being_lost() {
    // Room for a few of the partitions only: a memory-only local checkpoint
    // would lose the evicted ones for good (LostLocalCheckpoint).
    let ctx = Context::builder().memory_limit(64 * 1024).build().unwrap();
    let (counted, computed) = common::counted_range(&ctx, 40_000, 8);
    let r = counted
        .map(|x| (x, format!("value {x}")))
        .local_checkpoint();
    assert_eq!(r.storage_level(), Some(spate::StorageLevel::MemoryAndDisk));
    assert_eq!(r.count().unwrap(), 40_000);
    let info = ctx.storage_info();
    assert!(info[0].disk_partitions >= 1, "{info:?}");
    let sum: i64 = r.map(|(x, _)| x).sum().unwrap();
    assert_eq!(sum, (0..40_000i64).sum::<i64>());
    assert_eq!(computed.value(), 40_000, "computed once");
    let lineage = r.to_debug_string();
    assert!(lineage.contains("[MemoryAndDisk]"), "{lineage}");
    assert!(
        lineage.contains(" | (8) local checkpoint data"),
        "{lineage}"
    );
}
