//! Checkpoints: writing a dataset's partitions to reliable storage (or
//! keeping them in memory, for local checkpoints) and truncating its
//! lineage, so long lineages and iterative jobs stay cheap to recover.
//!
//! Layout of a checkpoint directory (`<checkpoint dir>/rdd-<id>/`):
//! `_metadata` (one frame: format version, element type name, and per part
//! its index, record count, byte length and CRC-32 of the whole file) and
//! `part-NNNNN` (the partition's records as checksummed frames). Frames
//! alone cannot tell a part that lost its tail or was swapped for another;
//! the per-part entries can, so every mismatch is an error naming the part.

use super::{ChunkIter, Compute, IterChunks, NewRdd, Rdd, for_each_chunk};
use crate::codec;
use crate::context::Context;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::runtime::TaskContext;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use crate::lineage::PendingCheckpoint;
use crate::partitioner::{Partitioner, SavedPartitioner};

/// 3: the metadata records the partitioner.
const FORMAT_VERSION: u32 = 3;
const FRAME_RECORDS: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Metadata {
    version: u32,
    type_name: String,
    parts: Vec<PartInfo>,
    partitioner: Option<SavedPartitioner>,
}

/// What a reader checks a part file against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PartInfo {
    index: usize,
    records: u64,
    bytes: u64,
    crc32: u32,
}

fn part_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("part-{index:05}"))
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl<T: Value> Rdd<T> {
    /// Marks the dataset for checkpointing: after the next job that computes
    /// it, its partitions are written (bincode + lz4 frames with checksums)
    /// under the context's checkpoint directory and its lineage is truncated,
    /// so later jobs and recoveries read the files instead of recomputing
    /// the parents. Cache the dataset too, or the checkpoint recomputes it.
    ///
    /// An error if no checkpoint directory is set.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// ctx.set_checkpoint_dir(dir.path()).unwrap();
    /// let r = ctx.range(0, 10, 1, 2).map(|x| x * 2).cache().unwrap();
    /// r.checkpoint().unwrap();
    /// assert_eq!(r.sum().unwrap(), 90);
    /// assert!(r.is_checkpointed());
    /// // The lineage is truncated: the checkpoint data is the only parent.
    /// let lineage = r.to_debug_string();
    /// assert_eq!(lineage.lines().count(), 2, "{lineage}");
    /// assert!(lineage.contains(" | (2) reliable checkpoint data at "), "{lineage}");
    /// ```
    pub fn checkpoint(&self) -> Result<()> {
        let root = self.context().checkpoint_dir().ok_or_else(|| {
            Error::InvalidArgument("checkpoint() needs Context::set_checkpoint_dir first".into())
        })?;
        let dir = root.join(format!("rdd-{}", self.id()));
        let weak: Weak<super::Node<T>> = Arc::downgrade(&self.node);
        let pending: PendingCheckpoint = Arc::new(move || {
            let Some(node) = weak.upgrade() else {
                return Ok(());
            };
            let rdd = Rdd { node };
            let parts = write_checkpoint(&rdd, &dir)?;
            rdd.truncate_lineage(CheckpointOp::<T> {
                dir: dir.clone(),
                parts,
                _t: std::marker::PhantomData,
            });
            *rdd.node.base.checkpoint_path.lock() = Some(dir.clone());
            Ok(())
        });
        *self.node.base.pending_checkpoint.lock() = Some(pending);
        Ok(())
    }

    /// Keeps the partitions in the block manager and truncates the lineage
    /// after the next job (Spark's `localCheckpoint`): fast, but a lost
    /// block can no longer be recomputed, and reading it is then an error.
    /// As in Spark, the blocks are kept in memory and on disk
    /// ([`StorageLevel::MemoryAndDisk`](crate::StorageLevel::MemoryAndDisk),
    /// so eviction moves them to disk instead of losing them); a level the
    /// dataset already has gains disk (`DiskOnly` stays). The lineage string
    /// shows the level and, after the job, the local checkpoint data as the
    /// only parent.
    ///
    /// ```
    /// use spate::StorageLevel;
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 10, 1, 2).map(|x| x + 1).local_checkpoint();
    /// assert_eq!(r.storage_level(), Some(StorageLevel::MemoryAndDisk));
    /// assert_eq!(r.sum().unwrap(), 55);
    /// let lineage = r.to_debug_string();
    /// assert!(lineage.starts_with("(2) map["), "{lineage}");
    /// assert!(lineage.contains("[MemoryAndDisk]"), "{lineage}");
    /// assert!(lineage.contains(" | (2) local checkpoint data"), "{lineage}");
    /// assert_eq!(lineage.lines().count(), 2, "{lineage}");
    /// ```
    pub fn local_checkpoint(&self) -> Rdd<T> {
        use crate::StorageLevel::{DiskOnly, MemoryAndDisk};
        let level = match self.storage_level() {
            Some(DiskOnly) => DiskOnly,
            _ => MemoryAndDisk,
        };
        if self.storage_level() != Some(level) {
            self.force_level(level, crate::storage::BlockCodec::of::<T>());
        }
        let this = self.clone();
        let weak: Weak<super::Node<T>> = Arc::downgrade(&this.node);
        let pending: PendingCheckpoint = Arc::new(move || {
            let Some(node) = weak.upgrade() else {
                return Ok(());
            };
            let rdd = Rdd { node };
            // Every partition must be in the cache before the lineage goes.
            rdd.run_partitions("local_checkpoint", |it| for_each_chunk(it, |_| Ok(())))?;
            rdd.truncate_lineage(LocalCheckpointOp { rdd: rdd.id() });
            Ok(())
        });
        *this.node.base.pending_checkpoint.lock() = Some(pending);
        this
    }

    /// Whether the lineage has been truncated by a checkpoint.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir().unwrap();
    /// ctx.set_checkpoint_dir(dir.path())?;
    /// let r = ctx.parallelize(vec![1, 2], 2).map(|x| x + 1);
    /// r.checkpoint()?;
    /// assert!(!r.is_checkpointed()); // written by the next job
    /// r.count()?;
    /// assert!(r.is_checkpointed());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn is_checkpointed(&self) -> bool {
        self.node
            .base
            .checkpointed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the lineage was truncated by
    /// [`local_checkpoint`](Rdd::local_checkpoint) (its blocks are then the
    /// only copy of the data).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 10, 1, 2).map(|x| x + 1).local_checkpoint();
    /// assert!(!r.is_locally_checkpointed(), "written by the next job");
    /// r.count().unwrap();
    /// assert!(r.is_checkpointed() && r.is_locally_checkpointed());
    /// ```
    pub fn is_locally_checkpointed(&self) -> bool {
        self.is_checkpointed() && self.checkpoint_path().is_none()
    }

    /// The directory a reliable checkpoint was written to, for
    /// [`Context::checkpoint_file`].
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir().unwrap();
    /// ctx.set_checkpoint_dir(dir.path())?;
    /// let r = ctx.parallelize(vec![1, 2], 2);
    /// r.checkpoint()?;
    /// r.count()?;
    /// let path = r.checkpoint_path().unwrap();
    /// assert!(path.starts_with(dir.path().canonicalize().unwrap()));
    /// // Another program (or a restart) reads it back.
    /// assert_eq!(ctx.checkpoint_file::<i32>(&path)?.collect()?, [1, 2]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn checkpoint_path(&self) -> Option<PathBuf> {
        self.node.base.checkpoint_path.lock().clone()
    }
}

