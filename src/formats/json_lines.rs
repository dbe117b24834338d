//! JSON lines: one JSON value per line, read into any `T:
//! DeserializeOwned` and written from any `T: Serialize` with serde_json.
//! Files are split into line-aligned byte ranges like text; compressed
//! files are read whole.

use super::compression::Compression;
use super::lines::{FileSplit, LineReader, plan_splits};
use super::output::save_parts;
use super::records::{Applying, BadRecords, Keeping, RecordReader, record_text};
use crate::chunk::{ChunkIter, for_each_chunk};
use crate::context::Context;
use crate::data::Data;
use crate::error::{BadRecord, Error, Result};
use crate::rdd::{Compute, Rdd, source};
use crate::runtime::{MetricsCell, TaskContext};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::path::Path;
use std::rc::Rc;

/// How [`Context::json_lines_file`] reads.
///
/// ```
/// use spate::{BadRecords, JsonLinesOptions};
/// let options = JsonLinesOptions::default().min_partitions(8).bad_records(BadRecords::Skip);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct JsonLinesOptions {
    min_partitions: Option<usize>,
    bad_records: BadRecords,
}

impl JsonLinesOptions {
    /// At least this many partitions (default: the context's parallelism);
    /// big files get more, at most 32 MiB each.
    pub fn min_partitions(mut self, n: usize) -> Self {
        self.min_partitions = Some(n.max(1));
        self
    }

    /// What to do with a line that does not parse as a `T` (default:
    /// fail).
    pub fn bad_records(mut self, policy: BadRecords) -> Self {
        self.bad_records = policy;
        self
    }
}

impl Context {
    /// The JSON values, one per line, of the files `path` names (a file, a
    /// directory's visible files, a glob, or a comma-separated list), as
    /// `T`s. Blank lines are no records. A line that does not parse as a
    /// `T` is handled as `options` says: by default the job fails with
    /// [`Error::MalformedRecord`] naming the file, line and column.
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    /// struct Click { user: String, page: u32 }
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("clicks.jsonl");
    /// std::fs::write(&path, "{\"user\":\"ann\",\"page\":3}\n{\"user\":\"bo\",\"page\":7}\n")?;
    /// let ctx = spate::Context::new()?;
    /// let clicks = ctx.json_lines_file::<Click>(&path, &Default::default())?;
    /// assert_eq!(clicks.collect()?, [Click { user: "ann".into(), page: 3 }, Click { user: "bo".into(), page: 7 }]);
    ///
    /// std::fs::write(&path, "{\"user\":\"ann\",\"page\":3}\n{\"user\":\"bo\",\"page\":\"x\"}\n")?;
    /// let err = ctx.json_lines_file::<Click>(&path, &Default::default())?.count().unwrap_err();
    /// assert!(err.to_string().contains("clicks.jsonl at line 2, column"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn json_lines_file<T: Data + DeserializeOwned>(
        &self,
        path: impl AsRef<Path>,
        options: &JsonLinesOptions,
    ) -> Result<Rdd<T>> {
        let splits = self.json_splits(path.as_ref(), options)?;
        let n = splits.len();
        let op = JsonLinesSource {
            splits,
            policy: options.bad_records,
            _t: PhantomData,
        };
        Ok(Rdd::from_op(self, source("json_lines_file", n), op))
    }

    /// Every line of the files `path` names, parsed: `Ok` for a `T`, `Err`
    /// for a line that did not parse, with its file, line, column and text
    /// (Spark's `PERMISSIVE` mode). Split it into the good rows and a side
    /// dataset of bad rows; `options`' policy is not used.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("n.jsonl");
    /// std::fs::write(&path, "1\n2\nthree\n4\n")?;
    /// let ctx = spate::Context::new()?;
    /// let rows = ctx.json_lines_file_keeping_bad::<u32>(&path, &Default::default())?.cache()?;
    /// let good = rows.filter_map(|r| r.ok());
    /// let bad = rows.filter_map(|r| r.err());
    /// assert_eq!(good.collect()?, [1, 2, 4]);
    /// let bad = bad.collect()?;
    /// assert_eq!((bad[0].line, bad[0].text.as_str()), (3, "three"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn json_lines_file_keeping_bad<T: Data + DeserializeOwned>(
        &self,
        path: impl AsRef<Path>,
        options: &JsonLinesOptions,
    ) -> Result<Rdd<std::result::Result<T, BadRecord>>> {
        let splits = self.json_splits(path.as_ref(), options)?;
        let n = splits.len();
        let op = JsonLinesKeeping::<T> {
            splits,
            _t: PhantomData,
        };
        Ok(Rdd::from_op(self, source("json_lines_file", n), op))
    }

    fn json_splits(&self, path: &Path, options: &JsonLinesOptions) -> Result<Vec<FileSplit>> {
        let parts = options
            .min_partitions
            .unwrap_or_else(|| self.default_parallelism());
        plan_splits(path, parts)
    }
}

