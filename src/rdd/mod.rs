//! Datasets: the typed `Rdd<T>` handle, its operators, and how a partition
//! is computed. The untyped lineage the scheduler sees is in `lineage.rs`.
//!
//! An [`Rdd`] is an `Arc` to a node that records the dataset's partitions,
//! its dependencies on parent datasets, an optional partitioner, and an
//! operator that computes one partition from the parents' partitions.
//!
//! Partitions are computed as a pull of *chunks* (`chunk.rs`): every
//! operator's `Chunks::next_chunk` asks its parent for about `hint` records, then
//! transforms the whole chunk in a loop the compiler sees through (closures
//! are type parameters, not trait objects). A narrow chain therefore costs
//! one dynamic call per chunk per operator, never per record, and a consumer
//! that wants one record (`take(1)`) asks for a chunk of one.

mod actions;
mod approx;
mod cartesian;
pub(crate) mod checkpoint;
mod coalesce;
mod cogroup;
mod fallible;
mod join;
mod narrow;
mod numeric;
mod pair;
mod partial;
mod pipe;
mod sample;
mod shuffle_dep;
mod shuffled;
mod sort;
mod source;
mod transform;
mod union;
mod zip;

pub use actions::LocalIterator;
pub use fallible::UserError;
pub use numeric::{Histogram, Numeric, StatCounter};
pub use partial::{BoundedDouble, PartialResult};
pub use sample::Sampling;
pub(crate) use shuffle_dep::ShuffleDependency;
pub(crate) use source::{ParallelCollection, RangeSource, slice_bounds, source};
pub(crate) use union::union_all;

pub(crate) use crate::chunk::{
    CHUNK, ChunkIter, Chunks, IterChunks, SharedChunks, drain_all, for_each_chunk,
};
pub use crate::ids::RddId;
pub(crate) use crate::lineage::{AnyRdd, Dependency};

use crate::Data;
use crate::context::Context;
use crate::error::Result;
use crate::lineage::{RddBase, debug_lines};
use crate::partitioner::Partitioner;
use crate::runtime::{MetricsCell, TaskContext};
use crate::scheduler::JobHooks;
use crate::storage::{Cached, StorageLevel};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// The records of one partition as a plain iterator, handed to
/// [`Rdd::map_partitions`] closures.
///
/// If reading the partition fails (an I/O error, a corrupt block), the
/// iterator ends early and the task fails with that error once the closure's
/// output has been consumed, so an error is never mistaken for the end of
/// the data.
pub struct PartitionIter<T> {
    source: ChunkIter<T>,
    buf: std::vec::IntoIter<T>,
    more: bool,
    error: Rc<RefCell<Option<crate::Error>>>,
}

impl<T> PartitionIter<T> {
    pub(crate) fn new(source: ChunkIter<T>, error: Rc<RefCell<Option<crate::Error>>>) -> Self {
        PartitionIter {
            source,
            buf: Vec::new().into_iter(),
            more: true,
            error,
        }
    }
}

impl<T> Iterator for PartitionIter<T> {
    type Item = T;
    #[inline]
    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.buf.next() {
                return Some(x);
            }
            if !self.more {
                return None;
            }
            let mut v = std::mem::take(&mut self.buf).collect::<Vec<T>>();
            v.clear();
            match self.source.next_chunk(&mut v, CHUNK) {
                Ok(more) => self.more = more,
                Err(e) => {
                    *self.error.borrow_mut() = Some(e);
                    self.more = false;
                }
            }
            self.buf = v.into_iter();
        }
    }
}

/// Computes one partition of a dataset from its parents.
pub(crate) trait Compute<T>: Send + Sync + 'static {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>>;
}

impl<T> Drop for Node<T> {
    /// Drops a lineage iteratively: a chain of 10,000 narrow transformations
    /// would otherwise drop recursively and overflow the stack. The operator
    /// (which holds typed parent handles) is dropped first while the
    /// dependency list still keeps the parents alive; the parents are then
    /// queued and released one by one by the outermost drop on this thread.
    ///
    /// Panic-safe: a user type whose `Drop` panics (in a closure's captures
    /// or a cached block) does not stop the rest of the lineage from being
    /// released, nor leave the queue claimed; the first panic is resumed
    /// once everything is dropped.
    fn drop(&mut self) {
        use crate::lineage::{drop_catching, release_deps};
        let mut panic = None;
        if self.base.storage.get_mut().is_some() {
            // Nothing can read this dataset's cached blocks any more.
            let (blocks, id) = (self.ctx.blocks(), self.base.id);
            drop_catching(|| blocks.remove_rdd(id), &mut panic);
        }
        let op = std::mem::replace(self.op.get_mut(), Arc::new(Dropped));
        drop_catching(|| drop(op), &mut panic);
        let deps = std::mem::take(self.base.deps.get_mut());
        if !deps.is_empty() {
            release_deps(deps, &mut panic);
        }
        if let Some(payload) = panic
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(payload);
        }
    }
}

