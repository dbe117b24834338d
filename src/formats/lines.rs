//! Reading a file split's lines: planning line-aligned byte ranges of
//! files (as Hadoop's text input format does), and the reader that gives
//! each range's lines exactly once, as text (UTF-8 checked a megabyte at a
//! time), as raw bytes, or (for CSV) as one contiguous byte stream.

use super::compression::Compression;
use super::input::{input_len, open_at};
use super::paths::list_files;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Local file systems report 32 MiB blocks to Hadoop, which caps Spark's
/// text splits at that size.
pub(crate) const MAX_SPLIT: u64 = 32 << 20;

/// The end of a split of a file whose size is unknown: read to the end.
pub(crate) const UNSIZED: u64 = u64::MAX;

/// A byte range of one file whose lines a task reads: a line belongs to
/// the split that holds its first byte. A compressed file is one split
/// (`0..UNSIZED`) read through its codec.
#[derive(Clone, Debug)]
pub(crate) struct FileSplit {
    pub(crate) path: Arc<PathBuf>,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) codec: Compression,
}

/// Where skipped lines are recorded: (file, offset of the first bad byte).
pub(crate) type SkippedLines = Arc<parking_lot::Mutex<std::collections::BTreeSet<(PathBuf, u64)>>>;

/// What a text reader does with a line that is not UTF-8.
#[derive(Clone)]
pub(crate) enum BadLines {
    /// Fail the task with [`Error::InvalidUtf8`] (datasets).
    Fail,
    /// Skip the line and record where it was (file streams, which report
    /// them with the chunk; a set, so a recomputed partition counts once).
    Skip(SkippedLines),
}

/// The splits of the files `path` names, about `min_partitions` of them
/// (more for big files: at most [`MAX_SPLIT`] bytes each), as Hadoop's
/// text input format cuts them.
pub(crate) fn plan_splits(path: &Path, min_partitions: usize) -> Result<Vec<FileSplit>> {
    let files = list_files(path)?;
    let mut sized = Vec::with_capacity(files.len());
    for f in files {
        let len = input_len(&f)?;
        sized.push((Arc::new(f), len));
    }
    let total: u64 = sized.iter().map(|(_, l)| l).sum();
    let goal = total / min_partitions as u64;
    let split = goal.clamp(1, MAX_SPLIT);
    let mut splits = Vec::new();
    for (path, len) in sized {
        let codec = Compression::from_path(&path);
        if len == 0 || codec != Compression::None {
            // A compressed file cannot be cut. Files of the kernel
            // (`/proc`, `/sys`) say they are empty and are not: read to
            // the end as one split. A truly empty file gives no lines
            // either way.
            splits.push(FileSplit {
                path,
                start: 0,
                end: UNSIZED,
                codec,
            });
            continue;
        }
        let mut start = 0;
        // Like Hadoop, let the last split run up to 10% over.
        while (len - start) as f64 / split as f64 > 1.1 {
            splits.push(FileSplit {
                path: path.clone(),
                start,
                end: start + split,
                codec,
            });
            start += split;
        }
        splits.push(FileSplit {
            path,
            start,
            end: len,
            codec,
        });
    }
    Ok(splits)
}

/// One split per file `path` names, each read whole (for records that
/// may span lines, such as quoted CSV fields with newlines).
pub(crate) fn whole_files(path: &Path) -> Result<Vec<FileSplit>> {
    let mut splits = Vec::new();
    for f in list_files(path)? {
        input_len(&f)?;
        let codec = Compression::from_path(&f);
        splits.push(FileSplit {
            path: Arc::new(f),
            start: 0,
            end: UNSIZED,
            codec,
        });
    }
    Ok(splits)
}

/// Reads the lines that start inside a byte range: a line belongs to the
/// split that holds its first byte, so each line is read exactly once.
pub(crate) struct LineReader {
    path: Arc<PathBuf>,
    input: Box<dyn Read>,
    buf: Vec<u8>,
    /// Start of unread data in `buf`, and end of valid data.
    pos: usize,
    filled: usize,
    /// `buf[..valid]` is known to be UTF-8 up to a line end: checking a
    /// megabyte at once is cheaper than checking each line.
    valid: usize,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    /// Lines starting at or after this offset belong to the next split.
    end: u64,
    eof: bool,
    /// Lines of the file before this split's first, once known (counted
    /// only when a line number is asked for).
    lines_before: Option<u64>,
    /// Offset of this split's first line.
    first_line: u64,
    /// Lines read (or skipped) in this split so far.
    lines_seen: u64,
}

/// A line [`LineReader::next_raw`] found: where it starts in the file, and
/// where its bytes (without the terminator) are in the reader's buffer.
pub(crate) struct RawLine {
    pub(crate) offset: u64,
    at: usize,
    len: usize,
}

const READ_CHUNK: usize = 1 << 20;

