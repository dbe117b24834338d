//! Parquet (the `parquet` and `arrow` crates; rows typed through serde by
//! `serde_arrow`): row groups are the splits, only the columns the row
//! type names are read, and the file's schema is checked against the type
//! when the dataset is made. Behind the `parquet` feature (on by default).

#[cfg(not(feature = "object-store"))]
use super::input::no_object_stores;
use super::input::{input_len, is_url};
use super::output::save_parts;
use super::paths::list_files;
#[cfg(feature = "object-store")]
use super::store::Object;
use crate::chunk::{ChunkIter, Chunks, for_each_chunk};
use crate::context::Context;
use crate::data::Value;
use crate::error::{Error, Result};
use crate::rdd::{Compute, Rdd, source};
use crate::runtime::{MetricsCell, TaskContext};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, FieldRef, Schema};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use serde_arrow::schema::{SchemaLike, TracingOptions};
use std::io::Read;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per record batch read.
const BATCH_ROWS: usize = 8192;

/// One row group of one file.
#[derive(Clone)]
struct RowGroup {
    path: Arc<PathBuf>,
    index: usize,
    /// The top-level columns read (all of them for `parquet_batches`).
    columns: Option<Arc<Vec<usize>>>,
}

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::BadParquetFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The error for a file the reader could not use: a failed read of the
/// bytes below it as itself (a missing or unreachable object), anything
/// else as a bad file.
fn reader_error(path: &Path, e: ParquetError) -> Error {
    match e {
        ParquetError::External(inner) => match inner.downcast::<Error>() {
            Ok(read) => *read,
            Err(other) => parquet_error(path, other),
        },
        e => parquet_error(path, e),
    }
}

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<ParquetInput>> {
    let input = ParquetInput::open(path)?;
    ParquetRecordBatchReaderBuilder::try_new(input).map_err(|e| reader_error(path, e))
}

/// A Parquet file's bytes: a local file, or an object read by ranged GETs
/// (the footer, then each column chunk read).
enum ParquetInput {
    File(std::fs::File),
    #[cfg(feature = "object-store")]
    Object {
        object: Object,
        len: u64,
    },
}

impl ParquetInput {
    fn open(path: &Path) -> Result<ParquetInput> {
        if is_url(path) {
            #[cfg(feature = "object-store")]
            {
                let object = Object::parse(path)?;
                let len = object.size()?;
                return Ok(ParquetInput::Object { object, len });
            }
            #[cfg(not(feature = "object-store"))]
            return Err(no_object_stores(path));
        }
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(ParquetInput::File(file))
    }
}

impl Length for ParquetInput {
    fn len(&self) -> u64 {
        match self {
            ParquetInput::File(file) => file.len(),
            #[cfg(feature = "object-store")]
            ParquetInput::Object { len, .. } => *len,
        }
    }
}

impl ChunkReader for ParquetInput {
    type T = Box<dyn Read>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        match self {
            ParquetInput::File(file) => Ok(Box::new(file.get_read(start)?)),
            #[cfg(feature = "object-store")]
            ParquetInput::Object { object, .. } => match object.open_at(start) {
                Ok(read) => Ok(Box::new(read)),
                Err(e) => Err(ParquetError::External(Box::new(e))),
            },
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            ParquetInput::File(file) => file.get_bytes(start, length),
            #[cfg(feature = "object-store")]
            ParquetInput::Object { object, .. } => object
                .get_range(start, length)
                .map_err(|e| ParquetError::External(Box::new(e))),
        }
    }
}

/// The row groups of the files `path` names; `columns` picks each file's
/// columns from its schema.
fn plan(
    path: &Path,
    mut columns: impl FnMut(&Path, &Schema) -> Result<Option<Vec<usize>>>,
) -> Result<Vec<RowGroup>> {
    let mut groups = Vec::new();
    for file in list_files(path)? {
        input_len(&file)?;
        let builder = open(&file)?;
        let picked = columns(&file, builder.schema())?.map(Arc::new);
        let file = Arc::new(file);
        for index in 0..builder.metadata().num_row_groups() {
            groups.push(RowGroup {
                path: file.clone(),
                index,
                columns: picked.clone(),
            });
        }
    }
    Ok(groups)
}

