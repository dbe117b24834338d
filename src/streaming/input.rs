//! Inputs that hand a batch the datasets queued for it: `queue_stream`.
//! Receiver-based sources live in `source`.

use super::context::StreamingContext;
use super::dstream::{DStream, NewStream, StreamOp};
use super::graph::Input;
use super::time::Time;
use crate::data::Data;
use crate::error::Result;
use crate::rdd::Rdd;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// Datasets waiting to become batches of a
/// [`queue_stream`](StreamingContext::queue_stream). Clones share the queue.
pub struct StreamQueue<T> {
    rdds: Arc<Mutex<VecDeque<Rdd<T>>>>,
}

impl<T> Clone for StreamQueue<T> {
    fn clone(&self) -> Self {
        StreamQueue {
            rdds: self.rdds.clone(),
        }
    }
}

impl<T: Data> Default for StreamQueue<T> {
    fn default() -> Self {
        StreamQueue {
            rdds: Arc::default(),
        }
    }
}

impl<T: Data> StreamQueue<T> {
    /// An empty queue.
    ///
    /// ```
    /// use spate::streaming::StreamQueue;
    /// let q = StreamQueue::<u8>::new();
    /// assert!(q.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a dataset.
    ///
    /// ```
    /// use spate::streaming::StreamQueue;
    /// let ctx = spate::Context::new()?;
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![1, 2], 1));
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn push(&self, rdd: Rdd<T>) {
        self.rdds.lock().push_back(rdd);
    }

    /// Datasets not yet taken by a batch.
    ///
    /// ```
    /// use spate::streaming::StreamQueue;
    /// let ctx = spate::Context::new()?;
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec!['a'], 1));
    /// q.push(ctx.parallelize(vec!['b'], 1));
    /// assert_eq!(q.len(), 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.rdds.lock().len()
    }

    /// Whether every dataset was taken.
    ///
    /// ```
    /// use spate::streaming::StreamQueue;
    /// let ctx = spate::Context::new()?;
    /// let q = StreamQueue::new();
    /// assert!(q.is_empty());
    /// q.push(ctx.parallelize(vec![1u8], 1));
    /// assert!(!q.is_empty());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rdds.lock().is_empty()
    }
}

/// How many queued datasets a batch of a
/// [`queue_stream`](StreamingContext::queue_stream) takes (Spark's
/// `oneAtATime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dequeue {
    /// The oldest one, so each queued dataset is a batch of its own.
    OneAtATime,
    /// Everything queued, as one union.
    All,
}

struct QueueInput<T> {
    queue: StreamQueue<T>,
    dequeue: Dequeue,
    /// The batch when the queue is empty (an empty dataset if `None`).
    default: Option<Rdd<T>>,
    ctx: crate::Context,
}

impl<T: Data> StreamOp<T> for QueueInput<T> {
    fn compute(&self, _: &DStream<T>, _time: Time) -> Result<Option<Rdd<T>>> {
        let mut q = self.queue.rdds.lock();
        let taken: Vec<Rdd<T>> = match self.dequeue {
            Dequeue::OneAtATime => q.pop_front().into_iter().collect(),
            Dequeue::All => q.drain(..).collect(),
        };
        Ok(Some(match taken.len() {
            0 => match &self.default {
                Some(d) => d.clone(),
                None => self.ctx.empty(),
            },
            1 => taken.into_iter().next().expect("one dataset"),
            _ => self.ctx.union(&taken),
        }))
    }
}

impl<T: Data> Input for StreamQueue<T> {
    fn has_pending(&self) -> bool {
        !self.is_empty()
    }

    fn recoverable(&self) -> bool {
        false
    }
}

impl StreamingContext {
    /// A stream whose batches are the queue's datasets, taken as `dequeue`
    /// says; an empty dataset when the queue is empty. For tests and demos;
    /// not recoverable after a crash, since the datasets live in the
    /// driver: a context with a checkpoint directory refuses to start with
    /// one.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex};
    /// let ctx = spate::Context::new().unwrap();
    /// let clock = ManualClock::new();
    /// let tick = std::time::Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    /// let queue = StreamQueue::new();
    /// queue.push(ctx.parallelize(vec![1], 1));
    /// queue.push(ctx.parallelize(vec![2, 3], 1));
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.queue_stream(&queue, Dequeue::All)
    ///     .foreach_rdd(move |rdd, _| Ok(sink.lock().unwrap().push(rdd.collect()?)))
    ///     .unwrap();
    /// ssc.start().unwrap();
    /// clock.advance(tick);
    /// ssc.wait_for_batch(Time::from_millis(100)).unwrap();
    /// assert_eq!(*seen.lock().unwrap(), [vec![1, 2, 3]]);
    /// ```
    pub fn queue_stream<T: Data>(&self, queue: &StreamQueue<T>, dequeue: Dequeue) -> DStream<T> {
        self.queue_input(queue, dequeue, None)
    }

    /// [`queue_stream`](Self::queue_stream) whose batch is `default` when
    /// the queue is empty (Spark's `defaultRDD`).
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex};
    /// let ctx = spate::Context::new().unwrap();
    /// let clock = ManualClock::new();
    /// let tick = std::time::Duration::from_millis(100);
    /// let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    /// let queue = StreamQueue::new();
    /// queue.push(ctx.parallelize(vec![1, 2], 1));
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.queue_stream_or_default(&queue, Dequeue::OneAtATime, ctx.parallelize(vec![0], 1))
    ///     .foreach_rdd(move |rdd, _| Ok(sink.lock().unwrap().push(rdd.collect()?)))
    ///     .unwrap();
    /// ssc.start().unwrap();
    /// for t in [100, 200] {
    ///     clock.advance(tick);
    ///     ssc.wait_for_batch(Time::from_millis(t)).unwrap();
    /// }
    /// assert_eq!(*seen.lock().unwrap(), [vec![1, 2], vec![0]]);
    /// ```
    pub fn queue_stream_or_default<T: Data>(
        &self,
        queue: &StreamQueue<T>,
        dequeue: Dequeue,
        default: Rdd<T>,
    ) -> DStream<T> {
        self.queue_input(queue, dequeue, Some(default))
    }

    fn queue_input<T: Data>(
        &self,
        queue: &StreamQueue<T>,
        dequeue: Dequeue,
        default: Option<Rdd<T>>,
    ) -> DStream<T> {
        let graph = self.graph();
        let spec = NewStream::input("queue_stream", graph);
        let stream = DStream::from_op(
            graph,
            spec,
            QueueInput {
                queue: queue.clone(),
                dequeue,
                default,
                ctx: self.context().clone(),
            },
        );
        graph.add_input_for(
            stream.node.base.id,
            format!("queue_stream of {}", std::any::type_name::<T>()),
            Arc::new(queue.clone()),
        );
        stream
    }
}
