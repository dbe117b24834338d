//! Where map outputs live between the map and the reduce stage, and across
//! jobs: shuffle outputs are reused until their dataset is dropped.

use crate::fault::ShuffleLoss;
use crate::ids::ShuffleId;
use crate::memory::MemoryBudget;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// One reduce partition's share of one map output (never empty: empty
/// shares are not stored).
pub(crate) enum Block {
    /// Typed records, `Arc<Vec<X>>` behind `Any`.
    Memory {
        data: Arc<dyn Any + Send + Sync>,
        records: u64,
    },
    /// Checksummed frames in one or more segments of the map's files
    /// (several when the map task spilled).
    Disk { segments: Vec<Segment> },
}

/// A byte range of one of a map output's files.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    /// Index into `MapOutput::files`.
    pub(crate) file: usize,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Everything one map task produced: a block per reduce partition that
/// got records. Empty shares cost nothing, so n maps into n reduce
/// partitions cost memory by the data, not by n².
pub(crate) struct MapOutput {
    /// Non-empty blocks, sorted by reduce partition.
    pub(crate) blocks: Vec<(usize, Block)>,
    /// The number of reduce partitions.
    pub(crate) reduces: usize,
    /// The files holding the disk blocks (spills, then the final file).
    pub(crate) files: Vec<PathBuf>,
    /// Memory reserved from the budget for the in-memory blocks.
    pub(crate) reserved: usize,
    pub(crate) budget: Arc<MemoryBudget>,
    /// Set by fault injection: in-memory blocks then read as lost.
    pub(crate) damaged: Mutex<Option<ShuffleLoss>>,
    /// Encodes an in-memory block (`Vec<X>` behind `Any`) as frames, for a
    /// reducer in another process; set by the writer, which knows `X`.
    pub(crate) encode: EncodeBlock,
}

/// Encodes a typed in-memory block as checksummed frames appended to `out`.
pub(crate) type EncodeBlock =
    fn(&(dyn Any + Send + Sync), &mut Vec<u8>) -> crate::error::Result<()>;

/// Where one map output is: in this process, or in another process of the
/// cluster (by rank), whose block server a reducer fetches from, with what
/// is known of its blocks' sizes.
#[derive(Clone)]
pub(crate) enum MapSlot {
    Local(Arc<MapOutput>),
    Remote(u32, Arc<BlockSizes>),
}

/// The sizes in bytes of a map output's blocks, as its map task reported
/// them (Spark's `MapStatus`): exact for blocks on disk, the memory
/// estimate for blocks in memory (larger than their lz4 frames). A reducer
/// bounds its bytes in flight with them and skips empty blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockSizes {
    /// Known sizes by reduce partition, sorted.
    blocks: Vec<(u32, u64)>,
    /// Every non-empty block is listed (an unlisted one is empty); else
    /// only the listed blocks are known.
    complete: bool,
}

impl BlockSizes {
    /// Block `reduce`'s size; `None` when not known.
    pub(crate) fn of(&self, reduce: usize) -> Option<u64> {
        match self.blocks.binary_search_by_key(&(reduce as u32), |b| b.0) {
            Ok(i) => Some(self.blocks[i].1),
            Err(_) => self.complete.then_some(0),
        }
    }

    /// What a reducer of partition `reduce` needs to know: that block's size.
    pub(crate) fn only(&self, reduce: usize) -> BlockSizes {
        BlockSizes {
            blocks: self
                .of(reduce)
                .map(|n| (reduce as u32, n))
                .into_iter()
                .collect(),
            complete: false,
        }
    }
}

impl MapOutput {
    /// Reduce partition `reduce`'s block; `None` when it got no records.
    pub(crate) fn block(&self, reduce: usize) -> Option<&Block> {
        let at = self
            .blocks
            .binary_search_by_key(&reduce, |(r, _)| *r)
            .ok()?;
        Some(&self.blocks[at].1)
    }

