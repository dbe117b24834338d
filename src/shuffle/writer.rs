//! The map side: bucketing records by reduce partition, spilling buckets to
//! disk when they outgrow the task's share of the memory budget, and
//! turning the result into in-memory or on-disk blocks.

use super::manager::{Block, MapOutput, Segment};
use crate::codec;
use crate::data::Value;
use crate::error::Result;
use crate::ids::ShuffleId;
use crate::memory::estimate_size;
use crate::runtime::Runtime;
use crate::runtime::TaskContext;
use std::path::PathBuf;
use std::sync::Arc;

/// Records per on-disk frame: the unit of decoding on the reduce side.
const FRAME_RECORDS: usize = 4096;

/// How often (in records) the writer checks its memory use.
const CHECK_EVERY: usize = 1024;

pub(crate) struct MapWriter<'a, X> {
    rt: &'a Runtime,
    shuffle: ShuffleId,
    tc: &'a TaskContext,
    buckets: Vec<Vec<X>>,
    buffered: usize,
    /// Estimated out-of-line bytes per buffered record, sampled at the
    /// first check.
    record_bytes: Option<usize>,
    /// Bytes this task may buffer before spilling: its share of the budget.
    limit: usize,
    files: Vec<PathBuf>,
    /// Spilled segments of each bucket, in spill order.
    segments: Vec<Vec<Segment>>,
    spilled_bytes: u64,
    spilled_records: u64,
    spills: u64,
}

impl<'a, X: Value> MapWriter<'a, X> {
    pub(crate) fn new(
        rt: &'a Runtime,
        shuffle: ShuffleId,
        tc: &'a TaskContext,
        reduces: usize,
    ) -> Self {
        let limit = rt.memory().limit() / rt.parallelism().max(1);
        MapWriter {
            rt,
            shuffle,
            tc,
            buckets: (0..reduces).map(|_| Vec::new()).collect(),
            buffered: 0,
            record_bytes: None,
            limit,
            files: Vec::new(),
            segments: vec![Vec::new(); reduces],
            spilled_bytes: 0,
            spilled_records: 0,
            spills: 0,
        }
    }

    /// Buffers one record for reduce partition `bucket`, spilling when the
    /// buffers pass the task's share of the memory budget.
    #[inline]
    pub(crate) fn push(&mut self, bucket: usize, record: X) -> Result<()> {
        self.buckets[bucket].push(record);
        self.buffered += 1;
        if self.buffered % CHECK_EVERY == 0 && self.buffered_bytes() > self.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// Whether `records` more records of the given size would pass the
    /// task's share: for callers that hold records elsewhere (combine maps).
    pub(crate) fn over_limit(&mut self, records: usize, bytes_each: usize) -> bool {
        records.saturating_mul(bytes_each) + self.buffered_bytes() > self.limit
    }

    /// Estimated bytes held by the buckets: their allocated slots (a
    /// bucket's capacity may be twice its length) plus each record's
    /// sampled out-of-line data.
    fn buffered_bytes(&mut self) -> usize {
        if self.record_bytes.is_none() {
            let sample: Vec<&X> = self
                .buckets
                .iter()
                .flat_map(|b| b.iter().take(4))
                .take(64)
                .collect();
            if !sample.is_empty() {
                let heap = estimate_size(&sample).saturating_sub(sample.len() * size_of::<&X>());
                self.record_bytes = Some(heap / sample.len());
            }
        }
        let slots: usize = self.buckets.iter().map(Vec::capacity).sum();
        slots * size_of::<X>() + self.buffered * self.record_bytes.unwrap_or(0)
    }

    /// Writes every buffered bucket to a new spill file.
    pub(crate) fn spill(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let file = self.files.len();
        let path = self.file_path();
        // Registered first, so a failed write is still deleted on drop.
        self.files.push(path.clone());
        let mut out = codec::FrameFile::create(&path)?;
        for (b, bucket) in self.buckets.iter_mut().enumerate() {
            if bucket.is_empty() {
                continue;
            }
            let offset = out.position();
            for chunk in bucket.chunks(FRAME_RECORDS) {
                out.write(&chunk)?;
            }
            self.segments[b].push(Segment {
                file,
                offset,
                len: out.position() - offset,
            });
            self.spilled_records += bucket.len() as u64;
            bucket.clear();
            bucket.shrink_to_fit();
        }
        self.spilled_bytes += out.finish()?;
        self.spills += 1;
        self.buffered = 0;
        Ok(())
    }

    /// Turns the buckets into blocks: in memory while the budget has room
    /// (if nothing was spilled), else on disk. The output owns the files
    /// from here on; a writer dropped before `finish` (a failed attempt)
    /// deletes its spill files.
    pub(crate) fn finish(mut self) -> Result<MapOutput> {
        let budget = self.rt.memory().clone();
        let written: u64 =
            self.buckets.iter().map(|b| b.len() as u64).sum::<u64>() + self.spilled_records;
        if !self.files.is_empty() {
            // Once anything is on disk, all of it goes there: one kind of
            // block per bucket.
            self.spill()?;
        }
        let mut out = MapOutput {
            blocks: Vec::new(),
            reduces: self.buckets.len(),
            files: std::mem::take(&mut self.files),
            reserved: 0,
            budget,
            damaged: parking_lot::Mutex::new(None),
            encode: encode_block::<X>,
        };
        let mut disk: Option<codec::FrameFile> = None;
        let mut in_memory = 0u64;
        let final_file = out.files.len();
        let buckets = std::mem::take(&mut self.buckets);
        for (b, bucket) in buckets.into_iter().enumerate() {
            let mut segments = std::mem::take(&mut self.segments[b]);
            if bucket.is_empty() {
                if !segments.is_empty() {
                    out.blocks.push((b, Block::Disk { segments }));
                }
                continue;
            }
            let records = bucket.len() as u64;
            let size = estimate_size(&bucket);
            if self.rt.blocks().reserve_for_execution(size)? {
                out.reserved += size;
                in_memory += 1;
                out.blocks.push((
                    b,
                    Block::Memory {
                        data: Arc::new(bucket),
                        records,
                    },
                ));
            } else {
                let file = match &mut disk {
                    Some(f) => f,
                    None => {
                        let path = self.file_path();
                        out.files.push(path.clone());
                        disk.insert(codec::FrameFile::create(&path)?)
                    }
                };
                let offset = file.position();
                for chunk in bucket.chunks(FRAME_RECORDS) {
                    file.write(&chunk)?;
                }
                segments.push(Segment {
                    file: final_file,
                    offset,
                    len: file.position() - offset,
                });
                out.blocks.push((b, Block::Disk { segments }));
            }
        }
        out.blocks.shrink_to_fit();
        // The index is charged too: it may not be refused (the blocks
        // exist), but it counts, so later blocks go to disk sooner and
        // the job's peak memory shows it.
        let index = out.bookkeeping_bytes();
        if !self.rt.blocks().reserve_for_execution(index)? {
            out.budget.reserve_anyway(index);
        }
        out.reserved += index;
        let final_bytes = match disk {
            Some(f) => f.finish()?,
            None => 0,
        };
        let bytes = final_bytes + self.spilled_bytes;
        let (spills, spilled) = (self.spills, self.spilled_bytes);
        self.tc.metrics.update(|m| {
            m.shuffle_records_written += written;
            m.shuffle_bytes_written += bytes;
            m.shuffle_blocks_in_memory += in_memory;
            m.spills += spills;
            m.spilled_bytes += spilled;
        });
        Ok(out)
    }

    /// A file name no other map output of this context uses: a re-run of a
    /// lost map task must not overwrite (or be deleted with) the old file.
    fn file_path(&self) -> PathBuf {
        let id = self.tc.id;
        let unique = self.rt.shuffles().next_file_id();
        self.rt.scratch_dir().join(format!(
            "shuffle_{}_{}_job{}_attempt{}_{unique}.data",
            self.shuffle, id.partition, id.job, id.attempt
        ))
    }
}

impl<X> Drop for MapWriter<'_, X> {
    fn drop(&mut self) {
        // Non-empty only when the attempt failed before `finish`.
        for file in &self.files {
            crate::cleanup::remove_file(file);
        }
    }
}

