//! Shared variables: broadcast values and accumulators.

use crate::codec;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// A read-only value shared by every task, created with
/// [`Context::broadcast`](crate::Context::broadcast).
///
/// In one process this is an `Arc`: tasks read the driver's value directly.
/// In cluster mode every process holds the driver's value, sent to it when
/// the broadcast is created (see the README's execution model).
///
/// ```
/// let ctx = spate::Context::new().unwrap();
/// let stop = ctx.broadcast(vec!["the".to_string(), "a".to_string()]).unwrap();
/// let words: Vec<String> = ["the", "cat", "a", "dog"].map(String::from).into();
/// let kept = ctx.parallelize(words, 2)
///     .filter(move |w| !stop.value().contains(w))
///     .collect().unwrap();
/// assert_eq!(kept, ["cat", "dog"]);
/// ```
pub struct Broadcast<T> {
    id: u64,
    inner: Arc<BroadcastInner<T>>,
}

struct BroadcastInner<T> {
    value: T,
    destroyed: AtomicBool,
}

impl<T> Broadcast<T> {
    pub(crate) fn new(id: u64, value: T) -> Self {
        Broadcast {
            id,
            inner: Arc::new(BroadcastInner {
                value,
                destroyed: AtomicBool::new(false),
            }),
        }
    }

    /// The broadcast value.
    ///
    /// Panics with [`Error::BroadcastDestroyed`] after
    /// [`destroy`](Broadcast::destroy), as `RefCell::borrow` panics on a
    /// borrow it cannot give: inside a task the engine catches it and the
    /// task fails with that error, not retried. Use
    /// [`try_value`](Broadcast::try_value) to handle it yourself.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let names = ctx.broadcast(vec!["zero".to_string(), "one".to_string()])?;
    /// let b = names.clone();
    /// let words = ctx.parallelize(vec![1usize, 0], 2).map(move |i| b.value()[i].clone());
    /// assert_eq!(words.collect()?, ["one", "zero"]);
    /// assert_eq!(names.value().len(), 2); // also on the driver
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn value(&self) -> &T {
        match self.try_value() {
            Ok(v) => v,
            Err(e) => std::panic::panic_any(e),
        }
    }

    /// The broadcast value, or [`Error::BroadcastDestroyed`] after
    /// [`destroy`](Broadcast::destroy).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let b = ctx.broadcast(7u32).unwrap();
    /// assert_eq!(b.try_value().copied().ok(), Some(7));
    /// b.destroy();
    /// assert!(matches!(b.try_value(), Err(spate::Error::BroadcastDestroyed(_))));
    /// ```
    pub fn try_value(&self) -> Result<&T> {
        if self.inner.destroyed.load(Ordering::Acquire) {
            return Err(Error::BroadcastDestroyed(self.id));
        }
        Ok(&self.inner.value)
    }

    /// Destroys the broadcast (Spark's `destroy`): from now on every handle
    /// to it, including those captured by datasets' closures, refuses use,
    /// so a job that reads it fails with [`Error::BroadcastDestroyed`] naming
    /// it, at the first attempt. The value itself is dropped when the last
    /// handle is; drop the datasets that captured it to free it. In cluster
    /// mode every process runs the program, so every process destroys its
    /// copy at the same point.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let factor = ctx.broadcast(10i64).unwrap();
    /// let f = factor.clone();
    /// let scaled = ctx.range(0, 4, 1, 2).map(move |x| x * *f.value());
    /// assert_eq!(scaled.sum().unwrap(), 60);
    /// factor.destroy();
    /// let err = scaled.sum().unwrap_err();
    /// assert!(matches!(err.root_cause(), spate::Error::BroadcastDestroyed(id) if *id == factor.id()));
    /// ```
    pub fn destroy(&self) {
        self.inner.destroyed.store(true, Ordering::Release);
    }

    /// Whether [`destroy`](Broadcast::destroy) was called.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let b = ctx.broadcast("x".to_string()).unwrap();
    /// assert!(!b.is_destroyed());
    /// b.destroy();
    /// assert!(b.clone().is_destroyed(), "every handle sees it");
    /// ```
    pub fn is_destroyed(&self) -> bool {
        self.inner.destroyed.load(Ordering::Acquire)
    }

