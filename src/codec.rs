//! Binary encoding of records for data that leaves memory: bincode for the
//! records, lz4 for compression, CRC-32 for integrity.
//!
//! The record codec sits behind [`Codec`] so that it can be swapped without
//! touching the shuffle or storage code. A *frame* is the unit written to
//! disk: `[u32 compressed len][u32 crc32 of compressed bytes][lz4 bytes]`,
//! where the lz4 payload carries its uncompressed size.

use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Turns a chunk of records into bytes and back.
pub(crate) trait Codec {
    fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()>;
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;
}

/// The default codec: bincode 2 (serde mode, standard configuration).
pub(crate) struct Bincode;

impl Codec for Bincode {
    fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(|_| ())
            .map_err(|e| Error::Codec(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| Error::Codec(e.to_string()))?;
        if read != bytes.len() {
            return Err(Error::Codec(format!(
                "{} trailing bytes after a decoded value",
                bytes.len() - read
            )));
        }
        Ok(value)
    }
}

/// Appends one record's encoding to `out` (for size estimates: a record's
/// encoded length is a good guess of its heap size).
pub(crate) fn encode_record<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    Bincode::encode(value, out)
}

/// Decodes one record written by [`encode_record`]; trailing bytes are an
/// error.
pub(crate) fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Bincode::decode(bytes)
}

/// Frame header size: compressed length and checksum.
pub(crate) const FRAME_HEADER: usize = 8;

/// Encodes `records`, compresses them and appends one checksummed frame to `out`.
pub(crate) fn write_frame<T: Serialize>(
    records: &T,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<()> {
    scratch.clear();
    Bincode::encode(records, scratch)?;
    let compressed = lz4_flex::compress_prepend_size(scratch);
    let len = u32::try_from(compressed.len())
        .map_err(|_| Error::Codec("frame larger than 4 GiB".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
    out.extend_from_slice(&compressed);
    Ok(())
}

/// Streams frames into a file through a small buffer, so a spill never
/// holds its whole encoded output in memory.
pub(crate) struct FrameFile {
    out: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    written: u64,
    scratch: Vec<u8>,
    frame: Vec<u8>,
}

impl FrameFile {
    /// Creates (truncates) the file at `path`.
    pub(crate) fn create(path: &std::path::Path) -> Result<FrameFile> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(Self::from_file(file, path))
    }

    /// Writes into an already open file.
    pub(crate) fn from_file(file: std::fs::File, path: &std::path::Path) -> FrameFile {
        FrameFile {
            out: std::io::BufWriter::with_capacity(1 << 16, file),
            path: path.to_path_buf(),
            written: 0,
            scratch: Vec::new(),
            frame: Vec::new(),
        }
    }

    /// Appends one frame of `records`.
    pub(crate) fn write<T: Serialize>(&mut self, records: &T) -> Result<()> {
        use std::io::Write;
        self.frame.clear();
        write_frame(records, &mut self.scratch, &mut self.frame)?;
        self.out
            .write_all(&self.frame)
            .map_err(|e| Error::io(&self.path, e))?;
        self.written += self.frame.len() as u64;
        Ok(())
    }

    /// Bytes written so far: the offset of the next frame.
    pub(crate) fn position(&self) -> u64 {
        self.written
    }

    /// Flushes and closes the file; returns the bytes written.
    pub(crate) fn finish(self) -> Result<u64> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        drop(file);
        Ok(self.written)
    }
}

/// Reads the frame at the start of `bytes`; returns the decoded records and
/// the number of bytes consumed. A short, corrupt or foreign frame is an
/// error, never a panic.
pub(crate) fn read_frame<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), String> {
    if bytes.len() < FRAME_HEADER {
        return Err(format!("truncated frame header ({} bytes)", bytes.len()));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let body = bytes.get(FRAME_HEADER..FRAME_HEADER + len).ok_or_else(|| {
        format!(
            "truncated frame: want {len} bytes, have {}",
            bytes.len() - FRAME_HEADER
        )
    })?;
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".to_string());
    }
    let raw = lz4_flex::decompress_size_prepended(body).map_err(|e| format!("lz4: {e}"))?;
    let value = Bincode::decode(&raw).map_err(|e| e.to_string())?;
    Ok((value, FRAME_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips() {
        let records: Vec<(String, i64)> = (0..100).map(|i| (format!("k{i}"), i)).collect();
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        write_frame(&records, &mut scratch, &mut out).unwrap();
        write_frame(&records[..3].to_vec(), &mut scratch, &mut out).unwrap();
        let (first, used): (Vec<(String, i64)>, usize) = read_frame(&out).unwrap();
        assert_eq!(first, records);
        let (second, _): (Vec<(String, i64)>, usize) = read_frame(&out[used..]).unwrap();
        assert_eq!(second, records[..3]);
    }

    #[test]
    fn corrupt_frame_is_detected_not_decoded() {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        write_frame(&vec![1u32, 2, 3], &mut scratch, &mut out).unwrap();
        let last = out.len() - 1;
        out[last] ^= 0xff;
        let err = read_frame::<Vec<u32>>(&out).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        assert!(
            read_frame::<Vec<u32>>(&out[..5])
                .unwrap_err()
                .contains("truncated")
        );
    }
}