/// A row group's record batches, and the input they count.
fn read_group(group: &RowGroup, metrics: &MetricsCell) -> Result<ParquetRecordBatchReader> {
    let path = group.path.as_path();
    let builder = open(path)?;
    let meta = builder.metadata().row_group(group.index);
    let schema = builder.parquet_schema();
    let (mask, bytes) = match &group.columns {
        Some(cols) => {
            let mask = ProjectionMask::roots(schema, cols.iter().copied());
            // The bytes of the leaf columns under the chosen roots.
            let bytes = (0..meta.num_columns())
                .filter(|&leaf| mask.leaf_included(leaf))
                .map(|leaf| meta.column(leaf).compressed_size() as u64)
                .sum();
            (mask, bytes)
        }
        None => (ProjectionMask::all(), meta.compressed_size() as u64),
    };
    let rows = meta.num_rows() as u64;
    metrics.update(|m| {
        m.input_records += rows;
        m.input_bytes += bytes;
    });
    builder
        .with_row_groups(vec![group.index])
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| reader_error(path, e))
}

/// What kind of value an Arrow type holds, for matching a file's column
/// to a row type's field: widths may differ (an `i32` column reads into
/// an `i64` field), kinds may not.
fn kind(t: &DataType) -> String {
    use DataType::*;
    match t {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => "an integer".into(),
        Float16 | Float32 | Float64 => "a float".into(),
        Utf8 | LargeUtf8 | Utf8View => "a string".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "bytes".into(),
        Boolean => "a boolean".into(),
        Null => "null".into(),
        Dictionary(_, values) => kind(values),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            format!("a list of {}", kind(f.data_type()))
        }
        Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), kind(f.data_type())))
                .collect();
            format!("a struct {{{}}}", inner.join(", "))
        }
        other => format!("{other}"),
    }
}

/// Whether a column of type `file` can fill a field of type `want`.
fn fits(file: &DataType, want: &DataType) -> bool {
    let (f, w) = (kind(file), kind(want));
    // A null field (a unit, `None` only) takes any column; integers fit floats.
    f == w || w == "null" || (f == "an integer" && w == "a float")
}

/// The columns of `schema` that `fields` name, in the file's order; a
/// field the file lacks, or of another kind, is an error naming both.
fn columns_for(
    path: &Path,
    schema: &Schema,
    fields: &[FieldRef],
    type_name: &str,
) -> Result<Vec<usize>> {
    let mut picked = Vec::with_capacity(fields.len());
    for field in fields {
        let Some((i, column)) = schema.column_with_name(field.name()) else {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(Error::SchemaMismatch {
                path: path.to_path_buf(),
                reason: format!(
                    "{type_name} has a field {:?}, the file has no such column (it has {})",
                    field.name(),
                    names.join(", ")
                ),
            });
        };
        if !fits(column.data_type(), field.data_type()) {
            return Err(Error::SchemaMismatch {
                path: path.to_path_buf(),
                reason: format!(
                    "column {:?} holds {} ({}), but {type_name}'s field is {}",
                    field.name(),
                    kind(column.data_type()),
                    column.data_type(),
                    kind(field.data_type())
                ),
            });
        }
        picked.push(i);
    }
    picked.sort_unstable();
    Ok(picked)
}

/// The Arrow fields serde_arrow derives for rows of type `T`.
fn fields_of<T: Value>() -> Result<Vec<FieldRef>> {
    Vec::<FieldRef>::from_type::<T>(TracingOptions::default().allow_null_fields(true)).map_err(
        |e| {
            Error::InvalidArgument(format!(
                "{} cannot be a Parquet row (a struct of named fields is): {e}",
                std::any::type_name::<T>()
            ))
        },
    )
}