    /// The id assigned in creation order.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let (a, b) = (ctx.broadcast(1u8)?, ctx.broadcast(2u8)?);
    /// assert!(a.id() < b.id());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> Clone for Broadcast<T> {
    fn clone(&self) -> Self {
        Broadcast {
            id: self.id,
            inner: self.inner.clone(),
        }
    }
}

/// Reads the value as [`value`](Broadcast::value) does (so it panics after
/// `destroy`).
impl<T> Deref for Broadcast<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value()
    }
}

impl<T: fmt::Debug> fmt::Debug for Broadcast<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_value() {
            Ok(v) => write!(f, "Broadcast#{}({v:?})", self.id),
            Err(_) => write!(f, "Broadcast#{}(destroyed)", self.id),
        }
    }
}

type MergeFn<T> = dyn Fn(&mut T, T) + Send + Sync;

struct AccumulatorInner<T> {
    id: u64,
    name: String,
    zero: T,
    merge: Box<MergeFn<T>>,
    value: Mutex<T>,
}

/// A variable that tasks add to and the driver reads, created with
/// [`Context::accumulator`](crate::Context::accumulator) or
/// [`Context::sum_accumulator`](crate::Context::sum_accumulator).
///
/// Inside a task, [`add`](Accumulator::add) goes to a task-local partial value,
/// which is merged into the accumulator only when the task succeeds: a failed
/// and retried attempt never counts twice. Updates made inside
/// *transformations* are applied again whenever the data is recomputed (for
/// example when a dataset is not cached and two actions use it), as in Spark;
/// updates made inside *actions* (`foreach`, `foreach_partition`) count once.
///
/// ```
/// let ctx = spate::Context::new().unwrap();
/// let blank = ctx.sum_accumulator::<u64>("blank lines");
/// let b = blank.clone();
/// ctx.parallelize(["a", "", "b", ""].map(String::from).to_vec(), 2)
///     .foreach(move |line| if line.is_empty() { b.add(1) })
///     .unwrap();
/// assert_eq!(blank.value(), 2);
/// ```
pub struct Accumulator<T> {
    inner: Arc<AccumulatorInner<T>>,
}

impl<T> Clone for Accumulator<T> {
    fn clone(&self) -> Self {
        Accumulator {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> Accumulator<T> {
    pub(crate) fn new(
        id: u64,
        name: String,
        zero: T,
        merge: impl Fn(&mut T, T) + Send + Sync + 'static,
    ) -> Self {
        Accumulator {
            inner: Arc::new(AccumulatorInner {
                id,
                name,
                value: Mutex::new(zero.clone()),
                zero,
                merge: Box::new(merge),
            }),
        }
    }

    /// Adds `v`: to the running task's partial value inside a task, or
    /// directly to the accumulator on the driver.
    ///
    /// The task is found from the calling thread. Inside parallel code of
    /// your own within a task (a rayon `par_iter`, a spawned thread), the
    /// work may run on a thread that runs no task or another one: take a
    /// [`TaskScope`] on the task's thread and add through
    /// [`add_in`](Self::add_in) there. An `add` on one of the engine's
    /// worker threads that runs no task cannot be attributed and panics,
    /// failing the task with a message saying so.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let seen = ctx.sum_accumulator::<u64>("seen");
    /// let s = seen.clone();
    /// ctx.parallelize(vec![1, 2, 3], 2).foreach(move |_| s.add(1))?;
    /// assert_eq!(seen.value(), 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn add(&self, v: T) {
        let leftover = TASK_UPDATES.with(|slot| match slot.borrow().as_ref() {
            Some(updates) => {
                self.add_to(updates, v);
                None
            }
            None => Some(v),
        });
        if let Some(v) = leftover {
            if crate::runtime::on_idle_worker() {
                panic!(
                    "Accumulator::add() of '{}' ran on an engine worker thread outside any task (parallel code inside a task?): take a TaskScope::current() on the task's thread and use add_in",
                    self.inner.name
                );
            }
            (self.inner.merge)(&mut self.inner.value.lock(), v);
        }
    }

    /// Adds `v` to the partial value of the task `scope` stands for, from
    /// any thread: the explicit form of [`add`](Self::add) for parallel
    /// code inside a task. The update counts once, when that task
    /// succeeds; an update after the task ended is ignored.
    ///
    /// ```
    /// use rayon::prelude::*;
    /// let ctx = spate::Context::new().unwrap();
    /// let seen = ctx.sum_accumulator::<u64>("seen");
    /// let s = seen.clone();
    /// ctx.range(0, 100, 1, 2)
    ///     .foreach_partition(move |part| {
    ///         let task = spate::TaskScope::current().expect("inside a task");
    ///         let v: Vec<i64> = part.collect();
    ///         v.par_iter().for_each(|_| s.add_in(&task, 1));
    ///     })
    ///     .unwrap();
    /// assert_eq!(seen.value(), 100);
    /// ```
    pub fn add_in(&self, scope: &TaskScope, v: T) {
        self.add_to(&scope.updates, v);
    }

    fn add_to(&self, updates: &SharedUpdates, v: T) {
        let mut updates = updates.lock();
        let Some(updates) = updates.as_mut() else {
            return; // the task already ended
        };
        let pending = updates.entry(self.inner.id).or_insert_with(|| {
            Box::new(Pending {
                partial: self.inner.zero.clone(),
                target: self.inner.clone(),
            })
        });
        let pending = pending
            .as_any()
            .downcast_mut::<Pending<T>>()
            .expect("accumulator ids are unique per type");
        (self.inner.merge)(&mut pending.partial, v);
    }

    /// The merged value of all successful tasks (and driver-side adds).
    ///
    /// On the driver only: inside a task the driver's value is not what the
    /// task should see, so a call there panics, failing the task (as
    /// Spark refuses `value` in a task).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let total = ctx.sum_accumulator::<i64>("total");
    /// let t = total.clone();
    /// ctx.parallelize(vec![5i64, 7], 2).foreach(move |x| t.add(x))?;
    /// assert_eq!(total.value(), 12);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn value(&self) -> T {
        self.driver_only("value");
        self.inner.value.lock().clone()
    }

    /// Resets the value to the zero (driver only, as [`value`](Self::value)).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let n = ctx.sum_accumulator::<u64>("n");
    /// n.add(5); // on the driver
    /// n.reset();
    /// assert_eq!(n.value(), 0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn reset(&self) {
        self.driver_only("reset");
        *self.inner.value.lock() = self.inner.zero.clone();
    }

