//! CSV: rows read into any `T: DeserializeOwned` and written from any `T:
//! Serialize` with the `csv` crate. Files are split into line-aligned byte
//! ranges like text (so a quoted field may not hold a newline), or read
//! whole with `multi_line`; compressed files are read whole.

use super::compression::Compression;
use super::lines::{FileSplit, SplitBytes, plan_splits, whole_files};
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
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// How [`Context::csv_file`] reads.
///
/// ```
/// use spate::{BadRecords, CsvOptions};
/// let tsv = CsvOptions::default().delimiter(b'\t').header(false).bad_records(BadRecords::Skip);
/// # let _ = tsv;
/// ```
#[derive(Clone, Debug)]
pub struct CsvOptions {
    header: bool,
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
    comment: Option<u8>,
    trim: bool,
    multi_line: bool,
    min_partitions: Option<usize>,
    bad_records: BadRecords,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: b',',
            quote: b'"',
            escape: None,
            comment: None,
            trim: false,
            multi_line: false,
            min_partitions: None,
            bad_records: BadRecords::Fail,
        }
    }
}

impl CsvOptions {
    /// Whether each file's first line names the columns (default: yes).
    /// With a header, a struct's fields are matched by name; without, by
    /// position.
    pub fn header(mut self, yes: bool) -> Self {
        self.header = yes;
        self
    }

    /// The field delimiter (default `,`).
    pub fn delimiter(mut self, byte: u8) -> Self {
        self.delimiter = byte;
        self
    }

    /// The quote character (default `"`); a quote inside a quoted field is
    /// doubled unless an [`escape`](Self::escape) is set.
    pub fn quote(mut self, byte: u8) -> Self {
        self.quote = byte;
        self
    }

    /// An escape character for quotes inside quoted fields (for example
    /// `\`), instead of doubling them.
    pub fn escape(mut self, byte: u8) -> Self {
        self.escape = Some(byte);
        self
    }

    /// Lines starting with this byte are comments and skipped.
    pub fn comment(mut self, byte: u8) -> Self {
        self.comment = Some(byte);
        self
    }

    /// Trims whitespace around fields and header names (default: no).
    pub fn trim(mut self, yes: bool) -> Self {
        self.trim = yes;
        self
    }

    /// Quoted fields may hold newlines: each file is then read whole, as
    /// one partition (default: no, files are split at line ends).
    pub fn multi_line(mut self, yes: bool) -> Self {
        self.multi_line = yes;
        self
    }

    /// At least this many partitions (default: the context's parallelism);
    /// big files get more, at most 32 MiB each.
    pub fn min_partitions(mut self, n: usize) -> Self {
        self.min_partitions = Some(n.max(1));
        self
    }

    /// What to do with a row that does not parse as a `T`, or has more or
    /// fewer fields than the header (default: fail).
    pub fn bad_records(mut self, policy: BadRecords) -> Self {
        self.bad_records = policy;
        self
    }

    fn reader<R: std::io::Read>(&self, input: R) -> csv::Reader<R> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .quote(self.quote)
            .escape(self.escape)
            .double_quote(self.escape.is_none())
            .comment(self.comment)
            .trim(if self.trim {
                csv::Trim::All
            } else {
                csv::Trim::None
            })
            .from_reader(input)
    }
}

impl Context {
    /// The rows of the CSV files `path` names (a file, a directory's
    /// visible files, a glob, or a comma-separated list), as `T`s. A row
    /// that does not parse as a `T`, or has more or fewer fields than the
    /// file's first row, is handled as `options` says: by default the job
    /// fails with [`Error::MalformedRecord`] naming the file, line and
    /// field.
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    /// struct Sale { item: String, cents: u64 }
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("sales.csv");
    /// std::fs::write(&path, "item,cents\ntea,250\n\"cake, lemon\",400\n")?;
    /// let ctx = spate::Context::new()?;
    /// let sales = ctx.csv_file::<Sale>(&path, &Default::default())?.collect()?;
    /// assert_eq!(sales[1], Sale { item: "cake, lemon".into(), cents: 400 });
    ///
    /// std::fs::write(&path, "item,cents\ntea,250\ncake,lots\n")?;
    /// let err = ctx.csv_file::<Sale>(&path, &Default::default())?.count().unwrap_err();
    /// assert!(err.to_string().contains("sales.csv at line 3, field 2"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn csv_file<T: Data + DeserializeOwned>(
        &self,
        path: impl AsRef<Path>,
        options: &CsvOptions,
    ) -> Result<Rdd<T>> {
        let splits = self.csv_splits(path.as_ref(), options)?;
        let n = splits.len();
        let op = CsvSource::<T> {
            splits,
            options: options.clone(),
            _t: PhantomData,
        };
        Ok(Rdd::from_op(self, source("csv_file", n), op))
    }

    /// Every row of the CSV files `path` names, parsed: `Ok` for a `T`,
    /// `Err` for a row that did not parse, with its file, line, field and
    /// text (Spark's `PERMISSIVE` mode), to split into the good rows and a
    /// side dataset of bad ones; `options`' policy is not used.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("pairs.csv");
    /// std::fs::write(&path, "a,1\nb,2,extra\nc,3\n")?;
    /// let ctx = spate::Context::new()?;
    /// let options = spate::CsvOptions::default().header(false);
    /// let rows = ctx.csv_file_keeping_bad::<(String, u32)>(&path, &options)?.collect()?;
    /// assert_eq!(rows[0], Ok(("a".to_string(), 1)));
    /// let bad = rows[1].as_ref().unwrap_err();
    /// assert_eq!((bad.line, bad.text.as_str()), (2, "b,2,extra"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn csv_file_keeping_bad<T: Data + DeserializeOwned>(
        &self,
        path: impl AsRef<Path>,
        options: &CsvOptions,
    ) -> Result<Rdd<std::result::Result<T, BadRecord>>> {
        let splits = self.csv_splits(path.as_ref(), options)?;
        let n = splits.len();
        let op = CsvKeeping::<T> {
            splits,
            options: options.clone(),
            _t: PhantomData,
        };
        Ok(Rdd::from_op(self, source("csv_file", n), op))
    }

    fn csv_splits(&self, path: &Path, options: &CsvOptions) -> Result<Vec<FileSplit>> {
        if options.multi_line {
            return whole_files(path);
        }
        let parts = options
            .min_partitions
            .unwrap_or_else(|| self.default_parallelism());
        plan_splits(path, parts)
    }
}

