//! Replayable inputs: a source that can read any range of offsets again,
//! so a batch's input is fixed by the offsets it was given and a recovered
//! batch reads exactly what the lost one read. Built in:
//! `text_file_stream`, each new file of a directory exactly once.

use super::checkpoint::{self, SavedInput};
use super::context::StreamingContext;
use super::dstream::{DStream, NewStream, StreamOp};
use super::graph::{Graph, Input};
use super::time::Time;
use crate::context::Context;
use crate::data::{Data, Value};
use crate::error::{BadRecord, Error, Result};
use crate::formats::{BadLines, CsvOptions, JsonLinesOptions, SkippedLines, TextSource};
use crate::rdd::Rdd;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// An input whose records are addressed by offsets and can be read again
/// (Spark's direct streams). A batch's range `(from, to]` is fixed when the
/// batch is generated; `read` must return the same records whenever it is
/// given the same range.
pub trait ReplayableSource: Send + 'static {
    /// The records it produces.
    type Item: Data;
    /// A position in the input; saved in streaming checkpoints.
    type Offset: Clone + Serialize + DeserializeOwned + Send + Sync + PartialEq + Debug + 'static;

    /// Where reading starts when nothing was checkpointed.
    fn initial_offset(&mut self) -> Result<Self::Offset>;

    /// The end of the next batch's range: everything available after
    /// `from`, but at most about `max` units when given (backpressure, and
    /// catching up after a recovery). A unit is a record unless the source
    /// says otherwise ([`size`](ReplayableSource::size)).
    fn next_end(&mut self, from: &Self::Offset, max: Option<u64>) -> Result<Self::Offset>;

    /// The records in `(from, to]`, as a dataset.
    fn read(
        &mut self,
        ctx: &Context,
        from: &Self::Offset,
        to: &Self::Offset,
    ) -> Result<Rdd<Self::Item>>;

    /// How many records `(from, to]` holds, if cheap to know (reported as
    /// the batch's input records).
    fn count(&self, _from: &Self::Offset, _to: &Self::Offset) -> Option<u64> {
        None
    }

    /// How many units `(from, to]` holds, in the unit of `next_end`'s
    /// `max` (default: its record count, or 0 if unknown).
    fn size(&self, from: &Self::Offset, to: &Self::Offset) -> u64 {
        self.count(from, to).unwrap_or(0)
    }

    /// Records that could not be read and were skipped since the last call,
    /// each described with where it was; reported with the batch (as
    /// [`BatchInfo::invalid_records`](super::BatchInfo) and input warnings).
    fn take_skipped(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// A replayable source in the graph: the range each batch got, and where
/// the next batch starts.
pub(crate) struct ReplayInput<S: ReplayableSource> {
    source: Mutex<S>,
    state: Mutex<Ranges<S::Offset>>,
    rate: Mutex<Option<f64>>,
    batch: Duration,
    graph: Weak<Graph>,
    /// The id of the input's stream (its key in checkpoints).
    stream: usize,
}

struct Ranges<O> {
    /// Where the next new batch starts (`None`: the initial offset).
    next: Option<O>,
    /// The range of each generated batch not yet forgotten.
    batches: BTreeMap<Time, (O, O)>,
    /// After a recovery: batches up to this time were generated before
    /// the crash; their ranges must come from the checkpoint.
    replay_until: Option<Time>,
    /// After a recovery: batches up to this time are catching up and take
    /// at most `largest` units.
    catch_up: Option<(Time, u64)>,
    /// The largest batch so far, in the source's units.
    largest: u64,
}

impl<S: ReplayableSource> ReplayInput<S> {
    /// The range of the batch at `time`: the recorded one when the batch
    /// is replayed, else the next one.
    fn range(&self, time: Time) -> Result<(S::Offset, S::Offset)> {
        let mut st = self.state.lock();
        if let Some(r) = st.batches.get(&time) {
            return Ok(r.clone());
        }
        if self.graph.upgrade().is_some_and(|g| g.follows_driver()) {
            // An executor reads what the driver planned, never the source.
            return Err(Error::StreamingState(format!(
                "the driver sent no input range for the batch at {time} of stream {}",
                self.stream
            )));
        }
        if st.replay_until.is_some_and(|t| time <= t) {
            return Err(Error::StreamingState(format!(
                "the checkpoint has no input range for the batch at {time}, which ran before the restart"
            )));
        }
        let mut source = self.source.lock();
        let from = match &st.next {
            Some(o) => o.clone(),
            None => source.initial_offset()?,
        };
        let mut max = self
            .rate
            .lock()
            .map(|r| (r * self.batch.as_secs_f64()).ceil().max(1.0) as u64);
        if let Some((until, largest)) = st.catch_up {
            if time <= until {
                max = Some(max.map_or(largest, |m| m.min(largest)).max(1));
            }
        }
        let to = source.next_end(&from, max)?;
        st.largest = st.largest.max(source.size(&from, &to));
        st.next = Some(to.clone());
        st.batches.insert(time, (from.clone(), to.clone()));
        // Without a checkpoint (which prunes what recovery no longer needs),
        // ranges of old batches serve nothing: keep a bounded few.
        let checkpointed = self
            .graph
            .upgrade()
            .is_some_and(|g| g.recovery.checkpoint_dir().is_some());
        if !checkpointed {
            while st.batches.len() > 64 {
                st.batches.pop_first();
            }
        }
        Ok((from, to))
    }
}

impl<S: ReplayableSource> Input for ReplayInput<S> {
    fn has_pending(&self) -> bool {
        let st = self.state.lock();
        let mut source = self.source.lock();
        let from = match &st.next {
            Some(o) => o.clone(),
            None => match source.initial_offset() {
                Ok(o) => o,
                Err(_) => return false,
            },
        };
        source.next_end(&from, None).is_ok_and(|to| to != from)
    }

    fn rate_limited(&self) -> bool {
        true
    }

    fn take_warnings(&self) -> (u64, Vec<String>) {
        let skipped = self.source.lock().take_skipped();
        (skipped.len() as u64, skipped)
    }

    fn set_rate(&self, rate: Option<f64>) {
        *self.rate.lock() = rate;
    }

    fn plan(&self, time: Time) -> Result<()> {
        self.range(time).map(|_| ())
    }

    fn describe(&self, time: Time) -> Result<Vec<u8>> {
        let range = self.range(time)?;
        checkpoint::encode(&range)
    }

    fn follow(&self, time: Time, plan: &[u8]) -> Result<()> {
        let (range, _): ((S::Offset, S::Offset), _) =
            crate::codec::read_frame(plan).map_err(|reason| {
                Error::Cluster(format!(
                    "the driver's input range for the batch at {time} of stream {} does not decode ({reason}): do all processes run the same binary?",
                    self.stream
                ))
            })?;
        let mut st = self.state.lock();
        st.batches.insert(time, range);
        // Only the current batch's range is read here; recomputing an older
        // batch goes through its dataset, not its range.
        while st.batches.len() > 64 {
            st.batches.pop_first();
        }
        Ok(())
    }

    fn save(&self, keep_after: Time) -> Result<Option<SavedInput>> {
        let mut st = self.state.lock();
        // Older ranges can no longer be replayed by a recovery.
        let kept = st
            .batches
            .split_off(&Time::from_millis(keep_after.millis() + 1));
        st.batches = kept;
        let mut batches = Vec::with_capacity(st.batches.len());
        for (t, (from, to)) in &st.batches {
            batches.push((
                t.millis(),
                checkpoint::encode(from)?,
                checkpoint::encode(to)?,
            ));
        }
        Ok(Some(SavedInput {
            stream: self.stream,
            next: st.next.as_ref().map(checkpoint::encode).transpose()?,
            batches,
            largest_batch: st.largest,
        }))
    }

    fn restore(&self, saved: &SavedInput, dir: &Path, catch_up_until: Time) -> Result<()> {
        let mut st = self.state.lock();
        st.next = saved
            .next
            .as_ref()
            .map(|b| checkpoint::decode(dir, b))
            .transpose()?;
        st.batches.clear();
        for (t, from, to) in &saved.batches {
            let range = (checkpoint::decode(dir, from)?, checkpoint::decode(dir, to)?);
            st.batches.insert(Time::from_millis(*t), range);
        }
        st.replay_until = st.batches.keys().next_back().copied();
        st.largest = saved.largest_batch;
        st.catch_up = Some((catch_up_until, saved.largest_batch.max(1)));
        Ok(())
    }
}

struct ReplayStream<S: ReplayableSource> {
    input: Arc<ReplayInput<S>>,
}

impl<S: ReplayableSource> StreamOp<S::Item> for ReplayStream<S> {
    fn compute(&self, this: &DStream<S::Item>, time: Time) -> Result<Option<Rdd<S::Item>>> {
        let (from, to) = self.input.range(time)?;
        let mut source = self.input.source.lock();
        if let (Some(n), Some(g)) = (source.count(&from, &to), self.input.graph.upgrade()) {
            g.meters.count_input(time, n);
        }
        Ok(Some(source.read(this.context(), &from, &to)?))
    }
}

impl StreamingContext {
    /// A stream of what a replayable source holds, one offset range per
    /// batch. With backpressure, a batch reads at most `rate · interval`
    /// records.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, ReplayableSource, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// /// A fixed log: offsets are positions in it, so any range reads the same.
    /// struct Log(Vec<u32>);
    /// impl ReplayableSource for Log {
    ///     type Item = u32;
    ///     type Offset = usize;
    ///     fn initial_offset(&mut self) -> spate::Result<usize> {
    ///         Ok(0)
    ///     }
    ///     fn next_end(&mut self, from: &usize, max: Option<u64>) -> spate::Result<usize> {
    ///         let max = max.map_or(usize::MAX, |m| m as usize);
    ///         Ok((*from + max.min(2)).min(self.0.len())) // at most 2 a batch
    ///     }
    ///     fn read(&mut self, ctx: &spate::Context, from: &usize, to: &usize) -> spate::Result<spate::Rdd<u32>> {
    ///         Ok(ctx.parallelize(self.0[*from..*to].to_vec(), 1))
    ///     }
    /// }
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let tick = Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone())?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.replayable_stream(Log(vec![1, 2, 3]))
    ///     .foreach_rdd(move |rdd, _| Ok(sink.lock().unwrap().push(rdd.collect()?)))?;
    /// ssc.start()?;
    /// clock.advance(2 * tick);
    /// ssc.wait_for_batch(Time::from_millis(200))?;
    /// assert_eq!(*seen.lock().unwrap(), [vec![1, 2], vec![3]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn replayable_stream<S: ReplayableSource>(&self, source: S) -> DStream<S::Item> {
        let graph = self.graph();
        let spec = NewStream::input("replayable_stream", graph);
        let input = Arc::new(ReplayInput {
            source: Mutex::new(source),
            state: Mutex::new(Ranges {
                next: None,
                batches: BTreeMap::new(),
                replay_until: None,
                catch_up: None,
                largest: 0,
            }),
            rate: Mutex::new(graph.pacing.backpressure().initial_or_max()),
            batch: graph.batch,
            graph: Arc::downgrade(graph),
            stream: graph.peek_stream_id(),
        });
        let stream = DStream::from_op(
            graph,
            spec,
            ReplayStream {
                input: input.clone(),
            },
        );
        debug_assert_eq!(stream.node.base.id, input.stream);
        graph.add_input_for(
            stream.node.base.id,
            format!("replayable_stream from {}", std::any::type_name::<S>()),
            input,
        );
        stream
    }

    /// The lines of every new file in `dir`, each file exactly once, in
    /// the batch after it appears. Files must appear atomically (write
    /// elsewhere, then rename into `dir`); names starting with `.` or `_`
    /// are ignored. As in Spark (`newFilesOnly`, default true), files
    /// already in `dir` when the stream is defined are not read; see
    /// [`FileStreamOptions`] to read them too. The offsets are the set of
    /// file names read, so a recovered batch reads the same files.
    ///
    /// A line that is not UTF-8 is skipped, as the socket source does: it
    /// is counted in the batch's
    /// [`BatchInfo::invalid_records`](super::BatchInfo) and reported as an
    /// input warning naming the file and the offset of the bad byte. One
    /// bad line neither stops the stream nor fails again on every restart.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, StreamingContext};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("old.txt"), "before\n").unwrap();
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_secs(1), clock.clone()).unwrap();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// ssc.text_file_stream(dir.path()).foreach_rdd(move |rdd, _| {
    ///     s.lock().unwrap().extend(rdd.collect()?);
    ///     Ok(())
    /// }).unwrap();
    /// std::fs::write(dir.path().join(".new.tmp"), "after\n").unwrap();
    /// std::fs::rename(dir.path().join(".new.tmp"), dir.path().join("new.txt")).unwrap();
    /// ssc.start().unwrap();
    /// clock.advance(Duration::from_secs(1));
    /// ssc.wait_for_batch(spate::streaming::Time::from_millis(1000)).unwrap();
    /// ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    /// assert_eq!(*seen.lock().unwrap(), ["after"]); // old.txt was there before
    /// ```
    pub fn text_file_stream(&self, dir: impl Into<PathBuf>) -> DStream<String> {
        self.text_file_stream_with(dir, FileStreamOptions::default())
    }

    /// [`text_file_stream`](Self::text_file_stream) with [`FileStreamOptions`]:
    /// whether files already there are read, and how many files a batch
    /// takes at most.
    ///
    /// ```
    /// use spate::streaming::{FileStreamOptions, StreamingContext};
    /// let ctx = spate::Context::new().unwrap();
    /// let ssc = StreamingContext::new(&ctx, std::time::Duration::from_secs(1)).unwrap();
    /// let every_file = FileStreamOptions { new_files_only: false, max_files_per_batch: Some(10) };
    /// let lines = ssc.text_file_stream_with("/var/log/incoming", every_file);
    /// # drop(lines);
    /// ```
    pub fn text_file_stream_with(
        &self,
        dir: impl Into<PathBuf>,
        options: FileStreamOptions,
    ) -> DStream<String> {
        let read: ReadFile<String> = Box::new(|ctx, path, skipped| {
            TextSource::rdd_with(ctx, path, 1, BadLines::Skip(skipped.lines.clone()))
        });
        self.file_stream(dir.into(), options, read)
    }

    /// The rows of new CSV files in `dir` (as
    /// [`text_file_stream_with`](StreamingContext::text_file_stream_with)
    /// watches it), read with `csv` options. A malformed row is skipped
    /// and reported with its batch (file, line and reason), whatever
    /// `csv`'s policy; replayable after a recovery like the text stream.
    ///
    /// ```
    /// use spate::streaming::{FileStreamOptions, StreamingContext};
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, std::time::Duration::from_secs(1))?;
    /// let sales = ssc.csv_file_stream::<(String, u64)>("/var/spool/sales", &Default::default(), FileStreamOptions::default());
    /// # drop(sales);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn csv_file_stream<T: Value + DeserializeOwned>(
        &self,
        dir: impl Into<PathBuf>,
        csv: &CsvOptions,
        options: FileStreamOptions,
    ) -> DStream<T> {
        let csv = csv.clone().min_partitions(1);
        let read: ReadFile<T> = Box::new(move |ctx, path, skipped| {
            Ok(skipping(
                ctx.csv_file_keeping_bad::<T>(path, &csv)?,
                skipped,
            ))
        });
        self.file_stream(dir.into(), options, read)
    }

    /// The values of new JSON lines files in `dir`, as
    /// [`csv_file_stream`](StreamingContext::csv_file_stream) reads CSV.
    ///
    /// ```
    /// use spate::streaming::{FileStreamOptions, StreamingContext};
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, std::time::Duration::from_secs(1))?;
    /// let events = ssc.json_lines_file_stream::<serde_json::Value>("/var/spool/events", &Default::default(), FileStreamOptions::default());
    /// # drop(events);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn json_lines_file_stream<T: Value + DeserializeOwned>(
        &self,
        dir: impl Into<PathBuf>,
        json: &JsonLinesOptions,
        options: FileStreamOptions,
    ) -> DStream<T> {
        let json = json.clone().min_partitions(1);
        let read: ReadFile<T> = Box::new(move |ctx, path, skipped| {
            Ok(skipping(
                ctx.json_lines_file_keeping_bad::<T>(path, &json)?,
                skipped,
            ))
        });
        self.file_stream(dir.into(), options, read)
    }

    fn file_stream<T: Value>(
        &self,
        dir: PathBuf,
        options: FileStreamOptions,
        read: ReadFile<T>,
    ) -> DStream<T> {
        let mut files = NewFiles {
            dir,
            max_files: options.max_files_per_batch,
            there_before: BTreeSet::new(),
            skipped: Skipped::default(),
            read,
        };
        if options.new_files_only {
            // Spark takes its threshold when the stream is defined too. A
            // directory that cannot be listed yet has nothing old in it;
            // the batches report the error if it stays so.
            files.there_before = files.list().unwrap_or_default();
        }
        self.replayable_stream(files)
    }
}

