//! What the engine reports while it runs jobs (scheduler, storage and
//! fault events): the listener interface and the bus that delivers them.

use crate::ids::{RddId, ShuffleId};
use crate::storage::StorageLevel;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Identifies one task attempt: (job, stage, partition, attempt). The same
/// program produces the same ids in every process, so a later multi-process
/// mode can name tasks across machines.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TaskId {
    /// The job the task belongs to.
    pub job: u64,
    /// The stage the task belongs to.
    pub stage: u64,
    /// The partition it computes.
    pub partition: usize,
    /// 0 for the first attempt, 1 for the first retry, ...
    pub attempt: u32,
}

/// What a stage's tasks produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StageKind {
    /// Writes the map side of a shuffle.
    ShuffleMap {
        /// The shuffle it writes.
        shuffle: ShuffleId,
    },
    /// Computes the job's result.
    Result,
}

/// Counters of one task attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskMetrics {
    /// Records a source produced in this task: lines of a text file, files
    /// of `whole_text_files`, elements of `parallelize` or `range` (Spark's
    /// input metrics). Reads from the cache or a shuffle are not input.
    #[serde(default)]
    pub input_records: u64,
    /// Bytes a source read for them: the file bytes its lines took (line
    /// ends included), a whole file's size, or a parallelized slice fetched
    /// from the driver in cluster mode (0 when it was already in memory).
    #[serde(default)]
    pub input_bytes: u64,
    /// Malformed records a CSV or JSON lines reader skipped under
    /// [`BadRecords::Skip`](crate::BadRecords::Skip).
    #[serde(default)]
    pub bad_records_skipped: u64,
    /// Records read from shuffle blocks.
    pub shuffle_records_read: u64,
    /// Records written to shuffle blocks (after map-side combine).
    pub shuffle_records_written: u64,
    /// Bytes written to shuffle files on disk (0 when blocks stayed in memory).
    pub shuffle_bytes_written: u64,
    /// Bytes of shuffle blocks read from disk or from other processes.
    pub shuffle_bytes_read: u64,
    /// Of those, bytes fetched from other processes (cluster mode).
    pub remote_bytes_read: u64,
    /// The most bytes of remote blocks (by their map task's reported
    /// sizes) this reducer had requested and not yet begun to read at once;
    /// at most [`max_bytes_in_flight`](crate::ContextBuilder::max_bytes_in_flight)
    /// unless one block alone is larger.
    pub peak_bytes_in_flight: u64,
    /// Shuffle blocks kept in memory.
    pub shuffle_blocks_in_memory: u64,
    /// Records the task's pipeline produced (rows of its final dataset).
    pub records_out: u64,
    /// Times map-side buffers were spilled to disk.
    pub spills: u64,
    /// Bytes written by those spills.
    pub spilled_bytes: u64,
    /// Cached partitions this attempt had to recompute.
    pub cached_partitions_recomputed: u64,
    /// Injected faults that fired inside this attempt (dropped cache blocks).
    pub faults_injected: u64,
}

/// What one job ran and redid, reported with [`Event::JobEnd`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobMetrics {
    /// Task attempts started.
    pub tasks_run: u64,
    /// Task attempts that failed (and were retried, or failed the job).
    pub tasks_failed: u64,
    /// Stage attempts submitted (a stage re-submitted after lost map
    /// outputs counts again).
    pub stage_attempts: u64,
    /// Map tasks run again because their output was lost.
    pub map_outputs_recomputed: u64,
    /// Task attempts that ran in another process (cluster mode).
    pub remote_tasks: u64,
    /// Executors lost during the job (cluster mode).
    pub executors_lost: u64,
    /// Executors excluded for the rest of the job after repeated task
    /// failures (cluster mode).
    pub executors_excluded: u64,
    /// Cached partitions recomputed from lineage because their block was gone.
    pub cached_partitions_recomputed: u64,
    /// Faults of the fault plan that fired.
    pub faults_injected: u64,
    /// Times task buffers (map buckets, combine maps, sort and aggregation
    /// buffers) were spilled to disk.
    pub spills: u64,
    /// Bytes those spills wrote.
    pub spilled_bytes: u64,
    /// The most memory the context's budget had reserved at once during
    /// the job (cached plus in-memory shuffle blocks; with jobs running
    /// concurrently, theirs too).
    pub peak_memory: u64,
    /// Malformed input records skipped by successful task attempts
    /// ([`BadRecords::Skip`](crate::BadRecords::Skip)).
    #[serde(default)]
    pub bad_records_skipped: u64,
}