    /// Sets the value, for an accumulator that starts from something other
    /// than its zero (Spark's `setValue`); driver only, as
    /// [`value`](Self::value). Tasks keep adding to partial values that
    /// start at the zero.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let total = ctx.sum_accumulator::<u64>("total");
    /// total.set_value(100);
    /// let t = total.clone();
    /// ctx.range(0, 4, 1, 2).foreach(move |_| t.add(1)).unwrap();
    /// assert_eq!(total.value(), 104);
    /// ```
    pub fn set_value(&self, value: T) {
        self.driver_only("set_value");
        *self.inner.value.lock() = value;
    }

    fn driver_only(&self, what: &str) {
        if TASK_UPDATES.with(|slot| slot.borrow().is_some()) || crate::runtime::on_idle_worker() {
            panic!(
                "Accumulator::{what}() of '{}' was called inside a task: tasks can only add; read the value on the driver after the action",
                self.inner.name
            );
        }
    }

    /// The accumulator's name.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.sum_accumulator::<u64>("bad rows").name(), "bad rows");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

/// A task's partial value for one accumulator.
trait PendingUpdate: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    fn commit(self: Box<Self>);
    /// The partial value, for the driver in another process.
    fn encode(&self) -> Result<Vec<u8>>;
}

struct Pending<T> {
    partial: T,
    target: Arc<AccumulatorInner<T>>,
}

impl<T: Send + Sync + Serialize + 'static> PendingUpdate for Pending<T> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn commit(self: Box<Self>) {
        let Pending { partial, target } = *self;
        (target.merge)(&mut target.value.lock(), partial);
    }
    fn encode(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        codec::encode_record(&self.partial, &mut bytes)?;
        Ok(bytes)
    }
}

/// An accumulator that merges a partial value encoded in another process.
trait MergeEncoded: Send + Sync {
    fn merge_encoded(&self, bytes: &[u8]) -> Result<()>;
}

impl<T: Send + Sync + DeserializeOwned> MergeEncoded for AccumulatorInner<T> {
    fn merge_encoded(&self, bytes: &[u8]) -> Result<()> {
        let partial: T = codec::decode_record(bytes)?;
        (self.merge)(&mut self.value.lock(), partial);
        Ok(())
    }
}

