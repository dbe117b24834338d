//! The context a task attempt runs in.

use super::Runtime;
use super::events::{TaskId, TaskMetrics};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

thread_local! {
    /// The task attempt running on this thread, if any.
    static RUNNING: Cell<Option<TaskId>> = const { Cell::new(None) };
    /// Whether this thread is one of a runtime's pool workers.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as a pool worker (the pool's start handler).
pub(crate) fn mark_worker() {
    WORKER.with(|w| w.set(true));
}

/// True on a pool worker that runs no task: code there was stolen from a
/// task's own parallel work, and cannot be attributed to a task.
pub(crate) fn on_idle_worker() -> bool {
    WORKER.with(Cell::get) && running_task().is_none()
}

/// The task attempt this thread is running, if it is running one: an
/// action started there could only wait on the job that runs it.
pub(crate) fn running_task() -> Option<TaskId> {
    RUNNING.with(Cell::get)
}

/// Marks this thread as running `id` until dropped (tasks may nest when a
/// waiting worker steals another task).
pub(crate) struct Running(Option<TaskId>);

impl Running {
    pub(crate) fn enter(id: TaskId) -> Running {
        Running(RUNNING.with(|r| r.replace(Some(id))))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(self.0));
    }
}

/// What a running task knows about itself: its id, the runtime and its
/// counters. Passed to every partition computation.
#[derive(Clone)]
pub(crate) struct TaskContext {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) id: TaskId,
    pub(crate) metrics: Rc<MetricsCell>,
}

/// Task counters, shared by the readers and writers of one attempt.
#[derive(Default)]
pub(crate) struct MetricsCell(Cell<TaskMetrics>);

impl MetricsCell {
    pub(crate) fn update(&self, f: impl FnOnce(&mut TaskMetrics)) {
        let mut m = self.0.get();
        f(&mut m);
        self.0.set(m);
    }

    pub(crate) fn get(&self) -> TaskMetrics {
        self.0.get()
    }
}

impl TaskContext {
    pub(crate) fn new(rt: Arc<Runtime>, id: TaskId) -> Self {
        TaskContext {
            rt,
            id,
            metrics: Rc::new(MetricsCell::default()),
        }
    }

    pub(crate) fn partition(&self) -> usize {
        self.id.partition
    }
}
