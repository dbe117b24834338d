//! The DAG scheduler: turns an action into stages split at shuffle
//! dependencies and runs each stage's missing tasks on the context's pool.
//!
//! Invariants:
//! - A shuffle map stage runs only the map partitions whose output is not
//!   registered; outputs stay registered across jobs until the shuffle's
//!   dataset is dropped, so a second action on a shuffled dataset runs no
//!   map task.
//! - A task's accumulator updates and map output count only when the
//!   attempt succeeds; a failed attempt is retried up to the context's
//!   `max_task_failures`.
//! - A reduce task that cannot read a map output fails with a fetch failure,
//!   which is not retried in place: the scheduler forgets that map output,
//!   re-runs the missing map tasks (a new stage attempt), then the unfinished
//!   tasks of the failed stage.
//! - The driver walks lineage with explicit stacks, never recursion over
//!   narrow chains, so deep lineages do not overflow.
//! - In local mode jobs run concurrently (actions from several threads
//!   share the pool); a shuffle's map stage runs in one job at a time, so
//!   jobs that need the same shuffle compute each map output once, and
//!   that lock is never held while another is taken. In cluster mode jobs
//!   run one at a time, in the same order in every process.

mod pools;

pub use pools::{Pool, PoolStatus, SchedulingMode};

use crate::cluster::node::{Node, Reply};
use crate::cluster::protocol::{Bytes, Message, RemoteFailure, TaskKind, TaskReport, TaskSpec};
use crate::codec;
use crate::error::{Error, Result};
use crate::ids::{RddId, ShuffleId};
use crate::lineage::{AnyRdd, Dependency, ShuffleDep};
use crate::placement::{Placement, reducer_preference};
use crate::runtime::{
    Event, JobMetrics, Running, Runtime, StageKind, TaskContext, TaskId, TaskMetrics, running_task,
};
use crate::shared::{AccumulatorRegistry, TaskUpdates};
use crate::shuffle::{BlockSizes, MapSlot};
use parking_lot::Mutex;
use pools::Slots;
pub(crate) use pools::checked_pools;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// Consecutive attempts of one stage before the job is failed.
const MAX_STAGE_ATTEMPTS: u32 = 4;

/// Runs jobs on a runtime: the driver's part of a context.
pub(crate) struct Scheduler {
    rt: Arc<Runtime>,
    next_job: AtomicU64,
    next_stage: AtomicU64,
    /// Shuffle map stages keep their id across jobs, as in Spark, and
    /// their lock: one job at a time runs a shuffle's missing map tasks.
    shuffle_stages: Mutex<HashMap<ShuffleId, (u64, Arc<Mutex<()>>)>>,
    /// In cluster mode, one job at a time: every process meets the jobs
    /// of the program in the same order.
    job_lock: Mutex<()>,
    /// The context's accumulators, for updates from other processes.
    accumulators: AccumulatorRegistry,
    /// This process's task slots, shared by concurrent jobs' stages.
    slots: Slots,
    /// The pool each thread's jobs go to, when it chose one.
    thread_pools: Mutex<HashMap<std::thread::ThreadId, usize>>,
}

impl Scheduler {
    /// A scheduler whose jobs share the runtime's slots by `mode` among
    /// `pools` (checked: "default" first).
    pub(crate) fn new(rt: Arc<Runtime>, mode: SchedulingMode, pools: Vec<Pool>) -> Scheduler {
        Scheduler {
            slots: Slots::new(rt.parallelism(), mode, pools),
            rt,
            next_job: AtomicU64::new(0),
            next_stage: AtomicU64::new(0),
            shuffle_stages: Mutex::new(HashMap::new()),
            job_lock: Mutex::new(()),
            accumulators: AccumulatorRegistry::default(),
            thread_pools: Mutex::new(HashMap::new()),
        }
    }

    /// Sends the calling thread's next jobs to the pool `name` (`None`:
    /// the default pool).
    pub(crate) fn set_pool(&self, name: Option<&str>) -> Result<()> {
        let me = std::thread::current().id();
        match name {
            Some(name) => {
                let pool = self.slots.pool_index(name)?;
                self.thread_pools.lock().insert(me, pool);
            }
            None => {
                self.thread_pools.lock().remove(&me);
            }
        }
        Ok(())
    }

    /// The pool the calling thread's jobs go to.
    pub(crate) fn pool_name(&self) -> String {
        self.slots.pool_name(self.current_pool())
    }

    fn current_pool(&self) -> usize {
        let me = std::thread::current().id();
        self.thread_pools.lock().get(&me).copied().unwrap_or(0)
    }

    /// Each pool's state now.
    pub(crate) fn pools(&self) -> Vec<PoolStatus> {
        self.slots.status()
    }

    /// The context's accumulators.
    pub(crate) fn accumulators(&self) -> &AccumulatorRegistry {
        &self.accumulators
    }

