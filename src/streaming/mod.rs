//! Micro-batch streaming (Spark Streaming's DStreams): input is cut into
//! batches at a fixed interval, and every batch becomes ordinary dataset
//! jobs, so streams inherit the engine's operators and its lineage-based
//! recovery.
//!
//! - [`StreamingContext`] owns the graph and fires the batches, on the
//!   system clock or a [`ManualClock`] that tests advance by hand.
//! - [`DStream`] is a stream of datasets, one per batch time; its
//!   operations mirror the dataset ones, plus windows and state.
//! - Inputs: [`StreamingContext::queue_stream`],
//!   [`StreamingContext::socket_text_stream`],
//!   [`StreamingContext::generator_stream`],
//!   [`StreamingContext::text_file_stream`], any [`Receiver`] through
//!   [`StreamingContext::receiver_stream`] and any [`ReplayableSource`]
//!   through [`StreamingContext::replayable_stream`].
//! - Outputs: [`DStream::foreach_rdd`], [`DStream::print`],
//!   [`DStream::save_as_text_files`].
//! - [`testing`]: run a stream over given batches on a manual clock, for
//!   tests and the examples in these docs.

mod adaptive;
mod checkpoint;
mod checkpoint_dir;
mod context;
mod dstream;
mod event_state;
mod event_window;
mod generator;
mod graph;
mod input;
mod interval_join;
mod meters;
mod metrics;
mod ops;
mod output;
mod pacing;
mod pair;
mod rate;
mod recovery;
mod replay;
mod source;
mod state;
mod status;
pub(crate) use status::row as status_row;
pub mod testing;
mod time;
mod watermark;
mod window;

pub use adaptive::AdaptiveBatching;
pub use context::{StopMode, StreamingContext};
pub use dstream::DStream;
pub use event_window::{
    CountWindows, KeyedEventStream, OutputMode, SessionWindows, SlidingWindows, Trigger,
    TumblingWindows, Window, WindowAssigner, WindowResult, WindowedOutput, WindowedStream,
};
pub use input::{Dequeue, StreamQueue};
pub use interval_join::{IntervalJoin, IntervalJoinOutput};
pub use metrics::{
    BatchInfo, StateSize, StreamingEvent, StreamingListener, StreamingLog, StreamingSummary,
};
pub use rate::{Backpressure, PidGains, PidRateEstimator, RateEstimator};
pub use replay::{FileStreamOptions, ReplayableSource};
pub use source::{DEFAULT_MAX_LINE_BYTES, Receiver, Sink};
pub use state::{MapWithStateStream, State, StateOptions, StateSpec};
pub use time::{ManualClock, Time};
pub use watermark::{
    EventStream, EventTime, NO_WATERMARK, Stamped, WatermarkPolicy, WatermarkStrategy,
};
pub use window::KeepFilter;