struct CsvSource<T> {
    splits: Vec<FileSplit>,
    options: CsvOptions,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data + DeserializeOwned> Compute<T> for CsvSource<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        let reader = CsvReader::<T>::open(&self.splits[split], &self.options, tc)?;
        Ok(Box::new(Applying {
            reader,
            policy: self.options.bad_records,
        }))
    }
}

struct CsvKeeping<T> {
    splits: Vec<FileSplit>,
    options: CsvOptions,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data + DeserializeOwned> Compute<std::result::Result<T, BadRecord>> for CsvKeeping<T> {
    fn compute(
        &self,
        split: usize,
        tc: &TaskContext,
    ) -> Result<ChunkIter<std::result::Result<T, BadRecord>>> {
        let reader = CsvReader::<T>::open(&self.splits[split], &self.options, tc)?;
        Ok(Box::new(Keeping(reader)))
    }
}

/// One split's rows parsed as `T`s.
struct CsvReader<T> {
    path: Arc<PathBuf>,
    csv: csv::Reader<SplitBytes>,
    record: csv::ByteRecord,
    /// The file's header, when it has one (read from the file's start by
    /// every split but the first).
    header: Option<csv::ByteRecord>,
    /// The fields every row must have: the file's first row's count.
    fields: Option<usize>,
    /// The stream starts with the file's header (the first split of a file
    /// with one).
    header_first: bool,
    delimiter: u8,
    metrics: Rc<MetricsCell>,
    /// Input counted since the last flush, and the stream offset it was
    /// counted up to.
    records: u64,
    counted_to: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> CsvReader<T> {
    fn open(split: &FileSplit, options: &CsvOptions, tc: &TaskContext) -> Result<Self> {
        let at_file_start = split.start == 0;
        let (mut header, mut fields) = (None, None);
        if !at_file_start {
            // The file's first row: the header, or the width every row has.
            let first = FileSplit {
                path: split.path.clone(),
                start: 0,
                end: 1,
                codec: split.codec,
            };
            let mut csv = options.reader(SplitBytes::open(&first)?);
            let mut row = csv::ByteRecord::new();
            if read(&mut csv, &mut row, &split.path)? {
                fields = Some(row.len());
                header = options.header.then_some(row);
            }
        }
        Ok(CsvReader {
            path: split.path.clone(),
            csv: options.reader(SplitBytes::open(split)?),
            record: csv::ByteRecord::new(),
            header,
            fields,
            header_first: at_file_start && options.header,
            delimiter: options.delimiter,
            metrics: tc.metrics.clone(),
            records: 0,
            counted_to: 0,
            _t: PhantomData,
        })
    }

    /// A bad record for the row just read.
    fn bad(&mut self, field: Option<u64>, reason: String) -> Result<BadRecord> {
        let pos = self
            .record
            .position()
            .cloned()
            .unwrap_or_else(csv::Position::new);
        let mut text = Vec::new();
        for (i, f) in self.record.iter().enumerate() {
            if i > 0 {
                text.push(self.delimiter);
            }
            text.extend_from_slice(f);
        }
        let input = self.csv.get_mut();
        let first = input.first_line();
        let before = input.lines().lines_before()?;
        Ok(BadRecord {
            path: self.path.to_path_buf(),
            line: before + pos.line(),
            column: None,
            field,
            offset: first + pos.byte(),
            text: record_text(&text),
            reason,
        })
    }
}

/// Reads the next row into `row`; `false` at the end. An I/O error (a
/// file cut short, a gzip stream broken) fails the task naming the file.
fn read(csv: &mut csv::Reader<SplitBytes>, row: &mut csv::ByteRecord, path: &Path) -> Result<bool> {
    csv.read_byte_record(row).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => match io.downcast::<Error>() {
            Ok(engine) => engine,
            Err(io) => Error::io(path, io),
        },
        other => Error::Codec(format!("{}: {other:?}", path.display())),
    })
}