/// Where the first line in `bytes` ends: its length and its terminator's,
/// which is `\n`, `\r\n` or a lone `\r` (Hadoop's line reader). `None` if
/// no line ends in `bytes`, or if it ends in a `\r` that a `\n` not read
/// yet may follow (`more`: more data may come).
fn line_end(bytes: &[u8], more: bool) -> Option<(usize, usize)> {
    let i = memchr::memchr2(b'\n', b'\r', bytes)?;
    if bytes[i] == b'\n' {
        return Some((i, 1));
    }
    match bytes.get(i + 1) {
        Some(b'\n') => Some((i, 2)),
        Some(_) => Some((i, 1)),
        None if more => None,
        None => Some((i, 1)),
    }
}

impl LineReader {
    pub(crate) fn open(split: &FileSplit) -> Result<Self> {
        let path = split.path.clone();
        // Start one byte early: if that byte is a newline, a line starts
        // exactly at `start`; otherwise the first partial line is skipped.
        let seek_to = split.start.saturating_sub(1);
        let file = open_at(path.as_path(), seek_to)?;
        let input = split
            .codec
            .reader(file)
            .map_err(|e| Error::io(path.as_path(), e))?;
        let mut r = LineReader {
            path,
            input,
            buf: vec![0; READ_CHUNK],
            pos: 0,
            filled: 0,
            valid: 0,
            buf_offset: seek_to,
            end: split.end,
            eof: false,
            lines_before: (split.start == 0).then_some(0),
            first_line: 0,
            lines_seen: 0,
        };
        if split.start > 0 {
            r.skip_line()?;
        }
        r.first_line = r.offset();
        Ok(r)
    }

    /// The file being read.
    pub(crate) fn path(&self) -> &Path {
        self.path.as_path()
    }

