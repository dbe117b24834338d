//! Running a stream over given batches on a manual clock, for a user's
//! tests and for the operations' examples (Spark's `TestSuiteBase`, Flink's
//! test harnesses): no sleeping, every batch's output exact.

use super::context::{StopMode, StreamingContext};
use super::dstream::DStream;
use super::input::{Dequeue, StreamQueue};
use super::time::ManualClock;
use crate::context::Context;
use crate::data::Value;
use crate::error::Result;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The batch interval of [`run_batches`] and [`run_batches2`]: durations
/// given to windows there are multiples of it.
pub const TEST_BATCH: Duration = Duration::from_millis(100);

/// Feeds `batches` through the stream `build` makes of them, one batch per
/// [`TEST_BATCH`] on a manual clock (each batch a dataset of two
/// partitions), and returns every batch's output, sorted within the batch
/// so the result does not depend on partitioning: one output per batch
/// time the stream is defined at (a window sliding by two batches gives one
/// every other batch). Append empty batches to see later windows.
///
/// ```
/// use spate::streaming::testing::run_batches;
/// let out = run_batches(vec![vec![1, 2], vec![], vec![3]], |s| s.map(|x| x * 10))?;
/// assert_eq!(out, [vec![10, 20], vec![], vec![30]]);
/// # Ok::<(), spate::Error>(())
/// ```
pub fn run_batches<T: Value, U: Value + Ord>(
    batches: Vec<Vec<T>>,
    build: impl FnOnce(&DStream<T>) -> DStream<U>,
) -> Result<Vec<Vec<U>>> {
    let n = batches.len();
    run(n, |ssc| build(&queued(ssc, batches)))
}

/// [`run_batches`] with two inputs, for operations that combine streams;
/// runs as many batches as the longer input has.
///
/// ```
/// use spate::streaming::testing::run_batches2;
/// let out = run_batches2(vec![vec![1], vec![2]], vec![vec![5]], |a, b| a.union(b))?;
/// assert_eq!(out, [vec![1, 5], vec![2]]);
/// # Ok::<(), spate::Error>(())
/// ```
pub fn run_batches2<A: Value, B: Value, U: Value + Ord>(
    a: Vec<Vec<A>>,
    b: Vec<Vec<B>>,
    build: impl FnOnce(&DStream<A>, &DStream<B>) -> DStream<U>,
) -> Result<Vec<Vec<U>>> {
    let n = a.len().max(b.len());
    run(n, |ssc| build(&queued(ssc, a), &queued(ssc, b)))
}

/// A queue stream of `batches` on `ssc`'s engine context.
fn queued<T: Value>(ssc: &StreamingContext, batches: Vec<Vec<T>>) -> DStream<T> {
    let queue = StreamQueue::new();
    for b in batches {
        queue.push(ssc.context().parallelize(b, 2));
    }
    ssc.queue_stream(&queue, Dequeue::OneAtATime)
}

fn run<U: Value + Ord>(
    n: usize,
    build: impl FnOnce(&StreamingContext) -> DStream<U>,
) -> Result<Vec<Vec<U>>> {
    let ctx = Context::new()?;
    let clock = ManualClock::new();
    let ssc = StreamingContext::with_manual_clock(&ctx, TEST_BATCH, clock.clone())?;
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    build(&ssc).foreach_rdd(move |rdd, _| {
        let mut batch = rdd.collect()?;
        batch.sort();
        sink.lock().unwrap_or_else(|e| e.into_inner()).push(batch);
        Ok(())
    })?;
    ssc.start()?;
    for _ in 0..n {
        clock.advance(TEST_BATCH);
        ssc.wait_for_batch(clock.now())?;
    }
    ssc.stop(StopMode::Immediately)?;
    let batches = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(batches)
}