impl TaskMetrics {
    pub(crate) fn add(&mut self, m: &TaskMetrics) {
        self.input_records += m.input_records;
        self.input_bytes += m.input_bytes;
        self.bad_records_skipped += m.bad_records_skipped;
        self.shuffle_records_read += m.shuffle_records_read;
        self.shuffle_records_written += m.shuffle_records_written;
        self.shuffle_bytes_written += m.shuffle_bytes_written;
        self.shuffle_bytes_read += m.shuffle_bytes_read;
        self.remote_bytes_read += m.remote_bytes_read;
        self.peak_bytes_in_flight = self.peak_bytes_in_flight.max(m.peak_bytes_in_flight);
        self.shuffle_blocks_in_memory += m.shuffle_blocks_in_memory;
        self.records_out += m.records_out;
        self.spills += m.spills;
        self.spilled_bytes += m.spilled_bytes;
        self.cached_partitions_recomputed += m.cached_partitions_recomputed;
        self.faults_injected += m.faults_injected;
    }
}

impl JobMetrics {
    pub(crate) fn add(&mut self, o: &JobMetrics) {
        self.tasks_run += o.tasks_run;
        self.tasks_failed += o.tasks_failed;
        self.stage_attempts += o.stage_attempts;
        self.map_outputs_recomputed += o.map_outputs_recomputed;
        self.remote_tasks += o.remote_tasks;
        self.executors_lost += o.executors_lost;
        self.executors_excluded += o.executors_excluded;
        self.cached_partitions_recomputed += o.cached_partitions_recomputed;
        self.faults_injected += o.faults_injected;
        self.spills += o.spills;
        self.spilled_bytes += o.spilled_bytes;
        self.bad_records_skipped += o.bad_records_skipped;
        self.peak_memory = self.peak_memory.max(o.peak_memory);
    }
}

