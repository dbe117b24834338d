//! `DStream<T>`: a stream of datasets, one per batch time, each derived
//! from its parents' datasets of the same (or earlier) times. The node
//! memoizes what it generated, persists and checkpoints what later batches
//! read again (windows, state), and forgets what no one needs any more.

use super::graph::Graph;
use super::time::Time;
use crate::context::Context;
use crate::data::Data;
use crate::error::Result;
use crate::rdd::Rdd;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A discretized stream: a sequence of datasets, one for each batch time
/// at which the stream is defined (every `slide_duration` after the
/// context's zero time). Cheap to clone.
///
/// Transformations build new streams lazily; nothing runs until an output
/// operation ([`foreach_rdd`](DStream::foreach_rdd), [`print`](DStream::print),
/// ...) is registered and the context is started.
#[must_use = "a DStream does nothing without an output operation"]
pub struct DStream<T> {
    pub(crate) node: Arc<StreamNode<T>>,
}

impl<T> Clone for DStream<T> {
    fn clone(&self) -> Self {
        DStream {
            node: self.node.clone(),
        }
    }
}

impl<T> std::fmt::Debug for DStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.node.base;
        write!(f, "DStream[{}]({}, slide {:?})", b.id, b.name, b.slide)
    }
}

/// How one stream computes its dataset for a batch time.
pub(crate) trait StreamOp<T>: Send + Sync + 'static {
    /// The dataset for `time`, a time at which this stream is defined;
    /// `None` when there is none (Spark's `compute`). `this` is the stream
    /// itself, for operations that build on their previous dataset.
    fn compute(&self, this: &DStream<T>, time: Time) -> Result<Option<Rdd<T>>>;
}

/// What the context needs of any stream, whatever its element type.
pub(crate) trait AnyStream: Send + Sync {
    fn base(&self) -> &StreamBase;
    /// Keeps generated datasets for at least `d` after their time, and
    /// tells the parents what that implies for them.
    fn remember(&self, d: Duration);
    /// Drops (and unpersists) generated datasets older than what is to be
    /// remembered at `now`.
    fn forget_old(&self, now: Time);
    /// How long generated datasets are kept.
    fn remembered(&self) -> Duration;
}

/// The parts of a stream that do not depend on its element type.
pub(crate) struct StreamBase {
    pub(crate) id: usize,
    pub(crate) name: &'static str,
    pub(crate) graph: Arc<Graph>,
    pub(crate) slide: Duration,
    pub(crate) parents: Vec<Arc<dyn AnyStream>>,
    /// How far back, beyond this stream's own remember duration, it reads
    /// its parents (a window's length).
    pub(crate) reads_back: Duration,
    remember: Mutex<Duration>,
    /// Generated datasets are cached, and unpersisted when forgotten: set
    /// on the parent of a window (read by several windows) and on streams
    /// whose next dataset builds on the previous one (state).
    pub(crate) persist: AtomicBool,
}

pub(crate) struct StreamNode<T> {
    pub(crate) base: StreamBase,
    op: Box<dyn StreamOp<T>>,
    generated: Mutex<BTreeMap<Time, Option<Rdd<T>>>>,
}

/// How a new stream is put together.
pub(crate) struct NewStream {
    pub(crate) name: &'static str,
    pub(crate) slide: Duration,
    pub(crate) parents: Vec<Arc<dyn AnyStream>>,
    pub(crate) reads_back: Duration,
    pub(crate) persist: bool,
}

impl NewStream {
    /// An input stream: one dataset every batch, no parents.
    pub(crate) fn input(name: &'static str, graph: &Graph) -> NewStream {
        NewStream {
            name,
            slide: graph.batch,
            parents: Vec::new(),
            reads_back: Duration::ZERO,
            persist: false,
        }
    }

    /// A stream with the slide of `parent` and nothing special.
    pub(crate) fn child_of(name: &'static str, parent: &dyn AnyStream) -> NewStream {
        NewStream {
            name,
            slide: parent.base().slide,
            parents: Vec::new(),
            reads_back: Duration::ZERO,
            persist: false,
        }
    }
}

