//! The reduce side: reading one reduce partition's blocks from every map
//! output, verifying on-disk frames as they are decoded.

use super::manager::{Block, MapOutput, MapSlot, Segment};
use crate::chunk::{ChunkIter, Chunks};
use crate::cluster::node::PendingFetch;
use crate::codec;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::ids::ShuffleId;
use crate::runtime::{MetricsCell, Runtime, TaskContext};
use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;
use std::sync::Arc;

/// The records of reduce partition `reduce` of `shuffle`, map by map. `X` is the record type the map side wrote.
pub(crate) fn read<X: Value>(shuffle: ShuffleId, reduce: usize, tc: &TaskContext) -> ChunkIter<X> {
    let outputs = tc.rt.shuffles().outputs(shuffle);
    Box::new(ShuffleReader::<X> {
        shuffle,
        reduce,
        num_maps: outputs.len(),
        outputs,
        read: 0,
        current: Current::None,
        lost: Vec::new(),
        metrics: tc.metrics.clone(),
        budget: tc.rt.max_bytes_in_flight(),
        rt: tc.rt.clone(),
        in_flight: VecDeque::new(),
        in_flight_bytes: 0,
        fetch_cursor: 0,
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
        /// The files the block was read from, for error messages.
        files: String,
    },
}

struct ShuffleReader<X> {
    /// The map outputs as registered when the task started.
    outputs: Vec<Option<MapSlot>>,
    shuffle: ShuffleId,
    reduce: usize,
    num_maps: usize,
    /// Maps read so far; reduce partition r reads maps r, r+1, ... (mod the
    /// map count), so concurrent reducers discover different lost outputs.
    read: usize,
    current: Current<X>,
    /// Maps whose blocks could not be read, with the reason.
    lost: Vec<(usize, String)>,
    metrics: Rc<MetricsCell>,
    /// Fetches blocks held by other processes.
    rt: Arc<Runtime>,
    /// Remote blocks requested ahead, in reading order, while earlier
    /// blocks are decoded: at most `budget` bytes by their reported sizes
    /// (Spark's `maxSizeInFlight`), or one block larger than that.
    in_flight: VecDeque<InFlight>,
    in_flight_bytes: u64,
    budget: u64,
    /// Position, in this reducer's map order, of the next block to
    /// consider requesting.
    fetch_cursor: usize,
}

/// A remote block requested and not yet read.
struct InFlight {
    map: usize,
    bytes: u64,
    fetch: PendingFetch,
}

impl<X: Value> ShuffleReader<X> {
    /// Requests the next remote blocks in reading order while they fit the
    /// budget (the first one always does). A block of unknown size counts
    /// as the whole budget; one known to be empty is never requested.
    fn fill(&mut self) {
        self.fetch_cursor = self.fetch_cursor.max(self.read);
        while self.fetch_cursor < self.num_maps {
            let map = (self.reduce + self.fetch_cursor) % self.num_maps;
            let Some(MapSlot::Remote(rank, sizes)) = &self.outputs[map] else {
                self.fetch_cursor += 1;
                continue;
            };
            let bytes = match sizes.of(self.reduce) {
                Some(0) => {
                    self.fetch_cursor += 1;
                    continue;
                }
                Some(n) => n,
                None => self.budget,
            };
            if !self.in_flight.is_empty() && self.in_flight_bytes + bytes > self.budget {
                return;
            }
            // A fetch that cannot start is started again, and its error
            // kept, when the block's turn comes.
            let Ok(fetch) = self.rt.start_fetch(*rank, self.shuffle, map, self.reduce) else {
                return;
            };
            self.in_flight.push_back(InFlight { map, bytes, fetch });
            self.in_flight_bytes += bytes;
            let now = self.in_flight_bytes;
            self.metrics
                .update(|m| m.peak_bytes_in_flight = m.peak_bytes_in_flight.max(now));
            self.fetch_cursor += 1;
        }
    }

    /// The frames of map `map`'s block held by process `rank`.
    fn remote_block(&mut self, rank: u32, map: usize) -> std::result::Result<Vec<u8>, String> {
        self.fill();
        let fetch = match self.in_flight.front() {
            Some(f) if f.map == map => {
                let f = self.in_flight.pop_front().expect("the front exists");
                self.in_flight_bytes -= f.bytes;
                f.fetch
            }
            _ => self.rt.start_fetch(rank, self.shuffle, map, self.reduce)?,
        };
        // The next blocks go out while this one arrives and is decoded.
        self.fill();
        self.rt.finish_fetch(fetch)
    }

    /// Opens map `map`'s block: `None` when it is empty, `Err(reason)` when
    /// it cannot be read.
    fn open(&mut self, map: usize) -> std::result::Result<Option<Current<X>>, String> {
        let output = match &self.outputs[map] {
            None => return Err("map output is missing".to_string()),
            Some(MapSlot::Local(output)) => output.clone(),
            Some(MapSlot::Remote(_, sizes)) if sizes.of(self.reduce) == Some(0) => {
                return Ok(None);
            }
            Some(MapSlot::Remote(rank, _)) => {
                let rank = *rank;
                let bytes = self.remote_block(rank, map)?;
                if bytes.is_empty() {
                    return Ok(None);
                }
                self.metrics.update(|m| {
                    m.shuffle_bytes_read += bytes.len() as u64;
                    m.remote_bytes_read += bytes.len() as u64;
                });
                return Ok(Some(Current::Disk {
                    map,
                    bytes,
                    pos: 0,
                    files: format!("the block fetched from process {rank}"),
                }));
            }
        };
        if self.reduce >= output.reduces {
            return Err("map output has no such reduce block".into());
        }
        match output.block(self.reduce) {
            None => Ok(None),
            Some(Block::Memory { .. }) if output.damaged.lock().is_some() => {
                Err(match *output.damaged.lock() {
                    Some(crate::fault::ShuffleLoss::Corrupt) => {
                        "in-memory block is corrupt (injected)".into()
                    }
                    _ => "in-memory block is missing (injected)".into(),
                })
            }
            Some(Block::Memory { data, records }) => {
                let data = data
                    .clone()
                    .downcast::<Vec<X>>()
                    .map_err(|_| "block holds another record type".to_string())?;
                let records = *records;
                self.metrics.update(|m| m.shuffle_records_read += records);
                Ok(Some(Current::Memory { data, pos: 0 }))
            }
            Some(Block::Disk { segments }) => {
                // Frames are self-delimiting: segments read back to back
                // decode as one stream.
                let mut bytes = Vec::new();
                for s in segments {
                    bytes.extend(read_disk(&output, *s)?);
                }
                self.metrics
                    .update(|m| m.shuffle_bytes_read += bytes.len() as u64);
                let files: Vec<String> = segments
                    .iter()
                    .filter_map(|s| output.files.get(s.file))
                    .map(|p| p.display().to_string())
                    .collect();
                Ok(Some(Current::Disk {
                    map,
                    bytes,
                    pos: 0,
                    files: files.join(", "),
                }))
            }
        }
    }

    /// The fetch failure naming every unreadable map output.
    fn lost_error(&mut self) -> Error {
        let mut lost = std::mem::take(&mut self.lost).into_iter();
        let (map, reason) = lost.next().expect("called only when something was lost");
        Error::ShuffleFetch {
            shuffle: self.shuffle,
            map,
            reduce: self.reduce,
            reason,
            other_maps: lost.map(|(m, _)| m).collect(),
        }
    }
}

pub(crate) fn read_disk(
    output: &MapOutput,
    segment: Segment,
) -> std::result::Result<Vec<u8>, String> {
    let Segment { file, offset, len } = segment;
    let path = output
        .files
        .get(file)
        .ok_or("disk block without its file")?;
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut bytes = vec![0u8; len as usize];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(bytes)
}

impl<X: Value> Chunks<X> for ShuffleReader<X> {
    /// Reads on past an unreadable block, so that one failed attempt
    /// reports every lost map output this reducer needs; the task fails at
    /// the end of the partition.
    fn next_chunk(&mut self, out: &mut Vec<X>, hint: usize) -> Result<bool> {
        loop {
            match &mut self.current {
                Current::None => {
                    if self.read >= self.num_maps {
                        return if self.lost.is_empty() {
                            Ok(false)
                        } else {
                            Err(self.lost_error())
                        };
                    }
                    let map = (self.reduce + self.read) % self.num_maps;
                    self.read += 1;
                    match self.open(map) {
                        Ok(Some(current)) => self.current = current,
                        Ok(None) => {}
                        Err(reason) => self.lost.push((map, reason)),
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
                Current::Disk {
                    map,
                    bytes,
                    pos,
                    files,
                } => {
                    if *pos >= bytes.len() {
                        self.current = Current::None;
                        continue;
                    }
                    match codec::read_frame::<Vec<X>>(&bytes[*pos..]) {
                        Ok((mut records, used)) => {
                            *pos += used;
                            let n = records.len() as u64;
                            self.metrics.update(|m| m.shuffle_records_read += n);
                            out.append(&mut records);
                            return Ok(true);
                        }
                        Err(reason) => {
                            let map = *map;
                            let reason = format!("{reason} at byte {pos} of the block in {files}");
                            self.current = Current::None;
                            self.lost.push((map, reason));
                        }
                    }
                }
            }
        }
    }
}
