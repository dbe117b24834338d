//! Text files: lines from line-aligned byte ranges of each file
//! (`text_file`, compressed files whole), whole files
//! (`whole_text_files`), and lines written out (`save_as_text_file`).

use super::compression::Compression;
use super::input::{input_len, read_all};
use super::lines::{BadLines, FileSplit, LineReader, plan_splits};
use super::output::save_parts;
use super::paths::list_files;
use crate::chunk::{ChunkIter, Chunks, IterChunks, for_each_chunk};
use crate::context::Context;
use crate::data::Data;
use crate::error::{Error, Result};
use crate::rdd::{Compute, Rdd, slice_bounds, source};
use crate::runtime::{MetricsCell, TaskContext};
use crate::small_str::Str;
use std::any::Any;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(crate) struct TextSource {
    splits: Vec<FileSplit>,
    bad_lines: BadLines,
}

impl TextSource {
    pub(crate) fn rdd(ctx: &Context, path: &Path, min_partitions: usize) -> Result<Rdd<String>> {
        Self::rdd_with(ctx, path, min_partitions, BadLines::Fail)
    }

    pub(crate) fn rdd_with(
        ctx: &Context,
        path: &Path,
        min_partitions: usize,
        bad_lines: BadLines,
    ) -> Result<Rdd<String>> {
        let splits = plan_splits(path, min_partitions)?;
        let n = splits.len();
        Ok(Rdd::from_op(
            ctx,
            source("text_file", n),
            TextSource { splits, bad_lines },
        ))
    }
}

impl Compute<String> for TextSource {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<String>> {
        Ok(Box::new(TextLines {
            reader: LineReader::open(&self.splits[split])?,
            bad_lines: self.bad_lines.clone(),
            metrics: tc.metrics.clone(),
        }))
    }
}

/// A split's lines as text.
struct TextLines {
    reader: LineReader,
    bad_lines: BadLines,
    /// Where the lines read and the bytes they took are counted as input.
    metrics: Rc<MetricsCell>,
}

impl Chunks<String> for TextLines {
    fn next_chunk(&mut self, out: &mut Vec<String>, hint: usize) -> Result<bool> {
        let (start, lines) = (self.reader.offset(), out.len());
        let mut more = true;
        for _ in 0..hint.max(1) {
            match self.reader.next_line(&self.bad_lines)? {
                Some(line) => out.push(line),
                None => {
                    more = false;
                    break;
                }
            }
        }
        let (bytes, lines) = (self.reader.offset() - start, (out.len() - lines) as u64);
        self.metrics.update(|m| {
            m.input_records += lines;
            m.input_bytes += bytes;
        });
        Ok(more)
    }
}

pub(crate) struct WholeTextSource {
    groups: Vec<Vec<PathBuf>>,
}

impl WholeTextSource {
    pub(crate) fn rdd(
        ctx: &Context,
        path: &Path,
        min_partitions: usize,
    ) -> Result<Rdd<(String, String)>> {
        let files = list_files(path)?;
        for f in &files {
            input_len(f)?;
        }
        let parts = min_partitions.min(files.len());
        let mut groups = Vec::with_capacity(parts);
        let mut rest = files.into_iter();
        let n = rest.len();
        for i in 0..parts {
            let (a, b) = slice_bounds(n, parts, i);
            groups.push(rest.by_ref().take(b - a).collect());
        }
        Ok(Rdd::from_op(
            ctx,
            source("whole_text_files", parts),
            WholeTextSource { groups },
        ))
    }
}

impl Compute<(String, String)> for WholeTextSource {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<(String, String)>> {
        let mut out = Vec::new();
        for path in &self.groups[split] {
            let bytes = read_all(path)?;
            tc.metrics.update(|m| {
                m.input_records += 1;
                m.input_bytes += bytes.len() as u64;
            });
            let text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
                path: path.clone(),
                offset: e.utf8_error().valid_up_to() as u64,
            })?;
            out.push((path.to_string_lossy().into_owned(), text));
        }
        Ok(Box::new(IterChunks(out.into_iter())))
    }
}

impl<T: Data + Display> Rdd<T> {
    /// Writes the elements as lines of text, one `part-NNNNN` file per
    /// partition in the new directory `dir`, then an empty `_SUCCESS`
    /// file. Each task writes to a temporary file and renames it into place
    /// when done, so a failed or retried task never leaves a partial or
    /// duplicate part file. An existing `dir` is an error.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let dir = tempfile::tempdir().unwrap().path().join("out");
    /// ctx.parallelize(vec![1, 2, 3], 2).save_as_text_file(&dir).unwrap();
    /// assert_eq!(std::fs::read_to_string(dir.join("part-00001")).unwrap(), "2\n3\n");
    /// ```
    pub fn save_as_text_file(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.save_as_compressed_text_file(dir, Compression::None)
    }

    /// [`save_as_text_file`](Rdd::save_as_text_file) through a codec: part
    /// files `part-NNNNN.gz` (or `.zst`, `.bz2`, `.lz4`), which
    /// [`text_file`](crate::Context::text_file) reads back by their
    /// extension (Spark's `saveAsTextFile(path, codec)`).
    ///
    /// ```
    /// use spate::Compression;
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("out");
    /// let lines: Vec<String> = ["a", "b", "c"].map(String::from).into();
    /// ctx.parallelize(lines, 2).save_as_compressed_text_file(&dir, Compression::Gzip)?;
    /// assert!(dir.join("part-00000.gz").exists());
    /// let back = ctx.text_file(&dir, 1)?.collect()?;
    /// assert_eq!(back, ["a", "b", "c"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_as_compressed_text_file(
        &self,
        dir: impl AsRef<Path>,
        compression: Compression,
    ) -> Result<()> {
        save_parts(
            self,
            dir.as_ref(),
            "save_as_text_file",
            "",
            compression,
            |part, it| {
                for_each_chunk(it, |b| {
                    for x in b.drain(..) {
                        write_line(part.writer(), &x).map_err(|e| Error::io(part.path(), e))?;
                    }
                    Ok(())
                })
            },
        )
    }
}

/// Writes one element and a newline; strings as they are, without
/// `Display`'s formatting machinery.
fn write_line<T: Display + 'static>(w: &mut impl Write, x: &T) -> std::io::Result<()> {
    let any = x as &dyn Any;
    if let Some(s) = any.downcast_ref::<String>() {
        w.write_all(s.as_bytes())?;
    } else if let Some(s) = any.downcast_ref::<Str>() {
        w.write_all(s.as_bytes())?;
    } else {
        write!(w, "{x}")?;
    }
    w.write_all(b"\n")
}