impl<T: Data> DStream<T> {
    pub(crate) fn from_op(graph: &Arc<Graph>, spec: NewStream, op: impl StreamOp<T>) -> Self {
        let base = StreamBase {
            id: graph.next_stream_id(),
            name: spec.name,
            graph: graph.clone(),
            slide: spec.slide,
            parents: spec.parents,
            reads_back: spec.reads_back,
            remember: Mutex::new(Duration::ZERO),
            persist: AtomicBool::new(spec.persist),
        };
        DStream {
            node: Arc::new(StreamNode {
                base,
                op: Box::new(op),
                generated: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// A child stream computed from this one's dataset of the same time.
    pub(crate) fn derive<U: Data>(
        &self,
        name: &'static str,
        f: impl Fn(&Rdd<T>, Time) -> Result<Rdd<U>> + Send + Sync + 'static,
    ) -> DStream<U> {
        let mut spec = NewStream::child_of(name, self.as_any().as_ref());
        spec.parents.push(self.as_any());
        DStream::from_op(
            &self.node.base.graph,
            spec,
            Derived {
                parent: self.clone(),
                f,
            },
        )
    }

    /// The stream's id: its position in creation order, which is how a
    /// checkpoint refers to it.
    pub(crate) fn id(&self) -> usize {
        self.node.base.id
    }

    /// Puts a dataset restored from a checkpoint in place for `time`.
    pub(crate) fn restore_generated(&self, time: Time, rdd: Rdd<T>) {
        self.node.generated.lock().insert(time, Some(rdd));
    }

    pub(crate) fn as_any(&self) -> Arc<dyn AnyStream> {
        self.node.clone()
    }

    pub(crate) fn graph(&self) -> &Arc<Graph> {
        &self.node.base.graph
    }

    /// The engine context the stream's datasets live in.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, StreamQueue, StreamingContext};
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, std::time::Duration::from_secs(1))?;
    /// let s = ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All);
    /// assert_eq!(s.context().parallelize(vec![1], 1).count()?, 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn context(&self) -> &Context {
        &self.node.base.graph.ctx
    }

    /// The interval between the stream's datasets.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, StreamQueue, StreamingContext};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_secs(1))?;
    /// let s = ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All);
    /// assert_eq!(s.slide_duration(), Duration::from_secs(1));
    /// let w = s.window(Duration::from_secs(6), Duration::from_secs(2));
    /// assert_eq!(w.slide_duration(), Duration::from_secs(2));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn slide_duration(&self) -> Duration {
        self.node.base.slide
    }

    /// The time of this stream's dataset before the one at `time`.
    pub(crate) fn time_before(&self, time: Time) -> Time {
        self.graph().before(time, self.node.base.slide)
    }

    /// The batch before `time` at which this stream is defined; `None` at
    /// the first batch (stateful streams then start from their initial
    /// state).
    pub(crate) fn previous_batch(&self, time: Time) -> Option<Time> {
        let before = self.time_before(time);
        (before > self.graph().zero_time().unwrap_or_default()).then_some(before)
    }

    /// The dataset of `time`, or an empty one when the stream has none.
    pub(crate) fn dataset_or_empty(&self, time: Time) -> Result<Rdd<T>> {
        Ok(self
            .get_or_compute(time)?
            .unwrap_or_else(|| self.context().empty()))
    }

    /// The dataset of `time`, generating it (and, recursively, its
    /// parents') if needed; `None` if the stream is not defined at `time`
    /// or has no dataset for it.
    pub(crate) fn get_or_compute(&self, time: Time) -> Result<Option<Rdd<T>>> {
        if let Some(done) = self.node.generated.lock().get(&time) {
            return Ok(done.clone());
        }
        let base = &self.node.base;
        if !base.graph.is_batch_time(time, base.slide) {
            return Ok(None);
        }
        // No lock is held while computing: a state stream reads its own
        // previous dataset through this same function.
        let mut rdd = self.node.op.compute(self, time)?;
        if base.persist.load(Ordering::Relaxed) {
            rdd = rdd.map(Rdd::kept);
        }
        self.node.generated.lock().insert(time, rdd.clone());
        Ok(rdd)
    }

    /// The datasets of every time this stream is defined at in
    /// `(from, to]`, in time order (Spark's `slice`, with the window rule
    /// that the start is excluded).
    pub(crate) fn datasets_in(&self, from: Time, to: Time) -> Result<Vec<Rdd<T>>> {
        let slide = self.node.base.slide;
        let Some(zero) = self.graph().zero_time() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        // The first defined time after `from`.
        let step = super::time::millis(slide);
        let after = from.millis().max(zero.millis());
        let k = (after - zero.millis()) / step + 1;
        let mut t = Time::from_millis(zero.millis() + k * step);
        while t <= to {
            if let Some(r) = self.get_or_compute(t)? {
                out.push(r);
            }
            t = t + slide;
        }
        Ok(out)
    }
}

impl<T: crate::data::Value> DStream<T> {
    /// Marks the stream as stateful (its next dataset builds on the
    /// previous one): a recovery restores its checkpointed dataset, read
    /// back partitioned by `partitioner`.
    pub(crate) fn register_stateful(&self, partitioner: crate::partitioner::Partitioner) {
        let this = self.clone();
        let what = format!(
            "{} with state {}",
            self.node.base.name,
            std::any::type_name::<T>()
        );
        self.graph().recovery.add_stateful(
            self.id(),
            what,
            Box::new(move |time, dir| {
                let rdd = this
                    .context()
                    .checkpoint_file_with::<T>(dir, Some(partitioner.clone()))?;
                this.restore_generated(time, rdd);
                Ok(())
            }),
        );
    }
}

impl<T: Data> AnyStream for StreamNode<T> {
    fn base(&self) -> &StreamBase {
        &self.base
    }

    fn remember(&self, d: Duration) {
        let d = {
            let mut r = self.base.remember.lock();
            if d <= *r && !r.is_zero() {
                return;
            }
            *r = d.max(*r).max(self.base.slide);
            *r
        };
        for p in &self.base.parents {
            p.remember(d + self.base.reads_back);
        }
    }

    fn remembered(&self) -> Duration {
        *self.base.remember.lock()
    }

    fn forget_old(&self, now: Time) {
        let keep = *self.base.remember.lock();
        let cutoff = now - keep;
        let old: Vec<Option<Rdd<T>>> = {
            let mut generated = self.generated.lock();
            let newer = generated.split_off(&Time::from_millis(cutoff.millis() + 1));
            std::mem::replace(&mut *generated, newer)
                .into_values()
                .collect()
        };
        if self.base.persist.load(Ordering::Relaxed) {
            for r in old.into_iter().flatten() {
                let _ = r.unpersist();
            }
        }
    }
}

/// A stream whose dataset is a function of its parent's of the same time.
struct Derived<T, F> {
    parent: DStream<T>,
    f: F,
}

impl<T: Data, U: Data, F> StreamOp<U> for Derived<T, F>
where
    F: Fn(&Rdd<T>, Time) -> Result<Rdd<U>> + Send + Sync + 'static,
{
    fn compute(&self, _: &DStream<U>, time: Time) -> Result<Option<Rdd<U>>> {
        match self.parent.get_or_compute(time)? {
            Some(rdd) => Ok(Some((self.f)(&rdd, time)?)),
            None => Ok(None),
        }
    }
}
