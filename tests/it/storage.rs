//! Storage levels, LRU eviction under the memory budget, storage info.

use crate::common;
use crate::common::sorted;
use spate::{Context, Event, EventLog, StorageLevel};
use std::sync::Arc;

fn data() -> Vec<(String, u64)> {
    (0..2000u64)
        .map(|i| (format!("key-{i:05}-padding-to-be-long"), i))
        .collect()
}

#[test]
fn every_storage_level_round_trips() {
    for level in [
        StorageLevel::MemoryOnly,
        StorageLevel::MemoryOnlySer,
        StorageLevel::MemoryAndDisk,
        StorageLevel::DiskOnly,
    ] {
        let ctx = common::ctx();
        let computed = ctx.sum_accumulator::<u64>("computed");
        let c = computed.clone();
        let r = ctx
            .parallelize(data(), 4)
            .map(move |x| {
                c.add(1);
                x
            })
            .persist(level)
            .unwrap();
        assert_eq!(r.collect().unwrap(), data(), "{level:?}");
        assert_eq!(r.collect().unwrap(), data(), "{level:?} read back");
        assert_eq!(computed.value(), 2000, "{level:?}: computed once");
        let info = ctx.storage_info();
        assert_eq!(info.len(), 1);
        let i = &info[0];
        assert_eq!(
            (i.level, i.partitions, i.fraction_cached()),
            (level, 4, 1.0)
        );
        match level {
            StorageLevel::DiskOnly => {
                assert!(i.disk_partitions == 4 && i.disk_bytes > 0 && i.memory_bytes == 0)
            }
            _ => assert!(i.memory_partitions == 4 && i.memory_bytes > 0),
        }
        let r = r.unpersist();
        assert!(ctx.storage_info().is_empty());
        assert_eq!(ctx.memory_usage().used, 0, "unpersist releases the memory");
        drop(r);
    }
}

#[test]
fn serialized_blocks_are_smaller_than_typed_ones() {
    let ctx = common::ctx();
    let a = ctx
        .parallelize(data(), 2)
        .persist(StorageLevel::MemoryOnly)
        .unwrap();
    let b = ctx
        .parallelize(data(), 2)
        .persist(StorageLevel::MemoryOnlySer)
        .unwrap();
    a.count().unwrap();
    b.count().unwrap();
    let info = ctx.storage_info();
    assert!(info[1].memory_bytes < info[0].memory_bytes, "{info:?}");
}

/// The memory one `data()` dataset takes when cached as typed values.
fn one_dataset_bytes() -> usize {
    let probe = common::ctx();
    let p = probe
        .parallelize(data(), 4)
        .persist(StorageLevel::MemoryOnly)
        .unwrap();
    p.count().unwrap();
    probe.storage_info()[0].memory_bytes
}

/// A persisted `data()` dataset that counts how often its elements are computed.
fn counted(
    ctx: &Context,
    level: StorageLevel,
) -> (spate::Rdd<(String, u64)>, spate::Accumulator<u64>) {
    let computed = ctx.sum_accumulator::<u64>("computed");
    let c = computed.clone();
    let rdd = ctx
        .parallelize(data(), 4)
        .map(move |x| {
            c.add(1);
            x
        })
        .persist(level)
        .unwrap();
    (rdd, computed)
}

fn small_ctx(limit: usize) -> (Context, Arc<EventLog>) {
    common::logged(Context::builder().memory_limit(limit))
}