/// What a file stream skipped and has not reported yet: lines that were
/// not UTF-8, and typed records that did not parse (keyed by position,
/// so a recomputed partition reports each once).
#[derive(Clone, Default)]
struct Skipped {
    lines: SkippedLines,
    records: Arc<Mutex<BTreeMap<(PathBuf, u64), String>>>,
}

/// How a file stream reads one new file.
type ReadFile<T> = Box<dyn Fn(&Context, &Path, &Skipped) -> Result<Rdd<T>> + Send>;

/// The good rows of `rows`; the bad ones go to `skipped`.
fn skipping<T: Value>(rows: Rdd<std::result::Result<T, BadRecord>>, skipped: &Skipped) -> Rdd<T> {
    let records = skipped.records.clone();
    rows.flat_map(move |r| match r {
        Ok(t) => Some(t),
        Err(bad) => {
            let key = (bad.path.clone(), bad.offset);
            records
                .lock()
                .insert(key, format!("skipped a malformed record: {bad}"));
            None
        }
    })
}

/// Options of [`text_file_stream_with`](StreamingContext::text_file_stream_with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStreamOptions {
    /// Skip the files already in the directory when the stream is defined
    /// (Spark's `newFilesOnly`; default true). With false the first batch
    /// reads them.
    pub new_files_only: bool,
    /// At most this many new files per batch (in name order), the rest in
    /// later batches; after a recovery, catching-up batches take at most as
    /// many files as the largest batch before the crash. Default: no limit.
    pub max_files_per_batch: Option<u64>,
}