/// A scheduler event, delivered to every [`Listener`] of the context, and
/// written to the event log file (one JSON object per line, see
/// [`observe`](crate::observe)) when the context has one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// A job was submitted by an action.
    JobStart {
        /// Job id, in submission order.
        job: u64,
        /// The action's name.
        action: String,
        /// The lineage of the dataset the action runs on, as the scheduler
        /// splits it into stages (empty when the context has no listener,
        /// so a program nobody watches never builds it).
        #[serde(default)]
        graph: LineageGraph,
    },
    /// A job ended.
    JobEnd {
        /// Job id.
        job: u64,
        /// Whether it succeeded.
        succeeded: bool,
        /// Why it failed, when it did.
        #[serde(default)]
        error: Option<String>,
        /// Wall time.
        duration: Duration,
        /// What the job ran and redid.
        metrics: JobMetrics,
    },
    /// A fault of the context's [`FaultPlan`](crate::FaultPlan) fired.
    FaultInjected {
        /// Job id.
        job: u64,
        /// What was done.
        description: String,
    },
    /// An executor of the cluster was lost (its connection closed, or it
    /// went silent); its running tasks are placed elsewhere.
    ExecutorLost {
        /// The job that noticed.
        job: u64,
        /// The executor's rank.
        rank: usize,
        /// Why it is considered lost.
        reason: String,
    },
    /// A reduce task could not read a map output; the scheduler forgets it
    /// and re-runs that map task.
    MapOutputLost {
        /// Job id.
        job: u64,
        /// Shuffle id.
        shuffle: ShuffleId,
        /// The lost map partition.
        map: usize,
        /// Why it could not be read.
        reason: String,
    },
    /// A cached block could not be read back whole (its file is missing,
    /// short, or fails its checksum): it was dropped, and the partition is
    /// recomputed from lineage (a [`PartitionRecomputed`](Event::PartitionRecomputed) follows).
    CachedBlockLost {
        /// Dataset id.
        rdd: RddId,
        /// Partition.
        partition: usize,
        /// What was wrong with the block, naming its file.
        reason: String,
    },
    /// A cached partition that had been computed before was missing and
    /// was recomputed from lineage.
    PartitionRecomputed {
        /// Dataset id.
        rdd: RddId,
        /// Partition.
        partition: usize,
    },
    /// A stage starts running `tasks` tasks.
    StageSubmitted {
        /// Job id.
        job: u64,
        /// Stage id.
        stage: u64,
        /// 0 for the first attempt of the stage in this job.
        attempt: u32,
        /// Shuffle map or result stage.
        kind: StageKind,
        /// Id of the dataset the stage's tasks compute.
        rdd: RddId,
        /// Number of tasks (only the missing partitions).
        tasks: usize,
    },
    /// A shuffle map stage whose outputs all exist already was not run.
    StageSkipped {
        /// Job id.
        job: u64,
        /// Stage id.
        stage: u64,
        /// The shuffle whose outputs are reused.
        shuffle: ShuffleId,
    },
    /// A stage ended.
    StageCompleted {
        /// Job id.
        job: u64,
        /// Stage id.
        stage: u64,
        /// Whether all its tasks succeeded.
        succeeded: bool,
        /// Wall time.
        duration: Duration,
    },
    /// A task attempt started.
    TaskStart {
        /// The attempt.
        task: TaskId,
        /// Shuffle map or result task.
        kind: StageKind,
        /// The rank of the process that runs it (0, the driver, in local
        /// mode). On a cluster's driver, posted when the task is sent.
        #[serde(default)]
        executor: usize,
    },
    /// A task attempt ended.
    TaskEnd {
        /// The attempt.
        task: TaskId,
        /// Shuffle map or result task.
        kind: StageKind,
        /// `None` on success, else the failure.
        failure: Option<String>,
        /// Its counters.
        metrics: TaskMetrics,
        /// Wall time.
        duration: Duration,
        /// The rank of the process that ran it (0 in local mode).
        #[serde(default)]
        executor: usize,
    },
    /// A dataset was marked persisted ([`Rdd::persist`](crate::Rdd::persist)).
    RddPersisted {
        /// Dataset id.
        rdd: RddId,
        /// Where its blocks are kept.
        level: StorageLevel,
        /// Its number of partitions.
        partitions: usize,
    },
    /// A persisted dataset's blocks were forgotten (unpersisted or dropped).
    RddUnpersisted {
        /// Dataset id.
        rdd: RddId,
    },
    /// A cached block was stored, moved to disk, or removed (both sizes 0).
    BlockUpdated {
        /// Dataset id.
        rdd: RddId,
        /// Partition.
        partition: usize,
        /// Bytes the block holds of the memory budget.
        memory_bytes: u64,
        /// Bytes of its file on disk.
        disk_bytes: u64,
        /// Bytes of the context's memory budget reserved after the change
        /// (cached plus in-memory shuffle blocks).
        memory_used: u64,
    },
}

/// A job's lineage as the scheduler splits it, as data: what
/// [`Rdd::to_dot`](crate::Rdd::to_dot) draws and the web UI's DAG page shows.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LineageGraph {
    /// The datasets, the action's dataset first.
    pub nodes: Vec<LineageNode>,
    /// Dependencies, parent to child.
    pub edges: Vec<LineageEdge>,
}

/// One dataset of a [`LineageGraph`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LineageNode {
    /// Dataset id.
    pub rdd: RddId,
    /// The operator that made it (`map`, `reduce_by_key`, `text_file`, ...).
    pub op: String,
    /// Its number of partitions.
    pub partitions: usize,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// Its storage level, if it is persisted.
    pub level: Option<StorageLevel>,
    /// Whether it is checkpointed (its lineage is cut here).
    pub checkpointed: bool,
    /// The stage of the graph it is computed in: 0 for the result stage,
    /// then one number per shuffle, in the order the graph meets them.
    pub stage: usize,
}