#[test]
fn least_recently_used_blocks_are_evicted_and_recomputed_from_lineage() {
    // Room for about one dataset's blocks.
    let one = one_dataset_bytes();
    let (ctx, log) = small_ctx(one + one / 2);
    let (a, computed) = counted(&ctx, StorageLevel::MemoryOnly);
    let b = ctx
        .parallelize(data(), 4)
        .persist(StorageLevel::MemoryOnly)
        .unwrap();
    a.count().unwrap();
    assert_eq!(ctx.storage_info()[0].memory_partitions, 4);
    b.count().unwrap();
    let info = ctx.storage_info();
    assert_eq!(info[1].memory_partitions, 4, "the newer dataset is cached");
    let evicted = 4 - info[0].memory_partitions;
    assert!(
        evicted >= 1,
        "the older dataset lost blocks to it: {info:?}"
    );
    log.clear();
    assert_eq!(sorted(a.collect().unwrap()), sorted(data()));
    let recomputed = log
        .events()
        .iter()
        .filter(|e| matches!(e, Event::PartitionRecomputed { .. }))
        .count();
    assert_eq!(
        recomputed, evicted,
        "exactly the evicted partitions are recomputed"
    );
    assert_eq!(computed.value(), 2000 + 500 * evicted as u64);
    assert!(ctx.memory_usage().used <= ctx.memory_usage().limit);
}

#[test]
fn memory_and_disk_blocks_move_to_disk_instead_of_being_dropped() {
    let one = one_dataset_bytes();
    let (ctx, _log) = small_ctx(one + one / 2);
    let (a, computed) = counted(&ctx, StorageLevel::MemoryAndDisk);
    let b = ctx
        .parallelize(data(), 4)
        .persist(StorageLevel::MemoryAndDisk)
        .unwrap();
    a.count().unwrap();
    b.count().unwrap();
    let info = ctx.storage_info();
    assert!(info[0].disk_partitions >= 1, "{info:?}");
    assert_eq!(info[0].fraction_cached(), 1.0);
    assert_eq!(sorted(a.collect().unwrap()), sorted(data()));
    assert_eq!(
        computed.value(),
        2000,
        "nothing recomputed: evicted blocks were read from disk"
    );
}

#[test]
fn a_block_too_big_for_memory_only_is_not_cached_but_the_job_succeeds() {
    let (ctx, _log) = small_ctx(0);
    let r = ctx
        .parallelize(data(), 3)
        .persist(StorageLevel::MemoryOnly)
        .unwrap();
    assert_eq!(r.count().unwrap(), 2000);
    assert_eq!(ctx.storage_info()[0].memory_partitions, 0);
    let d = ctx
        .parallelize(data(), 3)
        .persist(StorageLevel::MemoryAndDisk)
        .unwrap();
    assert_eq!(d.count().unwrap(), 2000);
    assert_eq!(
        ctx.storage_info()[1].disk_partitions,
        3,
        "memory-and-disk falls back to disk"
    );
}

#[test]
fn dropping_a_persisted_dataset_frees_its_blocks() {
    let ctx = common::ctx();
    let r = ctx
        .parallelize(data(), 4)
        .persist(StorageLevel::DiskOnly)
        .unwrap();
    r.count().unwrap();
    let files = || std::fs::read_dir(ctx.scratch_dir()).unwrap().count();
    assert_eq!(files(), 4);
    drop(r);
    assert_eq!(files(), 0);
    assert!(ctx.storage_info().is_empty());
}

#[test]
fn shuffle_blocks_may_evict_cached_blocks() {
    let one = one_dataset_bytes();
    let (ctx, log) = small_ctx(one + one / 4);
    let cached = ctx
        .parallelize(data(), 4)
        .persist(StorageLevel::MemoryOnly)
        .unwrap();
    cached.count().unwrap();
    assert_eq!(ctx.storage_info()[0].memory_partitions, 4);
    let grouped = ctx
        .parallelize(data(), 4)
        .map(|(k, v)| (v % 100, k))
        .group_by_key();
    assert_eq!(grouped.count().unwrap(), 100);
    assert!(
        ctx.storage_info()[0].memory_partitions < 4,
        "execution took memory from storage"
    );
    assert!(log.total_metrics().shuffle_blocks_in_memory > 0);
}

