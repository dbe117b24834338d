//! The pull protocol every partition is computed through: a consumer asks
//! its source for about `hint` records at a time, so a narrow chain costs
//! one dynamic call per chunk of records per operator, never one per record.

use crate::error::Result;
use std::sync::Arc;

/// Records per chunk when a consumer wants a whole partition. Small enough
/// that a chunk expanded by `flat_map` (ten words a line, say) stays in cache
/// next to the hash maps that consume it; 1024 measured a few percent slower.
pub(crate) const CHUNK: usize = 256;

/// A partition being computed, pulled a chunk at a time.
pub(crate) trait Chunks<T> {
    /// Appends about `hint` further records to `out` (possibly none, possibly
    /// more). Returns `Ok(false)` once the partition is exhausted; records
    /// appended by that last call are still valid.
    fn next_chunk(&mut self, out: &mut Vec<T>, hint: usize) -> Result<bool>;
}

pub(crate) type ChunkIter<T> = Box<dyn Chunks<T>>;

/// Drains a partition, calling `f` on each chunk.
pub(crate) fn for_each_chunk<T>(
    mut it: ChunkIter<T>,
    mut f: impl FnMut(&mut Vec<T>) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(CHUNK);
    loop {
        let more = it.next_chunk(&mut buf, CHUNK)?;
        f(&mut buf)?;
        buf.clear();
        if !more {
            return Ok(());
        }
    }
}

/// Collects a whole partition.
pub(crate) fn drain_all<T>(it: ChunkIter<T>) -> Result<Vec<T>> {
    let mut all = Vec::new();
    for_each_chunk(it, |b| {
        all.append(b);
        Ok(())
    })?;
    Ok(all)
}

/// Chunks over any iterator (owned vectors, hash map drains, ...).
pub(crate) struct IterChunks<I>(pub(crate) I);

impl<I: Iterator> Chunks<I::Item> for IterChunks<I> {
    fn next_chunk(&mut self, out: &mut Vec<I::Item>, hint: usize) -> Result<bool> {
        for _ in 0..hint.max(1) {
            match self.0.next() {
                Some(x) => out.push(x),
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// Chunks that clone out of a shared vector (cached blocks, parallelized
/// slices, in-memory shuffle blocks).
pub(crate) struct SharedChunks<T> {
    data: Arc<Vec<T>>,
    pos: usize,
}

impl<T> SharedChunks<T> {
    pub(crate) fn new(data: Arc<Vec<T>>) -> Self {
        SharedChunks { data, pos: 0 }
    }
}

impl<T: Clone> Chunks<T> for SharedChunks<T> {
    fn next_chunk(&mut self, out: &mut Vec<T>, hint: usize) -> Result<bool> {
        let end = (self.pos + hint.max(1)).min(self.data.len());
        out.extend_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(end < self.data.len())
    }
}
