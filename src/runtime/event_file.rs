//! The event log file: every event of an application as one JSON object
//! per line, written by a thread of its own so that tasks never wait for
//! the disk. The reader and the schema's documentation are in
//! [`observe`](crate::observe).

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

/// The version written in every line; a reader refuses other versions.
pub(crate) const SCHEMA: u32 = 1;

/// Events held for the writer before further ones are counted as dropped.
pub(crate) const QUEUE: usize = 16 * 1024;

/// Where a line's event comes from: it says how to read its `event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    /// The log's own records ([`LogRecord`]).
    Log,
    /// An [`Event`](super::Event) of the scheduler, storage or executors.
    Engine,
    /// A [`StreamingEvent`](crate::streaming::StreamingEvent).
    Streaming,
}

/// The log's own records: the first and the last line of a file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum LogRecord {
    /// The first line.
    ApplicationStart {
        id: String,
        spate_version: String,
        parallelism: usize,
        processes: usize,
        /// The memory budget's limit in bytes.
        #[serde(default)]
        memory_limit: u64,
    },
    /// The last line, written when the context is dropped.
    ApplicationEnd {
        /// Events that found the queue full (or the file failing) and are
        /// not in the file.
        dropped: u64,
    },
}

/// One event waiting to be written, serialized by the writer thread.
struct Entry {
    time_ms: u64,
    source: Source,
    event: Box<dyn ToJson>,
}

trait ToJson: Send {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl<T: serde::Serialize + Send> ToJson for T {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

/// The writer of one application's event log.
pub(crate) struct EventFile {
    queue: Mutex<Option<SyncSender<Entry>>>,
    dropped: std::sync::Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EventFile {
    /// Creates `dir/<app_id>.jsonl.inprogress` (renamed to
    /// `<app_id>.jsonl` when closed, as Spark marks a running
    /// application's log) and writes the first record.
    pub(crate) fn create(
        dir: &Path,
        app_id: &str,
        parallelism: usize,
        processes: usize,
        memory_limit: u64,
        start_ms: u64,
    ) -> Result<EventFile> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("{app_id}.jsonl"));
        let running = path.with_extension("jsonl.inprogress");
        let mut file = File::create(&running).map_err(|e| Error::io(&running, e))?;
        // The first line is there before any job, so a reader of a running
        // application's file always finds it.
        let start = Entry {
            time_ms: start_ms,
            source: Source::Log,
            event: Box::new(LogRecord::ApplicationStart {
                id: app_id.to_string(),
                spate_version: env!("CARGO_PKG_VERSION").to_string(),
                parallelism,
                processes,
                memory_limit,
            }),
        };
        let mut line = Vec::new();
        envelope(&start, &mut line)
            .map_err(std::io::Error::from)
            .and_then(|()| file.write_all(&line))
            .map_err(|e| Error::io(&running, e))?;
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = std::sync::Arc::new(AtomicU64::new(0));
        let writer = {
            let (dropped, at, path) = (dropped.clone(), running.clone(), path.clone());
            std::thread::Builder::new()
                .name("spate-event-log".into())
                .spawn(move || write_all(rx, BufWriter::new(file), &dropped, &at, &path))
                .map_err(|e| Error::io(&running, e))?
        };
        let log = EventFile {
            queue: Mutex::new(Some(tx)),
            dropped,
            writer: Mutex::new(Some(writer)),
            path,
        };
        Ok(log)
    }