    /// The runtime jobs run on.
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.rt
    }

    /// Runs `task` over `partitions` of the dataset `root` as one job: first
    /// the map stages of the shuffles it needs (only their missing outputs),
    /// then one task per partition. Results come back in the order of
    /// `partitions`. The scheduler never sees element types: `task` computes
    /// a partition however its caller likes.
    ///
    /// In cluster mode every process calls this for the same job (they run
    /// the same program): on the driver it schedules the job over all of
    /// them and sends the results to the executors; on an executor it runs
    /// the tasks the driver sends until the driver says the job is done,
    /// and returns the same results.
    ///
    /// In local mode, jobs from several threads run at once. In cluster
    /// mode they run one at a time, in the same order in every process:
    /// `hooks.started` is called once the job has its turn, and an action
    /// that runs its job on another thread waits for that before it
    /// returns, so the caller's next job comes after it everywhere. On the driver,
    /// `hooks.result` sees each result as its task ends (of whichever
    /// attempt succeeds; possibly also of an attempt that failed later, so
    /// it must be idempotent per partition).
    pub(crate) fn run_job<R: Send + Serialize + DeserializeOwned>(
        &self,
        root: &Arc<dyn AnyRdd>,
        partitions: &[usize],
        action: &'static str,
        task: impl Fn(&TaskContext) -> Result<R> + Sync,
        hooks: &JobHooks<'_, R>,
    ) -> Result<Vec<R>> {
        refuse_inside_a_task(action)?;
        if let Some(why) = root.base().refused.get() {
            return Err(Error::InvalidArgument(format!("{action}: {why}")));
        }
        let _one_job = self.rt.cluster().map(|_| self.job_lock.lock());
        (hooks.started)();
        let job = self.next_job.fetch_add(1, Ordering::Relaxed);
        if let Some(node) = self.rt.cluster()
            && !node.is_driver()
        {
            return self.serve_job(node, job, root, action, &task);
        }
        // Jobs, stages and tasks are spans, for a user's `tracing` subscriber.
        let _span = tracing::info_span!(target: "spate::scheduler", "job", job, action).entered();
        let started = Instant::now();
        // The graph is built only for someone to read (a listener or the event log).
        let graph = if self.rt.listeners().is_empty() {
            crate::LineageGraph::default()
        } else {
            crate::lineage::graph(root.as_ref())
        };
        self.rt.post(Event::JobStart {
            job,
            action: action.to_string(),
            graph,
        });
        let run = JobRun {
            sched: self,
            rt: &self.rt,
            job,
            pool: self.current_pool(),
            root: root.base().id,
            metrics: Mutex::new(JobMetrics::default()),
            stage_attempts: Mutex::new(HashMap::new()),
            executor_failures: Mutex::new(HashMap::new()),
            excluded: Mutex::new(HashSet::new()),
        };
        self.rt.memory().reset_peak();
        let mut result = run.run(root, partitions, &task, hooks.result);
        if let Some(node) = self.rt.cluster() {
            result = tell_executors(node, job, result);
        }
        let mut metrics = *run.metrics.lock();
        metrics.peak_memory = self.rt.memory().peak() as u64;
        self.rt.post(Event::JobEnd {
            job,
            succeeded: result.is_ok(),
            error: result.as_ref().err().map(|e| e.to_string()),
            duration: started.elapsed(),
            metrics,
        });
        result
    }
}

/// What a caller of [`Scheduler::run_job`] learns while the job runs.
pub(crate) struct JobHooks<'a, R> {
    /// Called once the job has its turn.
    pub(crate) started: &'a (dyn Fn() + Sync),
    /// Called on the driver with each task's result as it ends.
    pub(crate) result: &'a (dyn Fn(&R) + Sync),
}

impl<R> JobHooks<'_, R> {
    /// No hooks.
    pub(crate) fn none() -> Self {
        JobHooks {
            started: &|| (),
            result: &|_| (),
        }
    }
}

struct JobRun<'a> {
    sched: &'a Scheduler,
    rt: &'a Runtime,
    job: u64,
    /// The scheduling pool its stages ask for slots in.
    pool: usize,
    /// The dataset of the job's action.
    root: RddId,
    metrics: Mutex<JobMetrics>,
    /// Submissions of each stage in this job, for attempt numbers.
    stage_attempts: Mutex<HashMap<u64, u32>>,
    /// Failed task attempts per executor in this job, and the executors
    /// excluded for the rest of it (Spark's exclude-on-failure).
    executor_failures: Mutex<HashMap<u32, u32>>,
    excluded: Mutex<HashSet<u32>>,
}

/// Failed attempts on one executor, within a job, that exclude it.
const EXCLUDE_AFTER_FAILURES: u32 = 2;