/// The operator of a dataset being dropped.
struct Dropped;

impl<T> Compute<T> for Dropped {
    fn compute(&self, _: usize, _: &TaskContext) -> Result<ChunkIter<T>> {
        unreachable!("a dataset is computed after it was dropped")
    }
}

pub(crate) struct Node<T> {
    base: RddBase,
    ctx: Context,
    /// Replaced by a checkpoint reader when the lineage is truncated.
    op: RwLock<Arc<dyn Compute<T>>>,
}

impl<T: Data> AnyRdd for Node<T> {
    fn base(&self) -> &RddBase {
        &self.base
    }
}

/// A resilient distributed dataset: an immutable, partitioned collection of
/// `T` that knows how to recompute itself from its parents.
///
/// Cloning is cheap (an `Arc`). Transformations are lazy and return new
/// datasets; actions (`collect`, `count`, `save_as_text_file`, ...) run a job
/// and return a [`Result`](crate::Result).
///
/// ```
/// let ctx = spate::Context::new().unwrap();
/// let squares = ctx.range(0, 5, 1, 2).map(|x| x * x);
/// assert_eq!(squares.collect().unwrap(), [0, 1, 4, 9, 16]);
/// assert_eq!(squares.num_partitions(), 2);
/// ```
pub struct Rdd<T> {
    pub(crate) node: Arc<Node<T>>,
}

impl<T: Data> Clone for Rdd<T> {
    fn clone(&self) -> Self {
        Rdd {
            node: self.node.clone(),
        }
    }
}

impl<T: crate::Value> Rdd<T> {
    /// Marks the dataset to be stored at `level` when next computed; see
    /// [`StorageLevel`] for what each level does and how blocks are evicted.
    /// Returns the dataset, as Spark's `persist` does.
    ///
    /// As in Spark, a level once assigned does not change: asking for
    /// another one is an `InvalidArgument` ([`unpersist`](Rdd::unpersist)
    /// first); asking for the same one again is fine.
    ///
    /// ```
    /// use spate::StorageLevel;
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 1000, 1, 4).persist(StorageLevel::MemoryOnlySer).unwrap();
    /// assert_eq!(r.count().unwrap(), 1000);
    /// let info = &ctx.storage_info()[0];
    /// assert_eq!((info.level, info.memory_partitions), (StorageLevel::MemoryOnlySer, 4));
    /// assert!(r.persist(StorageLevel::MemoryOnlySer).is_ok());
    /// assert!(r.persist(StorageLevel::DiskOnly).is_err());
    /// ```
    pub fn persist(&self, level: StorageLevel) -> Result<Self> {
        self.persist_with(level, Some(crate::storage::BlockCodec::of::<T>()))
    }
}

impl<T: Data> std::fmt::Debug for Rdd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Rdd[{}]({}, {} partitions)",
            self.id(),
            self.node.base.op_name,
            self.num_partitions()
        )
    }
}

/// The parts of a new dataset, filled in by each transformation.
pub(crate) struct NewRdd {
    pub(crate) op_name: &'static str,
    pub(crate) num_partitions: usize,
    pub(crate) deps: Vec<Dependency>,
    pub(crate) partitioner: Option<Partitioner>,
}