    /// Queues one event; never waits. A full queue counts it as dropped.
    /// `time_ms` comes from the bus's [`at_now`](super::ListenerBus::at_now),
    /// so the file's times never go back.
    pub(crate) fn post<E: serde::Serialize + Send + 'static>(
        &self,
        source: Source,
        time_ms: u64,
        event: E,
    ) {
        let event = Box::new(event);
        let queue = self.queue.lock();
        let entry = Entry {
            time_ms,
            source,
            event,
        };
        let sent = match queue.as_ref() {
            Some(tx) => match tx.try_send(entry) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The file's name once closed (`….jsonl`; `….jsonl.inprogress` until then).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the last record, flushes, closes and renames the file.
    /// Events posted later are dropped (and counted).
    pub(crate) fn close(&self) {
        if let Some(tx) = self.queue.lock().take() {
            drop(tx);
        }
        if let Some(writer) = self.writer.lock().take()
            && writer.join().is_err()
        {
            tracing::warn!(path = %self.path.display(), "the event log writer panicked");
        }
    }
}

impl Drop for EventFile {
    fn drop(&mut self) {
        self.close();
    }
}

impl super::events::TimedListener for EventFile {
    fn on_event_at(&self, time_ms: u64, event: &super::Event) {
        self.post(Source::Engine, time_ms, event.clone());
    }
}

/// The writer thread: lines in arrival order, flushed whenever the queue
/// is empty (so a killed program loses at most what was in flight).
fn write_all(
    rx: Receiver<Entry>,
    mut out: BufWriter<File>,
    dropped: &AtomicU64,
    running: &Path,
    path: &Path,
) {
    let mut line = Vec::with_capacity(512);
    let mut failed = false;
    let mut write = |entry: &Entry, out: &mut BufWriter<File>| {
        if failed {
            dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        line.clear();
        let written = envelope(entry, &mut line)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(&line));
        if let Err(e) = written {
            // A full disk must not fail the job: the log stops, says so, and
            // its last line counts what it misses.
            tracing::warn!(path = %running.display(), error = %e, "the event log stopped");
            failed = true;
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    while let Ok(entry) = rx.recv() {
        write(&entry, &mut out);
        while let Ok(entry) = rx.try_recv() {
            write(&entry, &mut out);
        }
        // A failing flush fails the next write too, which reports it.
        let _ = out.flush();
    }
    let end = Entry {
        time_ms: now_ms(),
        source: Source::Log,
        event: Box::new(LogRecord::ApplicationEnd {
            dropped: dropped.load(Ordering::Relaxed),
        }),
    };
    write(&end, &mut out);
    let closed = out
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(running, path));
    if let Err(e) = closed {
        tracing::warn!(path = %running.display(), error = %e, "the event log could not be closed");
    }
    let lost = dropped.load(Ordering::Relaxed);
    if lost > 0 {
        tracing::warn!(path = %path.display(), dropped = lost, "events were dropped from the event log");
    }
}

/// `{"schema":1,"time_ms":…,"source":"…","event":…}` and a newline.
fn envelope(entry: &Entry, out: &mut Vec<u8>) -> serde_json::Result<()> {
    write!(
        out,
        "{{\"schema\":{SCHEMA},\"time_ms\":{},\"source\":",
        entry.time_ms
    )
    .map_err(serde_json::Error::io)?;
    entry.source.write_json(out)?;
    out.extend_from_slice(b",\"event\":");
    entry.event.write_json(out)?;
    out.extend_from_slice(b"}\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn events_that_find_the_queue_full_are_counted_not_waited_for() {
        let (tx, rx) = sync_channel(2);
        let log = EventFile {
            queue: Mutex::new(Some(tx)),
            dropped: Default::default(),
            writer: Mutex::new(None),
            path: PathBuf::from("unused"),
        };
        for job in 0..5u64 {
            log.post(Source::Engine, now_ms(), job); // returns at once although no one reads
        }
        assert_eq!(log.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_iter().count(), 2);
        log.close();
        log.post(Source::Engine, now_ms(), 9u64);
        assert_eq!(
            log.dropped.load(Ordering::Relaxed),
            4,
            "an event after close is counted too"
        );
    }

    #[test]
    fn the_last_line_counts_the_dropped_events_and_the_file_is_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventFile::create(dir.path(), "app-1", 2, 1, 1 << 20, now_ms()).unwrap();
        let running = dir.path().join("app-1.jsonl.inprogress");
        assert!(running.exists());
        log.post(Source::Engine, now_ms(), "an event");
        log.dropped.fetch_add(3, Ordering::Relaxed); // as if three had found the queue full
        log.close();
        assert!(!running.exists());
        let got = lines(&dir.path().join("app-1.jsonl"));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["source"], "log");
        assert_eq!(got[0]["event"]["ApplicationStart"]["id"], "app-1");
        assert_eq!(got[1]["event"], "an event");
        assert_eq!(got[2]["event"]["ApplicationEnd"]["dropped"], 3);
        assert!(got.iter().all(|l| l["schema"] == SCHEMA));
    }

    #[test]
    fn a_full_disk_stops_the_log_counts_what_it_misses_and_never_fails_a_post() {
        let Ok(full) = File::options().write(true).open("/dev/full") else {
            return; // not Linux: no device that is always full
        };
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = AtomicU64::new(0);
        for i in 0..10u64 {
            tx.send(Entry {
                time_ms: i,
                source: Source::Engine,
                event: Box::new(i),
            })
            .unwrap();
        }
        drop(tx);
        let dir = tempfile::tempdir().unwrap();
        let (running, path) = (dir.path().join("x.inprogress"), dir.path().join("x"));
        // A buffer smaller than a line: every line goes to the device.
        write_all(
            rx,
            BufWriter::with_capacity(8, full),
            &dropped,
            &running,
            &path,
        );
        // The ten events and the last line, none of which the device took.
        assert_eq!(dropped.load(Ordering::Relaxed), 11);
    }
}