    /// The file offset of the next unread byte (of the decompressed bytes,
    /// for a compressed file).
    pub(crate) fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// Reads more data, keeping unread bytes; grows the buffer for long lines.
    fn fill(&mut self) -> Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.buf_offset += self.pos as u64;
            self.filled -= self.pos;
            self.valid = self.valid.saturating_sub(self.pos);
            self.pos = 0;
        }
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self
            .input
            .read(&mut self.buf[self.filled..])
            .map_err(|e| Error::io(self.path.as_path(), e))?;
        self.filled += n;
        self.eof = n == 0;
        let reached = self.buf_offset + self.filled as u64;
        if self.eof && self.end != UNSIZED && reached < self.end {
            // The split was planned from the file's length: a file that
            // ends before it was cut while the job ran.
            return Err(Error::io(
                self.path.as_path(),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file ends at byte {reached}, before the end of its split at byte {} \
                         (it was truncated while the job read it)",
                        self.end
                    ),
                ),
            ));
        }
        Ok(())
    }

    fn skip_line(&mut self) -> Result<()> {
        loop {
            if let Some((len, term)) = line_end(&self.buf[self.pos..self.filled], !self.eof) {
                self.pos += len + term;
                return Ok(());
            }
            if self.eof {
                self.pos = self.filled;
                return Ok(());
            }
            // Drop what was scanned, but a final `\r` may pair with a `\n`.
            let keep = usize::from(self.buf[self.pos..self.filled].last() == Some(&b'\r'));
            self.pos = self.filled - keep;
            self.fill()?;
        }
    }

    /// Extends `valid` over the complete lines in the buffer. On bad UTF-8
    /// it stops at the start of the line holding it, which `next_line`
    /// then checks alone to report the exact offset.
    fn validate_ahead(&mut self, from: usize) {
        let start = self.valid.max(from);
        let unread = &self.buf[start..self.filled];
        let complete = if self.eof {
            unread.len()
        } else {
            memchr::memrchr2(b'\n', b'\r', unread).map_or(0, |i| i + 1)
        };
        let good = match std::str::from_utf8(&unread[..complete]) {
            Ok(_) => complete,
            Err(e) => {
                memchr::memrchr2(b'\n', b'\r', &unread[..e.valid_up_to()]).map_or(0, |i| i + 1)
            }
        };
        self.valid = start + good;
    }

    /// The next line's bytes (without its terminator), unchecked, or
    /// `None` past the split; [`bytes`](Self::bytes) gives them.
    pub(crate) fn next_raw(&mut self) -> Result<Option<RawLine>> {
        if self.offset() >= self.end {
            return Ok(None);
        }
        loop {
            let unread = &self.buf[self.pos..self.filled];
            let found = line_end(unread, !self.eof);
            if found.is_some() || (self.eof && !unread.is_empty()) {
                let (len, term) = found.unwrap_or((unread.len(), 0));
                let line = RawLine {
                    offset: self.offset(),
                    at: self.pos,
                    len,
                };
                self.pos += len + term;
                self.lines_seen += 1;
                return Ok(Some(line));
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// The bytes of the line `next_raw` returned last.
    pub(crate) fn bytes(&self, line: &RawLine) -> &[u8] {
        &self.buf[line.at..line.at + line.len]
    }

    /// The 1-based line number of the line read last. For a split other
    /// than a file's first, the lines before it are counted on the first
    /// call (a pass over the file up to the split, paid only when a bad
    /// record needs its line number).
    pub(crate) fn line_number(&mut self) -> Result<u64> {
        Ok(self.lines_before()? + self.lines_seen)
    }

    /// Lines of the file before this split's first line.
    pub(crate) fn lines_before(&mut self) -> Result<u64> {
        if let Some(n) = self.lines_before {
            return Ok(n);
        }
        let n = count_lines(self.path.as_path(), self.first_line)?;
        self.lines_before = Some(n);
        Ok(n)
    }

    /// The next line (without its terminator) as text, or `None` past the
    /// split; a line that is not UTF-8 is handled as `bad_lines` says.
    pub(crate) fn next_line(&mut self, bad_lines: &BadLines) -> Result<Option<String>> {
        while let Some(line) = self.next_raw()? {
            let end = line.at + line.len;
            if end > self.valid {
                self.validate_ahead(line.at);
            }
            let bytes = &self.buf[line.at..end];
            let checked = if end <= self.valid {
                // SAFETY: `buf[..valid]` was checked to be UTF-8 and splits
                // at line ends, which are char boundaries.
                Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
            } else {
                // The line holds the bad bytes: find them exactly.
                std::str::from_utf8(bytes)
            };
            match checked {
                Ok(text) => return Ok(Some(text.to_owned())),
                Err(e) => {
                    let offset = line.offset + e.valid_up_to() as u64;
                    let BadLines::Skip(skipped) = bad_lines else {
                        return Err(Error::InvalidUtf8 {
                            path: self.path.to_path_buf(),
                            offset,
                        });
                    };
                    skipped.lock().insert((self.path.to_path_buf(), offset));
                }
            }
        }
        Ok(None)
    }
}

/// Lines of `path` that start before byte `upto`, by the reader's rule
/// (`\n`, `\r\n` or a lone `\r` ends a line); `upto` is a line start.
fn count_lines(path: &Path, upto: u64) -> Result<u64> {
    let mut input = open_at(path, 0)?.take(upto);
    let mut buf = vec![0; READ_CHUNK];
    let (mut lines, mut after_cr) = (0u64, false);
    loop {
        let n = input.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(lines);
        }
        let block = &buf[..n];
        for i in memchr::memchr2_iter(b'\n', b'\r', block) {
            // A `\n` right after a `\r` ends the same line.
            let pairs = block[i] == b'\n'
                && if i == 0 {
                    after_cr
                } else {
                    block[i - 1] == b'\r'
                };
            lines += u64::from(!pairs);
        }
        after_cr = block[n - 1] == b'\r';
    }
}

/// The bytes of a split's lines as one stream, from its first line's start
/// to the end of its last line (for the CSV reader, which finds records
/// itself): the bytes of the same lines [`LineReader`] gives.
pub(crate) struct SplitBytes {
    reader: LineReader,
    /// The last byte handed out: past the split's end, the stream goes on
    /// to the end of the line that byte is in.
    last: Option<u8>,
    done: bool,
}

impl SplitBytes {
    pub(crate) fn open(split: &FileSplit) -> Result<Self> {
        Ok(SplitBytes {
            reader: LineReader::open(split)?,
            last: None,
            done: false,
        })
    }

    /// The reader below, for the file's path and line numbers.
    pub(crate) fn lines(&mut self) -> &mut LineReader {
        &mut self.reader
    }

    /// The file offset of the stream's first byte.
    pub(crate) fn first_line(&self) -> u64 {
        self.reader.first_line
    }

    /// How many of `unread`'s first bytes belong to the split, and whether
    /// the split ends after them.
    fn belonging(&self, unread: &[u8], offset: u64) -> (usize, bool) {
        let end = self.reader.end;
        if offset < end {
            return (unread.len().min((end - offset) as usize), false);
        }
        match self.last {
            // No line starts before the end: the split has none.
            None | Some(b'\n') => (0, true),
            Some(b'\r') => (usize::from(unread[0] == b'\n'), true),
            Some(_) => match memchr::memchr2(b'\n', b'\r', unread) {
                Some(i) => (i + 1, unread[i] == b'\n'),
                None => (unread.len(), false),
            },
        }
    }
}

impl Read for SplitBytes {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if self.reader.pos == self.reader.filled {
                if self.reader.eof {
                    self.done = true;
                    continue;
                }
                self.reader.fill().map_err(std::io::Error::other)?;
                continue;
            }
            let r = &self.reader;
            let unread = &r.buf[r.pos..r.filled];
            let (want, ends) = self.belonging(unread, r.offset());
            let n = want.min(out.len());
            out[..n].copy_from_slice(&unread[..n]);
            if n > 0 {
                self.last = Some(unread[n - 1]);
            }
            self.reader.pos += n;
            // Ends once all the bytes that belong were handed out.
            self.done = ends && n == want;
            if n > 0 || self.done {
                return Ok(n);
            }
        }
    }
}
