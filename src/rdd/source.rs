//! Datasets without parents: local collections, integer ranges, text files.

use super::{ChunkIter, Chunks, Compute, IterChunks, NewRdd, Rdd, SharedChunks};
use crate::cluster::driver_data::SliceSource;
use crate::codec;
use crate::context::Context;
use crate::data::{Data, Value};
use crate::error::{Error, Result};
use crate::ids::RddId;
use crate::runtime::{MetricsCell, TaskContext};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, OnceLock, Weak};

/// Spark's slicing rule: slice i of n items over p slices starts at ⌊i·n/p⌋.
pub(crate) fn slice_bounds(n: usize, p: usize, i: usize) -> (usize, usize) {
    let at = |i: usize| ((i as u128 * n as u128) / p as u128) as usize;
    (at(i), at(i + 1))
}

/// Counts the records a source hands out as its task's input, once per
/// chunk (the text reader counts its own lines and bytes).
struct Input<C> {
    inner: C,
    metrics: Rc<MetricsCell>,
}

impl<C> Input<C> {
    fn new(inner: C, tc: &TaskContext) -> Self {
        Input {
            inner,
            metrics: tc.metrics.clone(),
        }
    }
}

impl<T, C: Chunks<T>> Chunks<T> for Input<C> {
    fn next_chunk(&mut self, out: &mut Vec<T>, hint: usize) -> Result<bool> {
        let before = out.len();
        let more = self.inner.next_chunk(out, hint)?;
        let n = (out.len() - before) as u64;
        self.metrics.update(|m| m.input_records += n);
        Ok(more)
    }
}

fn source(name: &'static str, n: usize) -> NewRdd {
    NewRdd {
        op_name: name,
        num_partitions: n,
        deps: Vec::new(),
        partitioner: None,
    }
}

/// A collection the program built in memory, sliced by Spark's rule.
///
/// In cluster mode the driver's collection is the dataset: the driver
/// serves its slices (`cluster::driver_data`) and an executor fetches each slice it
/// computes instead of using the vector its own copy of the program built,
/// which may differ (a file only the driver reads, a clock, a seed).
pub(crate) struct ParallelCollection<T> {
    slices: Arc<Vec<Arc<Vec<T>>>>,
    /// On an executor: this dataset's id, set once it has one, whose slices
    /// come from the driver, and how to decode one.
    from_driver: Option<(Arc<OnceLock<RddId>>, DecodeSlice<T>)>,
    /// On the driver: what its block server serves (the registry holds it
    /// weakly, so it goes with the dataset).
    _served: Option<Arc<dyn SliceSource>>,
}

impl<T: Data> ParallelCollection<T> {
    /// A dataset of no partitions (nothing to ship in any mode).
    pub(crate) fn empty(ctx: &Context) -> Rdd<T> {
        let op = ParallelCollection {
            slices: Arc::new(Vec::new()),
            from_driver: None,
            _served: None,
        };
        Rdd::from_op(ctx, source("parallelize", 0), op)
    }

    fn sliced(data: Vec<T>, parts: usize) -> Vec<Arc<Vec<T>>> {
        let n = data.len();
        let mut slices = Vec::with_capacity(parts);
        let mut rest = data.into_iter();
        for i in 0..parts {
            let (a, b) = slice_bounds(n, parts, i);
            slices.push(Arc::new(rest.by_ref().take(b - a).collect()));
        }
        slices
    }
}

impl<T: Value> ParallelCollection<T> {
    pub(crate) fn rdd(ctx: &Context, data: Vec<T>, parts: usize) -> Rdd<T> {
        let spec = source("parallelize", parts);
        match ctx.runtime().cluster() {
            None => {
                let op = ParallelCollection {
                    slices: Arc::new(Self::sliced(data, parts)),
                    from_driver: None,
                    _served: None,
                };
                Rdd::from_op(ctx, spec, op)
            }
            Some(node) if node.is_driver() => {
                let slices = Arc::new(Self::sliced(data, parts));
                let served: Arc<dyn SliceSource> = Arc::new(Served(Arc::downgrade(&slices)));
                let op = ParallelCollection {
                    slices,
                    from_driver: None,
                    _served: Some(served.clone()),
                };
                let rdd = Rdd::from_op(ctx, spec, op);
                node.driver_data().register(rdd.id(), &served);
                rdd
            }
            Some(_) => {
                drop(data);
                let id = Arc::new(OnceLock::new());
                let op = ParallelCollection {
                    slices: Arc::new(Vec::new()),
                    from_driver: Some((id.clone(), |b| codec::decode_record(b))),
                    _served: None,
                };
                let rdd = Rdd::from_op(ctx, spec, op);
                let _ = id.set(rdd.id());
                rdd
            }
        }
    }
}

type DecodeSlice<T> = fn(&[u8]) -> Result<Vec<T>>;

