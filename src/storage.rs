//! Cached partitions of persisted datasets, at four storage levels, with
//! least-recently-used eviction under the context's memory budget.

use crate::codec;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::ids::RddId;
use crate::memory::MemoryBudget;
use crate::runtime::{Event, ListenerBus};
use parking_lot::Mutex;
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a persisted dataset keeps its computed partitions (Spark's levels).
///
/// Cached blocks draw on the context's memory budget, shared with shuffle
/// blocks. When a new block does not fit, the least recently used blocks of
/// *other* datasets are evicted: a memory-and-disk block moves to disk, any
/// other memory block is dropped and recomputed from lineage when next read.
/// A block that still does not fit is not cached (memory-only levels) or goes
/// to disk (memory-and-disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum StorageLevel {
    /// Typed values in memory (Spark's `MEMORY_ONLY`).
    MemoryOnly,
    /// bincode + lz4 bytes in memory (`MEMORY_ONLY_SER`): smaller, costs
    /// decoding on every read.
    MemoryOnlySer,
    /// Typed values in memory, moved to disk when evicted or when they do
    /// not fit (`MEMORY_AND_DISK`).
    MemoryAndDisk,
    /// Encoded on disk only (`DISK_ONLY`).
    DiskOnly,
}

impl StorageLevel {
    fn needs_codec(self) -> bool {
        !matches!(self, StorageLevel::MemoryOnly)
    }
}

/// What [`Context::storage_info`](crate::Context::storage_info) reports for
/// one persisted dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RddStorageInfo {
    /// Dataset id.
    pub rdd: RddId,
    /// Its storage level.
    pub level: StorageLevel,
    /// Its partition count.
    pub partitions: usize,
    /// Partitions held in memory.
    pub memory_partitions: usize,
    /// Partitions held on disk.
    pub disk_partitions: usize,
    /// Bytes charged to the memory budget (estimates for typed blocks).
    pub memory_bytes: usize,
    /// Bytes on disk.
    pub disk_bytes: u64,
}

impl RddStorageInfo {
    /// The fraction of partitions cached, in memory or on disk.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![1, 2, 3, 4], 2).cache()?;
    /// r.take(1)?; // computes the first partition only
    /// assert_eq!(ctx.storage_info()[0].fraction_cached(), 0.5);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn fraction_cached(&self) -> f64 {
        (self.memory_partitions + self.disk_partitions) as f64 / self.partitions.max(1) as f64
    }
}

type AnyBlock = Arc<dyn Any + Send + Sync>;

/// Encodes and decodes the typed blocks of one dataset (set by `persist`).
#[derive(Clone, Copy)]
pub(crate) struct BlockCodec {
    encode: fn(&AnyBlock) -> Result<Vec<u8>>,
    /// Decodes a block; the error says what is wrong with the bytes.
    decode: fn(&[u8]) -> std::result::Result<AnyBlock, String>,
    /// Sampled in-memory size of a typed block.
    estimate: fn(&AnyBlock) -> usize,
    /// Records in a typed block.
    records: fn(&AnyBlock) -> usize,
}

impl BlockCodec {
    pub(crate) fn of<T: Value>() -> Self {
        BlockCodec {
            encode: |block| {
                let records = block
                    .downcast_ref::<Vec<T>>()
                    .expect("a dataset's blocks hold its element type");
                let (mut scratch, mut out) = (Vec::new(), Vec::new());
                for chunk in records.chunks(4096) {
                    codec::write_frame(&chunk, &mut scratch, &mut out)?;
                }
                Ok(out)
            },
            decode: |bytes| {
                let (mut all, mut pos): (Vec<T>, usize) = (Vec::new(), 0);
                while pos < bytes.len() {
                    let (mut frame, used): (Vec<T>, usize) = codec::read_frame(&bytes[pos..])
                        .map_err(|e| format!("at byte {pos}: {e}"))?;
                    all.append(&mut frame);
                    pos += used;
                }
                Ok(Arc::new(all))
            },
            estimate: |block| {
                block
                    .downcast_ref::<Vec<T>>()
                    .map_or(0, |v| crate::memory::estimate_size(v))
            },
            records: |block| block.downcast_ref::<Vec<T>>().map_or(0, Vec::len),
        }
    }
}

#[derive(Clone)]
enum Stored {
    Objects(AnyBlock),
    Bytes(Arc<Vec<u8>>),
    /// Frames alone do not reveal a lost tail: the length and record count
    /// do.
    Disk {
        path: PathBuf,
        len: u64,
        records: usize,
    },
}

