//! Object files (Spark's `saveAsObjectFile` / `objectFile`): elements in
//! the engine's own codec, for datasets that only Spate reads back.
//!
//! A file is `SPATEOBJ`, a version byte, then checksummed frames
//! (`codec::write_frame`: bincode, lz4, CRC-32): first the element type's
//! name, then blocks of elements, last the number of elements written. A
//! reader checks the type, every checksum and the count, so a file of
//! another type, a corrupt frame or a file cut short is an error naming
//! it, never wrong data.

use super::compression::Compression;
use super::input::{input_len, open_at};
use super::output::save_parts;
use super::paths::list_files;
use crate::chunk::{ChunkIter, Chunks, for_each_chunk};
use crate::codec::{self, FRAME_HEADER};
use crate::context::Context;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::rdd::{Compute, Rdd, source};
use crate::runtime::{MetricsCell, TaskContext};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, Read};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const MAGIC: &[u8; 8] = b"SPATEOBJ";
const VERSION: u8 = 1;

/// One frame after the type's name, as read.
#[derive(Deserialize)]
enum Block<T> {
    Records(Vec<T>),
    End { records: u64 },
}

/// The same, as written: bincode encodes a slice as it does a `Vec`.
#[derive(Serialize)]
enum BlockRef<'a, T> {
    Records(&'a [T]),
    End { records: u64 },
}

impl Context {
    /// The elements of the object files `path` names (written by
    /// [`Rdd::save_as_object_file`]), one partition per file. A file of
    /// another element type (compared by [`std::any::type_name`]), or one
    /// corrupt or cut short, fails the job with
    /// [`Error::BadObjectFile`] naming it.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("objects");
    /// let pairs = ctx.parallelize(vec![("a".to_string(), 1u64), ("b".to_string(), 2)], 2);
    /// pairs.save_as_object_file(&dir)?;
    /// let back = ctx.object_file::<(String, u64)>(&dir)?;
    /// assert_eq!(back.collect()?, pairs.collect()?);
    /// let wrong = ctx.object_file::<u32>(&dir)?.count().unwrap_err();
    /// assert!(wrong.to_string().contains("holds (alloc::string::String, u64), not u32"), "{wrong}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn object_file<T: Value>(&self, path: impl AsRef<Path>) -> Result<Rdd<T>> {
        let files = list_files(path.as_ref())?;
        for f in &files {
            input_len(f)?;
        }
        let n = files.len();
        let op = ObjectSource::<T> {
            files,
            _t: PhantomData,
        };
        Ok(Rdd::from_op(self, source("object_file", n), op))
    }
}

struct ObjectSource<T> {
    files: Vec<PathBuf>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Value> Compute<T> for ObjectSource<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        Ok(Box::new(ObjectReader::<T>::open(&self.files[split], tc)?))
    }
}

struct ObjectReader<T> {
    path: PathBuf,
    input: BufReader<Box<dyn Read>>,
    frame: Vec<u8>,
    /// Elements read so far, checked against the count at the end.
    read: u64,
    metrics: Rc<MetricsCell>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Value> ObjectReader<T> {
    fn open(path: &Path, tc: &TaskContext) -> Result<Self> {
        let file = open_at(path, 0)?;
        let mut r = ObjectReader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(1 << 20, file),
            frame: Vec::new(),
            read: 0,
            metrics: tc.metrics.clone(),
            _t: PhantomData,
        };
        let mut head = [0u8; 9];
        r.fill(&mut head)?;
        if &head[..8] != MAGIC {
            return Err(r.bad("it does not start as an object file does".into()));
        }
        if head[8] != VERSION {
            return Err(r.bad(format!("version {} (this build reads {VERSION})", head[8])));
        }
        let held: String = r.next_frame()?;
        let want = std::any::type_name::<T>();
        if held != want {
            return Err(r.bad(format!("it holds {held}, not {want}")));
        }
        Ok(r)
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadObjectFile {
            path: self.path.clone(),
            reason,
        }
    }

    /// Reads exactly `out.len()` bytes; the file ending first is "cut short".
    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        self.input.read_exact(out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.bad("the file is cut short".into())
            } else {
                Error::io(&self.path, e)
            }
        })
    }

    fn next_frame<F: serde::de::DeserializeOwned>(&mut self) -> Result<F> {
        let mut header = [0u8; FRAME_HEADER];
        self.fill(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        self.frame.clear();
        self.frame.extend_from_slice(&header);
        self.frame.resize(FRAME_HEADER + len, 0);
        let mut body = std::mem::take(&mut self.frame);
        let filled = self.fill(&mut body[FRAME_HEADER..]);
        self.frame = body;
        filled?;
        self.metrics
            .update(|m| m.input_bytes += (FRAME_HEADER + len) as u64);
        let (value, _) = codec::read_frame::<F>(&self.frame).map_err(|why| self.bad(why))?;
        Ok(value)
    }
}

impl<T: Value> Chunks<T> for ObjectReader<T> {
    fn next_chunk(&mut self, out: &mut Vec<T>, _hint: usize) -> Result<bool> {
        match self.next_frame::<Block<T>>()? {
            Block::Records(mut records) => {
                let n = records.len() as u64;
                self.read += n;
                self.metrics.update(|m| m.input_records += n);
                out.append(&mut records);
                Ok(true)
            }
            Block::End { records } if records == self.read => Ok(false),
            Block::End { records } => Err(self.bad(format!(
                "it says it holds {records} elements, but {} were read",
                self.read
            ))),
        }
    }
}

impl<T: Value> Rdd<T> {
    /// Writes the elements in the engine's own codec (bincode, lz4 and
    /// CRC-32 frames, with the element type's name), one `part-NNNNN` file
    /// per partition in the new directory `dir`, committed as
    /// [`save_as_text_file`](Rdd::save_as_text_file) is (Spark's
    /// `saveAsObjectFile`). [`Context::object_file`] reads it back. The
    /// format is this build's: for data Spate itself reads again, not for
    /// exchange.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("objects");
    /// ctx.range(0, 1000, 1, 3).save_as_object_file(&dir)?;
    /// assert_eq!(ctx.object_file::<i64>(&dir)?.sum()?, 499_500);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_as_object_file(&self, dir: impl AsRef<Path>) -> Result<()> {
        save_parts(
            self,
            dir.as_ref(),
            "save_as_object_file",
            "",
            Compression::None,
            |part, it| {
                let (mut scratch, mut frame) = (Vec::new(), Vec::new());
                frame.extend_from_slice(MAGIC);
                frame.push(VERSION);
                codec::write_frame(&std::any::type_name::<T>(), &mut scratch, &mut frame)?;
                part.write_all(&frame)?;
                let mut records = 0u64;
                for_each_chunk(it, |chunk| {
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    records += chunk.len() as u64;
                    frame.clear();
                    codec::write_frame(&BlockRef::Records(chunk), &mut scratch, &mut frame)?;
                    chunk.clear();
                    part.write_all(&frame)
                })?;
                frame.clear();
                codec::write_frame(&BlockRef::End::<T> { records }, &mut scratch, &mut frame)?;
                part.write_all(&frame)
            },
        )
    }
}