impl JobRun<'_> {
    fn run<R: Send + DeserializeOwned>(
        &self,
        root: &Arc<dyn AnyRdd>,
        partitions: &[usize],
        task: &(impl Fn(&TaskContext) -> Result<R> + Sync),
        on_result: &(dyn Fn(&R) + Sync),
    ) -> Result<Vec<R>> {
        let task = |tc: &TaskContext| {
            let r = task(tc)?;
            on_result(&r);
            Ok(r)
        };
        let stage = self.sched.next_stage.fetch_add(1, Ordering::Relaxed);
        let mut results: Vec<Option<R>> = partitions.iter().map(|_| None).collect();
        let mut attempt = 0;
        loop {
            let todo: Vec<usize> = (0..partitions.len())
                .filter(|&i| results[i].is_none())
                .collect();
            if todo.is_empty() {
                break;
            }
            self.ensure_parents(root)?;
            let splits: Vec<usize> = todo.iter().map(|&i| partitions[i]).collect();
            let kind = StageKind::Result;
            let remote = RemoteWork {
                kind: TaskKind::Result,
                reads: shuffle_ids(self.rt, root),
                cached: persisted_chain(root),
                decode: &|_, bytes: Vec<u8>| {
                    let r = codec::decode_record::<R>(&bytes)?;
                    on_result(&r);
                    Ok(r)
                },
            };
            let outcomes = self.run_stage(stage, kind, root.base().id, &splits, &task, &remote);
            let mut lost = None;
            for (i, outcome) in todo.into_iter().zip(outcomes) {
                match outcome {
                    Ok(r) => results[i] = Some(r),
                    Err(e) => keep_cause(&mut lost, self.classify(e)?),
                }
            }
            if let Some(e) = lost {
                next_attempt(stage, &mut attempt, e)?;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every partition has a result"))
            .collect())
    }

    /// A fetch failure forgets the lost map output and asks for another
    /// stage attempt (`Ok`); any other failure aborts the job (`Err`).
    fn classify(&self, e: Error) -> Result<Error> {
        match e {
            Error::ShuffleFetch {
                shuffle,
                map,
                ref reason,
                ref other_maps,
                ..
            } => {
                for m in std::iter::once(map).chain(other_maps.iter().copied()) {
                    if self.rt.shuffles().remove_map(shuffle, m) {
                        self.metrics.lock().map_outputs_recomputed += 1;
                        self.rt.post(Event::MapOutputLost {
                            job: self.job,
                            shuffle,
                            map: m,
                            reason: reason.clone(),
                        });
                    }
                }
                Ok(e)
            }
            Error::Cancelled(_) => Ok(e),
            e => Err(e),
        }
    }

    /// Makes sure every shuffle the dataset reads (through narrow
    /// dependencies) has all its map outputs.
    fn ensure_parents(&self, rdd: &Arc<dyn AnyRdd>) -> Result<()> {
        for dep in direct_shuffle_deps(self.rt, rdd) {
            self.ensure_shuffle(&dep)?;
        }
        Ok(())
    }

    fn ensure_shuffle(&self, dep: &Arc<dyn ShuffleDep>) -> Result<()> {
        let shuffle = dep.shuffle_id();
        let (stage, map_stage_lock) = self
            .sched
            .shuffle_stages
            .lock()
            .entry(shuffle)
            .or_insert_with(|| {
                let stage = self.sched.next_stage.fetch_add(1, Ordering::Relaxed);
                (stage, Arc::new(Mutex::new(())))
            })
            .clone();
        let mut attempt = 0;
        loop {
            self.ensure_parents(&dep.parent())?;
            // Taken after the parents are there and held to the end of
            // this attempt: a concurrent job that needs the shuffle waits
            // here and then finds the outputs this one registered.
            let _one_map_stage = map_stage_lock.lock();
            let missing = self.rt.shuffles().missing(shuffle);
            if missing.is_empty() {
                // Skipped: its outputs came from an earlier job. Once per
                // job, and not for a stage this job ran (a retried result
                // stage asks again).
                let first = !self.stage_attempts.lock().contains_key(&stage);
                if attempt == 0 && first {
                    self.stage_attempts.lock().insert(stage, 0);
                    self.rt.post(Event::StageSkipped {
                        job: self.job,
                        stage,
                        shuffle,
                    });
                }
                return Ok(());
            }
            let kind = StageKind::ShuffleMap { shuffle };
            let rdd_id = dep.parent().base().id;
            let remote = RemoteWork {
                kind: TaskKind::Map { shuffle },
                reads: shuffle_ids(self.rt, &dep.parent()),
                cached: persisted_chain(&dep.parent()),
                decode: &|rank, bytes: Vec<u8>| {
                    let sizes: BlockSizes = codec::decode_record(&bytes)?;
                    Ok(MapSlot::Remote(rank, Arc::new(sizes)))
                },
            };
            let outcomes = self.run_stage(
                stage,
                kind,
                rdd_id,
                &missing,
                &|tc: &TaskContext| Ok(MapSlot::Local(Arc::new(dep.run_map_task(tc)?))),
                &remote,
            );
            let mut lost = None;
            for (map, outcome) in missing.into_iter().zip(outcomes) {
                match outcome {
                    Ok(slot) => {
                        self.rt.shuffles().put_slot(shuffle, map, slot);
                        self.inject_output_loss(shuffle, map);
                    }
                    Err(e) => keep_cause(&mut lost, self.classify(e)?),
                }
            }
            match lost {
                Some(e) => next_attempt(stage, &mut attempt, e)?,
                None => return Ok(()),
            }
        }
    }

    /// Applies the fault plan to a freshly registered map output.
    fn inject_output_loss(&self, shuffle: ShuffleId, map: usize) {
        let Some(how) = self
            .rt
            .faults()
            .and_then(|f| f.map_output_loss(shuffle, map))
        else {
            return;
        };
        self.rt.shuffles().damage(shuffle, map, how);
        self.metrics.lock().faults_injected += 1;
        self.rt.post(Event::FaultInjected {
            job: self.job,
            description: format!("{how:?} output of map {map} of shuffle {shuffle}"),
        });
    }

    /// Runs one task per partition in parallel (over the cluster's
    /// processes in cluster mode); returns each one's outcome.
    fn run_stage<R: Send>(
        &self,
        stage: u64,
        kind: StageKind,
        rdd: RddId,
        partitions: &[usize],
        task: &(dyn Fn(&TaskContext) -> Result<R> + Sync),
        remote: &RemoteWork<'_, R>,
    ) -> Vec<Result<R>> {
        let started = Instant::now();
        let attempt = {
            let mut attempts = self.stage_attempts.lock();
            let n = attempts.entry(stage).or_insert(0);
            *n += 1;
            *n - 1
        };
        self.metrics.lock().stage_attempts += 1;
        let _span = tracing::info_span!(
            target: "spate::scheduler",
            "stage",
            job = self.job,
            stage,
            attempt,
            tasks = partitions.len()
        )
        .entered();
        self.rt.post(Event::StageSubmitted {
            job: self.job,
            stage,
            attempt,
            kind,
            rdd,
            tasks: partitions.len(),
        });
        let abort = AtomicBool::new(false);
        let outcomes: Vec<Result<R>> = match self.rt.cluster() {
            Some(node) if node.live_executors() > 0 => {
                self.run_spread(node, stage, kind, partitions, &abort, task, remote)
            }
            _ => self.run_here(stage, kind, partitions, &abort, task),
        };
        self.rt.post(Event::StageCompleted {
            job: self.job,
            stage,
            succeeded: outcomes.iter().all(|o| o.is_ok()),
            duration: started.elapsed(),
        });
        outcomes
    }

    /// Runs a task, retrying failed attempts.
    fn run_task<R>(
        &self,
        stage: u64,
        kind: StageKind,
        partition: usize,
        abort: &AtomicBool,
        task: &(dyn Fn(&TaskContext) -> Result<R> + Sync),
    ) -> Result<R> {
        let max = self.rt.max_task_failures();
        let mut last = None;
        for attempt in 0..max {
            if abort.load(Ordering::Relaxed) {
                return Err(Error::Cancelled(self.job));
            }
            let id = TaskId {
                job: self.job,
                stage,
                partition,
                attempt,
            };
            let started = Instant::now();
            let (outcome, m, updates) = attempt_once(&self.sched.rt, id, kind, task);
            self.count_attempt(&m, outcome.is_err());
            let failure = outcome.as_ref().err().map(|e| e.to_string());
            match outcome {
                Ok(_) => updates.commit(),
                Err(_) => drop(updates),
            }
            self.rt.post(Event::TaskEnd {
                task: id,
                kind,
                failure,
                metrics: m,
                duration: started.elapsed(),
                executor: self.rt.rank(),
            });
            match outcome {
                Ok(r) => return Ok(r),
                // Retrying cannot help: the input is gone. The stage handles
                // it; the other tasks go on, so one stage attempt finds every
                // lost output its tasks need.
                Err(e @ Error::ShuffleFetch { .. }) => return Err(e),
                Err(e) => {
                    let permanent = !e.is_retryable();
                    last = Some((attempt + 1, e));
                    if permanent {
                        // Another attempt would meet the same full disk,
                        // bad input or misuse: fail now.
                        break;
                    }
                }
            }
        }
        abort.store(true, Ordering::Relaxed);
        let (attempts, cause) = last.unwrap_or((max, Error::Cancelled(self.job)));
        Err(Error::TaskFailed {
            job: self.job,
            stage,
            partition,
            attempts,
            cause: Box::new(cause),
        })
    }

    /// Counts a failed attempt on executor `rank`; excludes it for the rest
    /// of the job at `EXCLUDE_AFTER_FAILURES` (and says so: `true`).
    fn count_executor_failure(&self, rank: u32) -> bool {
        let mut failures = self.executor_failures.lock();
        let n = failures.entry(rank).or_insert(0);
        *n += 1;
        let excluded = *n == EXCLUDE_AFTER_FAILURES && self.excluded.lock().insert(rank);
        if excluded {
            self.metrics.lock().executors_excluded += 1;
            tracing::warn!(target: "spate::cluster", rank, job = self.job, "executor excluded for the job after {n} failed tasks");
        }
        excluded
    }

    /// Adds one attempt's counters to the job's.
    fn count_attempt(&self, m: &TaskMetrics, failed: bool) {
        let mut jm = self.metrics.lock();
        jm.tasks_run += 1;
        jm.tasks_failed += u64::from(failed);
        jm.cached_partitions_recomputed += m.cached_partitions_recomputed;
        jm.faults_injected += m.faults_injected;
        jm.spills += m.spills;
        jm.spilled_bytes += m.spilled_bytes;
        if !failed {
            jm.bad_records_skipped += m.bad_records_skipped;
        }
    }

    /// Runs the stage's tasks on this process's pool.
    fn run_here<R: Send>(
        &self,
        stage: u64,
        kind: StageKind,
        partitions: &[usize],
        abort: &AtomicBool,
        task: &(dyn Fn(&TaskContext) -> Result<R> + Sync),
    ) -> Vec<Result<R>> {
        if partitions.is_empty() {
            return Vec::new();
        }
        let slots = &self.sched.slots;
        let entry = slots.enter(self.pool, self.job, stage, partitions.len());
        let outcomes: Vec<Mutex<Option<Result<R>>>> =
            partitions.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        self.rt.pool().in_place_scope(|scope| {
            // Each grant is a slot for one task; a worker keeps its slot for
            // the stage's next task while the pools say so.
            loop {
                let granted = slots.take(&entry);
                if granted == 0 {
                    break;
                }
                for _ in 0..granted {
                    let (entry, outcomes, next) = (&entry, &outcomes, &next);
                    scope.spawn(move |_| {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let outcome = self.run_task(stage, kind, partitions[i], abort, task);
                            *outcomes[i].lock() = Some(outcome);
                            if !slots.task_ended(entry) {
                                break;
                            }
                        }
                    });
                }
            }
        });
        slots.leave(entry);
        outcomes
            .into_iter()
            .map(|o| o.into_inner().expect("every task of the stage ran"))
            .collect()
    }

    /// Runs the stage's tasks over the cluster: each task waits for a free
    /// slot, preferring the processes its input is on ([`Placement`]);
    /// the driver's own run on its pool. A failed remote attempt is
    /// retried on another process up to `max_task_failures`; a task whose
    /// executor is lost is placed again without counting as a failure.
    #[allow(clippy::too_many_arguments)]
    fn run_spread<R: Send>(
        &self,
        node: &Node,
        stage: u64,
        kind: StageKind,
        partitions: &[usize],
        abort: &AtomicBool,
        task: &(dyn Fn(&TaskContext) -> Result<R> + Sync),
        remote: &RemoteWork<'_, R>,
    ) -> Vec<Result<R>> {
        let n = partitions.len();
        let mut outcomes: Vec<Option<Result<R>>> = (0..n).map(|_| None).collect();
        let index: HashMap<usize, usize> = partitions
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, i))
            .collect();
        let maps: Vec<Locations> = remote
            .reads
            .iter()
            .map(|&s| (s, self.rt.shuffles().locations(s, node.rank())))
            .collect();
        let prefer: Vec<Vec<u32>> = partitions
            .iter()
            .map(|&p| self.preferred(p, &maps, remote))
            .collect();
        let excluded = self.excluded.lock().clone();
        let mut placement = Placement::new(node.usable_slots(&excluded), self.rt.locality_wait());
        let now = Instant::now();
        for (i, prefer) in prefer.iter().enumerate() {
            placement.add(i, prefer.clone(), HashSet::new(), now);
        }
        let (tx, rx) = mpsc::channel();
        // Attempt numbers (unique per try, lost executors included) and
        // failures (what counts against `max_task_failures`).
        let mut attempts = vec![0u32; n];
        let mut failures = vec![0u32; n];
        // Where the driver's own tasks leave their outcomes.
        let here: Vec<Mutex<Option<Result<R>>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let mut running = 0;
        let mut lost_ranks = HashSet::new();
        self.rt.pool().in_place_scope(|scope| {
            loop {
                if abort.load(Ordering::Relaxed) {
                    for i in placement.take_waiting() {
                        outcomes[i] = Some(Err(Error::Cancelled(self.job)));
                    }
                }
                for (i, rank) in placement.launch(Instant::now()) {
                    running += 1;
                    let p = partitions[i];
                    if rank == node.rank() {
                        let (tx, slot) = (tx.clone(), &here[i]);
                        scope.spawn(move |_| {
                            *slot.lock() = Some(self.run_task(stage, kind, p, abort, task));
                            let _ = tx.send(Reply::Local { partition: p });
                        });
                    } else {
                        self.send(node, rank, stage, p, attempts[i], remote, &maps, &tx);
                        attempts[i] += 1;
                    }
                }
                if running == 0 && placement.waiting() == 0 {
                    break;
                }
                let reply = match placement.next_deadline(Instant::now()) {
                    Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(reply) => reply,
                        // A task's locality wait ran out: place it anywhere.
                        Err(_) => continue,
                    },
                    None => rx.recv().expect("the stage holds a sender"),
                };
                running -= 1;
                let (i, requeue) = match reply {
                    Reply::Local { partition } => {
                        placement.freed(node.rank());
                        let i = index[&partition];
                        let outcome = here[i].lock().take();
                        if matches!(outcome, Some(Ok(_))) {
                            self.note_computed(remote, partition, node.rank());
                        }
                        outcomes[i] = outcome;
                        (i, None)
                    }
                    Reply::Done(rank, report) => {
                        placement.freed(rank);
                        let p = report.id.partition;
                        let i = index[&p];
                        match self.accept_report(rank, *report, kind, remote) {
                            Ok(r) => {
                                self.note_computed(remote, p, rank);
                                outcomes[i] = Some(Ok(r));
                                (i, None)
                            }
                            Err(e @ Error::ShuffleFetch { .. }) => {
                                outcomes[i] = Some(Err(e));
                                (i, None)
                            }
                            Err(e) => {
                                failures[i] += 1;
                                if self.count_executor_failure(rank) {
                                    placement.remove(rank);
                                }
                                let give_up = !e.is_retryable()
                                    || failures[i] >= self.rt.max_task_failures()
                                    || abort.load(Ordering::Relaxed);
                                if give_up {
                                    abort.store(true, Ordering::Relaxed);
                                    outcomes[i] = Some(Err(Error::TaskFailed {
                                        job: self.job,
                                        stage,
                                        partition: p,
                                        attempts: failures[i],
                                        cause: Box::new(e),
                                    }));
                                    (i, None)
                                } else {
                                    // Retried on another process where there is one.
                                    (i, Some(HashSet::from([rank])))
                                }
                            }
                        }
                    }
                    Reply::Lost { task, rank, reason } => {
                        placement.remove(rank);
                        self.rt.post(Event::TaskEnd {
                            task,
                            kind,
                            failure: Some(format!("executor {rank} lost: {reason}")),
                            metrics: TaskMetrics::default(),
                            duration: std::time::Duration::ZERO,
                            executor: rank as usize,
                        });
                        if lost_ranks.insert(rank) {
                            self.metrics.lock().executors_lost += 1;
                            self.rt.post(Event::ExecutorLost {
                                job: self.job,
                                rank: rank as usize,
                                reason: reason.clone(),
                            });
                            tracing::warn!(target: "spate::cluster", rank, %reason, job = self.job, "executor lost; its tasks run elsewhere");
                        }
                        // Not the task's fault: placed again, not counted.
                        let i = index[&task.partition];
                        if abort.load(Ordering::Relaxed) {
                            outcomes[i] = Some(Err(Error::Cancelled(self.job)));
                            (i, None)
                        } else {
                            (i, Some(HashSet::new()))
                        }
                    }
                };
                if let Some(avoid) = requeue {
                    placement.add(i, prefer[i].clone(), avoid, Instant::now());
                }
            }
        });
        outcomes
            .into_iter()
            .map(|o| o.expect("every task ended"))
            .collect()
    }

    /// The processes partition `p`'s task prefers: the one that last
    /// computed its cached input, else those holding a fifth or more of
    /// its shuffle input.
    fn preferred<R>(&self, p: usize, maps: &[Locations], remote: &RemoteWork<'_, R>) -> Vec<u32> {
        let blocks = self.rt.blocks();
        if let Some(rank) = remote
            .cached
            .iter()
            .find_map(|&rdd| blocks.computed_at(rdd, p))
        {
            return vec![rank];
        }
        let mut bytes = BTreeMap::new();
        for (_, at) in maps {
            for (rank, sizes) in at.iter().flatten() {
                *bytes.entry(*rank).or_insert(0) += sizes.of(p).unwrap_or(0);
            }
        }
        reducer_preference(&bytes)
    }

    /// Partition `p` of the stage ran on `rank`: so did its persisted
    /// datasets' partition `p`, which the next job's tasks prefer.
    fn note_computed<R>(&self, remote: &RemoteWork<'_, R>, p: usize, rank: u32) {
        for &rdd in &remote.cached {
            self.rt.blocks().note_computed_at(rdd, p, rank);
        }
    }

    /// Sends one attempt of partition `p`'s task to process `rank`.
    #[allow(clippy::too_many_arguments)]
    fn send<R>(
        &self,
        node: &Node,
        rank: u32,
        stage: u64,
        p: usize,
        attempt: u32,
        remote: &RemoteWork<'_, R>,
        maps: &[Locations],
        reply: &mpsc::Sender<Reply>,
    ) {
        // Only the sizes of the blocks this partition reads travel.
        let maps = maps
            .iter()
            .map(|(shuffle, at)| {
                let at = at
                    .iter()
                    .map(|l| l.as_ref().map(|(rank, sizes)| (*rank, sizes.only(p))))
                    .collect();
                (*shuffle, at)
            })
            .collect();
        let spec = TaskSpec {
            id: TaskId {
                job: self.job,
                stage,
                partition: p,
                attempt,
            },
            root: self.root,
            kind: remote.kind,
            maps,
        };
        self.metrics.lock().remote_tasks += 1;
        self.rt.post(Event::TaskStart {
            task: spec.id,
            kind: remote_stage_kind(remote.kind),
            executor: rank as usize,
        });
        node.dispatch(rank, spec, reply.clone());
    }

    /// Takes an executor's report of an attempt: its counters and events,
    /// its accumulator updates when it succeeded, and its result.
    fn accept_report<R>(
        &self,
        rank: u32,
        report: TaskReport,
        kind: StageKind,
        remote: &RemoteWork<'_, R>,
    ) -> Result<R> {
        let TaskReport {
            id,
            outcome,
            accumulators,
            metrics,
            duration,
        } = report;
        self.count_attempt(&metrics, outcome.is_err());
        let outcome = outcome
            .map_err(|f| f.into_error(rank as usize))
            .and_then(|bytes| {
                let r = (remote.decode)(rank, bytes.0)?;
                self.sched.accumulators.merge(&accumulators)?;
                Ok(r)
            });
        self.rt.post(Event::TaskEnd {
            task: id,
            kind,
            failure: outcome.as_ref().err().map(|e| e.to_string()),
            metrics,
            duration,
            executor: rank as usize,
        });
        outcome
    }
}