    /// Reduce partition `reduce`'s block as checksummed frames (the form a
    /// reducer in another process reads); empty when it got no records.
    pub(crate) fn block_frames(&self, reduce: usize) -> std::result::Result<Vec<u8>, String> {
        if self.damaged.lock().is_some() {
            return Err("map output is damaged (injected)".into());
        }
        match self.block(reduce) {
            None => Ok(Vec::new()),
            Some(Block::Memory { data, .. }) => {
                let mut out = Vec::new();
                (self.encode)(data.as_ref(), &mut out).map_err(|e| e.to_string())?;
                Ok(out)
            }
            Some(Block::Disk { segments }) => {
                let mut out = Vec::new();
                for s in segments {
                    out.extend(super::reader::read_disk(self, *s)?);
                }
                Ok(out)
            }
        }
    }

    /// Every non-empty block's size: frames on disk exactly, blocks in
    /// memory by their share of the memory reserved for them.
    pub(crate) fn block_sizes(&self) -> BlockSizes {
        let in_memory: u64 = self
            .blocks
            .iter()
            .map(|(_, b)| match b {
                Block::Memory { records, .. } => *records,
                Block::Disk { .. } => 0,
            })
            .sum();
        let blocks = self
            .blocks
            .iter()
            .map(|(r, b)| {
                let bytes = match b {
                    Block::Memory { records, .. } => {
                        (self.reserved as u128 * *records as u128 / in_memory.max(1) as u128) as u64
                    }
                    Block::Disk { segments } => segments.iter().map(|s| s.len).sum(),
                };
                (*r as u32, bytes.max(1))
            })
            .collect();
        BlockSizes {
            blocks,
            complete: true,
        }
    }

    /// Bytes the output's bookkeeping takes (block index, segment lists,
    /// per-block allocations), charged to the memory budget beside the
    /// blocks' records.
    pub(crate) fn bookkeeping_bytes(&self) -> usize {
        // An in-memory block also holds an `Arc` and a `Vec` header and
        // the allocator's rounding.
        const PER_MEMORY_BLOCK: usize = 64;
        let index = self.blocks.capacity() * size_of::<(usize, Block)>();
        let extra: usize = self
            .blocks
            .iter()
            .map(|(_, b)| match b {
                Block::Memory { .. } => PER_MEMORY_BLOCK,
                Block::Disk { segments } => segments.capacity() * size_of::<Segment>(),
            })
            .sum();
        index + extra + self.files.iter().map(|f| f.capacity() + 24).sum::<usize>()
    }
}

impl Drop for MapOutput {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
        for file in &self.files {
            crate::cleanup::remove_file(file);
        }
    }
}

/// The registered map outputs of every live shuffle of a context.
#[derive(Default)]
pub(crate) struct ShuffleManager {
    shuffles: Mutex<HashMap<ShuffleId, Vec<Option<MapSlot>>>>,
    files: std::sync::atomic::AtomicU64,
}