/// What a cache lookup found.
pub(crate) enum Cached<T> {
    Hit(Arc<Vec<T>>),
    Miss,
    /// The block was there but is unreadable (missing file, wrong length or
    /// record count, failed checksum): it has been dropped, and the reason
    /// is reported before the partition is recomputed from lineage.
    Lost(String),
}

struct Entry {
    stored: Stored,
    /// Bytes charged to the budget (0 on disk).
    charged: usize,
    last_used: u64,
}

impl Entry {
    /// (bytes in memory, bytes on disk).
    fn sizes(&self) -> (u64, u64) {
        match &self.stored {
            Stored::Disk { len, .. } => (0, *len),
            _ => (self.charged as u64, 0),
        }
    }
}

struct Persisted {
    level: StorageLevel,
    partitions: usize,
    codec: Option<BlockCodec>,
}

#[derive(Default)]
struct State {
    blocks: HashMap<(RddId, usize), Entry>,
    persisted: HashMap<RddId, Persisted>,
    /// Blocks stored at least once since the dataset was persisted: a miss
    /// on one of these is a recomputation.
    stored_once: HashSet<(RddId, usize)>,
    /// On a cluster's driver: the process (rank) that last computed each
    /// persisted partition, so the next task of it can go there.
    computed_at: HashMap<(RddId, usize), u32>,
    clock: u64,
    files: u64,
}

/// Holds cached partitions keyed by (dataset, partition).
pub(crate) struct BlockManager {
    state: Mutex<State>,
    budget: Arc<MemoryBudget>,
    dir: PathBuf,
    /// Where storage events go; posted with no lock of this manager held.
    bus: Arc<ListenerBus>,
}

impl BlockManager {
    pub(crate) fn new(budget: Arc<MemoryBudget>, dir: &Path, bus: Arc<ListenerBus>) -> Self {
        BlockManager {
            state: Mutex::new(State::default()),
            budget,
            dir: dir.to_path_buf(),
            bus,
        }
    }

    /// Reports a block's new place (both sizes 0: gone).
    fn post_block(&self, (rdd, partition): (RddId, usize), (memory_bytes, disk_bytes): (u64, u64)) {
        if self.bus.is_empty() {
            return;
        }
        self.bus.post(Event::BlockUpdated {
            rdd,
            partition,
            memory_bytes,
            disk_bytes,
            memory_used: self.budget.used() as u64,
        });
    }

    /// Records how a dataset is persisted (called by `persist`).
    pub(crate) fn register(
        &self,
        rdd: RddId,
        level: StorageLevel,
        partitions: usize,
        codec: Option<BlockCodec>,
    ) {
        debug_assert!(codec.is_some() || !level.needs_codec());
        self.state.lock().persisted.insert(
            rdd,
            Persisted {
                level,
                partitions,
                codec,
            },
        );
        self.bus.post(Event::RddPersisted {
            rdd,
            level,
            partitions,
        });
    }