/// Encodes an in-memory block of `X` records as frames (see
/// [`MapOutput::encode`]).
fn encode_block<X: Value>(
    data: &(dyn std::any::Any + Send + Sync),
    out: &mut Vec<u8>,
) -> Result<()> {
    let records = data
        .downcast_ref::<Vec<X>>()
        .expect("a map output's blocks hold the writer's record type");
    let mut scratch = Vec::new();
    for chunk in records.chunks(FRAME_RECORDS) {
        codec::write_frame(&chunk, &mut scratch, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::drain_all;
    use crate::runtime::{RuntimeConfig, TaskId};

    /// A task of map partition `map` on `rt`, outside any job.
    fn task(rt: &Arc<Runtime>, map: usize) -> TaskContext {
        let id = TaskId {
            job: 0,
            stage: 0,
            partition: map,
            attempt: 0,
        };
        TaskContext::new(rt.clone(), id)
    }

    #[test]
    fn map_outputs_round_trip_through_memory_and_disk_with_a_runtime_and_no_scheduler() {
        // A budget too small for the second map's blocks: they go to disk.
        for limit in [usize::MAX / 2, 1 << 10] {
            let rt = Arc::new(
                Runtime::without_pool(RuntimeConfig {
                    memory_limit: Some(limit),
                    ..RuntimeConfig::default()
                })
                .unwrap(),
            );
            let (shuffle, maps, reduces) = (ShuffleId(7), 3, 5);
            rt.shuffles().register(shuffle, maps);
            let mut expected: Vec<Vec<(u64, String)>> = vec![Vec::new(); reduces];
            for map in 0..maps {
                let tc = task(&rt, map);
                let mut writer = MapWriter::<(u64, String)>::new(&rt, shuffle, &tc, reduces);
                // Map 1 writes nothing to reduce partition 3: an empty block.
                for i in 0..200u64 {
                    let reduce = (i as usize * (map + 1)) % reduces;
                    if map == 1 && reduce == 3 {
                        continue;
                    }
                    let record = (i, format!("m{map}-r{reduce}-{i}"));
                    expected[reduce].push(record.clone());
                    writer.push(reduce, record).unwrap();
                }
                rt.shuffles().put(shuffle, map, writer.finish().unwrap());
            }
            for (reduce, want) in expected.iter_mut().enumerate() {
                let tc = task(&rt, reduce);
                let read = crate::shuffle::reader::read::<(u64, String)>(shuffle, reduce, &tc);
                let mut got = drain_all(read).unwrap();
                got.sort();
                want.sort();
                assert_eq!(&got, want, "reduce {reduce}, limit {limit}");
            }
            let on_disk = std::fs::read_dir(rt.scratch_dir()).unwrap().count();
            assert_eq!(
                on_disk > 0,
                limit < 1 << 20,
                "limit {limit}: {on_disk} files"
            );
            rt.shuffles().unregister(shuffle);
            assert_eq!(std::fs::read_dir(rt.scratch_dir()).unwrap().count(), 0);
            assert_eq!(rt.memory().used(), 0, "everything released");
        }
    }
}