/// The driver's slices of one collection, as its block server serves them.
struct Served<T>(Weak<Vec<Arc<Vec<T>>>>);

impl<T: Value> SliceSource for Served<T> {
    fn encode_slice(&self, partition: usize) -> std::result::Result<Vec<u8>, String> {
        let slices = self.0.upgrade().ok_or("the dataset was dropped")?;
        let slice = slices
            .get(partition)
            .ok_or_else(|| format!("no partition {partition} of {}", slices.len()))?;
        let mut bytes = Vec::new();
        codec::encode_record(&**slice, &mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    }
}

impl<T: Data> Compute<T> for ParallelCollection<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        let (Some((id, decode)), Some(node)) = (&self.from_driver, tc.rt.cluster()) else {
            let slice = SharedChunks::new(self.slices[split].clone());
            return Ok(Box::new(Input::new(slice, tc)));
        };
        let id = *id.get().expect("a dataset's id is set at its creation");
        let bytes = node.fetch_slice(id, split).map_err(|why| {
            Error::Cluster(format!(
                "cannot fetch partition {split} of parallelized dataset {} from the driver: {why}",
                id.0
            ))
        })?;
        tc.metrics.update(|m| m.input_bytes += bytes.len() as u64);
        let slice = decode(&bytes)?;
        Ok(Box::new(Input::new(SharedChunks::new(Arc::new(slice)), tc)))
    }
}

pub(crate) struct RangeSource {
    start: i64,
    step: i64,
    count: u64,
    parts: usize,
}

impl RangeSource {
    pub(crate) fn rdd(ctx: &Context, start: i64, end: i64, step: i64, parts: usize) -> Rdd<i64> {
        let span = end as i128 - start as i128;
        let count = if step == 0 || span == 0 || (span > 0) != (step > 0) {
            0
        } else {
            let step = step as i128;
            ((span + step - step.signum()) / step) as u64
        };
        Rdd::from_op(
            ctx,
            source("range", parts),
            RangeSource {
                start,
                step,
                count,
                parts,
            },
        )
    }
}

impl Compute<i64> for RangeSource {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<i64>> {
        let (a, b) = slice_bounds(self.count as usize, self.parts, split);
        let (start, step) = (self.start, self.step);
        let values = (a as i64..b as i64).map(move |i| start.wrapping_add(i.wrapping_mul(step)));
        Ok(Box::new(Input::new(IterChunks(values), tc)))
    }
}

/// Local file systems report 32 MiB blocks to Hadoop, which caps Spark's
/// text splits at that size.
const MAX_SPLIT: u64 = 32 << 20;

/// Files named by a path, or by a comma-separated list of paths (as
/// Hadoop's input formats take; a path that exists is taken whole even if
/// it holds a comma), in the order given; see [`list_one`].
pub(crate) fn list_files(path: &Path) -> Result<Vec<PathBuf>> {
    let text = path.to_string_lossy();
    if !text.contains(',') || std::fs::symlink_metadata(path).is_ok() {
        return list_one(path);
    }
    let mut files = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        files.extend(list_one(Path::new(part))?);
    }
    if files.is_empty() {
        return Err(Error::NoInput(text.into_owned()));
    }
    Ok(files)
}

/// Files named by one path: the file itself, the visible files of a
/// directory, or the files matching a glob pattern; sorted by name.
fn list_one(path: &Path) -> Result<Vec<PathBuf>> {
    let text = path.to_string_lossy();
    // `is_dir`/`exists` would turn "permission denied" into "not found".
    let meta = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut files = if meta.as_ref().is_some_and(|m| m.is_dir()) {
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let name = entry.file_name();
            let hidden = name.to_string_lossy().starts_with(['.', '_']);
            // Subdirectories are not read; anything else that is not a
            // regular file is refused by the reader, not skipped silently.
            if !hidden && !entry.path().is_dir() {
                files.push(entry.path());
            }
        }
        files
    } else if meta.is_some() {
        vec![path.to_path_buf()]
    } else if text.contains(['*', '?', '[']) {
        let matches = glob::glob(&text)
            .map_err(|e| Error::InvalidArgument(format!("bad glob {text}: {e}")))?;
        let mut files = Vec::new();
        for m in matches {
            // An unreadable directory on the way is an error, not no match.
            let p = m.map_err(|e| Error::io(e.path().to_path_buf(), e.into()))?;
            if !p.is_dir() {
                files.push(p);
            }
        }
        files
    } else {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    };
    if files.is_empty() {
        return Err(Error::NoInput(text.into_owned()));
    }
    files.sort();
    Ok(files)
}

/// The end of a split of a file whose size is unknown: read to the end.
const UNSIZED: u64 = u64::MAX;

/// The length of an input file, which must be a regular file: a FIFO would
/// block forever or fail to seek, and a device may never end.
fn regular_file_len(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file (a FIFO, device or socket); text input reads \
             regular files only",
            path.display()
        )));
    }
    Ok(meta.len())
}

