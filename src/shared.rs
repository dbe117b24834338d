//! Shared variables: broadcast values and accumulators.

use parking_lot::Mutex;
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A read-only value shared by every task, created with
/// [`Context::broadcast`](crate::Context::broadcast).
///
/// In one process this is an `Arc`: tasks read the driver's value directly.
///
/// ```
/// let ctx = spate::Context::new().unwrap();
/// let stop = ctx.broadcast(vec!["the", "a"]);
/// let kept = ctx.parallelize(vec!["the", "cat", "a", "dog"], 2)
///     .filter(move |w| !stop.value().contains(w))
///     .collect().unwrap();
/// assert_eq!(kept, ["cat", "dog"]);
/// ```
pub struct Broadcast<T> {
    id: u64,
    value: Arc<T>,
}

impl<T> Broadcast<T> {
    pub(crate) fn new(id: u64, value: T) -> Self {
        Broadcast {
            id,
            value: Arc::new(value),
        }
    }

    /// The broadcast value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The id assigned in creation order.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> Clone for Broadcast<T> {
    fn clone(&self) -> Self {
        Broadcast {
            id: self.id,
            value: self.value.clone(),
        }
    }
}

impl<T> Deref for Broadcast<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Broadcast<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Broadcast#{}({:?})", self.id, self.value)
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
/// ctx.parallelize(vec!["a", "", "b", ""], 2)
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

impl<T: Clone + Send + 'static> Accumulator<T> {
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
    pub fn add(&self, v: T) {
        let leftover = TASK_UPDATES.with(|slot| {
            let mut slot = slot.borrow_mut();
            let Some(updates) = slot.as_mut() else {
                return Some(v);
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
            None
        });
        if let Some(v) = leftover {
            (self.inner.merge)(&mut self.inner.value.lock(), v);
        }
    }

    /// The merged value of all successful tasks (and driver-side adds).
    ///
    /// On the driver only: inside a task the driver's value is not what the
    /// task should see, so a call there panics, failing the task (as
    /// Spark refuses `value` in a task).
    pub fn value(&self) -> T {
        self.driver_only("value");
        self.inner.value.lock().clone()
    }

    /// Resets the value to the zero (driver only, as [`value`](Self::value)).
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
        if TASK_UPDATES.with(|slot| slot.borrow().is_some()) {
            panic!(
                "Accumulator::{what}() of '{}' was called inside a task: tasks can only add; read the value on the driver after the action",
                self.inner.name
            );
        }
    }

    /// The accumulator's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

/// A task's partial value for one accumulator.
trait PendingUpdate {
    fn as_any(&mut self) -> &mut dyn Any;
    fn commit(self: Box<Self>);
}

struct Pending<T> {
    partial: T,
    target: Arc<AccumulatorInner<T>>,
}

impl<T: 'static> PendingUpdate for Pending<T> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn commit(self: Box<Self>) {
        let Pending { partial, target } = *self;
        (target.merge)(&mut target.value.lock(), partial);
    }
}

type Updates = HashMap<u64, Box<dyn PendingUpdate>>;

thread_local! {
    static TASK_UPDATES: RefCell<Option<Updates>> = const { RefCell::new(None) };
}

/// Collects the accumulator updates of one task attempt. Created when the
/// attempt starts; [`TaskUpdates::commit`] applies them on success, dropping
/// discards them. Nesting (a task run while another waits on the same
/// thread) restores the outer task's updates.
pub(crate) struct TaskUpdates {
    outer: Option<Updates>,
    done: bool,
}

impl TaskUpdates {
    pub(crate) fn begin() -> Self {
        let outer = TASK_UPDATES.with(|slot| slot.borrow_mut().replace(HashMap::new()));
        TaskUpdates { outer, done: false }
    }

    fn take_current(&mut self) -> Updates {
        self.done = true;
        let outer = self.outer.take();
        TASK_UPDATES
            .with(|slot| std::mem::replace(&mut *slot.borrow_mut(), outer))
            .unwrap_or_default()
    }

    pub(crate) fn commit(mut self) {
        for (_, update) in self.take_current() {
            update.commit();
        }
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
