//! The history view: the web UI and REST API of ended (or still running)
//! applications, rebuilt from the event log files of a directory, for the
//! `spate-history` binary.

use super::{EventLogFile, Logged, read_event_log};
use crate::error::{Error, Result};
use crate::ui::{AppInfo, Apps, Status, UiServer};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// The status an event log file describes: the events applied in order, at
/// their logged times, exactly as the live UI applied them.
pub(crate) fn replay(log: &EventLogFile) -> Status {
    let status = Status::new(AppInfo {
        id: log.app_id.clone(),
        spate_version: log.spate_version.clone(),
        parallelism: log.parallelism,
        processes: log.processes,
        memory_limit: log.memory_limit,
        start_ms: log.start_ms,
    });
    for e in &log.events {
        match &e.event {
            Logged::Engine(event) => status.apply(e.time_ms, event),
            Logged::Streaming(event) => status.apply_streaming(crate::streaming::status_row(event)),
        }
    }
    if let Some(end) = log.end_ms {
        status.end(end);
    }
    status
}

/// What a file was when it was last read.
type Stamp = (u64, Option<SystemTime>);

/// The directory's applications, re-read when a file changes.
struct Directory {
    dir: PathBuf,
    read: Mutex<BTreeMap<PathBuf, (Stamp, Arc<Status>)>>,
}

impl Directory {
    /// The event log files in the directory now, each read again only if
    /// it changed; a file that cannot be read is left out (and warned about).
    fn applications(&self) -> Vec<Arc<Status>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target: "spate::history", dir = %self.dir.display(), error = %e, "cannot list the event log directory");
                return Vec::new();
            }
        };
        let mut read = self.read.lock();
        let mut seen = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !(name.ends_with(".jsonl") || name.ends_with(".jsonl.inprogress")) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let stamp = (meta.len(), meta.modified().ok());
            let status = match read.get(&path) {
                Some((was, status)) if *was == stamp => status.clone(),
                _ => match read_event_log(&path) {
                    Ok(log) => Arc::new(replay(&log)),
                    Err(e) => {
                        tracing::warn!(target: "spate::history", error = %e, "skipping an event log");
                        continue;
                    }
                },
            };
            seen.insert(path, (stamp, status));
        }
        *read = seen;
        // A file renamed from `.inprogress` to `.jsonl` appears once: the complete one.
        let mut by_app: BTreeMap<String, (bool, Arc<Status>)> = BTreeMap::new();
        for (path, (_, status)) in read.iter() {
            let complete = path.extension().is_some_and(|e| e == "jsonl");
            let id = status.app_id().to_string();
            match by_app.get(&id) {
                Some((true, _)) if !complete => {}
                _ => {
                    by_app.insert(id, (complete, status.clone()));
                }
            }
        }
        // Newest first, as Spark's history server lists them.
        let mut apps: Vec<Arc<Status>> = by_app.into_values().map(|(_, s)| s).collect();
        apps.sort_by_key(|s| std::cmp::Reverse(s.start_ms()));
        apps
    }
}

/// A history server: serves the web UI and REST API of every application
/// whose event log is in a directory, as the live UI served them. Logs
/// that appear or grow are picked up on the next request. Dropping it
/// stops it.
///
/// ```
/// let logs = tempfile::tempdir()?;
/// let ctx = spate::Context::builder().event_log_dir(logs.path()).build()?;
/// ctx.parallelize(vec![1, 2, 3], 3).count()?;
/// drop(ctx);
/// let history = spate::observe::HistoryServer::start(logs.path(), "127.0.0.1:0".parse()?)?;
/// assert!(history.url().starts_with("http://127.0.0.1:"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HistoryServer {
    server: UiServer,
}

impl HistoryServer {
    /// Serves the event logs of `dir` on `addr` (port 0 picks a free one).
    /// A directory that does not exist is an error naming it.
    ///
    /// ```
    /// let missing = std::path::Path::new("/no/such/spate/logs");
    /// let err = spate::observe::HistoryServer::start(missing, "127.0.0.1:0".parse()?).err().unwrap();
    /// assert!(err.to_string().contains("/no/such/spate/logs"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(dir: impl AsRef<Path>, addr: SocketAddr) -> Result<HistoryServer> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let directory = Arc::new(Directory {
            dir,
            read: Mutex::new(BTreeMap::new()),
        });
        let apps: Apps = Arc::new(move || directory.applications());
        Ok(HistoryServer {
            server: UiServer::start(apps, addr)?,
        })
    }

    /// Its address, as a URL (`http://127.0.0.1:<port>/`).
    ///
    /// ```
    /// let logs = tempfile::tempdir()?;
    /// let history = spate::observe::HistoryServer::start(logs.path(), "127.0.0.1:0".parse()?)?;
    /// assert!(history.url().ends_with('/'));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn url(&self) -> String {
        format!("http://{}/", self.server.addr())
    }
}