/// Writes the parts and then the metadata; returns the parts' entries.
fn write_checkpoint<T: Value>(rdd: &Rdd<T>, dir: &Path) -> Result<Vec<PartInfo>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let all: Vec<usize> = (0..rdd.num_partitions()).collect();
    // Each task writes its own part file (temp file, then rename) and
    // returns what the metadata records of it.
    let parts = crate::rdd::run_job(rdd.context(), rdd, &all, "checkpoint", |tc, it| {
        let (bytes, records) = drain_frames(it)?;
        let (split, attempt) = (tc.id.partition, tc.id.attempt);
        let tmp = dir.join(format!(".part-{split:05}-{attempt}.tmp"));
        let path = part_path(dir, split);
        std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(PartInfo {
            index: split,
            records,
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
        })
    })?;
    let meta = Metadata {
        version: FORMAT_VERSION,
        type_name: std::any::type_name::<T>().to_string(),
        parts,
        partitioner: rdd.partitioner().map(Partitioner::saved),
    };
    rdd.context().on_driver("checkpoint", || {
        let (mut scratch, mut bytes) = (Vec::new(), Vec::new());
        codec::write_frame(&meta, &mut scratch, &mut bytes)?;
        let path = dir.join("_metadata");
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
    })?;
    Ok(meta.parts)
}

/// Encodes a partition as checksummed frames; returns them and the record count.
fn drain_frames<T: Value>(it: ChunkIter<T>) -> Result<(Vec<u8>, u64)> {
    let (mut scratch, mut out, mut pending) = (Vec::new(), Vec::new(), Vec::new());
    let mut records = 0u64;
    for_each_chunk(it, |b| {
        records += b.len() as u64;
        pending.append(b);
        if pending.len() >= FRAME_RECORDS {
            codec::write_frame(&pending, &mut scratch, &mut out)?;
            pending.clear();
        }
        Ok(())
    })?;
    if !pending.is_empty() {
        codec::write_frame(&pending, &mut scratch, &mut out)?;
    }
    Ok((out, records))
}

