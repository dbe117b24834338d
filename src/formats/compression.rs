//! Compressed files: the codec of a file to read is chosen by its
//! extension, the codec of a file to write by an option.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// A compression codec of text-based files (text, CSV, JSON lines).
///
/// Readers choose it by the file's extension: `.gz` (gzip, also several
/// members one after another), `.zst` or `.zstd`, `.bz2` and `.lz4` (the
/// LZ4 frame format that the `lz4` command and Python's `lz4.frame`
/// write); any other file is read as it is. None of these is split: a
/// compressed file is one partition, as in Spark (bzip2, which Hadoop can
/// split, is read whole here too). Writers take it as an option and add
/// its extension to each part file.
///
/// ```
/// use spate::Compression;
/// assert_eq!(Compression::from_path("logs/day-1.txt.gz".as_ref()), Compression::Gzip);
/// assert_eq!(Compression::from_path("notes.txt".as_ref()), Compression::None);
/// assert_eq!(Compression::Zstd.extension(), ".zst");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain bytes (the only splittable form).
    #[default]
    None,
    /// gzip (DEFLATE), `.gz`.
    Gzip,
    /// Zstandard, `.zst`.
    Zstd,
    /// bzip2, `.bz2`.
    Bzip2,
    /// The LZ4 frame format, `.lz4`.
    Lz4,
}

impl Compression {
    /// The codec a file's name says it is compressed with.
    pub fn from_path(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst" | "zstd") => Compression::Zstd,
            Some("bz2") => Compression::Bzip2,
            Some("lz4") => Compression::Lz4,
            _ => Compression::None,
        }
    }

    /// The extension written files get (with its dot; empty for `None`).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
            Compression::Lz4 => ".lz4",
        }
    }

    /// The decompressed bytes of `file`.
    pub(crate) fn reader(self, file: Box<dyn Read>) -> io::Result<Box<dyn Read>> {
        Ok(match self {
            Compression::None => Box::new(file),
            Compression::Gzip => {
                Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)))
            }
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
            Compression::Bzip2 => {
                Box::new(bzip2::read::MultiBzDecoder::new(io::BufReader::new(file)))
            }
            Compression::Lz4 => {
                Box::new(lz4_flex::frame::FrameDecoder::new(io::BufReader::new(file)))
            }
        })
    }

    /// An encoder writing into `file`; [`Encoder::finish`] ends the stream.
    pub(crate) fn writer(self, file: File) -> io::Result<Encoder> {
        Ok(match self {
            Compression::None => Encoder::Plain(file),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(file, 3)?),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                file,
                bzip2::Compression::default(),
            )),
            Compression::Lz4 => Encoder::Lz4(lz4_flex::frame::FrameEncoder::new(file)),
        })
    }
}

/// A file being written through a codec. An enum, not a trait object:
/// the part writers call it through a `BufWriter`, once per megabyte.
pub(crate) enum Encoder {
    Plain(File),
    Gzip(flate2::write::GzEncoder<File>),
    Zstd(zstd::stream::write::Encoder<'static, File>),
    Bzip2(bzip2::write::BzEncoder<File>),
    Lz4(lz4_flex::frame::FrameEncoder<File>),
}

impl Encoder {
    /// Writes the codec's end of stream and syncs nothing: the caller
    /// renames the finished file into place.
    pub(crate) fn finish(self) -> io::Result<File> {
        match self {
            Encoder::Plain(f) => Ok(f),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
            Encoder::Lz4(e) => e.finish().map_err(io::Error::other),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(f) => f.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
            Encoder::Lz4(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(f) => f.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
            Encoder::Lz4(e) => e.flush(),
        }
    }
}
