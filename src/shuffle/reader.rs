//! The reduce side: reading one reduce partition's blocks from every map
//! output, verifying on-disk frames as they are decoded.

use super::ShuffleId;
use super::manager::{Block, MapOutput};
use crate::codec;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::rdd::{BatchIter, Batches};
use crate::scheduler::{MetricsCell, TaskContext};
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;
use std::sync::Arc;

/// The records of reduce partition `reduce` of `shuffle`, map by map. `X` is the record type the map side wrote.
pub(crate) fn read<X: Value>(shuffle: ShuffleId, reduce: usize, tc: &TaskContext) -> BatchIter<X> {
    Box::new(ShuffleReader::<X> {
        ctx_shuffles: tc.ctx.clone(),
        shuffle,
        reduce,
        num_maps: tc.ctx.shuffles().num_maps(shuffle),
        read: 0,
        current: Current::None,
        metrics: tc.metrics.clone(),
    })
}

enum Current<X> {
    None,
    Memory {
        data: Arc<Vec<X>>,
        pos: usize,
    },
    Disk {
        map: usize,
        bytes: Vec<u8>,
        pos: usize,
    },
}

struct ShuffleReader<X> {
    ctx_shuffles: crate::Context,
    shuffle: ShuffleId,
    reduce: usize,
    num_maps: usize,
    /// Maps read so far; reduce partition r reads maps r, r+1, ... (mod the
    /// map count), so concurrent reducers discover different lost outputs.
    read: usize,
    current: Current<X>,
    metrics: Rc<MetricsCell>,
}

impl<X: Value> ShuffleReader<X> {
    fn fetch_error(&self, map: usize, reason: impl Into<String>) -> Error {
        Error::ShuffleFetch {
            shuffle: self.shuffle,
            map,
            reduce: self.reduce,
            reason: reason.into(),
        }
    }

    /// Opens the next map's block; returns false when all maps are read.
    fn open_next(&mut self) -> Result<bool> {
        loop {
            if self.read >= self.num_maps {
                return Ok(false);
            }
            let map = (self.reduce + self.read) % self.num_maps;
            self.read += 1;
            let output = self
                .ctx_shuffles
                .shuffles()
                .get(self.shuffle, map)
                .ok_or_else(|| self.fetch_error(map, "map output is missing"))?;
            match output.blocks.get(self.reduce) {
                None => return Err(self.fetch_error(map, "map output has no such reduce block")),
                Some(Block::Empty) => continue,
                Some(Block::Memory { .. }) if output.damaged.lock().is_some() => {
                    let reason = match *output.damaged.lock() {
                        Some(crate::fault::ShuffleLoss::Corrupt) => {
                            "in-memory block is corrupt (injected)"
                        }
                        _ => "in-memory block is missing (injected)",
                    };
                    return Err(self.fetch_error(map, reason));
                }
                Some(Block::Memory { data, records }) => {
                    let data = data
                        .clone()
                        .downcast::<Vec<X>>()
                        .map_err(|_| self.fetch_error(map, "block holds another record type"))?;
                    let records = *records;
                    self.metrics.update(|m| m.shuffle_records_read += records);
                    self.current = Current::Memory { data, pos: 0 };
                    return Ok(true);
                }
                Some(Block::Disk { offset, len, .. }) => {
                    let bytes = self.read_disk(map, &output, *offset, *len)?;
                    self.metrics
                        .update(|m| m.shuffle_bytes_read += bytes.len() as u64);
                    self.current = Current::Disk { map, bytes, pos: 0 };
                    return Ok(true);
                }
            }
        }
    }

    fn read_disk(&self, map: usize, output: &MapOutput, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = output
            .file
            .as_ref()
            .ok_or_else(|| self.fetch_error(map, "disk block without a file"))?;
        let mut f = std::fs::File::open(path)
            .map_err(|e| self.fetch_error(map, format!("cannot open {}: {e}", path.display())))?;
        let mut bytes = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut bytes))
            .map_err(|e| self.fetch_error(map, format!("cannot read {}: {e}", path.display())))?;
        Ok(bytes)
    }
}

impl<X: Value> Batches<X> for ShuffleReader<X> {
    fn next_batch(&mut self, out: &mut Vec<X>, hint: usize) -> Result<bool> {
        loop {
            match &mut self.current {
                Current::None => {
                    if !self.open_next()? {
                        return Ok(false);
                    }
                }
                Current::Memory { data, pos } => {
                    let end = (*pos + hint.max(1)).min(data.len());
                    out.extend_from_slice(&data[*pos..end]);
                    *pos = end;
                    if end == data.len() {
                        self.current = Current::None;
                    }
                    return Ok(true);
                }
                Current::Disk { map, bytes, pos } => {
                    if *pos >= bytes.len() {
                        self.current = Current::None;
                        continue;
                    }
                    let map = *map;
                    match codec::read_frame::<Vec<X>>(&bytes[*pos..]) {
                        Ok((mut records, used)) => {
                            *pos += used;
                            let n = records.len() as u64;
                            self.metrics.update(|m| m.shuffle_records_read += n);
                            out.append(&mut records);
                            return Ok(true);
                        }
                        Err(reason) => return Err(self.fetch_error(map, reason)),
                    }
                }
            }
        }
    }
}
