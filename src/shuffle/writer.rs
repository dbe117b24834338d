//! The map side: turning buckets into in-memory or on-disk blocks.

use super::ShuffleId;
use super::manager::{Block, MapOutput};
use crate::codec;
use crate::context::Context;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::memory::estimate_size;
use crate::scheduler::TaskContext;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Records per on-disk frame: the unit of decoding on the reduce side.
const FRAME_RECORDS: usize = 4096;

pub(crate) struct MapWriter<'a> {
    ctx: &'a Context,
    shuffle: ShuffleId,
    tc: &'a TaskContext,
}

impl<'a> MapWriter<'a> {
    pub(crate) fn new(ctx: &'a Context, shuffle: ShuffleId, tc: &'a TaskContext) -> Self {
        MapWriter { ctx, shuffle, tc }
    }

    /// Stores one bucket per reduce partition: in memory while the budget
    /// has room, else encoded into this attempt's shuffle file.
    pub(crate) fn finish<X: Value>(self, buckets: Vec<Vec<X>>) -> Result<MapOutput> {
        let budget = self.ctx.memory().clone();
        let mut out = MapOutput {
            blocks: Vec::with_capacity(buckets.len()),
            file: None,
            reserved: 0,
            budget,
            damaged: parking_lot::Mutex::new(None),
        };
        let mut disk: Vec<u8> = Vec::new();
        let mut scratch = Vec::new();
        let (mut written, mut in_memory) = (0u64, 0u64);
        for bucket in buckets {
            let records = bucket.len() as u64;
            written += records;
            if bucket.is_empty() {
                out.blocks.push(Block::Empty);
                continue;
            }
            let size = estimate_size(&bucket);
            if self.ctx.blocks().reserve_for_execution(size)? {
                out.reserved += size;
                in_memory += 1;
                out.blocks.push(Block::Memory {
                    data: Arc::new(bucket),
                    records,
                });
            } else {
                let offset = disk.len() as u64;
                for chunk in bucket.chunks(FRAME_RECORDS) {
                    codec::write_frame(&chunk, &mut scratch, &mut disk)?;
                }
                out.blocks.push(Block::Disk {
                    offset,
                    len: disk.len() as u64 - offset,
                });
            }
        }
        if !disk.is_empty() {
            let path = self.file_path();
            write_file(&path, &disk)?;
            out.file = Some(path);
        }
        let bytes = disk.len() as u64;
        self.tc.metrics.update(|m| {
            m.shuffle_records_written += written;
            m.shuffle_bytes_written += bytes;
            m.shuffle_blocks_in_memory += in_memory;
        });
        Ok(out)
    }

    /// A file name no other map output of this context uses: a re-run of a
    /// lost map task must not overwrite (or be deleted with) the old file.
    fn file_path(&self) -> PathBuf {
        let id = self.tc.id;
        let unique = self.ctx.shuffles().next_file_id();
        self.ctx.scratch_dir().join(format!(
            "shuffle_{}_{}_job{}_attempt{}_{unique}.data",
            self.shuffle, id.partition, id.job, id.attempt
        ))
    }
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    Ok(())
}