impl<T: Data> Rdd<T> {
    pub(crate) fn from_op(ctx: &Context, spec: NewRdd, op: impl Compute<T>) -> Self {
        // A refused ancestor or partitioner refuses this dataset too, so an
        // action checks only its own dataset.
        let refused = std::sync::OnceLock::new();
        let inherited = spec
            .deps
            .iter()
            .find_map(|d| d.parent().base().refused.get().cloned())
            .or_else(|| spec.partitioner.as_ref().and_then(Partitioner::refusal))
            .or_else(|| {
                // Ids, caches and shuffles are per context: combining
                // datasets of two would read the wrong blocks.
                spec.deps.iter().map(|d| d.parent()).find_map(|p| {
                    (p.base().context != ctx.identity()).then(|| {
                        format!(
                            "{} combines dataset {} ({}) of another Context; datasets of \
                             different contexts cannot be combined",
                            spec.op_name,
                            p.base().id,
                            p.base().op_name
                        )
                    })
                })
            });
        if let Some(why) = inherited {
            let _ = refused.set(why);
        }
        Rdd {
            node: Arc::new(Node {
                ctx: ctx.clone(),
                base: RddBase {
                    id: ctx.next_rdd_id(),
                    context: ctx.identity(),
                    op_name: spec.op_name,
                    num_partitions: spec.num_partitions,
                    deps: RwLock::new(spec.deps),
                    partitioner: spec.partitioner,
                    storage: Mutex::new(None),
                    name: Mutex::new(None),
                    pending_checkpoint: Mutex::new(None),
                    checkpoint_path: Mutex::new(None),
                    checkpointed: std::sync::atomic::AtomicBool::new(false),
                    refused,
                },
                op: RwLock::new(Arc::new(op)),
            }),
        }
    }

    /// Marks this new dataset as refusing every action with an
    /// `InvalidArgument` saying `why`, when `bad`; datasets built on it
    /// inherit the refusal.
    pub(crate) fn refused_if(self, bad: bool, why: impl FnOnce() -> String) -> Self {
        if bad {
            let _ = self.node.base.refused.set(why());
        }
        self
    }

    /// A narrow dependency on this dataset.
    pub(crate) fn narrow_dep(&self) -> Dependency {
        Dependency::Narrow(self.node.clone())
    }

    pub(crate) fn as_any_rdd(&self) -> Arc<dyn AnyRdd> {
        self.node.clone()
    }

