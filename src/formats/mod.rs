//! Reading and writing files: which files a path names (`paths`), where
//! an input's bytes come from (`input`: a local file, or an object of an
//! object store, `store`, behind the `object-store` feature), file
//! splits and their lines (`lines`), codecs (`compression`), part files
//! and their commit (`output`), and the formats: text lines and whole
//! text files (`text`), CSV (`csv`), JSON lines (`json_lines`), object files in the
//! engine's codec (`object_file`), Parquet (`parquet`, behind the `parquet`
//! feature), and what a typed reader
//! does with a record that does not parse (`records`).

mod compression;
mod csv;
mod input;
mod json_lines;
mod lines;
mod object_file;
mod output;
#[cfg(feature = "parquet")]
mod parquet;
mod paths;
mod records;
#[cfg(feature = "object-store")]
mod store;
mod text;

pub use compression::Compression;
pub use csv::{CsvOptions, CsvWriteOptions};
pub use json_lines::JsonLinesOptions;
pub(crate) use lines::{BadLines, SkippedLines};
#[cfg(feature = "parquet")]
pub use parquet::{ParquetCodec, ParquetWriteOptions};
pub use records::BadRecords;
pub(crate) use text::{TextSource, WholeTextSource};
