//! Reading and writing files: which files a path names (`paths`), file
//! splits and their lines (`lines`), codecs (`compression`), part files
//! and their commit (`output`), and the formats: text lines and whole
//! text files (`text`), CSV (`csv`), JSON lines (`json_lines`), object files in the
//! engine's codec (`object_file`), and what a typed reader
//! does with a record that does not parse (`records`).

mod compression;
mod csv;
mod json_lines;
mod lines;
mod object_file;
mod output;
mod paths;
mod records;
mod text;

pub use compression::Compression;
pub use csv::{CsvOptions, CsvWriteOptions};
pub use json_lines::JsonLinesOptions;
pub(crate) use lines::{BadLines, SkippedLines};
pub use records::BadRecords;
pub(crate) use text::{TextSource, WholeTextSource};