impl Context {
    /// The rows of the Parquet files `path` names, as `T`s (structs whose
    /// fields name columns; `Option` for nullable ones), one partition per
    /// row group. Only the columns `T` names are read. Each file's schema
    /// is checked against `T` here, before any job: a missing column or
    /// one of another kind (a string for an integer field) is
    /// [`Error::SchemaMismatch`] naming the file and the column; integer
    /// widths may differ. A file that is not Parquet (a cut footer, say)
    /// is [`Error::BadParquetFile`].
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    /// struct Pair { key: String, value: i64 }
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("pairs");
    /// let pairs = vec![Pair { key: "a".into(), value: 1 }, Pair { key: "b".into(), value: 2 }];
    /// ctx.parallelize(pairs.clone(), 2).save_as_parquet(&dir, &Default::default())?;
    /// assert_eq!(ctx.parquet_file::<Pair>(&dir)?.collect()?, pairs);
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Clone)]
    /// struct Wrong { key: i64 }
    /// let err = ctx.parquet_file::<Wrong>(&dir).err().unwrap();
    /// assert!(err.to_string().contains("column \"key\" holds a string"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parquet_file<T: Value>(&self, path: impl AsRef<Path>) -> Result<Rdd<T>> {
        let fields = fields_of::<T>()?;
        let name = std::any::type_name::<T>();
        let groups = plan(path.as_ref(), |file, schema| {
            columns_for(file, schema, &fields, name).map(Some)
        })?;
        let n = groups.len();
        let op = ParquetSource::<T> {
            groups,
            _t: PhantomData,
        };
        Ok(Rdd::from_op(self, source("parquet_file", n), op))
    }

    /// The Parquet files `path` names as Arrow record batches, every
    /// column, one partition per row group (for columnar work below the
    /// typed API).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("n");
    /// ctx.range(0, 100, 1, 4).map(|x| (x,)).save_as_parquet(&dir, &Default::default())?;
    /// let batches = ctx.parquet_batches(&dir)?;
    /// let rows = batches.map(|b| b.num_rows()).collect()?;
    /// assert_eq!(rows.iter().sum::<usize>(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parquet_batches(&self, path: impl AsRef<Path>) -> Result<Rdd<RecordBatch>> {
        let groups = plan(path.as_ref(), |_, _| Ok(None))?;
        let n = groups.len();
        Ok(Rdd::from_op(
            self,
            source("parquet_batches", n),
            BatchSource { groups },
        ))
    }
}

struct ParquetSource<T> {
    groups: Vec<RowGroup>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Value> Compute<T> for ParquetSource<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        let group = &self.groups[split];
        Ok(Box::new(ParquetRows::<T> {
            batches: GroupBatches::open(group, tc)?,
            _t: PhantomData,
        }))
    }
}

/// A row group's record batches, one at a time.
struct GroupBatches {
    reader: ParquetRecordBatchReader,
    path: Arc<PathBuf>,
}

impl GroupBatches {
    fn open(group: &RowGroup, tc: &TaskContext) -> Result<Self> {
        Ok(GroupBatches {
            reader: read_group(group, &tc.metrics)?,
            path: group.path.clone(),
        })
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        self.reader
            .next()
            .transpose()
            .map_err(|e| parquet_error(&self.path, e))
    }
}

impl Chunks<RecordBatch> for GroupBatches {
    fn next_chunk(&mut self, out: &mut Vec<RecordBatch>, _hint: usize) -> Result<bool> {
        let Some(batch) = self.next_batch()? else {
            return Ok(false);
        };
        out.push(batch);
        Ok(true)
    }
}

/// A row group's rows, a record batch at a time.
struct ParquetRows<T> {
    batches: GroupBatches,
    _t: PhantomData<fn() -> T>,
}

impl<T: Value> Chunks<T> for ParquetRows<T> {
    fn next_chunk(&mut self, out: &mut Vec<T>, _hint: usize) -> Result<bool> {
        let Some(batch) = self.batches.next_batch()? else {
            return Ok(false);
        };
        let mut rows: Vec<T> =
            serde_arrow::from_record_batch(&batch).map_err(|e| Error::SchemaMismatch {
                path: self.batches.path.to_path_buf(),
                reason: format!("a row does not fit {}: {e}", std::any::type_name::<T>()),
            })?;
        out.append(&mut rows);
        Ok(true)
    }
}

struct BatchSource {
    groups: Vec<RowGroup>,
}