impl Default for FileStreamOptions {
    fn default() -> Self {
        FileStreamOptions {
            new_files_only: true,
            max_files_per_batch: None,
        }
    }
}

/// The files of a directory, as a replayable source; its unit is a file.
struct NewFiles<T> {
    dir: PathBuf,
    max_files: Option<u64>,
    /// The files not to read (there when the stream was defined, with
    /// `new_files_only`): the offset before the first batch.
    there_before: BTreeSet<String>,
    /// What was skipped, not yet reported.
    skipped: Skipped,
    read: ReadFile<T>,
}

impl<T> NewFiles<T> {
    fn list(&self) -> Result<BTreeSet<String>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut names = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                names.insert(name);
            }
        }
        Ok(names)
    }
}

impl<T: Value> ReplayableSource for NewFiles<T> {
    type Item = T;
    /// The names of the files read so far.
    type Offset = BTreeSet<String>;

    fn initial_offset(&mut self) -> Result<Self::Offset> {
        Ok(self.there_before.clone())
    }

    fn next_end(&mut self, from: &Self::Offset, max: Option<u64>) -> Result<Self::Offset> {
        let limit = match (max, self.max_files) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(u64::MAX),
        };
        let mut to = from.clone();
        let new = self.list()?.into_iter().filter(|n| !from.contains(n));
        to.extend(new.take(usize::try_from(limit).unwrap_or(usize::MAX)));
        Ok(to)
    }

    fn size(&self, from: &Self::Offset, to: &Self::Offset) -> u64 {
        to.difference(from).count() as u64
    }

    fn read(&mut self, ctx: &Context, from: &Self::Offset, to: &Self::Offset) -> Result<Rdd<T>> {
        let files: Vec<Rdd<T>> = to
            .difference(from)
            .map(|name| (self.read)(ctx, &self.dir.join(name), &self.skipped))
            .collect::<Result<_>>()?;
        Ok(match files.len() {
            0 => ctx.empty(),
            _ => ctx.union(&files),
        })
    }

    fn take_skipped(&mut self) -> Vec<String> {
        let lines = std::mem::take(&mut *self.skipped.lines.lock());
        let records = std::mem::take(&mut *self.skipped.records.lock());
        lines
            .into_iter()
            .map(|(file, offset)| {
                format!(
                    "skipped a line of {} that is not UTF-8 (bad byte at offset {offset})",
                    file.display()
                )
            })
            .chain(records.into_values())
            .collect()
    }
}
