//! Sorting a reduce partition that may not fit in memory: sorted runs are
//! spilled to the scratch directory once the buffer passes the task's share
//! of the memory budget, then merged k ways while the output is pulled.

use crate::chunk::{ChunkIter, Chunks, IterChunks, for_each_chunk};
use crate::codec::{self, FRAME_HEADER};
use crate::data::Value;
use crate::error::{Error, Result};
use crate::memory::estimate_size;
use crate::runtime::TaskContext;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{BufReader, Read};
use std::sync::Arc;

/// Orders records: the whole-buffer sort (fast, closure inlined) and the
/// pairwise comparison the merge needs.
pub(crate) struct SortOrder<X> {
    pub(crate) sort: Arc<dyn Fn(&mut Vec<X>) + Send + Sync>,
    pub(crate) cmp: Arc<dyn Fn(&X, &X) -> Ordering + Send + Sync>,
}

impl<X> Clone for SortOrder<X> {
    fn clone(&self) -> Self {
        SortOrder {
            sort: self.sort.clone(),
            cmp: self.cmp.clone(),
        }
    }
}

const RUN_FRAME: usize = 4096;

/// Sorts `input` within the task's share of the memory budget.
pub(crate) fn sort<X: Value>(
    input: ChunkIter<X>,
    order: &SortOrder<X>,
    tc: &TaskContext,
) -> Result<ChunkIter<X>> {
    let limit = tc.rt.memory().limit() / tc.rt.parallelism().max(1);
    let mut buf: Vec<X> = Vec::new();
    let mut record_bytes: Option<usize> = None;
    let mut runs: Vec<Run<X>> = Vec::new();
    for_each_chunk(input, |chunk| {
        if record_bytes.is_none() && !chunk.is_empty() {
            let sample = &chunk[..chunk.len().min(64)];
            record_bytes = Some((estimate_size(sample) / sample.len()).max(1));
        }
        let each = record_bytes.unwrap_or(1);
        let needed = buf.len() + chunk.len();
        if needed > buf.capacity() {
            // Grow by doubling, but never past what the share holds: a
            // doubling vector could overshoot it by up to its whole size.
            let most = limit / each + chunk.len();
            let target = (buf.capacity() * 2).min(most).max(needed);
            buf.reserve_exact(target - buf.len());
        }
        buf.append(chunk);
        if buf.len() * each > limit {
            (order.sort)(&mut buf);
            runs.push(Run::write(&buf, tc)?);
            buf.clear();
        }
        Ok(())
    })?;
    (order.sort)(&mut buf);
    if runs.is_empty() {
        return Ok(Box::new(IterChunks(buf.into_iter())));
    }
    let spilled: u64 = runs.iter().map(|r| r.bytes).sum();
    let n = runs.len() as u64;
    tc.metrics.update(|m| {
        m.spills += n;
        m.spilled_bytes += spilled;
    });
    let mut sources: Vec<Source<X>> = runs.into_iter().map(Source::Run).collect();
    sources.push(Source::Memory(buf.into_iter()));
    let mut merge = Merge {
        heap: BinaryHeap::new(),
        sources,
        cmp: order.cmp.clone(),
    };
    for i in 0..merge.sources.len() {
        merge.refill(i)?;
    }
    Ok(Box::new(merge))
}

/// A run of records on disk, read back in order; deleted when dropped.
pub(crate) struct Run<X> {
    file: BufReader<std::fs::File>,
    _path: tempfile::TempPath,
    pub(crate) bytes: u64,
    pending: std::vec::IntoIter<X>,
}

impl<X: Value> Run<X> {
    pub(crate) fn write(sorted: &[X], tc: &TaskContext) -> Result<Self> {
        let dir = tc.rt.scratch_dir();
        let tmp = tempfile::Builder::new()
            .prefix("sort-run-")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        let (file, path) = tmp.into_parts();
        let mut out = codec::FrameFile::from_file(file, &path);
        for chunk in sorted.chunks(RUN_FRAME) {
            out.write(&chunk)?;
        }
        let bytes = out.finish()?;
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&*path, e))?;
        Ok(Run {
            file: BufReader::with_capacity(1 << 16, file),
            bytes,
            _path: path,
            pending: Vec::new().into_iter(),
        })
    }

    pub(crate) fn next(&mut self) -> Result<Option<X>> {
        loop {
            if let Some(x) = self.pending.next() {
                return Ok(Some(x));
            }
            let mut header = [0u8; FRAME_HEADER];
            match self.file.read_exact(&mut header) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(Error::io(&*self._path, e)),
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let mut frame = header.to_vec();
            frame.resize(FRAME_HEADER + len, 0);
            self.file
                .read_exact(&mut frame[FRAME_HEADER..])
                .map_err(|e| Error::io(&*self._path, e))?;
            let (records, _): (Vec<X>, usize) = codec::read_frame(&frame).map_err(|reason| {
                Error::Codec(format!("sort run {}: {reason}", self._path.display()))
            })?;
            self.pending = records.into_iter();
        }
    }
}

enum Source<X> {
    Run(Run<X>),
    Memory(std::vec::IntoIter<X>),
}

struct Head<X> {
    value: X,
    source: usize,
    cmp: Arc<dyn Fn(&X, &X) -> Ordering + Send + Sync>,
}

impl<X> PartialEq for Head<X> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<X> Eq for Head<X> {}
impl<X> PartialOrd for Head<X> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<X> Ord for Head<X> {
    /// Reversed, so the max-heap yields the smallest record first; ties by
    /// source keep the merge deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.cmp)(&other.value, &self.value).then(other.source.cmp(&self.source))
    }
}

struct Merge<X> {
    heap: BinaryHeap<Head<X>>,
    sources: Vec<Source<X>>,
    cmp: Arc<dyn Fn(&X, &X) -> Ordering + Send + Sync>,
}

impl<X: Value> Merge<X> {
    fn refill(&mut self, source: usize) -> Result<()> {
        let next = match &mut self.sources[source] {
            Source::Run(r) => r.next()?,
            Source::Memory(it) => it.next(),
        };
        if let Some(value) = next {
            self.heap.push(Head {
                value,
                source,
                cmp: self.cmp.clone(),
            });
        }
        Ok(())
    }
}

impl<X: Value> Chunks<X> for Merge<X> {
    fn next_chunk(&mut self, out: &mut Vec<X>, hint: usize) -> Result<bool> {
        for _ in 0..hint.max(1) {
            let Some(head) = self.heap.pop() else {
                return Ok(false);
            };
            out.push(head.value);
            self.refill(head.source)?;
        }
        Ok(!self.heap.is_empty())
    }
}