    /// The block as typed values, decoding or reading it from disk as needed.
    /// A block that cannot be read back whole is dropped and reported as
    /// [`Cached::Lost`], never returned short.
    pub(crate) fn get<T: Send + Sync + 'static>(&self, rdd: RddId, split: usize) -> Cached<T> {
        let (stored, codec) = {
            let mut st = self.state.lock();
            st.clock += 1;
            let clock = st.clock;
            let codec = st.persisted.get(&rdd).and_then(|p| p.codec);
            let Some(entry) = st.blocks.get_mut(&(rdd, split)) else {
                return Cached::Miss;
            };
            entry.last_used = clock;
            let stored = entry.stored.clone();
            (stored, codec)
        };
        let block = match (stored, codec) {
            (Stored::Objects(o), _) => Ok(o),
            (Stored::Bytes(b), Some(codec)) => (codec.decode)(&b),
            (Stored::Disk { path, len, records }, Some(codec)) => {
                read_disk_block(&path, len, records, codec)
            }
            (_, None) => unreachable!("encoded blocks are stored only with a codec"),
        };
        let lost = match block.map(|b| b.downcast::<Vec<T>>()) {
            Ok(Ok(typed)) => return Cached::Hit(typed),
            Ok(Err(_)) => unreachable!("a dataset's blocks hold its element type"),
            Err(reason) => reason,
        };
        self.remove(rdd, split);
        Cached::Lost(lost)
    }

    /// Stores a computed block at its dataset's level, evicting least
    /// recently used blocks of other datasets if memory is short. Returns
    /// whether the block had been stored before (a recomputation).
    pub(crate) fn put<T: Send + Sync + 'static>(
        &self,
        rdd: RddId,
        split: usize,
        data: Arc<Vec<T>>,
    ) -> Result<bool> {
        let (level, codec) = {
            let st = self.state.lock();
            match st.persisted.get(&rdd) {
                Some(p) => (p.level, p.codec),
                None => return Ok(false),
            }
        };
        // Typed blocks without a codec (plain `cache()`) count their inline size.
        let shallow = std::mem::size_of::<T>() * data.len();
        let records = data.len();
        let block: AnyBlock = data;
        let estimate = codec.map_or(shallow, |c| (c.estimate)(&block));
        let encode = |block: &AnyBlock| -> Result<Vec<u8>> {
            (codec.expect("levels that encode have a codec").encode)(block)
        };
        let entry = match level {
            StorageLevel::MemoryOnly | StorageLevel::MemoryAndDisk => {
                if self.reserve(rdd, estimate)? {
                    Some(Entry {
                        stored: Stored::Objects(block),
                        charged: estimate,
                        last_used: 0,
                    })
                } else if level == StorageLevel::MemoryAndDisk {
                    Some(self.to_disk(encode(&block)?, records)?)
                } else {
                    None
                }
            }
            StorageLevel::MemoryOnlySer => {
                let bytes = encode(&block)?;
                let size = bytes.len();
                self.reserve(rdd, size)?.then(|| Entry {
                    stored: Stored::Bytes(Arc::new(bytes)),
                    charged: size,
                    last_used: 0,
                })
            }
            StorageLevel::DiskOnly => Some(self.to_disk(encode(&block)?, records)?),
        };
        let mut st = self.state.lock();
        let Some(mut entry) = entry else {
            return Ok(false);
        };
        st.clock += 1;
        entry.last_used = st.clock;
        let sizes = entry.sizes();
        if let Some(old) = st.blocks.insert((rdd, split), entry) {
            self.release(old);
        }
        let recomputed = !st.stored_once.insert((rdd, split));
        drop(st);
        self.post_block((rdd, split), sizes);
        Ok(recomputed)
    }

    /// Reserves `bytes` of execution memory (shuffle blocks), evicting
    /// cached blocks if needed, as Spark's unified memory manager lets
    /// execution borrow from storage.
    pub(crate) fn reserve_for_execution(&self, bytes: usize) -> Result<bool> {
        self.reserve(RddId(u64::MAX), bytes)
    }

    /// Reserves `bytes` of memory, evicting LRU blocks of other datasets.
    fn reserve(&self, rdd: RddId, bytes: usize) -> Result<bool> {
        loop {
            if self.budget.try_reserve(bytes) {
                return Ok(true);
            }
            let victim = {
                let st = self.state.lock();
                st.blocks
                    .iter()
                    .filter(|((r, _), e)| *r != rdd && e.charged > 0)
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| *k)
            };
            let Some(key) = victim else { return Ok(false) };
            self.evict(key)?;
        }
    }

    /// Evicts one memory block: to disk for memory-and-disk, else dropped.
    fn evict(&self, key: (RddId, usize)) -> Result<()> {
        let (entry, level, codec) = {
            let mut st = self.state.lock();
            let Some(entry) = st.blocks.remove(&key) else {
                return Ok(());
            };
            let p = st.persisted.get(&key.0);
            (entry, p.map(|p| p.level), p.and_then(|p| p.codec))
        };
        let mut sizes = (0, 0);
        if let (Some(StorageLevel::MemoryAndDisk), Some(codec), Stored::Objects(o)) =
            (level, codec, &entry.stored)
        {
            let disk = self.to_disk((codec.encode)(o)?, (codec.records)(o))?;
            sizes = disk.sizes();
            self.state.lock().blocks.insert(
                key,
                Entry {
                    last_used: entry.last_used,
                    ..disk
                },
            );
        }
        self.release(entry);
        self.post_block(key, sizes);
        Ok(())
    }

    fn to_disk(&self, bytes: Vec<u8>, records: usize) -> Result<Entry> {
        let n = {
            let mut st = self.state.lock();
            st.files += 1;
            st.files
        };
        let path = self.dir.join(format!("block_{n}.data"));
        std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
        Ok(Entry {
            stored: Stored::Disk {
                path,
                len: bytes.len() as u64,
                records,
            },
            charged: 0,
            last_used: 0,
        })
    }

    fn release(&self, entry: Entry) {
        self.budget.release(entry.charged);
        if let Stored::Disk { path, .. } = entry.stored {
            crate::cleanup::remove_file(&path);
        }
    }

    /// Drops one cached partition (lost, evicted or dropped by a fault).
    pub(crate) fn remove(&self, rdd: RddId, split: usize) -> bool {
        let removed = self.state.lock().blocks.remove(&(rdd, split));
        let was = removed.map(|e| self.release(e)).is_some();
        if was {
            self.post_block((rdd, split), (0, 0));
        }
        was
    }

    /// On a cluster's driver: partition `split` of the persisted `rdd` was
    /// just computed (so cached, unless it did not fit) on process `rank`.
    pub(crate) fn note_computed_at(&self, rdd: RddId, split: usize, rank: u32) {
        self.state.lock().computed_at.insert((rdd, split), rank);
    }

    /// Where partition `split` of `rdd` was last computed, if anywhere.
    pub(crate) fn computed_at(&self, rdd: RddId, split: usize) -> Option<u32> {
        self.state.lock().computed_at.get(&(rdd, split)).copied()
    }

    /// Forgets a dataset's blocks (unpersist, or the dataset was dropped).
    pub(crate) fn remove_rdd(&self, rdd: RddId) {
        let (was_persisted, removed): (bool, Vec<Entry>) = {
            let mut st = self.state.lock();
            let was_persisted = st.persisted.remove(&rdd).is_some();
            st.stored_once.retain(|(r, _)| *r != rdd);
            st.computed_at.retain(|(r, _), _| *r != rdd);
            let keys: Vec<_> = st
                .blocks
                .keys()
                .filter(|(r, _)| *r == rdd)
                .copied()
                .collect();
            let removed = keys
                .into_iter()
                .filter_map(|k| st.blocks.remove(&k))
                .collect();
            (was_persisted, removed)
        };
        removed.into_iter().for_each(|e| self.release(e));
        if was_persisted {
            self.bus.post(Event::RddUnpersisted { rdd });
        }
    }

    pub(crate) fn cached_partitions(&self, rdd: RddId) -> usize {
        self.state
            .lock()
            .blocks
            .keys()
            .filter(|(r, _)| *r == rdd)
            .count()
    }

    pub(crate) fn info(&self) -> Vec<RddStorageInfo> {
        let st = self.state.lock();
        let mut out: Vec<RddStorageInfo> = st
            .persisted
            .iter()
            .map(|(rdd, p)| {
                let mut info = RddStorageInfo {
                    rdd: *rdd,
                    level: p.level,
                    partitions: p.partitions,
                    memory_partitions: 0,
                    disk_partitions: 0,
                    memory_bytes: 0,
                    disk_bytes: 0,
                };
                for ((r, _), e) in st.blocks.iter().filter(|((r, _), _)| r == rdd) {
                    debug_assert_eq!(r, rdd);
                    match &e.stored {
                        Stored::Disk { len, .. } => {
                            info.disk_partitions += 1;
                            info.disk_bytes += len;
                        }
                        _ => {
                            info.memory_partitions += 1;
                            info.memory_bytes += e.charged;
                        }
                    }
                }
                info
            })
            .collect();
        out.sort_by_key(|i| i.rdd);
        out
    }
}

/// Reads a block from disk and checks it is whole: the file's length, every
/// frame's checksum, the record count.
fn read_disk_block(
    path: &Path,
    len: u64,
    records: usize,
    codec: BlockCodec,
) -> std::result::Result<AnyBlock, String> {
    let at = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{at}: {e}"))?;
    if bytes.len() as u64 != len {
        return Err(format!(
            "{at} is {} bytes long, {len} were written",
            bytes.len()
        ));
    }
    let block = (codec.decode)(&bytes).map_err(|e| format!("{at}: {e}"))?;
    let found = (codec.records)(&block);
    if found != records {
        return Err(format!(
            "{at} holds {found} records, {records} were written"
        ));
    }
    Ok(block)
}

impl Drop for BlockManager {
    fn drop(&mut self) {
        for (_, e) in std::mem::take(&mut self.state.get_mut().blocks) {
            self.budget.release(e.charged);
            if let Stored::Disk { path, .. } = e.stored {
                crate::cleanup::remove_file(&path);
            }
        }
    }
}