/// A context's accumulators by id, so that updates from tasks in other
/// processes (which created the same accumulators with the same ids) find
/// theirs. Holds them weakly: a dropped accumulator takes no more updates.
#[derive(Default)]
pub(crate) struct AccumulatorRegistry(Mutex<HashMap<u64, Weak<dyn MergeEncoded>>>);

impl AccumulatorRegistry {
    pub(crate) fn register<T>(&self, acc: &Accumulator<T>)
    where
        T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        let inner: Arc<dyn MergeEncoded> = acc.inner.clone();
        let mut map = self.0.lock();
        map.retain(|_, a| a.strong_count() > 0);
        map.insert(acc.inner.id, Arc::downgrade(&inner));
    }

    /// Applies one successful remote attempt's updates.
    pub(crate) fn merge(&self, updates: &[(u64, Vec<u8>)]) -> Result<()> {
        for (id, bytes) in updates {
            let target = self.0.lock().get(id).and_then(Weak::upgrade);
            if let Some(target) = target {
                target.merge_encoded(bytes)?;
            }
        }
        Ok(())
    }
}

type Updates = HashMap<u64, Box<dyn PendingUpdate>>;

/// One task attempt's updates; `None` once the attempt has ended, so a late
/// [`Accumulator::add_in`] from a thread that outlived it is dropped.
type SharedUpdates = Arc<Mutex<Option<Updates>>>;

thread_local! {
    /// The updates of the task attempt running on this thread.
    static TASK_UPDATES: RefCell<Option<SharedUpdates>> = const { RefCell::new(None) };
}

/// The running task attempt, as a value that can be sent to other threads:
/// accumulator updates made through it with
/// [`Accumulator::add_in`] count for that task, exactly once, when it
/// succeeds. See [`Accumulator::add_in`] for an example.
#[derive(Clone)]
pub struct TaskScope {
    updates: SharedUpdates,
}

impl TaskScope {
    /// The task running on this thread; `None` outside a task.
    ///
    /// ```
    /// assert!(spate::TaskScope::current().is_none()); // not in a task
    /// let ctx = spate::Context::new()?;
    /// let inside = ctx.parallelize(vec![1], 1).map(|_| spate::TaskScope::current().is_some());
    /// assert_eq!(inside.collect()?, [true]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn current() -> Option<TaskScope> {
        TASK_UPDATES.with(|slot| slot.borrow().clone().map(|updates| TaskScope { updates }))
    }
}

impl fmt::Debug for TaskScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = self.updates.lock().is_some();
        write!(f, "TaskScope {{ running: {open} }}")
    }
}

/// Collects the accumulator updates of one task attempt. Created when the
/// attempt starts; [`TaskUpdates::commit`] applies them on success, dropping
/// discards them. Nesting (a task run while another waits on the same
/// thread) restores the outer task's updates.
pub(crate) struct TaskUpdates {
    mine: SharedUpdates,
    outer: Option<SharedUpdates>,
    done: bool,
}

impl TaskUpdates {
    pub(crate) fn begin() -> Self {
        let mine: SharedUpdates = Arc::new(Mutex::new(Some(HashMap::new())));
        let outer = TASK_UPDATES.with(|slot| slot.borrow_mut().replace(mine.clone()));
        TaskUpdates {
            mine,
            outer,
            done: false,
        }
    }

    /// Ends the attempt: restores the outer task and closes this one's
    /// updates to late adds.
    fn take_current(&mut self) -> Updates {
        self.done = true;
        let outer = self.outer.take();
        TASK_UPDATES.with(|slot| *slot.borrow_mut() = outer);
        self.mine.lock().take().unwrap_or_default()
    }

    pub(crate) fn commit(mut self) {
        for (_, update) in self.take_current() {
            update.commit();
        }
    }

    /// Ends the attempt and encodes its updates for the driver in another
    /// process, which applies them once.
    pub(crate) fn encode(mut self) -> Result<Vec<(u64, Vec<u8>)>> {
        self.take_current()
            .iter()
            .map(|(id, update)| Ok((*id, update.encode()?)))
            .collect()
    }
}

impl Drop for TaskUpdates {
    fn drop(&mut self) {
        // Not committed: discard this attempt's updates.
        if !self.done {
            let _ = self.take_current();
        }
    }
}
