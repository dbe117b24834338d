//! The application's status as the web UI and its REST API show it (Spark's
//! `AppStatusStore`): jobs, stages, tasks, cached datasets, executors and
//! streaming batches, kept up to date from the events of a running program
//! (as a listener on the context's bus) or rebuilt from its event log by the history view.
//! Both feed the same [`Status::apply`], so live and replayed answers agree.

use crate::ids::RddId;
use crate::runtime::{
    Event, JobMetrics, LineageGraph, StageKind, TaskId, TaskMetrics, TimedListener,
};
use crate::storage::StorageLevel;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// What an application says about itself at start.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AppInfo {
    pub(crate) id: String,
    pub(crate) spate_version: String,
    pub(crate) parallelism: usize,
    pub(crate) processes: usize,
    pub(crate) memory_limit: u64,
    pub(crate) start_ms: u64,
}

/// The status store. Each event takes the lock once, briefly; an answer is
/// built as a `Value` under the lock and written to the client after it,
/// so a slow client never holds it.
pub(crate) struct Status {
    app: AppInfo,
    state: Mutex<State>,
}

/// Finished jobs (with their stages and tasks) and streaming batches kept,
/// the newest ones, as Spark's `spark.ui.retainedJobs` and
/// `spark.streaming.ui.retainedBatches` keep 1000: a program that runs for
/// days shows its recent past in bounded memory.
const RETAINED: Retained = Retained {
    jobs: 1000,
    batches: 1000,
};

#[derive(Clone, Copy)]
struct Retained {
    jobs: usize,
    batches: usize,
}

impl Default for Retained {
    fn default() -> Self {
        RETAINED
    }
}

#[derive(Default)]
struct State {
    retained: Retained,
    end_ms: Option<u64>,
    jobs: BTreeMap<u64, Job>,
    /// Finished jobs in the order they finished (the oldest go first).
    finished: std::collections::VecDeque<u64>,
    /// Submissions of each stage id so far: a stage's next attempt number,
    /// kept when old attempts are let go.
    stage_submissions: HashMap<u64, u32>,
    /// By (stage id, attempt): the attempt counts the stage's submissions
    /// over the whole application (a shuffle's stage re-run by a later job
    /// gets the next attempt, as in Spark).
    stages: BTreeMap<(u64, u32), Stage>,
    storage: BTreeMap<RddId, Persisted>,
    /// Names and operators of the persisted datasets a job's graph showed.
    datasets: HashMap<RddId, (String, Option<String>)>,
    memory_used: u64,
    executors: BTreeMap<usize, Executor>,
    streaming: Streaming,
}

struct Job {
    action: String,
    submitted_ms: u64,
    completed_ms: Option<u64>,
    succeeded: Option<bool>,
    error: Option<String>,
    duration: Option<Duration>,
    metrics: Option<JobMetrics>,
    stages: Vec<(u64, u32)>,
    skipped: Vec<u64>,
    graph: LineageGraph,
}

struct Stage {
    job: u64,
    kind: StageKind,
    rdd: RddId,
    num_tasks: usize,
    submitted_ms: u64,
    completed_ms: Option<u64>,
    succeeded: Option<bool>,
    duration: Option<Duration>,
    /// By (partition, task attempt).
    tasks: BTreeMap<(usize, u32), Task>,
}

struct Task {
    id: TaskId,
    executor: usize,
    launch_ms: u64,
    ended: Option<TaskEnd>,
}

struct TaskEnd {
    failure: Option<String>,
    duration: Duration,
    metrics: TaskMetrics,
}

struct Persisted {
    level: StorageLevel,
    partitions: usize,
    /// (bytes in memory, bytes on disk) by partition.
    blocks: BTreeMap<usize, (u64, u64)>,
}

#[derive(Default)]
struct Executor {
    active: u64,
    completed: u64,
    failed: u64,
    duration: Duration,
    shuffle_read: u64,
    shuffle_write: u64,
    spilled: u64,
    lost: Option<String>,
}