/// A dependency of a [`LineageGraph`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineageEdge {
    /// The parent dataset.
    pub from: RddId,
    /// The child dataset.
    pub to: RddId,
    /// Whether a shuffle (a stage boundary) lies between them.
    pub shuffle: bool,
}

/// Receives scheduler events. Called synchronously from the thread that
/// produced the event (task threads for task events), so keep it cheap.
pub trait Listener: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: &Event);
}

/// A listener that keeps every event, for tests and post-mortems.
///
/// ```
/// use std::sync::Arc;
/// let ctx = spate::Context::new().unwrap();
/// let log = Arc::new(spate::EventLog::default());
/// ctx.add_listener(log.clone());
/// ctx.parallelize(vec![1, 2, 3], 3).count().unwrap();
/// assert_eq!(log.tasks_run(), 3);
/// ```
#[derive(Default)]
pub struct EventLog {
    events: Mutex<Vec<Event>>,
}

impl EventLog {
    /// A copy of the events so far.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.parallelize(vec![1], 1).count()?;
    /// assert!(matches!(log.events().first(), Some(spate::Event::JobStart { .. })));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }

    /// Forgets the events so far.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.parallelize(vec![1], 1).count()?;
    /// log.clear();
    /// assert!(log.events().is_empty());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn clear(&self) {
        self.events.lock().clear()
    }

    /// Number of task attempts started.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.parallelize(vec![1, 2, 3], 3).count()?;
    /// assert_eq!(log.tasks_run(), 3); // one per partition
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn tasks_run(&self) -> usize {
        self.count(|e| matches!(e, Event::TaskStart { .. }))
    }

    /// Number of shuffle map task attempts started.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.parallelize(vec![(1, 1), (2, 2)], 2).reduce_by_key_with(1, |a, b| a + b).count()?;
    /// assert_eq!((log.map_tasks_run(), log.tasks_run()), (2, 3)); // 2 map tasks, 1 result task
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn map_tasks_run(&self) -> usize {
        self.count(|e| {
            matches!(
                e,
                Event::TaskStart {
                    kind: StageKind::ShuffleMap { .. },
                    ..
                }
            )
        })
    }

    /// Number of stages submitted (skipped stages not counted).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// let sums = ctx.parallelize(vec![(1, 1)], 2).reduce_by_key(|a, b| a + b);
    /// sums.count()?;
    /// sums.count()?; // the shuffle output is reused: its stage is skipped
    /// assert_eq!(log.stages_run(), 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn stages_run(&self) -> usize {
        self.count(|e| matches!(e, Event::StageSubmitted { .. }))
    }

    /// Number of failed task attempts.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.set_fault_plan(spate::FaultPlan::new().fail_attempt(0, 0, 0));
    /// assert_eq!(ctx.parallelize(vec![1], 1).count()?, 1); // retried
    /// assert_eq!(log.failed_tasks(), 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn failed_tasks(&self) -> usize {
        self.count(|e| {
            matches!(
                e,
                Event::TaskEnd {
                    failure: Some(_),
                    ..
                }
            )
        })
    }

    /// The sum of the job metrics of all jobs so far.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.parallelize(vec![1, 2], 2).count()?;
    /// let m = log.job_metrics();
    /// assert_eq!((m.tasks_run, m.tasks_failed), (2, 0));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn job_metrics(&self) -> JobMetrics {
        let mut total = JobMetrics::default();
        for e in self.events.lock().iter() {
            if let Event::JobEnd { metrics, .. } = e {
                total.add(metrics);
            }
        }
        total
    }

    /// The sum of the metrics of all successful task attempts.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.parallelize(vec![(1, 1), (1, 2), (2, 3)], 2).group_by_key().count()?;
    /// let m = log.total_metrics();
    /// assert_eq!(m.shuffle_records_written, m.shuffle_records_read);
    /// assert!(m.shuffle_records_read > 0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn total_metrics(&self) -> TaskMetrics {
        let mut t = TaskMetrics::default();
        for e in self.events.lock().iter() {
            if let Event::TaskEnd {
                failure: None,
                metrics: m,
                ..
            } = e
            {
                t.add(m);
            }
        }
        t
    }

    /// One line per completed stage: job, stage, kind, tasks, wall time and
    /// shuffle volume, in completion order.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.parallelize(vec![(1, 1)], 2).reduce_by_key(|a, b| a + b).count()?;
    /// assert_eq!(log.stage_report().lines().count(), 2); // the map stage and the result stage
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn stage_report(&self) -> String {
        use std::fmt::Write as _;
        let events = self.events.lock();
        let mut out = String::new();
        for e in events.iter() {
            let Event::StageCompleted {
                job,
                stage,
                duration,
                ..
            } = e
            else {
                continue;
            };
            let (mut tasks, mut written, mut read, mut kind) = (0, 0, 0, "result");
            for t in events.iter() {
                if let Event::TaskEnd {
                    task,
                    kind: k,
                    failure: None,
                    metrics,
                    ..
                } = t
                    && task.job == *job
                    && task.stage == *stage
                {
                    tasks += 1;
                    written += metrics.shuffle_records_written;
                    read += metrics.shuffle_records_read;
                    if matches!(k, StageKind::ShuffleMap { .. }) {
                        kind = "shuffle map";
                    }
                }
            }
            let _ = writeln!(
                out,
                "job {job} stage {stage} ({kind}): {tasks} tasks, {:.3} s, shuffle records written {written}, read {read}",
                duration.as_secs_f64()
            );
        }
        out
    }

    fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.lock().iter().filter(|e| f(e)).count()
    }
}