/// The persisted datasets whose partition `p` a task of `rdd`'s partition
/// `p` computes or reads: `rdd` and its ancestors through narrow
/// dependencies that keep the partition numbering (one parent with as many
/// partitions), up to the first shuffle. A guess for placement only: a
/// narrow dependency that renumbers partitions makes it prefer a process
/// that does not hold the block, which costs a recomputation, not a result.
fn persisted_chain(rdd: &Arc<dyn AnyRdd>) -> Vec<RddId> {
    let mut out = Vec::new();
    let mut at = rdd.clone();
    loop {
        let base = at.base();
        if base.storage.lock().is_some() {
            out.push(base.id);
        }
        let parent = match base.deps.read().as_slice() {
            [Dependency::Narrow(parent)] if parent.base().num_partitions == base.num_partitions => {
                parent.clone()
            }
            _ => return out,
        };
        at = parent;
    }
}

/// The shuffles a dataset reads through its narrow lineage. A persisted
/// dataset whose partitions are all cached hides its parents.
fn direct_shuffle_deps(rt: &Runtime, rdd: &Arc<dyn AnyRdd>) -> Vec<Arc<dyn ShuffleDep>> {
    let mut out: Vec<Arc<dyn ShuffleDep>> = Vec::new();
    let mut seen_shuffles = HashSet::new();
    let mut seen = HashSet::new();
    let mut stack = vec![rdd.clone()];
    while let Some(r) = stack.pop() {
        let base = r.base();
        if !seen.insert(base.id) {
            continue;
        }
        if base.storage.lock().is_some()
            && rt.blocks().cached_partitions(base.id) == base.num_partitions
        {
            continue;
        }
        for dep in base.deps.read().iter() {
            match dep {
                Dependency::Narrow(parent) => stack.push(parent.clone()),
                Dependency::Shuffle(s) => {
                    if seen_shuffles.insert(s.shuffle_id()) {
                        out.push(s.clone());
                    }
                }
            }
        }
    }
    out
}

