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

use crate::error::{Error, Result};
use crate::ids::{RddId, ShuffleId};
use crate::lineage::{AnyRdd, Dependency, ShuffleDep};
use crate::runtime::{
    Event, JobMetrics, Running, Runtime, StageKind, TaskContext, TaskId, running_task,
};
use crate::shared::TaskUpdates;
use parking_lot::Mutex;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Consecutive attempts of one stage before the job is failed.
const MAX_STAGE_ATTEMPTS: u32 = 4;

/// Runs jobs on a runtime: the driver's part of a context.
pub(crate) struct Scheduler {
    rt: Arc<Runtime>,
    next_job: AtomicU64,
    next_stage: AtomicU64,
    /// Shuffle map stages keep their id across jobs, as in Spark.
    shuffle_stages: Mutex<HashMap<ShuffleId, u64>>,
    /// One job at a time per context keeps stage bookkeeping simple.
    job_lock: Mutex<()>,
}

impl Scheduler {
    pub(crate) fn new(rt: Arc<Runtime>) -> Scheduler {
        Scheduler {
            rt,
            next_job: AtomicU64::new(0),
            next_stage: AtomicU64::new(0),
            shuffle_stages: Mutex::new(HashMap::new()),
            job_lock: Mutex::new(()),
        }
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
    pub(crate) fn run_job<R: Send>(
        &self,
        root: &Arc<dyn AnyRdd>,
        partitions: &[usize],
        action: &'static str,
        task: impl Fn(&TaskContext) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        if let Some(task) = running_task() {
            // The job lock is held by the job running this task (or, for
            // another context, by a worker that may be waiting on this one).
            return Err(Error::ActionInTask {
                action,
                job: task.job,
                stage: task.stage,
                partition: task.partition,
            });
        }
        let _one_job = self.job_lock.lock();
        let job = self.next_job.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        self.rt.post(Event::JobStart { job, action });
        let run = JobRun {
            sched: self,
            rt: &self.rt,
            job,
            metrics: Mutex::new(JobMetrics::default()),
            stage_attempts: Mutex::new(HashMap::new()),
        };
        self.rt.memory().reset_peak();
        let result = run.run(root, partitions, &task);
        let mut metrics = *run.metrics.lock();
        metrics.peak_memory = self.rt.memory().peak() as u64;
        self.rt.post(Event::JobEnd {
            job,
            succeeded: result.is_ok(),
            duration: started.elapsed(),
            metrics,
        });
        result
    }
}

struct JobRun<'a> {
    sched: &'a Scheduler,
    rt: &'a Runtime,
    job: u64,
    metrics: Mutex<JobMetrics>,
    /// Submissions of each stage in this job, for attempt numbers.
    stage_attempts: Mutex<HashMap<u64, u32>>,
}

impl JobRun<'_> {
    fn run<R: Send>(
        &self,
        root: &Arc<dyn AnyRdd>,
        partitions: &[usize],
        task: &(impl Fn(&TaskContext) -> Result<R> + Sync),
    ) -> Result<Vec<R>> {
        let stage = self.sched.next_stage.fetch_add(1, Ordering::Relaxed);
        let mut results: Vec<Option<R>> = partitions.iter().map(|_| None).collect();
        let mut attempt = 0;
        loop {
            self.ensure_parents(root)?;
            let todo: Vec<usize> = (0..partitions.len())
                .filter(|&i| results[i].is_none())
                .collect();
            if todo.is_empty() {
                break;
            }
            let splits: Vec<usize> = todo.iter().map(|&i| partitions[i]).collect();
            let kind = StageKind::Result;
            let outcomes = self.run_stage(stage, kind, root.base().id, &splits, task);
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
        let stage = *self
            .sched
            .shuffle_stages
            .lock()
            .entry(shuffle)
            .or_insert_with(|| self.sched.next_stage.fetch_add(1, Ordering::Relaxed));
        let mut attempt = 0;
        loop {
            self.ensure_parents(&dep.parent())?;
            let missing = self.rt.shuffles().missing(shuffle);
            if missing.is_empty() {
                if attempt == 0 {
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
            let outcomes = self.run_stage(stage, kind, rdd_id, &missing, &|tc: &TaskContext| {
                dep.run_map_task(tc)
            });
            let mut lost = None;
            for (map, outcome) in missing.into_iter().zip(outcomes) {
                match outcome {
                    Ok(output) => {
                        self.rt.shuffles().put(shuffle, map, output);
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

    /// Runs one task per partition in parallel; returns each one's outcome.
    fn run_stage<R: Send>(
        &self,
        stage: u64,
        kind: StageKind,
        rdd: RddId,
        partitions: &[usize],
        task: &(dyn Fn(&TaskContext) -> Result<R> + Sync),
    ) -> Vec<Result<R>> {
        let started = Instant::now();
        let attempt = {
            let mut attempts = self.stage_attempts.lock();
            let n = attempts.entry(stage).or_insert(0);
            *n += 1;
            *n - 1
        };
        self.metrics.lock().stage_attempts += 1;
        self.rt.post(Event::StageSubmitted {
            job: self.job,
            stage,
            attempt,
            kind,
            rdd,
            tasks: partitions.len(),
        });
        let abort = AtomicBool::new(false);
        let outcomes: Vec<Result<R>> = self.rt.pool().install(|| {
            partitions
                .par_iter()
                .with_max_len(1)
                .map(|&p| self.run_task(stage, kind, p, &abort, task))
                .collect()
        });
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
            self.rt.post(Event::TaskStart { task: id, kind });
            let tc = TaskContext::new(self.sched.rt.clone(), id);
            let started = Instant::now();
            let updates = TaskUpdates::begin();
            let injected = self
                .rt
                .faults()
                .and_then(|f| f.task_fault(self.job, stage, partition));
            let ran = {
                let _running = Running::enter(id);
                match catch_unwind(AssertUnwindSafe(|| task(&tc))) {
                    Ok(r) => r,
                    Err(payload) => Err(Error::Panicked(crate::error::panic_message(
                        payload.as_ref(),
                    ))),
                }
            };
            // An injected failure strikes when the attempt ends, so its
            // whole work is lost, the costliest place for a crash.
            let outcome = match injected {
                Some(reason) => {
                    self.metrics.lock().faults_injected += 1;
                    self.rt.post(Event::FaultInjected {
                        job: self.job,
                        description: reason.clone(),
                    });
                    Err(Error::InjectedFault(reason))
                }
                None => ran,
            };
            {
                let m = tc.metrics.get();
                let mut jm = self.metrics.lock();
                jm.tasks_run += 1;
                jm.tasks_failed += u64::from(outcome.is_err());
                jm.cached_partitions_recomputed += m.cached_partitions_recomputed;
                jm.faults_injected += m.faults_injected;
                jm.spills += m.spills;
                jm.spilled_bytes += m.spilled_bytes;
            }
            let failure = outcome.as_ref().err().map(|e| e.to_string());
            match outcome {
                Ok(_) => updates.commit(),
                Err(_) => drop(updates),
            }
            self.rt.post(Event::TaskEnd {
                task: id,
                kind,
                failure,
                metrics: tc.metrics.get(),
                duration: started.elapsed(),
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
