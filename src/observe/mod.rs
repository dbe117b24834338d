//! Watching an application: its event log file, read back.
//!
//! # The event log format (schema 1)
//!
//! A context built with [`event_log_dir`](crate::ContextBuilder::event_log_dir)
//! (or `SPATE_EVENT_LOG_DIR`) writes one JSON object per line:
//!
//! ```text
//! {"schema":1,"time_ms":1765000000000,"source":"engine","event":{"TaskEnd":{...}}}
//! ```
//!
//! - `schema`: the format's version; a reader refuses versions it does not know.
//! - `time_ms`: when the event was posted, in milliseconds since the Unix epoch.
//! - `source`: `"log"` for the file's first and last lines
//!   (`ApplicationStart` with the application id, Spate version,
//!   parallelism and process count; `ApplicationEnd` with the number of
//!   events dropped), `"engine"` for an [`Event`], `"streaming"` for a
//!   [`StreamingEvent`].
//! - `event`: the event as serde writes it: the variant's name as the key,
//!   its fields by name; durations are `{"secs":…,"nanos":…}`.
//!
//! A file without its `ApplicationEnd` line belongs to a program that is
//! still running or that ended without dropping its context (it was
//! killed): [`EventLogFile::dropped`] is `None` then.

mod history;

pub use history::HistoryServer;

use crate::error::{Error, Result};
use crate::runtime::{Event, LogRecord, SCHEMA, Source};
use crate::streaming::StreamingEvent;
use std::io::BufRead;
use std::path::Path;

/// One event of an event log file.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent {
    /// When it was posted, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened.
    pub event: Logged,
}

/// An event of the engine or of a streaming context.
#[derive(Clone, Debug, PartialEq)]
pub enum Logged {
    /// A scheduler, storage or executor event.
    Engine(Event),
    /// A streaming context's event.
    Streaming(StreamingEvent),
}

/// An application's event log, read back.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLogFile {
    /// The application's id ([`Context::application_id`](crate::Context::application_id)).
    pub app_id: String,
    /// The Spate version that wrote it.
    pub spate_version: String,
    /// Worker threads per process.
    pub parallelism: usize,
    /// Processes of the application (1 in local mode).
    pub processes: usize,
    /// The memory budget's limit in bytes (0 in files of Spate versions
    /// that did not record it).
    pub memory_limit: u64,
    /// When the application started, in milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// When it ended, if the file is complete.
    pub end_ms: Option<u64>,
    /// Events the writer could not keep (a full queue or a failing disk),
    /// once the file is complete; `None` for a running or killed program.
    pub dropped: Option<u64>,
    /// The events, in the order they were posted.
    pub events: Vec<LoggedEvent>,
}

impl EventLogFile {
    /// The engine events, in order.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let ctx = spate::Context::builder().event_log_dir(dir.path()).build()?;
    /// ctx.parallelize(vec![1, 2], 2).collect()?;
    /// let id = ctx.application_id().to_string();
    /// drop(ctx);
    /// let log = spate::observe::read_event_log(dir.path().join(format!("{id}.jsonl")))?;
    /// let jobs = log.engine_events().filter(|e| matches!(e, spate::Event::JobEnd { .. })).count();
    /// assert_eq!(jobs, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn engine_events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().filter_map(|e| match &e.event {
            Logged::Engine(e) => Some(e),
            Logged::Streaming(_) => None,
        })
    }

    /// The streaming events, in order.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let ctx = spate::Context::builder().event_log_dir(dir.path()).build()?;
    /// let id = ctx.application_id().to_string();
    /// spate::streaming::testing::run_batches(vec![vec![1, 2]], |s| s.map(|x| x * 2))?;
    /// drop(ctx);
    /// // run_batches has a context of its own: this application streamed nothing.
    /// let log = spate::observe::read_event_log(dir.path().join(format!("{id}.jsonl")))?;
    /// assert_eq!(log.streaming_events().count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn streaming_events(&self) -> impl Iterator<Item = &StreamingEvent> {
        self.events.iter().filter_map(|e| match &e.event {
            Logged::Streaming(e) => Some(e),
            Logged::Engine(_) => None,
        })
    }
}

/// The envelope of every line.
#[derive(serde::Deserialize)]
struct Line {
    schema: u32,
    time_ms: u64,
    source: Source,
    event: serde_json::Value,
}

/// Reads an event log file (complete, or still being written: a last
/// line cut short by a running writer is ignored).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let ctx = spate::Context::builder().event_log_dir(dir.path()).build()?;
/// let id = ctx.application_id().to_string();
/// drop(ctx);
/// let log = spate::observe::read_event_log(dir.path().join(format!("{id}.jsonl")))?;
/// assert_eq!((log.app_id, log.dropped, log.events.len()), (id, Some(0), 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_event_log(path: impl AsRef<Path>) -> Result<EventLogFile> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let malformed = |line: usize, reason: String| Error::MalformedEventLog {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut log: Option<EventLogFile> = None;
    let mut lines = std::io::BufReader::new(file).lines().enumerate().peekable();
    while let Some((i, text)) = lines.next() {
        let number = i + 1;
        let text = text.map_err(|e| Error::io(path, e))?;
        let is_last = lines.peek().is_none();
        let line: Line = match serde_json::from_str(&text) {
            Ok(line) => line,
            // A writer still running may be in the middle of the last line.
            Err(e) if is_last && e.is_eof() => break,
            Err(e) => return Err(malformed(number, e.to_string())),
        };
        if line.schema != SCHEMA {
            return Err(malformed(
                number,
                format!(
                    "schema version {} (this Spate reads version {SCHEMA})",
                    line.schema
                ),
            ));
        }
        let decode_error = |e: serde_json::Error| malformed(number, e.to_string());
        let event = match line.source {
            Source::Log => {
                match serde_json::from_value::<LogRecord>(line.event).map_err(decode_error)? {
                    LogRecord::ApplicationStart {
                        id,
                        spate_version,
                        parallelism,
                        processes,
                        memory_limit,
                    } => {
                        log = Some(EventLogFile {
                            app_id: id,
                            spate_version,
                            parallelism,
                            processes,
                            memory_limit,
                            start_ms: line.time_ms,
                            end_ms: None,
                            dropped: None,
                            events: Vec::new(),
                        });
                    }
                    LogRecord::ApplicationEnd { dropped } => {
                        if let Some(log) = log.as_mut() {
                            log.dropped = Some(dropped);
                            log.end_ms = Some(line.time_ms);
                        }
                    }
                }
                continue;
            }
            Source::Engine => {
                Logged::Engine(serde_json::from_value(line.event).map_err(decode_error)?)
            }
            Source::Streaming => {
                Logged::Streaming(serde_json::from_value(line.event).map_err(decode_error)?)
            }
        };
        let Some(log) = log.as_mut() else {
            return Err(malformed(
                number,
                "an event before the ApplicationStart line".into(),
            ));
        };
        log.events.push(LoggedEvent {
            time_ms: line.time_ms,
            event,
        });
    }
    log.ok_or_else(|| malformed(1, "no ApplicationStart line: not an event log".into()))
}