/// Reads partitions back from a checkpoint directory.
struct CheckpointOp<T> {
    dir: PathBuf,
    parts: Vec<PartInfo>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Value> Compute<T> for CheckpointOp<T> {
    fn compute(&self, split: usize, _: &TaskContext) -> Result<ChunkIter<T>> {
        let info = self.parts[split];
        let path = part_path(&self.dir, split);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        check_part(&path, &info, bytes.len() as u64)?;
        let crc = crc32fast::hash(&bytes);
        if crc != info.crc32 {
            return Err(corrupt(
                &path,
                format!(
                    "checksum of part {split} is {crc:08x}, the metadata says {:08x} \
                     (damaged, or a copy of another part)",
                    info.crc32
                ),
            ));
        }
        let mut records = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let (mut frame, used): (Vec<T>, usize) = codec::read_frame(&bytes[pos..])
                .map_err(|reason| corrupt(&path, format!("at byte {pos}: {reason}")))?;
            records.append(&mut frame);
            pos += used;
        }
        if records.len() as u64 != info.records {
            return Err(corrupt(
                &path,
                format!(
                    "part {split} holds {} records, the metadata says {}",
                    records.len(),
                    info.records
                ),
            ));
        }
        Ok(Box::new(IterChunks(records.into_iter())))
    }
}

/// Checks a part file's length against its metadata entry.
fn check_part(path: &Path, info: &PartInfo, len: u64) -> Result<()> {
    if len != info.bytes {
        return Err(corrupt(
            path,
            format!(
                "part {} is {len} bytes long, the metadata says {} (truncated or replaced)",
                info.index, info.bytes
            ),
        ));
    }
    Ok(())
}

/// Reads partitions of a local checkpoint from the cache; a lost block
/// cannot be recomputed.
struct LocalCheckpointOp {
    rdd: super::RddId,
}

impl<T: Value> Compute<T> for LocalCheckpointOp {
    fn compute(&self, split: usize, _: &TaskContext) -> Result<ChunkIter<T>> {
        Err(Error::LostLocalCheckpoint {
            rdd: self.rdd,
            partition: split,
        })
    }
}

impl Context {
    /// Reads a dataset checkpointed by [`Rdd::checkpoint`] (possibly by
    /// another process) from its directory ([`Rdd::checkpoint_path`]). The
    /// element type must be the one that was written; a foreign, corrupt or
    /// incomplete directory is an error, never a panic. Each part is checked
    /// against the metadata (length when opened; record count and CRC-32 of
    /// the whole part when read), so a truncated or swapped part is an
    /// [`Error::CorruptCheckpoint`] naming it.
    ///
    /// The type is compared by its [`std::any::type_name`], which the
    /// compiler does not promise to keep stable: a checkpoint written by a
    /// build with another compiler version may be refused.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// ctx.set_checkpoint_dir(dir.path()).unwrap();
    /// let r = ctx.range(0, 100, 1, 4);
    /// r.checkpoint().unwrap();
    /// r.count().unwrap();
    /// let back = ctx.checkpoint_file::<i64>(r.checkpoint_path().unwrap()).unwrap();
    /// assert_eq!(back.sum().unwrap(), 4950);
    /// assert!(ctx.checkpoint_file::<u32>(r.checkpoint_path().unwrap()).is_err());
    /// ```
    pub fn checkpoint_file<T: Value>(&self, dir: impl AsRef<Path>) -> Result<Rdd<T>> {
        self.checkpoint_file_with(dir.as_ref(), None)
    }

