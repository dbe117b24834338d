//! The runtime: everything a task needs, below [`Context`](crate::Context)
//! and the scheduler (Spark's `SparkEnv`): the task pool, the scratch
//! directory, the memory budget, the block manager of cached partitions,
//! the shuffle manager, the listener bus, the fault injector, and the id
//! counters. A process that only runs tasks (a cluster executor) needs
//! this and no scheduler; shuffle and storage can be tested with a runtime
//! alone.

mod event_file;
mod events;
mod task;

pub(crate) use event_file::{EventFile, LogRecord, SCHEMA, Source, now_ms};
pub use events::{
    Event, EventLog, JobMetrics, LineageEdge, LineageGraph, LineageNode, Listener, StageKind,
    TaskId, TaskMetrics,
};
pub(crate) use events::{ListenerBus, TimedListener};
pub(crate) use task::{MetricsCell, Running, TaskContext, on_idle_worker, running_task};

use crate::cluster::node::{Node, PendingFetch};
use crate::error::{Error, Result};
use crate::fault::{FaultInjector, FaultPlan};
use crate::ids::{RddId, ShuffleId};
use crate::memory::{self, MemoryBudget};
use crate::shuffle::ShuffleManager;
use crate::storage::BlockManager;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How to build a [`Runtime`]; unset fields take their defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuntimeConfig {
    pub(crate) parallelism: Option<usize>,
    pub(crate) scratch_dir: Option<PathBuf>,
    pub(crate) max_task_failures: Option<u32>,
    pub(crate) memory_limit: Option<usize>,
    /// Bytes of remote shuffle blocks a reducer may have requested and not
    /// yet read.
    pub(crate) max_bytes_in_flight: Option<u64>,
    /// How long a task waits for a slot where its input is.
    pub(crate) locality_wait: Option<std::time::Duration>,
    /// The cluster to join; `None` runs in one process.
    pub(crate) cluster: Option<crate::cluster::Topology>,
    /// Where the driver writes its event log file, if anywhere.
    pub(crate) event_log_dir: Option<PathBuf>,
}

/// What every task of one context shares.
pub(crate) struct Runtime {
    /// `None` only in unit tests of the parts below the scheduler.
    pool: Option<rayon::ThreadPool>,
    parallelism: usize,
    scratch: Scratch,
    max_task_failures: u32,
    memory: Arc<MemoryBudget>,
    max_bytes_in_flight: u64,
    locality_wait: std::time::Duration,
    next_rdd: AtomicU64,
    next_shuffle: AtomicU64,
    next_shared: AtomicU64,
    shuffles: Arc<ShuffleManager>,
    blocks: BlockManager,
    /// This process's membership in a cluster (cluster mode).
    cluster: Option<Node>,
    listeners: Arc<ListenerBus>,
    faults: parking_lot::RwLock<Option<Arc<FaultInjector>>>,
    /// This application's id (`spate-<start ms>-<pid>-<n>`), naming its event log.
    app_id: String,
    /// When it was created, in ms since the epoch: the application's start.
    start_ms: u64,
    event_file: Option<Arc<EventFile>>,
}

enum Scratch {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl Scratch {
    fn path(&self) -> &Path {
        match self {
            Scratch::Temp(t) => t.path(),
            Scratch::Given(p) => p,
        }
    }
}

impl Runtime {
    /// Creates the scratch directory and the task pool.
    pub(crate) fn new(config: RuntimeConfig) -> Result<Runtime> {
        let parallelism = config
            .parallelism
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(parallelism)
            .thread_name(|i| format!("spate-worker-{i}"))
            .start_handler(|_| task::mark_worker())
            // Deep narrow chains compute as nested calls; give them room.
            .stack_size(64 << 20)
            .build()
            .map_err(|e| Error::InvalidArgument(format!("cannot start the task pool: {e}")))?;
        Self::with_pool(config, parallelism, Some(pool))
    }

    /// A runtime without a task pool, for tests of shuffle and storage.
    #[cfg(test)]
    pub(crate) fn without_pool(config: RuntimeConfig) -> Result<Runtime> {
        let parallelism = config.parallelism.unwrap_or(1);
        Self::with_pool(config, parallelism, None)
    }

