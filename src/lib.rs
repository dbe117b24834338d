//! # Spate
//!
//! A resilient-distributed-dataset engine in the spirit of Spark Core: typed,
//! immutable, partitioned datasets that record their lineage; a DAG
//! scheduler that splits jobs into stages at shuffles; map-side combining
//! shuffles that keep data typed in memory and spill compressed, checksummed
//! blocks to disk; and a local executor on all cores.
//!
//! ```
//! use spate::{Context, Str};
//!
//! let ctx = Context::new()?;
//! let lines = ctx.parallelize(vec!["to be or".to_string(), "not to be".to_string()], 2);
//! let mut counts = lines
//!     .flat_map(|line| line.split_ascii_whitespace().map(Str::from).collect::<Vec<_>>())
//!     .map(|word| (word, 1u64))
//!     .reduce_by_key(|a, b| a + b)
//!     .collect()?;
//! counts.sort();
//! assert_eq!(counts[0], (Str::from("be"), 2));
//! # Ok::<(), spate::Error>(())
//! ```
//!
//! [`streaming`] adds micro-batch streams (`DStream`) on top: each batch
//! becomes ordinary dataset jobs.
//!
//! See `ARCHITECTURE.md` for how the parts fit together.

#![warn(missing_docs)]
// Pair operations return Spark's nested tuples, e.g. `Rdd<(K, (Vec<V>, Vec<W>))>`;
// spelling them out is clearer than aliases.
#![allow(clippy::type_complexity)]

// Layers, lowest first (ARCHITECTURE.md; `tests/layers.rs` keeps them):
// leaves, runtime, lineage, scheduler, datasets, streaming.
mod chunk;
mod cleanup;
mod codec;
mod data;
mod error;
mod fault;
mod ids;
mod memory;
mod partitioner;
mod small_str;

pub mod cluster;
mod runtime;
mod shared;
mod shuffle;
mod storage;

mod lineage;

mod placement;
mod scheduler;

mod ui;

mod context;
mod formats;
mod rdd;

pub mod streaming;

pub mod observe;

pub use context::{Context, ContextBuilder};
pub use data::{Data, Key, Value};
pub use error::{BadRecord, Error, Report, Result};
pub use fault::{FaultPlan, KillPoint, ShuffleLoss};
pub use formats::{BadRecords, Compression, CsvOptions, CsvWriteOptions, JsonLinesOptions};
#[cfg(feature = "parquet")]
pub use formats::{ParquetCodec, ParquetWriteOptions};
pub use ids::{RddId, ShuffleId};
pub use memory::MemoryUsage;
pub use partitioner::{Order, Partitioner, Partitioning, stable_hash};
pub use rdd::{
    BoundedDouble, Histogram, LocalIterator, Numeric, PartialResult, PartitionIter, Rdd, Sampling,
    StatCounter, UserError,
};
pub use runtime::{
    Event, EventLog, JobMetrics, LineageEdge, LineageGraph, LineageNode, Listener, StageKind,
    TaskId, TaskMetrics,
};
pub use scheduler::{Pool, PoolStatus, SchedulingMode};
pub use shared::{Accumulator, Broadcast, TaskScope};
pub use small_str::Str;
pub use storage::{RddStorageInfo, StorageLevel};