/// Counts a failed stage attempt; gives up after `MAX_STAGE_ATTEMPTS`.
fn next_attempt(stage: u64, attempt: &mut u32, cause: Error) -> Result<()> {
    *attempt += 1;
    if *attempt >= MAX_STAGE_ATTEMPTS {
        return Err(Error::StageFailed {
            stage,
            attempts: *attempt,
            cause: Box::new(cause),
        });
    }
    Ok(())
}

/// Remembers why a stage attempt failed, preferring a real cause over a
/// cancellation.
fn keep_cause(lost: &mut Option<Error>, e: Error) {
    if lost.is_none() || !matches!(e, Error::Cancelled(_)) {
        *lost = Some(e);
    }
}

impl Scheduler {
    /// Runs `f` on the driver only, as a job of its own (so every process
    /// meets it at the same point of the program), and returns its result
    /// in every process. In local mode it just runs `f`.
    pub(crate) fn on_driver<R: Send + Serialize + DeserializeOwned>(
        &self,
        action: &'static str,
        f: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let Some(node) = self.rt.cluster() else {
            return f();
        };
        refuse_inside_a_task(action)?;
        let _one_job = self.job_lock.lock();
        let job = self.next_job.fetch_add(1, Ordering::Relaxed);
        let results = if node.is_driver() {
            tell_executors(node, job, f().map(|r| vec![r]))
        } else {
            job_end(node.next_message(), job, action)
        }?;
        results
            .into_iter()
            .next()
            .ok_or_else(|| Error::Cluster(format!("{action}: the driver sent no result")))
    }