    fn with_pool(
        config: RuntimeConfig,
        parallelism: usize,
        pool: Option<rayon::ThreadPool>,
    ) -> Result<Runtime> {
        let scratch = match config.scratch_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                Scratch::Given(dir)
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("spate-")
                    .tempdir()
                    .map_err(|e| Error::io(std::env::temp_dir(), e))?;
                Scratch::Temp(tmp)
            }
        };
        let memory = Arc::new(MemoryBudget::new(
            config.memory_limit.unwrap_or_else(memory::default_limit),
        ));
        let listeners = Arc::new(ListenerBus::default());
        let blocks = BlockManager::new(memory.clone(), scratch.path(), listeners.clone());
        let shuffles = Arc::new(ShuffleManager::default());
        let cluster = match config.cluster {
            Some(topology) => Some(Node::start(topology, shuffles.clone(), parallelism, true)?),
            None => None,
        };
        // Contexts of one process started in the same millisecond differ by
        // the last number.
        static CONTEXTS: AtomicU64 = AtomicU64::new(0);
        let start_ms = event_file::now_ms();
        let app_id = format!(
            "spate-{}-{}-{}",
            start_ms,
            std::process::id(),
            CONTEXTS.fetch_add(1, Ordering::Relaxed)
        );
        let is_driver = cluster.as_ref().is_none_or(|n| n.is_driver());
        let event_file = match config.event_log_dir.filter(|_| is_driver) {
            Some(dir) => {
                let processes = cluster.as_ref().map_or(1, |n| n.world_size());
                let file = Arc::new(EventFile::create(
                    &dir,
                    &app_id,
                    parallelism,
                    processes,
                    memory.limit() as u64,
                    start_ms,
                )?);
                listeners.add_timed(file.clone());
                Some(file)
            }
            None => None,
        };
        Ok(Runtime {
            app_id,
            start_ms,
            event_file,
            pool,
            parallelism,
            scratch,
            max_task_failures: config.max_task_failures.unwrap_or(4),
            memory,
            max_bytes_in_flight: config.max_bytes_in_flight.unwrap_or(48 << 20),
            locality_wait: config
                .locality_wait
                .unwrap_or(std::time::Duration::from_secs(3)),
            next_rdd: AtomicU64::new(0),
            next_shuffle: AtomicU64::new(0),
            next_shared: AtomicU64::new(0),
            shuffles,
            blocks,
            cluster,
            listeners,
            faults: parking_lot::RwLock::new(None),
        })
    }

    /// The task pool.
    pub(crate) fn pool(&self) -> &rayon::ThreadPool {
        self.pool
            .as_ref()
            .expect("only unit tests build a runtime without a pool, and they run no job")
    }

    /// Worker threads of this process.
    pub(crate) fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// The default partition count: this process's worker threads, or in
    /// cluster mode those of all processes together.
    pub(crate) fn default_partitions(&self) -> usize {
        self.cluster
            .as_ref()
            .map_or(self.parallelism, Node::total_slots)
    }

    /// How long a task waits for a free slot on a process that holds its
    /// input before it takes any slot.
    pub(crate) fn locality_wait(&self) -> std::time::Duration {
        self.locality_wait
    }

    pub(crate) fn max_task_failures(&self) -> u32 {
        self.max_task_failures
    }

    /// Bytes of remote shuffle blocks one reducer may have requested and
    /// not yet begun to read.
    pub(crate) fn max_bytes_in_flight(&self) -> u64 {
        self.max_bytes_in_flight
    }

    pub(crate) fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    pub(crate) fn memory(&self) -> &Arc<MemoryBudget> {
        &self.memory
    }

    pub(crate) fn shuffles(&self) -> &ShuffleManager {
        &self.shuffles
    }

    /// This process's membership in a cluster; `None` in local mode.
    pub(crate) fn cluster(&self) -> Option<&Node> {
        self.cluster.as_ref()
    }

    /// Starts fetching a shuffle block held by process `rank` (see
    /// [`Node::start_fetch`]).
    pub(crate) fn start_fetch(
        &self,
        rank: u32,
        shuffle: ShuffleId,
        map: usize,
        reduce: usize,
    ) -> std::result::Result<PendingFetch, String> {
        match &self.cluster {
            Some(node) => Ok(node.start_fetch(rank, shuffle, map, reduce)),
            None => Err(format!(
                "map output {map} is in process {rank}, but this process runs alone"
            )),
        }
    }

    /// Waits for a fetch started with [`start_fetch`](Self::start_fetch).
    pub(crate) fn finish_fetch(&self, fetch: PendingFetch) -> std::result::Result<Vec<u8>, String> {
        match &self.cluster {
            Some(node) => node.finish_fetch(fetch),
            None => Err("no cluster".into()),
        }
    }

    pub(crate) fn blocks(&self) -> &BlockManager {
        &self.blocks
    }

    /// This process's rank: 0 for the driver and in local mode.
    pub(crate) fn rank(&self) -> usize {
        self.cluster.as_ref().map_or(0, |n| n.rank() as usize)
    }

    pub(crate) fn listeners(&self) -> &ListenerBus {
        &self.listeners
    }

    pub(crate) fn post(&self, event: Event) {
        self.listeners.post(event);
    }

    pub(crate) fn start_ms(&self) -> u64 {
        self.start_ms
    }

    /// Processes of the application (1 in local mode).
    pub(crate) fn processes(&self) -> usize {
        self.cluster.as_ref().map_or(1, |n| n.world_size())
    }

    pub(crate) fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The event log being written (the driver's, when one was asked for).
    pub(crate) fn event_file(&self) -> Option<&Arc<EventFile>> {
        self.event_file.as_ref()
    }

    pub(crate) fn set_fault_plan(&self, plan: Option<FaultPlan>) {
        *self.faults.write() = plan.map(|p| Arc::new(FaultInjector::new(p)));
    }

    pub(crate) fn faults(&self) -> Option<Arc<FaultInjector>> {
        self.faults.read().clone()
    }

    pub(crate) fn next_rdd_id(&self) -> RddId {
        RddId(self.next_rdd.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn next_shuffle_id(&self) -> ShuffleId {
        ShuffleId(self.next_shuffle.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn next_shared_id(&self) -> u64 {
        self.next_shared.fetch_add(1, Ordering::Relaxed)
    }
}