impl Listener for EventLog {
    fn on_event(&self, event: &Event) {
        self.events.lock().push(event.clone());
    }
}

/// An engine listener that needs the time an event was posted (the event
/// log file, the web UI's status): every such listener is given the same
/// time for an event, so a replayed log and the live UI agree.
pub(crate) trait TimedListener: Send + Sync {
    /// Called once per event, with the time it was posted (ms since the epoch).
    fn on_event_at(&self, time_ms: u64, event: &Event);
}

/// The context's listeners. Posting takes a snapshot of the lists and calls
/// each listener with no lock of the lists held, so a listener may add a
/// listener (or post) without deadlocking.
#[derive(Default)]
pub(crate) struct ListenerBus {
    listeners: parking_lot::RwLock<Arc<Vec<Arc<dyn Listener>>>>,
    timed: parking_lot::RwLock<Arc<Vec<Arc<dyn TimedListener>>>>,
    /// Held while an event is timed and handed to the timed listeners, so
    /// their times never go back.
    order: Mutex<()>,
}

fn push<T: ?Sized>(list: &parking_lot::RwLock<Arc<Vec<Arc<T>>>>, l: Arc<T>) {
    let mut list = list.write();
    let mut next = Vec::clone(&list);
    next.push(l);
    *list = Arc::new(next);
}

impl ListenerBus {
    pub(crate) fn add(&self, l: Arc<dyn Listener>) {
        push(&self.listeners, l);
    }

    pub(crate) fn add_timed(&self, l: Arc<dyn TimedListener>) {
        push(&self.timed, l);
    }

    /// Runs `f` with the current time, in the order of the timed events
    /// (for events of other layers that go to the same places).
    pub(crate) fn at_now<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        let _order = self.order.lock();
        f(super::now_ms())
    }

    /// Whether anyone listens (events that are costly to build are built
    /// only then).
    pub(crate) fn is_empty(&self) -> bool {
        self.listeners.read().is_empty() && self.timed.read().is_empty()
    }

    pub(crate) fn post(&self, event: Event) {
        let timed = self.timed.read().clone();
        if !timed.is_empty() {
            self.at_now(|t| timed.iter().for_each(|l| l.on_event_at(t, &event)));
        }
        let snapshot = self.listeners.read().clone();
        for l in snapshot.iter() {
            l.on_event(&event);
        }
    }
}