    /// An executor's part of job `job`: runs the tasks the driver sends, on
    /// this process's pool, until the driver says the job ended; returns
    /// the results the driver sends, so the same program takes the same
    /// branch everywhere.
    fn serve_job<R: Send + Serialize + DeserializeOwned>(
        &self,
        node: &Node,
        job: u64,
        root: &Arc<dyn AnyRdd>,
        action: &'static str,
        task: &(dyn Fn(&TaskContext) -> Result<R> + Sync),
    ) -> Result<Vec<R>> {
        let root_id = root.base().id;
        self.rt.pool().in_place_scope(|scope| {
            loop {
                match node.next_message() {
                    Message::RunTask(spec) if spec.id.job == job && spec.root == root_id => {
                        let spec_kind = spec.kind;
                        scope.spawn(move |_| {
                            let report = self.run_for_driver(node, root, spec, task);
                            let wrote = match (&report.outcome, spec_kind) {
                                (Ok(_), TaskKind::Map { shuffle }) => Some((shuffle, report.id.partition)),
                                _ => None,
                            };
                            node.send_to_driver(Message::TaskDone(report));
                            if let (Some((shuffle, map)), Some(faults)) = (wrote, self.rt.faults()) {
                                // Give the report time to leave first.
                                let at = crate::fault::KillPoint::AfterMapOutput { shuffle, map };
                                if faults.would_kill(node.rank() as usize, at) {
                                    std::thread::sleep(std::time::Duration::from_millis(300));
                                    faults.kill_point(node.rank() as usize, at);
                                }
                            }
                        });
                    }
                    Message::RunTask(spec) => {
                        let why = format!(
                            "the driver runs job {} on dataset {}, this process is in job {job} ({action}) on dataset {root_id}: every process must run the same actions in the same order",
                            spec.id.job, spec.root.0
                        );
                        node.send_to_driver(Message::TaskDone(TaskReport {
                            id: spec.id,
                            outcome: Err(RemoteFailure::Failed {
                                message: why.clone(),
                                retryable: false,
                            }),
                            accumulators: Vec::new(),
                            metrics: TaskMetrics::default(),
                            duration: std::time::Duration::ZERO,
                        }));
                        return Err(Error::Cluster(why));
                    }
                    other => return job_end(other, job, action),
                }
            }
        })
    }