#[test]
fn job_metrics_report_the_peak_memory_of_cached_blocks() {
    let ctx = common::ctx();
    let log = Arc::new(EventLog::default());
    ctx.add_listener(log.clone());
    let r = ctx
        .parallelize(data(), 4)
        .persist(StorageLevel::MemoryOnly)
        .unwrap();
    r.count().unwrap();
    let cached = ctx.storage_info()[0].memory_bytes as u64;
    assert!(cached > 0);
    assert!(
        log.job_metrics().peak_memory >= cached,
        "{:?}",
        log.job_metrics()
    );
}

/// The one block file of a single-partition dataset persisted on disk.
fn the_block_file(ctx: &Context) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(ctx.scratch_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".data"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn a_damaged_or_missing_disk_block_is_dropped_and_recomputed_never_read_short() {
    type Damage = fn(&std::path::Path);
    let damages: [(&str, Damage); 3] = [
        ("cut after its first frame", |p| {
            let bytes = std::fs::read(p).unwrap();
            let first = 8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
            assert!(first < bytes.len(), "the block has several frames");
            std::fs::write(p, &bytes[..first]).unwrap();
        }),
        ("a flipped byte", |p| {
            let mut bytes = std::fs::read(p).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x5A;
            std::fs::write(p, bytes).unwrap();
        }),
        ("deleted", |p| std::fs::remove_file(p).unwrap()),
    ];
    for level in [StorageLevel::DiskOnly, StorageLevel::MemoryAndDisk] {
        for (what, damage) in damages {
            // A budget of 1 byte sends every memory-and-disk block to disk.
            let (ctx, log) = common::logged(Context::builder().memory_limit(1));
            let (counted, computed) = common::counted_range(&ctx, 10_000, 1);
            let r = counted.persist(level).unwrap();
            assert_eq!(r.sum().unwrap(), 49_995_000);
            let block = the_block_file(&ctx);
            damage(&block);
            assert_eq!(r.sum().unwrap(), 49_995_000, "{level:?}, {what}");
            assert_eq!(
                computed.value(),
                20_000,
                "recomputed once: {level:?}, {what}"
            );
            let lost: Vec<String> = log
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::CachedBlockLost { reason, .. } => Some(reason),
                    _ => None,
                })
                .collect();
            assert_eq!(lost.len(), 1, "{level:?}, {what}: {lost:?}");
            assert!(
                lost[0].contains(&*block.to_string_lossy()),
                "the reason names the file: {}",
                lost[0]
            );
            // The recomputed block is stored again and read from the cache.
            assert_eq!(r.count().unwrap(), 10_000);
            assert_eq!(computed.value(), 20_000, "{level:?}, {what}");
        }
    }
}

#[test]
fn a_storage_level_once_assigned_does_not_change_until_unpersisted() {
    let ctx = common::ctx();
    let r = ctx.parallelize(data(), 3);
    let same = r.persist(StorageLevel::MemoryOnlySer).unwrap();
    assert_eq!(same.id(), r.id(), "persist returns the dataset itself");
    assert!(
        r.persist(StorageLevel::MemoryOnlySer).is_ok(),
        "same level again"
    );
    for other in [StorageLevel::MemoryOnly, StorageLevel::DiskOnly] {
        let err = r.persist(other).unwrap_err();
        assert!(
            matches!(&err, spate::Error::InvalidArgument(m)
                if m.contains(&format!("dataset {} is persisted at MemoryOnlySer", r.id()))
                    && m.contains(&format!("{other:?}"))),
            "{err}"
        );
    }
    assert!(r.cache().is_err(), "cache is persist(MemoryOnly)");
    assert_eq!(r.storage_level(), Some(StorageLevel::MemoryOnlySer));
    assert_eq!(r.count().unwrap(), 2000);
    assert_eq!(ctx.storage_info()[0].level, StorageLevel::MemoryOnlySer);
    r.unpersist();
    r.persist(StorageLevel::DiskOnly).unwrap();
    assert_eq!(sorted(r.collect().unwrap()), sorted(data()));
    assert_eq!(ctx.storage_info()[0].level, StorageLevel::DiskOnly);
    assert_eq!(ctx.storage_info()[0].disk_partitions, 3);
}