impl Compute<RecordBatch> for BatchSource {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<RecordBatch>> {
        Ok(Box::new(GroupBatches::open(&self.groups[split], tc)?))
    }
}

/// The compression of a Parquet file's pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParquetCodec {
    /// No compression.
    Uncompressed,
    /// Snappy (the default, as Spark's).
    #[default]
    Snappy,
    /// Zstandard (level 3).
    Zstd,
    /// gzip.
    Gzip,
    /// LZ4 (the raw block format Parquet calls `LZ4_RAW`).
    Lz4,
}

/// How [`Rdd::save_as_parquet`] writes.
///
/// ```
/// use spate::{ParquetCodec, ParquetWriteOptions};
/// let options = ParquetWriteOptions::default().codec(ParquetCodec::Zstd).row_group_rows(100_000);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct ParquetWriteOptions {
    codec: ParquetCodec,
    row_group_rows: usize,
}

impl Default for ParquetWriteOptions {
    fn default() -> Self {
        ParquetWriteOptions {
            codec: ParquetCodec::Snappy,
            row_group_rows: 1 << 20,
        }
    }
}

impl ParquetWriteOptions {
    /// The page compression (default Snappy).
    pub fn codec(mut self, codec: ParquetCodec) -> Self {
        self.codec = codec;
        self
    }

    /// At most this many rows per row group (default 1 048 576), the unit
    /// a reader splits on.
    pub fn row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self
    }

    fn properties(&self) -> parquet::file::properties::WriterProperties {
        use parquet::basic::{Compression as C, GzipLevel, ZstdLevel};
        let codec = match self.codec {
            ParquetCodec::Uncompressed => C::UNCOMPRESSED,
            ParquetCodec::Snappy => C::SNAPPY,
            ParquetCodec::Zstd => C::ZSTD(ZstdLevel::default()),
            ParquetCodec::Gzip => C::GZIP(GzipLevel::default()),
            ParquetCodec::Lz4 => C::LZ4_RAW,
        };
        parquet::file::properties::WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .build()
    }
}

impl<T: Value> Rdd<T> {
    /// Writes the elements as Parquet rows, one `part-NNNNN.parquet` file
    /// per partition in the new directory `dir`, committed as
    /// [`save_as_text_file`](Rdd::save_as_text_file) is. The schema comes
    /// from `T` (a struct's fields become columns, `Option` ones
    /// nullable; serde_arrow's mapping); DuckDB, Polars, pandas and Spark
    /// read the files.
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Clone)]
    /// struct Reading { sensor: String, celsius: f64, note: Option<String> }
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir()?.path().join("readings");
    /// let r = vec![Reading { sensor: "s1".into(), celsius: 21.5, note: None }];
    /// ctx.parallelize(r, 1).save_as_parquet(&dir, &Default::default())?;
    /// assert!(dir.join("part-00000.parquet").exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_as_parquet(
        &self,
        dir: impl AsRef<Path>,
        options: &ParquetWriteOptions,
    ) -> Result<()> {
        let fields = fields_of::<T>()?;
        let schema = Arc::new(Schema::new(fields.clone()));
        let properties = options.properties();
        let compression = super::compression::Compression::None;
        save_parts(
            self,
            dir.as_ref(),
            "save_as_parquet",
            ".parquet",
            compression,
            |part, it| {
                let path = part.path().to_path_buf();
                let mut writer = parquet::arrow::ArrowWriter::try_new(
                    part.writer(),
                    schema.clone(),
                    Some(properties.clone()),
                )
                .map_err(|e| parquet_error(&path, e))?;
                for_each_chunk(it, |chunk| {
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    let batch = serde_arrow::to_record_batch(&fields, &*chunk).map_err(|e| {
                        Error::InvalidArgument(format!(
                            "cannot write a {} as a Parquet row: {e}",
                            std::any::type_name::<T>()
                        ))
                    })?;
                    chunk.clear();
                    writer.write(&batch).map_err(|e| parquet_error(&path, e))
                })?;
                writer.close().map_err(|e| parquet_error(&path, e))?;
                Ok(())
            },
        )
    }
}