impl ShuffleManager {
    /// A fresh number for a shuffle file name.
    pub(crate) fn next_file_id(&self) -> u64 {
        self.files
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn register(&self, shuffle: ShuffleId, num_maps: usize) {
        self.shuffles.lock().insert(shuffle, vec![None; num_maps]);
    }

    pub(crate) fn unregister(&self, shuffle: ShuffleId) {
        // Drop the outputs outside the lock: dropping deletes files.
        let removed = self.shuffles.lock().remove(&shuffle);
        drop(removed);
    }

    /// Map partitions whose output is not available.
    pub(crate) fn missing(&self, shuffle: ShuffleId) -> Vec<usize> {
        match self.shuffles.lock().get(&shuffle) {
            Some(maps) => (0..maps.len()).filter(|&m| maps[m].is_none()).collect(),
            None => Vec::new(),
        }
    }

    pub(crate) fn put(&self, shuffle: ShuffleId, map: usize, output: MapOutput) {
        self.put_slot(shuffle, map, MapSlot::Local(Arc::new(output)));
    }

    pub(crate) fn put_slot(&self, shuffle: ShuffleId, map: usize, slot: MapSlot) {
        if let Some(maps) = self.shuffles.lock().get_mut(&shuffle) {
            maps[map] = Some(slot);
        }
    }

    /// Map `map`'s output if it is in this process.
    pub(crate) fn get(&self, shuffle: ShuffleId, map: usize) -> Option<Arc<MapOutput>> {
        match self.shuffles.lock().get(&shuffle)?.get(map)?.clone()? {
            MapSlot::Local(output) => Some(output),
            MapSlot::Remote(..) => None,
        }
    }

    /// Which process holds each map output (`me` for this one's) and its
    /// block sizes, as the driver tells a task in another process.
    pub(crate) fn locations(
        &self,
        shuffle: ShuffleId,
        me: u32,
    ) -> Vec<Option<(u32, Arc<BlockSizes>)>> {
        self.outputs(shuffle)
            .into_iter()
            .map(|slot| match slot? {
                MapSlot::Local(output) => Some((me, Arc::new(output.block_sizes()))),
                MapSlot::Remote(rank, sizes) => Some((rank, sizes)),
            })
            .collect()
    }

    /// Takes the driver's word on where each map output is. An output said
    /// to be here is kept if it is (else it reads as missing); one said to
    /// be elsewhere replaces whatever this process had.
    pub(crate) fn set_locations(
        &self,
        shuffle: ShuffleId,
        locations: &[Option<(u32, BlockSizes)>],
        me: u32,
    ) {
        let mut shuffles = self.shuffles.lock();
        let Some(maps) = shuffles.get_mut(&shuffle) else {
            return;
        };
        let mut dropped = Vec::new();
        for (slot, location) in maps.iter_mut().zip(locations) {
            let here = matches!(location, Some((r, _)) if *r == me);
            let keep_local = here && matches!(slot, Some(MapSlot::Local(_)));
            if !keep_local {
                let new = match location {
                    Some((rank, sizes)) if *rank != me => {
                        Some(MapSlot::Remote(*rank, Arc::new(sizes.clone())))
                    }
                    _ => None,
                };
                dropped.push(std::mem::replace(slot, new));
            }
        }
        drop(shuffles);
        // Dropping an output deletes its files: outside the lock.
        drop(dropped);
    }

    /// Every map's output (`None`: missing), under one lock: a reducer of
    /// an n-way shuffle takes it once, not n times.
    pub(crate) fn outputs(&self, shuffle: ShuffleId) -> Vec<Option<MapSlot>> {
        self.shuffles
            .lock()
            .get(&shuffle)
            .cloned()
            .unwrap_or_default()
    }

    /// Damages a registered map output (fault injection): a file is deleted
    /// or gets a flipped byte; in-memory blocks are marked lost or corrupt.
    pub(crate) fn damage(&self, shuffle: ShuffleId, map: usize, how: ShuffleLoss) {
        let Some(output) = self.get(shuffle, map) else {
            return;
        };
        if output
            .blocks
            .iter()
            .any(|(_, b)| matches!(b, Block::Memory { .. }))
        {
            *output.damaged.lock() = Some(how);
        }
        for file in &output.files {
            match how {
                ShuffleLoss::Delete => {
                    let _ = std::fs::remove_file(file);
                }
                ShuffleLoss::Corrupt => {
                    if let Ok(mut bytes) = std::fs::read(file) {
                        let middle = bytes.len() / 2;
                        if let Some(b) = bytes.get_mut(middle) {
                            *b ^= 0xA5;
                        }
                        let _ = std::fs::write(file, bytes);
                    }
                }
            }
        }
    }

    /// Forgets one map output (it is lost or corrupt), so the scheduler
    /// recomputes it. Returns whether it was registered.
    pub(crate) fn remove_map(&self, shuffle: ShuffleId, map: usize) -> bool {
        let removed = self
            .shuffles
            .lock()
            .get_mut(&shuffle)
            .and_then(|maps| maps.get_mut(map)?.take());
        removed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::BlockSizes;

    #[test]
    fn a_reducer_learns_its_blocks_size_and_an_unlisted_block_is_empty_only_in_a_full_report() {
        let full = BlockSizes {
            blocks: vec![(1, 300), (4, 20)],
            complete: true,
        };
        assert_eq!(full.of(1), Some(300));
        assert_eq!(full.of(2), Some(0));
        let one = full.only(4);
        assert_eq!(one.of(4), Some(20));
        assert_eq!(one.of(1), None, "not told, so not known");
        assert_eq!(full.only(2).of(2), Some(0), "an empty block is known empty");
    }
}