    /// The dataset's id: assigned per context in creation order.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let a = ctx.parallelize(vec![1], 1);
    /// let b = a.map(|x| x + 1);
    /// assert_ne!(a.id(), b.id());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn id(&self) -> RddId {
        self.node.base.id
    }

    /// The number of partitions.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize((0..100).collect::<Vec<_>>(), 4);
    /// assert_eq!(r.num_partitions(), 4);
    /// assert_eq!(r.coalesce(2).num_partitions(), 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn num_partitions(&self) -> usize {
        self.node.base.num_partitions
    }

    /// The partitioner, if the dataset is known to be partitioned by key.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let pairs = ctx.parallelize(vec![(1, 'a'), (2, 'b')], 2);
    /// assert!(pairs.partitioner().is_none());
    /// let by_key = pairs.partition_by(spate::Partitioner::hash(3));
    /// assert_eq!(by_key.partitioner(), Some(&spate::Partitioner::hash(3)));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn partitioner(&self) -> Option<&Partitioner> {
        self.node.base.partitioner.as_ref()
    }

    /// The context the dataset belongs to.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![1, 2], 1);
    /// // Build further datasets in the same context.
    /// let more = r.context().parallelize(vec![3], 1);
    /// assert_eq!(r.union(&more).count()?, 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn context(&self) -> &Context {
        &self.node.ctx
    }

    /// The name given by [`set_name`](Rdd::set_name), if any.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 3, 1, 1);
    /// assert_eq!(r.name(), None);
    /// let r = r.set_name("ids");
    /// assert_eq!(r.name().as_deref(), Some("ids"));
    /// ```
    pub fn name(&self) -> Option<String> {
        self.node.base.name.lock().clone()
    }

    /// Names the dataset (shown by [`to_debug_string`](Rdd::to_debug_string))
    /// and returns it.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 3, 1, 1);
    /// r.set_name("ids");
    /// assert!(r.to_debug_string().contains("'ids'"));
    /// ```
    pub fn set_name(&self, name: impl Into<String>) -> Self {
        *self.node.base.name.lock() = Some(name.into());
        self.clone()
    }

    /// Keeps computed partitions in memory after the first action that
    /// computes them, so later actions reuse them; returns the dataset. Same
    /// as `persist(StorageLevel::MemoryOnly)`, so an `InvalidArgument` if
    /// the dataset is already persisted at another level.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let data = ctx.range(0, 1000, 1, 4).map(|x| x % 7).cache().unwrap();
    /// assert_eq!(data.count().unwrap(), 1000);
    /// assert_eq!(data.count().unwrap(), 1000); // read from the cache
    /// ```
    pub fn cache(&self) -> Result<Self> {
        self.persist_with(StorageLevel::MemoryOnly, None)
    }

    pub(crate) fn persist_with(
        &self,
        level: StorageLevel,
        codec: Option<crate::storage::BlockCodec>,
    ) -> Result<Self> {
        let mut storage = self.node.base.storage.lock();
        match *storage {
            Some(old) if old == level => return Ok(self.clone()),
            Some(old) => {
                return Err(crate::Error::InvalidArgument(format!(
                    "dataset {} is persisted at {old:?}; a level once assigned does not \
                     change (asked for {level:?}): unpersist it first",
                    self.id()
                )));
            }
            None => *storage = Some(level),
        }
        drop(storage);
        let blocks = self.context().blocks();
        blocks.register(self.id(), level, self.num_partitions(), codec);
        Ok(self.clone())
    }

    /// This dataset, cached in memory unless it already has a level (the
    /// engine's own caching, which must not fail on a user's level).
    pub(crate) fn kept(self) -> Self {
        let mut storage = self.node.base.storage.lock();
        if storage.is_none() {
            *storage = Some(StorageLevel::MemoryOnly);
            let blocks = self.context().blocks();
            blocks.register(
                self.id(),
                StorageLevel::MemoryOnly,
                self.num_partitions(),
                None,
            );
        }
        drop(storage);
        self
    }

    /// Sets the level whatever it was (local checkpoints add disk to a
    /// user's level, as Spark's do).
    pub(crate) fn force_level(&self, level: StorageLevel, codec: crate::storage::BlockCodec) {
        *self.node.base.storage.lock() = Some(level);
        let blocks = self.context().blocks();
        blocks.register(self.id(), level, self.num_partitions(), Some(codec));
    }

    /// Drops the cached partitions and stops caching; returns the dataset.
    /// It may then be persisted again, at any level.
    ///
    /// ```
    /// use spate::StorageLevel;
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 10, 1, 2).cache().unwrap();
    /// r.count().unwrap();
    /// r.unpersist();
    /// assert_eq!(r.storage_level(), None);
    /// assert!(ctx.storage_info().is_empty());
    /// assert!(r.persist(StorageLevel::DiskOnly).is_ok());
    /// ```
    pub fn unpersist(&self) -> Self {
        *self.node.base.storage.lock() = None;
        self.context().blocks().remove_rdd(self.id());
        self.clone()
    }

    /// The storage level set by `persist`, if any.
    ///
    /// ```
    /// use spate::StorageLevel;
    /// let ctx = spate::Context::new().unwrap();
    /// let r = ctx.range(0, 10, 1, 2);
    /// assert_eq!(r.storage_level(), None);
    /// assert_eq!(r.cache().unwrap().storage_level(), Some(StorageLevel::MemoryOnly));
    /// ```
    pub fn storage_level(&self) -> Option<StorageLevel> {
        *self.node.base.storage.lock()
    }

    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        let op = self.node.op.read().clone();
        op.compute(split, tc)
    }

    /// Replaces the operator and drops the dependencies: the lineage now
    /// starts here.
    pub(crate) fn truncate_lineage(&self, op: impl Compute<T>) {
        *self.node.op.write() = Arc::new(op);
        let deps = std::mem::take(&mut *self.node.base.deps.write());
        drop(deps);
        self.node
            .base
            .checkpointed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Computes (or reads from the cache) partition `split`.
    pub(crate) fn iterator(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        if self.storage_level().is_none() {
            return self.compute(split, tc);
        }
        let ctx = self.context();
        let blocks = ctx.blocks();
        match blocks.get::<T>(self.id(), split) {
            Cached::Hit(data) => {
                let dropped = ctx.faults().is_some_and(|f| f.drop_block(self.id(), split));
                if !dropped {
                    return Ok(Box::new(SharedChunks::new(data)));
                }
                blocks.remove(self.id(), split);
                tc.metrics.update(|m| m.faults_injected += 1);
                ctx.post(crate::Event::FaultInjected {
                    job: tc.id.job,
                    description: format!(
                        "dropped cached partition {split} of dataset {}",
                        self.id()
                    ),
                });
            }
            Cached::Lost(reason) => ctx.post(crate::Event::CachedBlockLost {
                rdd: self.id(),
                partition: split,
                reason,
            }),
            Cached::Miss => {}
        }
        let data = Arc::new(drain_all(self.compute(split, tc)?)?);
        if blocks.put(self.id(), split, data.clone())? {
            tc.metrics.update(|m| m.cached_partitions_recomputed += 1);
            ctx.post(crate::Event::PartitionRecomputed {
                rdd: self.id(),
                partition: split,
            });
        }
        Ok(Box::new(SharedChunks::new(data)))
    }

    /// The lineage of this dataset, one line per dataset, indented one level
    /// more at every shuffle (stage boundary), like Spark's `toDebugString`.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let counts = ctx.parallelize(vec!['a', 'b', 'a'], 2)
    ///     .map(|w| (w.to_string(), 1))
    ///     .reduce_by_key(|a, b| a + b);
    /// let s = counts.to_debug_string();
    /// assert!(s.starts_with("(2) reduce_by_key["), "{s}");
    /// assert!(s.contains(" +-(2) map["), "{s}");
    /// ```
    pub fn to_debug_string(&self) -> String {
        let mut out = String::new();
        debug_lines(self.node.as_ref(), &mut out);
        out
    }

    /// The lineage as Graphviz text (`dot -Tsvg` draws it): each stage a
    /// box around its fused narrow datasets, dashed shuffle edges between
    /// stages, persisted datasets filled and labelled with their level,
    /// checkpointed ones with a double border.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let counts = ctx.parallelize(vec!['a', 'b', 'a'], 2)
    ///     .map(|w| (w, 1))
    ///     .reduce_by_key(|a, b| a + b);
    /// let dot = counts.to_dot();
    /// assert!(dot.starts_with("digraph lineage {"));
    /// assert!(dot.contains("rdd1 -> rdd2 [style=dashed, label=\"shuffle\"];"), "{dot}");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn to_dot(&self) -> String {
        crate::lineage::dot_graph(self.node.as_ref())
    }
}