/// Streaming rows arrive already shaped (the streaming layer shapes its own
/// events, see `streaming::status`).
#[derive(Default)]
struct Streaming {
    started: Option<Value>,
    /// The batch being processed, if any.
    running: Option<u64>,
    batches: Vec<Value>,
    changes: Vec<Value>,
    stopped: Option<Value>,
}

/// One streaming fact, shaped by the streaming layer.
pub(crate) enum StreamingRow {
    /// The context started: `{"startTime", "batchDuration"}`.
    Started(Value),
    /// A batch started processing, at this batch time (ms).
    Running(u64),
    /// A finished batch.
    Batch(Value),
    /// A rate, interval or input change.
    Change(Value),
    /// The context stopped, with its summary.
    Stopped(Value),
}

/// A duration as the API gives it: milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Spark's names for a stage kind, a status.
fn kind_name(kind: &StageKind) -> String {
    match kind {
        StageKind::Result => "result".into(),
        StageKind::ShuffleMap { shuffle } => format!("shuffle map (shuffle {})", shuffle.0),
    }
}

impl Status {
    pub(crate) fn new(app: AppInfo) -> Status {
        Status {
            app,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn app_id(&self) -> &str {
        &self.app.id
    }

    pub(crate) fn start_ms(&self) -> u64 {
        self.app.start_ms
    }

    /// Takes one engine event posted at `time_ms`.
    pub(crate) fn apply(&self, time_ms: u64, event: &Event) {
        self.state.lock().apply(time_ms, event);
    }

    /// Takes one streaming fact.
    pub(crate) fn apply_streaming(&self, row: StreamingRow) {
        let mut st = self.state.lock();
        match row {
            StreamingRow::Started(v) => st.streaming.started = Some(v),
            StreamingRow::Running(time) => st.streaming.running = Some(time),
            StreamingRow::Batch(v) => {
                st.streaming.running = None;
                st.streaming.batches.push(v);
                let over = st
                    .streaming
                    .batches
                    .len()
                    .saturating_sub(st.retained.batches);
                st.streaming.batches.drain(..over);
            }
            StreamingRow::Change(v) => st.streaming.changes.push(v),
            StreamingRow::Stopped(v) => st.streaming.stopped = Some(v),
        }
    }

    /// The application ended at `time_ms`.
    pub(crate) fn end(&self, time_ms: u64) {
        self.state.lock().end_ms = Some(time_ms);
    }

    /// `/api/v1/applications` (one application).
    pub(crate) fn application(&self) -> Value {
        let st = self.state.lock();
        let a = &self.app;
        json!({
            "id": a.id,
            "name": a.id,
            "spateVersion": a.spate_version,
            "parallelism": a.parallelism,
            "processes": a.processes,
            "attempts": [{
                "startTimeEpoch": a.start_ms,
                "endTimeEpoch": st.end_ms,
                "duration": st.end_ms.map(|e| e.saturating_sub(a.start_ms)),
                "completed": st.end_ms.is_some(),
            }],
        })
    }

    /// `…/jobs`, newest first (as Spark lists them).
    pub(crate) fn jobs(&self) -> Value {
        let st = self.state.lock();
        Value::Array(
            st.jobs
                .iter()
                .rev()
                .map(|(id, j)| st.job_json(*id, j))
                .collect(),
        )
    }

    /// `…/jobs/{id}`, or `None` for an unknown job.
    pub(crate) fn job(&self, id: u64) -> Option<Value> {
        let st = self.state.lock();
        st.jobs.get(&id).map(|j| st.job_json(id, j))
    }

    /// A job's lineage graph and the stage ids its stages had.
    pub(crate) fn job_graph(&self, id: u64) -> Option<(LineageGraph, Vec<(RddId, u64)>)> {
        let st = self.state.lock();
        let j = st.jobs.get(&id)?;
        let stage_rdds = j
            .stages
            .iter()
            .filter_map(|k| st.stages.get(k).map(|s| (s.rdd, k.0)))
            .collect();
        Some((j.graph.clone(), stage_rdds))
    }

    /// `…/stages`, newest first.
    pub(crate) fn stages(&self) -> Value {
        let st = self.state.lock();
        Value::Array(
            st.stages
                .iter()
                .rev()
                .map(|(k, s)| stage_json(*k, s, false))
                .collect(),
        )
    }

    /// `…/stages/{id}`: its attempts, or `None` for an unknown stage.
    pub(crate) fn stage_attempts(&self, id: u64) -> Option<Value> {
        let st = self.state.lock();
        let attempts: Vec<Value> = st
            .stages
            .range((id, 0)..=(id, u32::MAX))
            .map(|(k, s)| stage_json(*k, s, true))
            .collect();
        (!attempts.is_empty()).then_some(Value::Array(attempts))
    }

    /// `…/stages/{id}/{attempt}`, with its tasks and quantiles.
    pub(crate) fn stage(&self, id: u64, attempt: u32) -> Option<Value> {
        let st = self.state.lock();
        st.stages
            .get(&(id, attempt))
            .map(|s| stage_json((id, attempt), s, true))
    }

    /// `…/stages/{id}/{attempt}/taskList`.
    pub(crate) fn task_list(&self, id: u64, attempt: u32) -> Option<Value> {
        let st = self.state.lock();
        let s = st.stages.get(&(id, attempt))?;
        Some(Value::Array(s.tasks.values().map(task_json).collect()))
    }

    /// `…/stages/{id}/{attempt}/taskSummary`.
    pub(crate) fn task_summary(&self, id: u64, attempt: u32) -> Option<Value> {
        let st = self.state.lock();
        st.stages.get(&(id, attempt)).map(summary_json)
    }

    /// `…/storage/rdd`.
    pub(crate) fn storage(&self) -> Value {
        let st = self.state.lock();
        Value::Array(
            st.storage
                .iter()
                .map(|(rdd, p)| st.rdd_json(*rdd, p, false))
                .collect(),
        )
    }

    /// `…/storage/rdd/{id}`, with its partitions.
    pub(crate) fn storage_rdd(&self, rdd: u64) -> Option<Value> {
        let st = self.state.lock();
        st.storage
            .get(&RddId(rdd))
            .map(|p| st.rdd_json(RddId(rdd), p, true))
    }

    /// `…/executors`.
    pub(crate) fn executors(&self) -> Value {
        let st = self.state.lock();
        let mut out = Vec::new();
        for rank in 0..self.app.processes.max(1) {
            let e = st.executors.get(&rank);
            let zero = Executor::default();
            let e = e.unwrap_or(&zero);
            out.push(json!({
                "id": if rank == 0 { "driver".to_string() } else { rank.to_string() },
                "rank": rank,
                "isActive": e.lost.is_none(),
                "lostReason": e.lost,
                "totalCores": self.app.parallelism,
                "activeTasks": e.active,
                "completedTasks": e.completed,
                "failedTasks": e.failed,
                "totalTasks": e.active + e.completed + e.failed,
                "totalDuration": ms(e.duration),
                "totalShuffleRead": e.shuffle_read,
                "totalShuffleWrite": e.shuffle_write,
                "diskBytesSpilled": e.spilled,
                // The driver's budget; executors report none yet.
                "memoryUsed": if rank == 0 { Some(st.memory_used) } else { None },
                "maxMemory": if rank == 0 { Some(self.app.memory_limit) } else { None },
            }));
        }
        Value::Array(out)
    }

    /// `…/streaming/statistics`, or `None` when the application never streamed.
    pub(crate) fn streaming_statistics(&self) -> Option<Value> {
        let st = self.state.lock();
        let s = &st.streaming;
        let started = s.started.clone()?;
        Some(json!({
            "started": started,
            "numBatches": s.batches.len(),
            "runningBatch": s.running,
            "changes": s.changes,
            "stopped": s.stopped,
        }))
    }

    /// `…/streaming/batches`, newest first, or `None` as above.
    pub(crate) fn streaming_batches(&self) -> Option<Value> {
        let st = self.state.lock();
        st.streaming.started.as_ref()?;
        Some(Value::Array(
            st.streaming.batches.iter().rev().cloned().collect(),
        ))
    }
}

impl TimedListener for Status {
    fn on_event_at(&self, time_ms: u64, event: &Event) {
        self.apply(time_ms, event);
    }
}

impl State {
    fn apply(&mut self, t: u64, event: &Event) {
        match event {
            Event::JobStart { job, action, graph } => {
                // Names of the persisted ones, for the Storage page (only
                // those: a stream makes new datasets every batch).
                for n in graph
                    .nodes
                    .iter()
                    .filter(|n| self.storage.contains_key(&n.rdd))
                {
                    self.datasets.insert(n.rdd, (n.op.clone(), n.name.clone()));
                }
                self.jobs.insert(
                    *job,
                    Job {
                        action: action.clone(),
                        submitted_ms: t,
                        completed_ms: None,
                        succeeded: None,
                        error: None,
                        duration: None,
                        metrics: None,
                        stages: Vec::new(),
                        skipped: Vec::new(),
                        graph: graph.clone(),
                    },
                );
            }
            Event::JobEnd {
                job,
                succeeded,
                error,
                duration,
                metrics,
            } => {
                if let Some(j) = self.jobs.get_mut(job) {
                    j.completed_ms = Some(t);
                    j.succeeded = Some(*succeeded);
                    j.error = error.clone();
                    j.duration = Some(*duration);
                    j.metrics = Some(*metrics);
                    self.finished.push_back(*job);
                }
                while self.finished.len() > self.retained.jobs {
                    let Some(old) = self.finished.pop_front() else {
                        break;
                    };
                    if let Some(j) = self.jobs.remove(&old) {
                        for s in &j.stages {
                            self.stages.remove(s);
                        }
                    }
                }
            }
            Event::StageSubmitted {
                job,
                stage,
                kind,
                rdd,
                tasks,
                ..
            } => {
                let submissions = self.stage_submissions.entry(*stage).or_insert(0);
                let attempt = *submissions;
                *submissions += 1;
                self.stages.insert(
                    (*stage, attempt),
                    Stage {
                        job: *job,
                        kind: *kind,
                        rdd: *rdd,
                        num_tasks: *tasks,
                        submitted_ms: t,
                        completed_ms: None,
                        succeeded: None,
                        duration: None,
                        tasks: BTreeMap::new(),
                    },
                );
                if let Some(j) = self.jobs.get_mut(job) {
                    j.stages.push((*stage, attempt));
                }
            }
            Event::StageSkipped { job, stage, .. } => {
                if let Some(j) = self.jobs.get_mut(job) {
                    j.skipped.push(*stage);
                }
            }
            Event::StageCompleted {
                stage,
                succeeded,
                duration,
                ..
            } => {
                if let Some(s) = self.latest_stage(*stage) {
                    s.completed_ms = Some(t);
                    s.succeeded = Some(*succeeded);
                    s.duration = Some(*duration);
                }
            }
            Event::TaskStart { task, executor, .. } => {
                self.executors.entry(*executor).or_default().active += 1;
                if let Some(s) = self.latest_stage(task.stage) {
                    s.tasks.insert(
                        (task.partition, task.attempt),
                        Task {
                            id: *task,
                            executor: *executor,
                            launch_ms: t,
                            ended: None,
                        },
                    );
                }
            }
            Event::TaskEnd {
                task,
                failure,
                metrics,
                duration,
                executor,
                ..
            } => {
                let e = self.executors.entry(*executor).or_default();
                e.active = e.active.saturating_sub(1);
                e.duration += *duration;
                if failure.is_some() {
                    e.failed += 1;
                } else {
                    e.completed += 1;
                    e.shuffle_read += metrics.shuffle_bytes_read;
                    e.shuffle_write += metrics.shuffle_bytes_written;
                    e.spilled += metrics.spilled_bytes;
                }
                if let Some(s) = self.latest_stage(task.stage) {
                    let at = t.saturating_sub(duration.as_millis() as u64);
                    let entry = s
                        .tasks
                        .entry((task.partition, task.attempt))
                        .or_insert(Task {
                            id: *task,
                            executor: *executor,
                            launch_ms: at,
                            ended: None,
                        });
                    entry.ended = Some(TaskEnd {
                        failure: failure.clone(),
                        duration: *duration,
                        metrics: *metrics,
                    });
                }
            }
            Event::ExecutorLost { rank, reason, .. } => {
                self.executors.entry(*rank).or_default().lost = Some(reason.clone());
            }
            Event::RddPersisted {
                rdd,
                level,
                partitions,
            } => {
                self.storage.insert(
                    *rdd,
                    Persisted {
                        level: *level,
                        partitions: *partitions,
                        blocks: BTreeMap::new(),
                    },
                );
            }
            Event::RddUnpersisted { rdd } => {
                self.storage.remove(rdd);
                self.datasets.remove(rdd);
            }
            Event::BlockUpdated {
                rdd,
                partition,
                memory_bytes,
                disk_bytes,
                memory_used,
            } => {
                self.memory_used = *memory_used;
                if let Some(p) = self.storage.get_mut(rdd) {
                    if *memory_bytes == 0 && *disk_bytes == 0 {
                        p.blocks.remove(partition);
                    } else {
                        p.blocks.insert(*partition, (*memory_bytes, *disk_bytes));
                    }
                }
            }
            Event::FaultInjected { .. }
            | Event::MapOutputLost { .. }
            | Event::CachedBlockLost { .. }
            | Event::PartitionRecomputed { .. } => {}
        }
    }

    fn latest_stage(&mut self, stage: u64) -> Option<&mut Stage> {
        self.stages
            .range_mut((stage, 0)..=(stage, u32::MAX))
            .next_back()
            .map(|(_, s)| s)
    }

    fn job_json(&self, id: u64, j: &Job) -> Value {
        let (mut tasks, mut done, mut failed, mut active) = (0usize, 0u64, 0u64, 0u64);
        let (mut stages_done, mut stages_failed) = (0, 0);
        for k in &j.stages {
            let Some(s) = self.stages.get(k) else {
                continue;
            };
            tasks += s.num_tasks;
            match s.succeeded {
                Some(true) => stages_done += 1,
                Some(false) => stages_failed += 1,
                None => {}
            }
            for t in s.tasks.values() {
                match &t.ended {
                    None => active += 1,
                    Some(e) if e.failure.is_some() => failed += 1,
                    Some(_) => done += 1,
                }
            }
        }
        let status = match j.succeeded {
            None => "RUNNING",
            Some(true) => "SUCCEEDED",
            Some(false) => "FAILED",
        };
        json!({
            "jobId": id,
            "name": j.action,
            "submissionTime": j.submitted_ms,
            "completionTime": j.completed_ms,
            "duration": j.duration.map(ms),
            "stageIds": j.stages.iter().map(|k| k.0).collect::<Vec<_>>(),
            "stages": j.stages.iter().map(|(s, a)| json!({"stageId": s, "attemptId": a})).collect::<Vec<_>>(),
            "status": status,
            "failureReason": j.error,
            "numTasks": tasks,
            "numActiveTasks": active,
            "numCompletedTasks": done,
            "numFailedTasks": failed,
            "numCompletedStages": stages_done,
            "numFailedStages": stages_failed,
            "numSkippedStages": j.skipped.len(),
            "skippedStageIds": j.skipped,
            "metrics": j.metrics,
        })
    }

    fn rdd_json(&self, rdd: RddId, p: &Persisted, partitions: bool) -> Value {
        let (op, name) = self.datasets.get(&rdd).cloned().unwrap_or_default();
        let memory: u64 = p.blocks.values().map(|b| b.0).sum();
        let disk: u64 = p.blocks.values().map(|b| b.1).sum();
        let mut v = json!({
            "id": rdd.0,
            "name": name.unwrap_or_else(|| if op.is_empty() { format!("rdd {}", rdd.0) } else { format!("{op} [{}]", rdd.0) }),
            "storageLevel": format!("{:?}", p.level),
            "numPartitions": p.partitions,
            "numCachedPartitions": p.blocks.len(),
            "memoryUsed": memory,
            "diskUsed": disk,
        });
        if partitions {
            v["partitions"] = p
                .blocks
                .iter()
                .map(|(i, (m, d))| json!({"partition": i, "memoryUsed": m, "diskUsed": d}))
                .collect();
        }
        v
    }
}

/// A stage's totals over its successful task attempts.
fn stage_totals(s: &Stage) -> (TaskMetrics, Duration, u64, u64, u64) {
    let (mut m, mut run) = (TaskMetrics::default(), Duration::ZERO);
    let (mut active, mut done, mut failed) = (0, 0, 0);
    for t in s.tasks.values() {
        match &t.ended {
            None => active += 1,
            Some(e) => {
                run += e.duration;
                if e.failure.is_some() {
                    failed += 1;
                } else {
                    done += 1;
                    m.add(&e.metrics);
                }
            }
        }
    }
    (m, run, active, done, failed)
}

fn stage_json((id, attempt): (u64, u32), s: &Stage, with_tasks: bool) -> Value {
    let (m, run, active, done, failed) = stage_totals(s);
    let status = match s.succeeded {
        None => "ACTIVE",
        Some(true) => "COMPLETE",
        Some(false) => "FAILED",
    };
    let mut v = json!({
        "stageId": id,
        "attemptId": attempt,
        "jobId": s.job,
        "name": kind_name(&s.kind),
        "rddId": s.rdd.0,
        "status": status,
        "numTasks": s.num_tasks,
        "numActiveTasks": active,
        "numCompleteTasks": done,
        "numFailedTasks": failed,
        "submissionTime": s.submitted_ms,
        "completionTime": s.completed_ms,
        "duration": s.duration.map(ms),
        "executorRunTime": ms(run),
    });
    // A stage's totals carry the same names as a task's metrics.
    if let (Value::Object(v), Value::Object(totals)) = (&mut v, metrics_json(&m)) {
        v.extend(totals);
    }
    if with_tasks {
        v["tasks"] = s.tasks.values().map(task_json).collect();
        v["taskSummary"] = summary_json(s);
    }
    v
}

fn metrics_json(m: &TaskMetrics) -> Value {
    json!({
        "inputRecords": m.input_records,
        "inputBytes": m.input_bytes,
        "outputRecords": m.records_out,
        "shuffleReadRecords": m.shuffle_records_read,
        "shuffleReadBytes": m.shuffle_bytes_read,
        "shuffleRemoteBytesRead": m.remote_bytes_read,
        "shuffleWriteRecords": m.shuffle_records_written,
        "shuffleWriteBytes": m.shuffle_bytes_written,
        "spills": m.spills,
        "diskBytesSpilled": m.spilled_bytes,
        "cachedPartitionsRecomputed": m.cached_partitions_recomputed,
    })
}

fn task_json(t: &Task) -> Value {
    let (status, error, duration, metrics) = match &t.ended {
        None => ("RUNNING", None, None, None),
        Some(e) => (
            if e.failure.is_some() {
                "FAILED"
            } else {
                "SUCCESS"
            },
            e.failure.clone(),
            Some(ms(e.duration)),
            Some(metrics_json(&e.metrics)),
        ),
    };
    json!({
        "index": t.id.partition,
        "attempt": t.id.attempt,
        "launchTime": t.launch_ms,
        "duration": duration,
        "executorId": if t.executor == 0 { "driver".to_string() } else { t.executor.to_string() },
        "status": status,
        "errorMessage": error,
        "taskMetrics": metrics,
    })
}

/// The quantiles Spark's task summary shows.
pub(crate) const QUANTILES: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

/// The value at quantile `q` of sorted `v` (nearest rank, as Spark's
/// summary picks a task's own value).
pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Quantiles over the stage's successful task attempts.
fn summary_json(s: &Stage) -> Value {
    let ended: Vec<(&Duration, &TaskMetrics)> = s
        .tasks
        .values()
        .filter_map(|t| t.ended.as_ref())
        .filter(|e| e.failure.is_none())
        .map(|e| (&e.duration, &e.metrics))
        .collect();
    let column = |f: &dyn Fn(&Duration, &TaskMetrics) -> f64| -> Value {
        let mut v: Vec<f64> = ended.iter().map(|(d, m)| f(d, m)).collect();
        v.sort_by(f64::total_cmp);
        QUANTILES.iter().map(|q| quantile(&v, *q)).collect()
    };
    json!({
        "quantiles": QUANTILES,
        "tasks": ended.len(),
        "duration": column(&|d, _| ms(*d)),
        "inputRecords": column(&|_, m| m.input_records as f64),
        "inputBytes": column(&|_, m| m.input_bytes as f64),
        "outputRecords": column(&|_, m| m.records_out as f64),
        "shuffleReadRecords": column(&|_, m| m.shuffle_records_read as f64),
        "shuffleReadBytes": column(&|_, m| m.shuffle_bytes_read as f64),
        "shuffleWriteRecords": column(&|_, m| m.shuffle_records_written as f64),
        "shuffleWriteBytes": column(&|_, m| m.shuffle_bytes_written as f64),
        "diskBytesSpilled": column(&|_, m| m.spilled_bytes as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(jobs: usize, batches: usize) -> Status {
        let s = Status::new(AppInfo {
            id: "app".into(),
            spate_version: "0".into(),
            parallelism: 1,
            processes: 1,
            memory_limit: 0,
            start_ms: 0,
        });
        s.state.lock().retained = Retained { jobs, batches };
        s
    }

    /// A job of one stage (`stage`) that ends.
    fn job(s: &Status, job: u64, stage: u64, end: bool) {
        let at = job * 10;
        s.apply(
            at,
            &Event::JobStart {
                job,
                action: "count".into(),
                graph: Default::default(),
            },
        );
        s.apply(
            at,
            &Event::StageSubmitted {
                job,
                stage,
                attempt: 0,
                kind: StageKind::Result,
                rdd: RddId(job),
                tasks: 1,
            },
        );
        if end {
            s.apply(
                at + 1,
                &Event::JobEnd {
                    job,
                    succeeded: true,
                    error: None,
                    duration: Duration::from_millis(1),
                    metrics: JobMetrics::default(),
                },
            );
        }
    }

    fn ids(v: Value, key: &str) -> Vec<u64> {
        let mut ids: Vec<u64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j[key].as_u64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn only_the_newest_finished_jobs_are_kept_with_their_stages_and_running_ones_stay() {
        let s = status(3, 1000);
        job(&s, 0, 0, false); // runs on
        for j in 1..=6 {
            job(&s, j, j, true);
        }
        assert_eq!(ids(s.jobs(), "jobId"), [0, 4, 5, 6]);
        assert_eq!(ids(s.stages(), "stageId"), [0, 4, 5, 6]);
        assert!(s.job(2).is_none() && s.stage(2, 0).is_none());
        // A stage id let go and submitted again keeps counting its attempts.
        job(&s, 7, 1, true);
        assert!(s.stage(1, 1).is_some() && s.stage(1, 0).is_none());
    }

    #[test]
    fn only_the_newest_streaming_batches_are_kept() {
        let s = status(1000, 2);
        for t in 0..5 {
            s.apply_streaming(StreamingRow::Batch(json!({ "batchTime": t })));
        }
        let kept: Vec<Value> = s.state.lock().streaming.batches.clone();
        assert_eq!(kept, [json!({ "batchTime": 3 }), json!({ "batchTime": 4 })]);
    }
}