struct JsonLinesSource<T> {
    splits: Vec<FileSplit>,
    policy: BadRecords,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data + DeserializeOwned> Compute<T> for JsonLinesSource<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        let reader = JsonReader::<T>::open(&self.splits[split], tc)?;
        Ok(Box::new(Applying {
            reader,
            policy: self.policy,
        }))
    }
}

struct JsonLinesKeeping<T> {
    splits: Vec<FileSplit>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data + DeserializeOwned> Compute<std::result::Result<T, BadRecord>>
    for JsonLinesKeeping<T>
{
    fn compute(
        &self,
        split: usize,
        tc: &TaskContext,
    ) -> Result<ChunkIter<std::result::Result<T, BadRecord>>> {
        let reader = JsonReader::<T>::open(&self.splits[split], tc)?;
        Ok(Box::new(Keeping(reader)))
    }
}

/// One split's lines parsed as `T`s.
struct JsonReader<T> {
    lines: LineReader,
    metrics: Rc<MetricsCell>,
    /// Input counted since the last flush.
    records: u64,
    bytes: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> JsonReader<T> {
    fn open(split: &FileSplit, tc: &TaskContext) -> Result<Self> {
        Ok(JsonReader {
            lines: LineReader::open(split)?,
            metrics: tc.metrics.clone(),
            records: 0,
            bytes: 0,
            _t: PhantomData,
        })
    }
}

/// serde_json's message without the position it appends (the bad record
/// carries its own, in the file).
fn reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((reason, _)) => reason.to_string(),
        None => text,
    }
}

impl<T: DeserializeOwned> RecordReader for JsonReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<std::result::Result<T, BadRecord>>> {
        loop {
            let start = self.lines.offset();
            let Some(line) = self.lines.next_raw()? else {
                return Ok(None);
            };
            self.bytes += self.lines.offset() - start;
            let bytes = self.lines.bytes(&line);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.records += 1;
            return Ok(Some(match serde_json::from_slice::<T>(bytes) {
                Ok(t) => Ok(t),
                Err(e) => {
                    let text = record_text(bytes);
                    Err(BadRecord {
                        path: self.lines.path().to_path_buf(),
                        line: self.lines.line_number()?,
                        column: Some(e.column() as u64),
                        field: None,
                        offset: line.offset,
                        text,
                        reason: reason(&e),
                    })
                }
            }));
        }
    }

    fn metrics(&self) -> &MetricsCell {
        &self.metrics
    }

    fn flush(&mut self) {
        let (records, bytes) = (self.records, self.bytes);
        self.metrics.update(|m| {
            m.input_records += records;
            m.input_bytes += bytes;
        });
        (self.records, self.bytes) = (0, 0);
    }
}

impl<T: Data + Serialize> Rdd<T> {
    /// Writes each element as one line of JSON (serde_json), one
    /// `part-NNNNN.jsonl` file per partition in the new directory `dir`,
    /// committed as [`save_as_text_file`](Rdd::save_as_text_file) is.
    /// [`Context::json_lines_file`] reads it back.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("out");
    /// ctx.parallelize(vec![("a".to_string(), 1), ("b".to_string(), 2)], 1).save_as_json_lines(&dir)?;
    /// assert_eq!(std::fs::read_to_string(dir.join("part-00000.jsonl"))?, "[\"a\",1]\n[\"b\",2]\n");
    /// let back = ctx.json_lines_file::<(String, i32)>(&dir, &Default::default())?;
    /// assert_eq!(back.collect()?, [("a".to_string(), 1), ("b".to_string(), 2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_as_json_lines(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.save_as_compressed_json_lines(dir, Compression::None)
    }

    /// [`save_as_json_lines`](Rdd::save_as_json_lines) through a codec
    /// (`part-NNNNN.jsonl.gz`, ...), read back by extension.
    ///
    /// ```
    /// use spate::Compression;
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("out");
    /// ctx.parallelize(vec![1u8, 2, 3], 2).save_as_compressed_json_lines(&dir, Compression::Zstd)?;
    /// assert!(dir.join("part-00001.jsonl.zst").exists());
    /// assert_eq!(ctx.json_lines_file::<u8>(&dir, &Default::default())?.collect()?, [1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_as_compressed_json_lines(
        &self,
        dir: impl AsRef<Path>,
        compression: Compression,
    ) -> Result<()> {
        save_parts(
            self,
            dir.as_ref(),
            "save_as_json_lines",
            ".jsonl",
            compression,
            |part, it| {
                for_each_chunk(it, |b| {
                    for x in b.drain(..) {
                        serde_json::to_writer(&mut *part.writer(), &x).map_err(|e| {
                            let io = e.is_io();
                            let e = std::io::Error::other(e);
                            if io {
                                Error::io(part.path(), e)
                            } else {
                                Error::Codec(e.to_string())
                            }
                        })?;
                        part.write_all(b"\n")?;
                    }
                    Ok(())
                })
            },
        )
    }
}