/// Runs `func` over `partitions` of `rdd` as one job (the typed face of
/// [`Scheduler::run_job`](crate::scheduler::Scheduler::run_job)); results
/// come back in the order of `partitions`. As in Spark, checkpoints marked
/// in the lineage are written after the job, by jobs of their own.
pub(crate) fn run_job<T: Data, R: Send + Serialize + DeserializeOwned>(
    ctx: &Context,
    rdd: &Rdd<T>,
    partitions: &[usize],
    action: &'static str,
    func: impl Fn(&TaskContext, ChunkIter<T>) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    run_job_with_hooks(ctx, rdd, partitions, action, func, &JobHooks::none())
}

/// [`run_job`], telling `hooks` when the job starts and as each result
/// arrives (see [`Scheduler::run_job`](crate::scheduler::Scheduler::run_job)).
pub(crate) fn run_job_with_hooks<T: Data, R: Send + Serialize + DeserializeOwned>(
    ctx: &Context,
    rdd: &Rdd<T>,
    partitions: &[usize],
    action: &'static str,
    func: impl Fn(&TaskContext, ChunkIter<T>) -> Result<R> + Sync,
    hooks: &JobHooks<'_, R>,
) -> Result<Vec<R>> {
    let root = rdd.as_any_rdd();
    let result = ctx.scheduler().run_job(
        &root,
        partitions,
        action,
        |tc: &TaskContext| {
            let it = rdd.iterator(tc.partition(), tc)?;
            let counted = Box::new(Counted {
                inner: it,
                metrics: tc.metrics.clone(),
            });
            func(tc, counted)
        },
        hooks,
    )?;
    checkpoint::run_pending(&root)?;
    Ok(result)
}

/// Counts the records a result task's pipeline produces.
struct Counted<T> {
    inner: ChunkIter<T>,
    metrics: Rc<MetricsCell>,
}

impl<T> Chunks<T> for Counted<T> {
    fn next_chunk(&mut self, out: &mut Vec<T>, hint: usize) -> Result<bool> {
        let before = out.len();
        let more = self.inner.next_chunk(out, hint)?;
        let n = (out.len() - before) as u64;
        self.metrics.update(|m| m.records_out += n);
        Ok(more)
    }
}