    /// Runs one attempt the driver sent, in this process.
    fn run_for_driver<R: Serialize>(
        &self,
        node: &Node,
        root: &Arc<dyn AnyRdd>,
        spec: TaskSpec,
        task: &(dyn Fn(&TaskContext) -> Result<R> + Sync),
    ) -> TaskReport {
        let me = node.rank();
        for (shuffle, locations) in &spec.maps {
            self.rt.shuffles().set_locations(*shuffle, locations, me);
        }
        let id = spec.id;
        let started = Instant::now();
        let (outcome, metrics, updates, kind) = match spec.kind {
            TaskKind::Result => {
                let kind = StageKind::Result;
                let (o, m, u) = attempt_once(&self.rt, id, kind, task);
                let encoded = o.and_then(|r| {
                    let mut bytes = Vec::new();
                    codec::encode_record(&r, &mut bytes)?;
                    Ok(bytes)
                });
                (encoded, m, u, kind)
            }
            TaskKind::Map { shuffle } => {
                let kind = StageKind::ShuffleMap { shuffle };
                match find_shuffle_dep(root, shuffle) {
                    Some(dep) => {
                        let (o, m, u) =
                            attempt_once(&self.rt, id, kind, &|tc| dep.run_map_task(tc));
                        let kept = o.and_then(|output| {
                            let mut sizes = Vec::new();
                            codec::encode_record(&output.block_sizes(), &mut sizes)?;
                            self.rt.shuffles().put(shuffle, id.partition, output);
                            Ok(sizes)
                        });
                        (kept, m, u, kind)
                    }
                    None => (
                        Err(Error::Cluster(format!(
                            "shuffle {shuffle} is not in this process's lineage of dataset {}",
                            spec.root.0
                        ))),
                        TaskMetrics::default(),
                        TaskUpdates::begin(),
                        kind,
                    ),
                }
            }
        };
        let (outcome, accumulators) = match outcome {
            Ok(bytes) => match updates.encode() {
                Ok(acc) => (Ok(bytes), acc),
                Err(e) => (Err(e), Vec::new()),
            },
            Err(e) => (Err(e), Vec::new()),
        };
        let duration = started.elapsed();
        self.rt.post(Event::TaskEnd {
            task: id,
            kind,
            failure: outcome.as_ref().err().map(|e| e.to_string()),
            metrics,
            duration,
            executor: self.rt.rank(),
        });
        TaskReport {
            id,
            outcome: outcome.map(Bytes).map_err(RemoteFailure::from_error),
            accumulators,
            metrics,
            duration,
        }
    }
}

/// On an executor, the message that ends job `job` (the driver's results,
/// or why it failed); any other message means the driver is gone or the
/// processes run different programs.
fn job_end<R: DeserializeOwned>(msg: Message, job: u64, action: &str) -> Result<Vec<R>> {
    match msg {
        Message::JobDone { job: j, results } if j == job => {
            codec::decode_record::<Vec<R>>(&results.0)
        }
        Message::JobFailed { job: j, error } if j == job => Err(Error::Cluster(format!(
            "job {job} ({action}) failed on the driver: {error}"
        ))),
        Message::Goodbye(why) => Err(Error::Cluster(format!(
            "{why}, while this process waits in job {job} ({action})"
        ))),
        _ => Err(Error::Cluster(format!(
            "in job {job} ({action}) the driver spoke of another job: every process must run the same actions in the same order"
        ))),
    }
}