#[derive(Clone, Debug)]
struct FileSplit {
    path: Arc<PathBuf>,
    start: u64,
    end: u64,
}

pub(crate) struct TextSource {
    splits: Vec<FileSplit>,
    bad_lines: BadLines,
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
        let files = list_files(path)?;
        let mut sized = Vec::with_capacity(files.len());
        for f in files {
            let len = regular_file_len(&f)?;
            sized.push((Arc::new(f), len));
        }
        let total: u64 = sized.iter().map(|(_, l)| l).sum();
        let goal = total / min_partitions as u64;
        let split = goal.clamp(1, MAX_SPLIT);
        let mut splits = Vec::new();
        for (path, len) in sized {
            if len == 0 {
                // Files of the kernel (`/proc`, `/sys`) say they are empty
                // and are not: read to the end as one split. A truly empty
                // file gives no lines either way.
                splits.push(FileSplit {
                    path,
                    start: 0,
                    end: UNSIZED,
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
                });
                start += split;
            }
            splits.push(FileSplit {
                path,
                start,
                end: len,
            });
        }
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
        Ok(Box::new(LineReader::open(
            &self.splits[split],
            self.bad_lines.clone(),
            tc.metrics.clone(),
        )?))
    }
}

/// Reads the lines that start inside a byte range: a line belongs to the
/// split that holds its first byte, so each line is read exactly once.
struct LineReader {
    path: Arc<PathBuf>,
    file: File,
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
    bad_lines: BadLines,
    /// Where the lines read and the bytes they took are counted as input.
    metrics: Rc<MetricsCell>,
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
    fn open(split: &FileSplit, bad_lines: BadLines, metrics: Rc<MetricsCell>) -> Result<Self> {
        let path = split.path.clone();
        let mut file = File::open(path.as_path()).map_err(|e| Error::io(path.as_path(), e))?;
        // Start one byte early: if that byte is a newline, a line starts
        // exactly at `start`; otherwise the first partial line is skipped.
        let seek_to = split.start.saturating_sub(1);
        file.seek(SeekFrom::Start(seek_to))
            .map_err(|e| Error::io(path.as_path(), e))?;
        let mut r = LineReader {
            path,
            file,
            buf: vec![0; READ_CHUNK],
            pos: 0,
            filled: 0,
            valid: 0,
            buf_offset: seek_to,
            end: split.end,
            eof: false,
            bad_lines,
            metrics,
        };
        if split.start > 0 {
            r.skip_line()?;
        }
        Ok(r)
    }

    fn offset(&self) -> u64 {
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
            .file
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
    fn validate_ahead(&mut self) {
        let start = self.valid.max(self.pos);
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

    /// The next line (without its terminator), or `None` past the split.
    fn next_line(&mut self) -> Result<Option<String>> {
        'lines: loop {
            if self.offset() >= self.end {
                return Ok(None);
            }
            loop {
                let unread = &self.buf[self.pos..self.filled];
                let found = line_end(unread, !self.eof);
                if found.is_some() || (self.eof && !unread.is_empty()) {
                    let (len, term) = found.unwrap_or((unread.len(), 0));
                    let line_end = self.pos + len;
                    if line_end > self.valid {
                        self.validate_ahead();
                    }
                    let line = &self.buf[self.pos..line_end];
                    let checked = if line_end <= self.valid {
                        // SAFETY: `buf[..valid]` was checked to be UTF-8 and
                        // splits at line ends, which are char boundaries.
                        Ok(unsafe { std::str::from_utf8_unchecked(line) })
                    } else {
                        // The line holds the bad bytes: find them exactly.
                        std::str::from_utf8(line)
                    };
                    let next = self.pos + len + term;
                    let text = match checked {
                        Ok(s) => s.to_owned(),
                        Err(e) => {
                            let offset = self.offset() + e.valid_up_to() as u64;
                            let BadLines::Skip(skipped) = &self.bad_lines else {
                                return Err(Error::InvalidUtf8 {
                                    path: self.path.to_path_buf(),
                                    offset,
                                });
                            };
                            skipped.lock().insert((self.path.to_path_buf(), offset));
                            self.pos = next;
                            continue 'lines;
                        }
                    };
                    self.pos = next;
                    return Ok(Some(text));
                }
                if self.eof {
                    return Ok(None);
                }
                self.fill()?;
            }
        }
    }
}

impl Chunks<String> for LineReader {
    fn next_chunk(&mut self, out: &mut Vec<String>, hint: usize) -> Result<bool> {
        let (start, lines) = (self.offset(), out.len());
        let mut more = true;
        for _ in 0..hint.max(1) {
            match self.next_line()? {
                Some(line) => out.push(line),
                None => {
                    more = false;
                    break;
                }
            }
        }
        let (bytes, lines) = (self.offset() - start, (out.len() - lines) as u64);
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
            regular_file_len(f)?;
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
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
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
