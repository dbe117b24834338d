//! The one error type of the engine.

use crate::ids::{RddId, ShuffleId};
use std::path::PathBuf;

/// Everything that can go wrong in Spate, as a typed enum.
///
/// Every variant names what failed and where (file and byte offset, stage and
/// partition, shuffle block), so a caller can report it without more context.
/// After any error the [`Context`](crate::Context) stays usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory that was being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A text input was not valid UTF-8.
    #[error("invalid UTF-8 in {path} at byte offset {offset}")]
    InvalidUtf8 {
        /// The file that holds the bad bytes.
        path: PathBuf,
        /// Offset of the first invalid byte from the start of the file.
        offset: u64,
    },
    /// No input matched a path or glob pattern.
    #[error("no input files match {0}")]
    NoInput(String),
    /// A task failed on every attempt; the job was aborted.
    #[error(
        "job {job} aborted: task for partition {partition} of stage {stage} failed {attempts} time(s); last failure: {cause}"
    )]
    TaskFailed {
        /// The job that was aborted.
        job: u64,
        /// The stage the task belongs to.
        stage: u64,
        /// The partition the task computes.
        partition: usize,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure (panic message or error).
        cause: Box<Error>,
    },
    /// A user closure panicked inside a task.
    #[error("user code panicked: {0}")]
    Panicked(String),
    /// A fallible user closure (`try_map`, `try_filter`, ...) returned an
    /// error; it is kept as this error's source. Retried like a panic.
    #[error("user code failed: {0}")]
    User(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A shuffle block could not be read: it is missing or fails its checksum.
    #[error("shuffle {shuffle} map {map} reduce {reduce}: {reason}{}", if other_maps.is_empty() { String::new() } else { format!(" (maps {other_maps:?} are unreadable too)") })]
    ShuffleFetch {
        /// Shuffle id.
        shuffle: ShuffleId,
        /// Map partition whose output is bad.
        map: usize,
        /// Reduce partition that was being read.
        reduce: usize,
        /// What is wrong with the block.
        reason: String,
        /// Further map partitions of the same shuffle whose blocks this
        /// reduce task could not read either.
        other_maps: Vec<usize>,
    },
    /// Data could not be encoded or decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// An action that needs at least one element ran on an empty dataset.
    #[error("{0} on an empty dataset")]
    EmptyDataset(&'static str),
    /// An output location exists already.
    #[error("output path {0} already exists")]
    OutputExists(PathBuf),
    /// An argument is out of its domain (a negative fraction, zero partitions, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A fault injected by the context's [`FaultPlan`](crate::FaultPlan).
    #[error("{0}")]
    InjectedFault(String),
    /// A checkpoint directory or file is damaged, incomplete or foreign.
    #[error("checkpoint {path}: {reason}")]
    CorruptCheckpoint {
        /// The file that is wrong.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A streaming checkpoint was written by a program whose inputs,
    /// stateful streams or event streams differ from this one's (streams
    /// are matched by their creation order).
    #[error("checkpoint {path} was written by another program: {difference}")]
    IncompatibleCheckpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// The first difference found.
        difference: String,
    },
    /// A streaming checkpoint directory is locked by another streaming
    /// context (of this process or of another one still running).
    #[error(
        "checkpoint directory is in use by process {pid} (lock file {path}); \
         two streaming contexts on one checkpoint would corrupt it"
    )]
    CheckpointInUse {
        /// The lock file.
        path: PathBuf,
        /// The process that holds it.
        pid: u32,
    },
    /// A block of a local checkpoint is gone; it cannot be recomputed
    /// because the lineage was truncated.
    #[error(
        "partition {partition} of locally checkpointed dataset {rdd} was lost and cannot be recomputed"
    )]
    LostLocalCheckpoint {
        /// Dataset id.
        rdd: RddId,
        /// Partition.
        partition: usize,
    },
    /// The task was not run because another task of its job failed first.
    #[error("job {0} was cancelled after another task failed")]
    Cancelled(u64),
    /// A stage kept losing its inputs and was given up.
    #[error("stage {stage} failed {attempts} consecutive attempts; last failure: {cause}")]
    StageFailed {
        /// The stage.
        stage: u64,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed.
        cause: Box<Error>,
    },
    /// Two zipped datasets disagree in shape.
    #[error("cannot zip: {0}")]
    ZipMismatch(String),
    /// A streaming batch failed; the streaming context stopped.
    #[error("streaming batch at {time_ms} ms failed: {cause}")]
    BatchFailed {
        /// The batch time, in milliseconds.
        time_ms: u64,
        /// What failed.
        cause: Box<Error>,
    },
    /// A [`Broadcast`](crate::Broadcast) was read after
    /// [`destroy`](crate::Broadcast::destroy) (Spark: "Attempted to use
    /// Broadcast after it was destroyed"). Not retried: every attempt would
    /// meet it.
    #[error("broadcast {0} was used after destroy()")]
    BroadcastDestroyed(u64),
    /// An action (`count`, `collect`, ...) was called inside a task, that
    /// is, inside a closure given to a transformation. Actions run on the
    /// driver: compute the value first and capture it (or broadcast it).
    #[error(
        "{action}() was called inside a task (job {job}, stage {stage}, partition {partition}): \
         actions cannot run inside transformations; compute the value before and capture it"
    )]
    ActionInTask {
        /// The action that was called.
        action: &'static str,
        /// The job of the task it was called in.
        job: u64,
        /// The stage of that task.
        stage: u64,
        /// The partition of that task.
        partition: usize,
    },
    /// A connection between cluster processes was refused: another
    /// protocol version, a different build of the program, a wrong secret,
    /// or a peer that is not Spate.
    #[error("connection with {peer} refused: {reason}")]
    Handshake {
        /// The other side, as this side knows it.
        peer: String,
        /// Why, naming the cause.
        reason: String,
    },
    /// An external command run by [`Rdd::pipe`](crate::Rdd::pipe) could
    /// not start or exited unsuccessfully.
    #[error("command `{command}` {status}{}", if stderr.is_empty() { String::new() } else { format!("; it wrote: {stderr}") })]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it ended (its exit status, or why it could not start).
        status: String,
        /// The end of what it wrote to standard error.
        stderr: String,
    },
    /// Cluster mode could not start or lost a process: executors that did
    /// not join in time, a driver that cannot be reached, an executor or
    /// driver that was lost.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A task attempt failed in another process of the cluster: its error
    /// there, as text.
    #[error("on process {rank}: {message}")]
    Remote {
        /// The process that ran the attempt.
        rank: usize,
        /// The error it met.
        message: String,
        /// Whether another attempt may succeed (as [`Error::is_retryable`]
        /// said there).
        retryable: bool,
    },
    /// A streaming context was used in a state that does not allow it
    /// (started twice, a stream defined after start, ...).
    #[error("streaming context: {0}")]
    StreamingState(String),
    /// A line of an event log file could not be read: not JSON, not of the
    /// schema, or of a schema version this Spate does not read.
    #[error("event log {path}, line {line}: {reason}")]
    MalformedEventLog {
        /// The file.
        path: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A record of a CSV or JSON lines file did not parse (under the
    /// default [`BadRecords::Fail`](crate::BadRecords::Fail) policy).
    #[error("malformed record in {0}")]
    MalformedRecord(Box<BadRecord>),
    /// An object file could not be read as the type asked for: it is not
    /// an object file, holds another type, or is corrupt or cut short.
    #[error("cannot read object file {path}: {reason}")]
    BadObjectFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A Parquet file could not be read: not Parquet, a cut footer, a
    /// corrupt page.
    #[error("cannot read Parquet file {path}: {reason}")]
    BadParquetFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file's schema does not fit the row type asked for (checked when
    /// the dataset is made).
    #[error("the schema of {path} does not fit: {reason}")]
    SchemaMismatch {
        /// The file.
        path: PathBuf,
        /// Which column or field, and how.
        reason: String,
    },
    /// The web UI could not listen on its address (in use, not local, or
    /// not permitted).
    #[error("web UI cannot listen on {addr}: {source}")]
    UiBind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An object store refused or failed a request (after the store's own
    /// retries). A missing object is [`Error::Io`] with `NotFound`, as a
    /// missing file is.
    #[error("object store request on {url} failed: {reason}")]
    ObjectStore {
        /// The object or prefix, as a URL.
        url: PathBuf,
        /// The store's error, with the server's answer when there was one.
        reason: String,
        /// Whether a retry may succeed: false when the request was refused
        /// (no permission, bad credentials, an invalid key), true when the
        /// server or the network failed.
        transient: bool,
    },
}

/// A record that did not parse, and where it was: what
/// [`Error::MalformedRecord`] reports, and the bad rows of the readers
/// that keep them (`json_lines_file_keeping_bad`, `csv_file_keeping_bad`).
/// It displays as `FILE at line L[, column C | field F]: REASON`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BadRecord {
    /// The file it is in.
    pub path: PathBuf,
    /// Its 1-based line number (of its first line, for a CSV record that
    /// spans lines).
    pub line: u64,
    /// JSON lines: the 1-based column (in bytes) where parsing failed.
    pub column: Option<u64>,
    /// CSV: the 1-based field that failed, when one did.
    pub field: Option<u64>,
    /// The byte offset of its start in the file (in the decompressed bytes
    /// of a compressed file).
    pub offset: u64,
    /// Its text (invalid UTF-8 replaced), cut to 1 KiB.
    pub text: String,
    /// Why it did not parse.
    pub reason: String,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at line {}", self.path.display(), self.line)?;
        if let Some(c) = self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(field) = self.field {
            write!(f, ", field {field}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// `Result` with Spate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether another attempt of the task that met this error may succeed.
    /// Errors that no retry can change (a full disk, permission denied,
    /// invalid UTF-8, a corrupt checkpoint, a file cut short, misuse of the
    /// API) fail the task at once instead of being tried again.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("bad.txt"), b"ok\n\xff\n").unwrap();
    /// let err = ctx.text_file(dir.path(), 1)?.collect().unwrap_err();
    /// assert!(!err.root_cause().is_retryable(), "{err}"); // invalid UTF-8 stays invalid
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn is_retryable(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            Error::Io { source, .. } => !matches!(
                source.kind(),
                K::StorageFull
                    | K::QuotaExceeded
                    | K::FileTooLarge
                    | K::PermissionDenied
                    | K::ReadOnlyFilesystem
                    | K::NotADirectory
                    | K::IsADirectory
                    | K::UnexpectedEof
            ),
            Error::ObjectStore { transient, .. } => *transient,
            Error::InvalidUtf8 { .. }
            | Error::MalformedRecord(_)
            | Error::BadObjectFile { .. }
            | Error::BadParquetFile { .. }
            | Error::SchemaMismatch { .. }
            | Error::CorruptCheckpoint { .. }
            | Error::IncompatibleCheckpoint { .. }
            | Error::LostLocalCheckpoint { .. }
            | Error::InvalidArgument(_)
            | Error::ActionInTask { .. }
            | Error::BroadcastDestroyed(_)
            | Error::Handshake { .. }
            | Error::OutputExists(_)
            | Error::ZipMismatch(_)
            | Error::EmptyDataset(_)
            | Error::NoInput(_) => false,
            Error::TaskFailed { cause, .. } | Error::BatchFailed { cause, .. } => {
                cause.is_retryable()
            }
            Error::Remote { retryable, .. } => *retryable,
            _ => true,
        }
    }

    /// The innermost cause: for an aborted task, the last attempt's error.
    ///
    /// ```
    /// let ctx = spate::Context::builder().max_task_failures(2).build()?;
    /// let err = ctx
    ///     .parallelize(vec![1], 1)
    ///     .try_map(|x: i32| if x > 0 { Err("positive") } else { Ok(x) })
    ///     .collect()
    ///     .unwrap_err();
    /// // The job's error wraps the last attempt's; the root is the user's error.
    /// assert!(matches!(err.root_cause(), spate::Error::User(_)), "{err}");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn root_cause(&self) -> &Error {
        match self {
            Error::TaskFailed { cause, .. } | Error::BatchFailed { cause, .. } => {
                cause.root_cause()
            }
            e => e,
        }
    }
}

/// The message of a caught panic.
/// The error a caught panic stands for: an [`Error`] the engine panicked
/// with where a `&T` accessor met misuse (a destroyed broadcast), else
/// [`Error::Panicked`] with the panic's message.
pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
    match payload.downcast::<Error>() {
        Ok(e) => *e,
        Err(payload) => Error::Panicked(panic_message(payload.as_ref())),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(e) = payload.downcast_ref::<Error>() {
        e.to_string()
    } else {
        "non-string panic payload".to_string()
    }
}

/// An [`Error`] as a person reads it: `fn main() -> Result<(), spate::Report>`
/// prints the error's sentence and its causes when `main` fails, where
/// returning [`Error`] itself would print a `Debug` dump of the enum.
///
/// ```
/// fn run() -> Result<u64, spate::Report> {
///     let ctx = spate::Context::new()?;
///     Ok(ctx.text_file("/no/such/input.txt", 2)?.count()?)
/// }
/// let report = run().unwrap_err();
/// let text = format!("{report:?}");
/// assert!(text.starts_with("I/O error on /no/such/input.txt"), "{text}");
/// assert!(!text.contains("Io {"), "{text}");
/// ```
pub struct Report(pub Error);

impl From<Error> for Report {
    fn from(e: Error) -> Self {
        Report(e)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::fmt::Debug for Report {
    /// The error's sentence, then each cause the sentence does not already
    /// hold, one per line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        write!(f, "{text}")?;
        let mut source = std::error::Error::source(&self.0);
        while let Some(cause) = source {
            let line = cause.to_string();
            if !text.contains(&line) {
                write!(f, "\n  caused by: {line}")?;
            }
            source = cause.source();
        }
        Ok(())
    }
}

/// Why `op`, asked for zero partitions, is refused.
pub(crate) fn zero_partitions(op: &str) -> String {
    format!("{op} was asked for 0 partitions; at least one is needed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    fn io(kind: ErrorKind) -> Error {
        Error::io("/x", std::io::Error::from(kind))
    }

    #[test]
    fn a_full_disk_or_a_permission_problem_is_not_retried_a_lost_connection_is() {
        for kind in [ErrorKind::StorageFull, ErrorKind::PermissionDenied] {
            assert!(!io(kind).is_retryable(), "{kind:?}");
        }
        for kind in [
            ErrorKind::Interrupted,
            ErrorKind::ConnectionReset,
            ErrorKind::TimedOut,
        ] {
            assert!(io(kind).is_retryable(), "{kind:?}");
        }
        let wrapped = Error::TaskFailed {
            job: 0,
            stage: 0,
            partition: 0,
            attempts: 1,
            cause: Box::new(io(ErrorKind::StorageFull)),
        };
        assert!(!wrapped.is_retryable());
        assert!(Error::Panicked("flaky".into()).is_retryable());
    }
}