/// An action started inside a task is an error: the job lock is held by
/// the job running that task (or, for another context, by a worker that
/// may be waiting on this one), so waiting would never end.
pub(crate) fn refuse_inside_a_task(action: &'static str) -> Result<()> {
    match running_task() {
        Some(task) => Err(Error::ActionInTask {
            action,
            job: task.job,
            stage: task.stage,
            partition: task.partition,
        }),
        None => Ok(()),
    }
}

/// Where each map output of a shuffle is, with its block sizes.
type Locations = (ShuffleId, Vec<Option<(u32, Arc<BlockSizes>)>>);

/// How a stage's tasks run in another process, and what their reports
/// become here.
/// The stage kind of a task sent as `kind`.
fn remote_stage_kind(kind: TaskKind) -> StageKind {
    match kind {
        TaskKind::Result => StageKind::Result,
        TaskKind::Map { shuffle } => StageKind::ShuffleMap { shuffle },
    }
}

struct RemoteWork<'a, R> {
    kind: TaskKind,
    /// The shuffles the stage's tasks read: their map locations go along.
    reads: Vec<ShuffleId>,
    /// The persisted datasets a task computes the same partition of (see
    /// [`persisted_chain`]): where they were computed is where it prefers
    /// to run.
    cached: Vec<RddId>,
    /// A successful report's bytes, from process `rank`, as the task's result.
    decode: &'a (dyn Fn(u32, Vec<u8>) -> Result<R> + Sync),
}

/// One attempt of a task in this process: its events, its panics caught,
/// the fault plan applied. Returns the outcome, the attempt's counters and
/// its accumulator updates (to commit or discard on this thread).
fn attempt_once<R>(
    rt: &Arc<Runtime>,
    id: TaskId,
    kind: StageKind,
    task: &(dyn Fn(&TaskContext) -> Result<R> + Sync),
) -> (Result<R>, TaskMetrics, TaskUpdates) {
    if let (Some(faults), Some(node)) = (rt.faults(), rt.cluster()) {
        let at = crate::fault::KillPoint::TaskStart { stage: id.stage };
        faults.kill_point(node.rank() as usize, at);
    }
    let _span = tracing::info_span!(
        target: "spate::scheduler",
        "task",
        job = id.job,
        stage = id.stage,
        partition = id.partition,
        attempt = id.attempt
    )
    .entered();
    rt.post(Event::TaskStart {
        task: id,
        kind,
        executor: rt.rank(),
    });
    let tc = TaskContext::new(rt.clone(), id);
    let updates = TaskUpdates::begin();
    let injected = rt
        .faults()
        .and_then(|f| f.task_fault(id.job, id.stage, id.partition));
    let ran = {
        let _running = Running::enter(id);
        match catch_unwind(AssertUnwindSafe(|| task(&tc))) {
            Ok(r) => r,
            Err(payload) => Err(crate::error::from_panic(payload)),
        }
    };
    // An injected failure strikes when the attempt ends, so its whole work
    // is lost, the costliest place for a crash.
    let outcome = match injected {
        Some(reason) => {
            tc.metrics.update(|m| m.faults_injected += 1);
            rt.post(Event::FaultInjected {
                job: id.job,
                description: reason.clone(),
            });
            Err(Error::InjectedFault(reason))
        }
        None => ran,
    };
    if let Err(e) = &outcome {
        tracing::warn!(target: "spate::scheduler", error = %e, "task attempt failed");
    }
    (outcome, tc.metrics.get(), updates)
}

/// On the driver, after a job: its results (or failure) to every executor,
/// which return them from the same action.
fn tell_executors<R: Serialize>(node: &Node, job: u64, result: Result<Vec<R>>) -> Result<Vec<R>> {
    let msg = match &result {
        Ok(results) => {
            let mut bytes = Vec::new();
            if let Err(e) = codec::encode_record(results, &mut bytes) {
                let err = Error::Cluster(format!(
                    "cannot send job {job}'s results to the executors: {e}"
                ));
                node.broadcast(&Message::JobFailed {
                    job,
                    error: err.to_string(),
                });
                return Err(err);
            }
            Message::JobDone {
                job,
                results: Bytes(bytes),
            }
        }
        Err(e) => Message::JobFailed {
            job,
            error: e.to_string(),
        },
    };
    node.broadcast(&msg);
    result
}

/// The ids of the shuffles a dataset reads through its narrow lineage.
fn shuffle_ids(rt: &Runtime, rdd: &Arc<dyn AnyRdd>) -> Vec<ShuffleId> {
    direct_shuffle_deps(rt, rdd)
        .iter()
        .map(|d| d.shuffle_id())
        .collect()
}

/// The dependency of shuffle `shuffle` anywhere in `root`'s lineage.
fn find_shuffle_dep(root: &Arc<dyn AnyRdd>, shuffle: ShuffleId) -> Option<Arc<dyn ShuffleDep>> {
    let mut seen = HashSet::new();
    let mut stack = vec![root.clone()];
    while let Some(r) = stack.pop() {
        let base = r.base();
        if !seen.insert(base.id) {
            continue;
        }
        for dep in base.deps.read().iter() {
            match dep {
                Dependency::Narrow(parent) => stack.push(parent.clone()),
                Dependency::Shuffle(s) if s.shuffle_id() == shuffle => return Some(s.clone()),
                Dependency::Shuffle(s) => stack.push(s.parent()),
            }
        }
    }
    None
}