    /// [`checkpoint_file`](Context::checkpoint_file) of a dataset written
    /// with a custom or range partitioner: the checkpoint records such a
    /// partitioner's name and partition count but cannot hold its function,
    /// so the reader gives it back. A partitioner whose name or count is not
    /// the recorded one is an [`Error::InvalidArgument`] naming both. (A
    /// hash partitioner is restored by `checkpoint_file` itself.)
    ///
    /// ```
    /// use spate::Partitioner;
    /// let ctx = spate::Context::new().unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// ctx.set_checkpoint_dir(dir.path()).unwrap();
    /// let by_tens = || Partitioner::custom("tens", 3, |k: &u32| (*k / 10) as usize);
    /// let r = ctx.parallelize((0..30u32).map(|k| (k, k)).collect(), 2).partition_by(by_tens());
    /// r.checkpoint().unwrap();
    /// r.count().unwrap();
    /// let path = r.checkpoint_path().unwrap();
    /// assert_eq!(ctx.checkpoint_file::<(u32, u32)>(&path).unwrap().partitioner(), None);
    /// let back = ctx.checkpoint_file_partitioned_by::<(u32, u32)>(&path, by_tens()).unwrap();
    /// assert_eq!(format!("{:?}", back.partitioner().unwrap()), "Partitioner(tens, 3)");
    /// let other = Partitioner::custom("other", 3, |k: &u32| *k as usize);
    /// assert!(ctx.checkpoint_file_partitioned_by::<(u32, u32)>(&path, other).is_err());
    /// ```
    pub fn checkpoint_file_partitioned_by<T: Value>(
        &self,
        dir: impl AsRef<Path>,
        partitioner: Partitioner,
    ) -> Result<Rdd<T>> {
        self.checkpoint_file_with(dir.as_ref(), Some(partitioner))
    }

    /// [`checkpoint_file`](Context::checkpoint_file), with the partitioner
    /// the caller knows the data was written with, if any.
    pub(crate) fn checkpoint_file_with<T: Value>(
        &self,
        dir: &Path,
        partitioner: Option<Partitioner>,
    ) -> Result<Rdd<T>> {
        let meta_path = dir.join("_metadata");
        let bytes = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        let (meta, _): (Metadata, usize) =
            codec::read_frame(&bytes).map_err(|r| corrupt(&meta_path, r))?;
        if meta.version != FORMAT_VERSION {
            return Err(corrupt(
                &meta_path,
                format!("format version {} is not {FORMAT_VERSION}", meta.version),
            ));
        }
        let want = std::any::type_name::<T>();
        if meta.type_name != want {
            return Err(corrupt(
                &meta_path,
                format!(
                    "holds {}, not {want} (types are compared by name as this compiler \
                     spells them)",
                    meta.type_name
                ),
            ));
        }
        // Cheap checks now (every part there, at its recorded length);
        // checksums and record counts when each part is read.
        for (i, info) in meta.parts.iter().enumerate() {
            let part = part_path(dir, i);
            if info.index != i {
                return Err(corrupt(
                    &meta_path,
                    format!("entry {i} describes part {}", info.index),
                ));
            }
            let len = match std::fs::metadata(&part) {
                Ok(m) if m.is_file() => m.len(),
                Ok(_) => return Err(corrupt(&part, "partition file is not a regular file")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(corrupt(&part, "partition file is missing"));
                }
                Err(e) => return Err(Error::io(&part, e)),
            };
            check_part(&part, info, len)?;
        }
        let num_partitions = meta.parts.len();
        let partitioner = match (partitioner, &meta.partitioner) {
            (Some(given), Some(saved)) if given.saved() != *saved => {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint at {} was partitioned by {saved:?}, not by {given:?}",
                    dir.display()
                )));
            }
            (Some(given), _) => Some(given),
            (None, saved) => saved.as_ref().and_then(SavedPartitioner::restore),
        }
        .filter(|p| p.num_partitions() == num_partitions);
        let spec = NewRdd {
            op_name: "checkpoint_file",
            num_partitions,
            deps: Vec::new(),
            partitioner,
        };
        let op = CheckpointOp::<T> {
            dir: dir.to_path_buf(),
            parts: meta.parts,
            _t: std::marker::PhantomData,
        };
        let rdd = Rdd::from_op(self, spec, op);
        *rdd.node.base.checkpoint_path.lock() = Some(dir.to_path_buf());
        rdd.node
            .base
            .checkpointed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(rdd)
    }
}

/// Runs the pending checkpoints in the lineage of `root`: a marked dataset
/// is checkpointed (and its ancestors not visited), as Spark does after a
/// job.
pub(crate) fn run_pending(root: &Arc<dyn super::AnyRdd>) -> Result<()> {
    let mut stack = vec![root.clone()];
    let mut seen = std::collections::HashSet::new();
    let mut todo: Vec<PendingCheckpoint> = Vec::new();
    while let Some(r) = stack.pop() {
        let base = r.base();
        if !seen.insert(base.id) {
            continue;
        }
        if let Some(p) = base.pending_checkpoint.lock().take() {
            todo.push(p);
            continue;
        }
        for dep in base.deps.read().iter() {
            match dep {
                super::Dependency::Narrow(p) => stack.push(p.clone()),
                super::Dependency::Shuffle(s) => stack.push(s.parent()),
            }
        }
    }
    todo.iter().try_for_each(|p| p())
}