impl<T: DeserializeOwned> RecordReader for CsvReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<std::result::Result<T, BadRecord>>> {
        if !read(&mut self.csv, &mut self.record, &self.path)? {
            return Ok(None);
        }
        let expected = match self.fields {
            Some(n) => n,
            // The file's first row: the width of every row, and the header
            // when the file has one.
            None => {
                self.fields = Some(self.record.len());
                if self.header_first {
                    self.header = Some(self.record.clone());
                    return self.next_record();
                }
                self.record.len()
            }
        };
        self.records += 1;
        if self.record.len() != expected {
            let reason = format!(
                "the row has {} fields, the file's first row has {expected}",
                self.record.len()
            );
            return Ok(Some(Err(self.bad(None, reason)?)));
        }
        Ok(Some(
            match self.record.deserialize::<T>(self.header.as_ref()) {
                Ok(t) => Ok(t),
                Err(e) => {
                    let (field, reason) = match e.kind() {
                        csv::ErrorKind::Deserialize { err, .. } => {
                            // Its text says "field N: ..."; the bad record has the field.
                            let text = err.to_string();
                            let reason = match text.split_once(": ") {
                                Some((at, rest)) if at.starts_with("field ") => rest.to_string(),
                                _ => text,
                            };
                            (err.field().map(|f| f + 1), reason)
                        }
                        other => (None, format!("{other:?}")),
                    };
                    Err(self.bad(field, reason)?)
                }
            },
        ))
    }

    fn metrics(&self) -> &MetricsCell {
        &self.metrics
    }

    fn flush(&mut self) {
        let to = self.csv.position().byte();
        let (records, bytes) = (self.records, to - self.counted_to);
        self.metrics.update(|m| {
            m.input_records += records;
            m.input_bytes += bytes;
        });
        (self.records, self.counted_to) = (0, to);
    }
}

/// How [`Rdd::save_as_csv`] writes.
///
/// ```
/// use spate::{Compression, CsvWriteOptions};
/// let options = CsvWriteOptions::default().delimiter(b';').compression(Compression::Gzip);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct CsvWriteOptions {
    header: bool,
    delimiter: u8,
    quote: u8,
    compression: Compression,
}

impl Default for CsvWriteOptions {
    fn default() -> Self {
        CsvWriteOptions {
            header: true,
            delimiter: b',',
            quote: b'"',
            compression: Compression::None,
        }
    }
}

impl CsvWriteOptions {
    /// Whether each part file starts with a header row of the struct's
    /// field names (default: yes; Spark writes one per part file too).
    pub fn header(mut self, yes: bool) -> Self {
        self.header = yes;
        self
    }

    /// The field delimiter (default `,`).
    pub fn delimiter(mut self, byte: u8) -> Self {
        self.delimiter = byte;
        self
    }

    /// The quote character (default `"`), used where a field needs it.
    pub fn quote(mut self, byte: u8) -> Self {
        self.quote = byte;
        self
    }

    /// Compresses each part file (`part-NNNNN.csv.gz`, ...).
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }
}

impl<T: Data + Serialize> Rdd<T> {
    /// Writes the elements as CSV rows, one `part-NNNNN.csv` file per
    /// partition in the new directory `dir`, committed as
    /// [`save_as_text_file`](Rdd::save_as_text_file) is. Structs become
    /// rows of their fields (with a header of their names), tuples rows of
    /// their items; `None` is an empty field.
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    /// struct Sale { item: String, cents: u64 }
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("out");
    /// let sales = vec![Sale { item: "tea".into(), cents: 250 }, Sale { item: "cake, lemon".into(), cents: 400 }];
    /// ctx.parallelize(sales.clone(), 1).save_as_csv(&dir, &Default::default())?;
    /// let text = std::fs::read_to_string(dir.join("part-00000.csv"))?;
    /// assert_eq!(text, "item,cents\ntea,250\n\"cake, lemon\",400\n");
    /// assert_eq!(ctx.csv_file::<Sale>(&dir, &Default::default())?.collect()?, sales);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_as_csv(&self, dir: impl AsRef<Path>, options: &CsvWriteOptions) -> Result<()> {
        let options = options.clone();
        save_parts(
            self,
            dir.as_ref(),
            "save_as_csv",
            ".csv",
            options.compression,
            |part, it| {
                let path = part.path().to_path_buf();
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(options.header)
                    .delimiter(options.delimiter)
                    .quote(options.quote)
                    .from_writer(part.writer());
                let fail = |e: csv::Error| match e.into_kind() {
                    csv::ErrorKind::Io(io) => Error::io(&path, io),
                    other => Error::Codec(format!(
                        "cannot write a CSV row to {}: {other:?}",
                        path.display()
                    )),
                };
                for_each_chunk(it, |b| {
                    for x in b.drain(..) {
                        csv.serialize(&x).map_err(fail)?;
                    }
                    Ok(())
                })?;
                csv.flush().map_err(|e| Error::io(&path, e))
            },
        )
    }
}
