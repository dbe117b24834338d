//! What travels between processes after the handshake: bincode-encoded
//! [`Message`]s, one per length-delimited frame. The handshake's protocol
//! version covers this enum: change it and bump
//! [`PROTOCOL_VERSION`](super::handshake::PROTOCOL_VERSION).

use crate::ids::{RddId, ShuffleId};
use crate::runtime::{TaskId, TaskMetrics};
use crate::shuffle::BlockSizes;
use serde::{Deserialize, Serialize};

/// Bytes sent as one run (a shuffle block, encoded results), not as a
/// sequence of numbers: bincode then copies them instead of going byte by
/// byte.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bytes(#[serde(with = "serde_bytes")] pub(crate) Vec<u8>);

/// One message between two processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// The sender is alive.
    Heartbeat,
    /// The sender is leaving, and why.
    Goodbye(String),
    /// Executor to driver, right after joining: where its block server
    /// listens, and how many tasks it runs at once.
    Hello { blocks: String, slots: usize },
    /// Driver to executors, once all have joined: every process's block
    /// server, by rank, and the task slots of all processes together.
    Peers { blocks: Vec<String>, slots: usize },
    /// Driver to executors: process `rank` was replaced by one whose block
    /// server listens at `blocks`.
    PeerMoved { rank: u32, blocks: String },
    /// Driver to executor: run one task attempt.
    RunTask(TaskSpec),
    /// Executor to driver: how an attempt ended.
    TaskDone(TaskReport),
    /// Driver to executors: a job succeeded; its per-partition results,
    /// encoded as the job's `Vec<R>`.
    JobDone { job: u64, results: Bytes },
    /// Driver to executors: a job failed.
    JobFailed { job: u64, error: String },
    /// To a block server: one reduce partition's block of one map output.
    FetchBlock {
        shuffle: ShuffleId,
        map: usize,
        reduce: usize,
    },
    /// To the driver's block server: partition `partition` of the
    /// parallelized dataset `rdd`, as the driver's program built it.
    FetchSlice { rdd: RddId, partition: usize },
    /// From a block server: the block's frames (empty: no records), or why
    /// it cannot be served.
    Block(Result<Bytes, String>),
}

/// A task attempt the driver asks an executor to run. The executor finds
/// the work in its own copy of the lineage: every process builds the same
/// graph with the same ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskSpec {
    pub(crate) id: TaskId,
    /// The dataset of the job's action (checked against the executor's).
    pub(crate) root: RddId,
    pub(crate) kind: TaskKind,
    /// Where every map output of the shuffles the task reads is, by rank,
    /// with the size of the block the task's partition reads from it.
    pub(crate) maps: Vec<(ShuffleId, Vec<Option<(u32, BlockSizes)>>)>,
}

/// What a task computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TaskKind {
    /// A partition of the job's result.
    Result,
    /// A map output of `shuffle`, kept by the executor that computed it.
    Map { shuffle: ShuffleId },
}

/// How a task attempt ended on an executor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskReport {
    pub(crate) id: TaskId,
    /// The encoded result (a result task) or the output's encoded
    /// `BlockSizes` (a map task).
    pub(crate) outcome: Result<Bytes, RemoteFailure>,
    /// Accumulator updates by accumulator id, applied once by the driver
    /// when it accepts the attempt.
    pub(crate) accumulators: Vec<(u64, Vec<u8>)>,
    pub(crate) metrics: TaskMetrics,
    /// The attempt's wall time on its executor.
    pub(crate) duration: std::time::Duration,
}

/// Why an attempt failed, in the form the driver's scheduler acts on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum RemoteFailure {
    /// Map outputs could not be read: the driver recomputes them.
    Fetch {
        shuffle: ShuffleId,
        map: usize,
        reduce: usize,
        reason: String,
        other_maps: Vec<usize>,
    },
    /// Anything else: the message, and whether another attempt may help.
    Failed { message: String, retryable: bool },
}

impl RemoteFailure {
    /// The failure an executor reports for `e`.
    pub(crate) fn from_error(e: crate::error::Error) -> RemoteFailure {
        match e {
            crate::error::Error::ShuffleFetch {
                shuffle,
                map,
                reduce,
                reason,
                other_maps,
            } => RemoteFailure::Fetch {
                shuffle,
                map,
                reduce,
                reason,
                other_maps,
            },
            e => RemoteFailure::Failed {
                message: e.to_string(),
                retryable: e.is_retryable(),
            },
        }
    }

    /// The error the driver acts on, for a failure on process `rank`.
    pub(crate) fn into_error(self, rank: usize) -> crate::error::Error {
        match self {
            RemoteFailure::Fetch {
                shuffle,
                map,
                reduce,
                reason,
                other_maps,
            } => crate::error::Error::ShuffleFetch {
                shuffle,
                map,
                reduce,
                reason: format!("{reason} (read on process {rank})"),
                other_maps,
            },
            RemoteFailure::Failed { message, retryable } => crate::error::Error::Remote {
                rank,
                message,
                retryable,
            },
        }
    }
}
