//! Micro-batch streaming (Spark Streaming's DStreams): input is cut into
//! batches at a fixed interval, and every batch becomes ordinary dataset
//! jobs, so streams inherit the engine's operators and its lineage-based
//! recovery.
//!
//! - [`StreamingContext`] owns the graph and fires the batches, on the
//!   system clock or a [`ManualClock`] that tests advance by hand.
//! - [`DStream`] is a stream of datasets, one per batch time; its
//!   operations mirror the dataset ones, plus windows and state.
//! - Inputs: [`StreamingContext::queue_stream`].
//! - Outputs: [`DStream::foreach_rdd`], [`DStream::print`],
//!   [`DStream::save_as_text_files`].

mod context;
mod dstream;
mod graph;
mod input;
mod metrics;
mod ops;
mod output;
mod pair;
mod state;
mod time;
mod window;

pub use context::StreamingContext;
pub use dstream::DStream;
pub use input::StreamQueue;
pub use metrics::{
    BatchInfo, StateSize, StreamingEvent, StreamingListener, StreamingLog, StreamingSummary,
};
pub use state::{MapWithStateStream, State, StateOptions, StateSpec};
pub use time::{ManualClock, Time};
pub use window::KeepFilter;
