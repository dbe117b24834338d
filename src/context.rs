//! The entry point: a `Context` is the runtime (task pool, scratch
//! directory, memory budget, cached blocks, shuffle outputs, listeners),
//! the scheduler that runs jobs on it, and the functions that create
//! datasets and shared variables.

use crate::cluster::Topology;
use crate::data::{Data, Value};
use crate::error::{Error, Result};
use crate::fault::{FaultInjector, FaultPlan};
use crate::formats::{TextSource, WholeTextSource};
use crate::ids::RddId;
use crate::rdd::{ParallelCollection, RangeSource, Rdd};
use crate::runtime::{Event, Listener, Runtime, RuntimeConfig};
use crate::scheduler::{Pool, PoolStatus, Scheduler, SchedulingMode, checked_pools};
use crate::shared::{Accumulator, Broadcast};
use crate::storage::{BlockManager, RddStorageInfo};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Spate's `SparkContext`: creates datasets and runs their jobs.
///
/// Cloning is cheap and shares everything. Several contexts can live in one
/// process, each with its own thread pool and scratch directory.
///
/// ```
/// let ctx = spate::Context::builder().parallelism(2).build().unwrap();
/// let total: i64 = ctx.parallelize((1..=100).collect(), 4).sum().unwrap();
/// assert_eq!(total, 5050);
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

/// A context is its scheduler (which owns the runtime) plus the settings of
/// the dataset layer.
struct Inner {
    scheduler: Scheduler,
    checkpoint_dir: parking_lot::RwLock<Option<PathBuf>>,
    /// The live web UI, when asked for (driver only).
    ui: Option<crate::ui::Ui>,
}

/// Configures a [`Context`]; see [`Context::builder`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ContextBuilder {
    parallelism: Option<usize>,
    scratch_dir: Option<PathBuf>,
    max_task_failures: Option<u32>,
    memory_limit: Option<usize>,
    max_bytes_in_flight: Option<u64>,
    locality_wait: Option<std::time::Duration>,
    cluster: ClusterChoice,
    event_log_dir: Option<PathBuf>,
    ui: Option<std::net::SocketAddr>,
    console_progress: Option<bool>,
    scheduling_mode: SchedulingMode,
    pools: Vec<Pool>,
}

/// Whether a context joins a cluster.
#[derive(Debug, Clone, Default)]
enum ClusterChoice {
    /// As the environment says ([`Topology::from_env`]).
    #[default]
    FromEnv,
    /// One process, whatever the environment says.
    Local,
    /// This topology.
    Given(Topology),
}

impl ContextBuilder {
    /// Worker threads, and the default partition count (default: the
    /// `SPATE_THREADS` environment variable, else all cores; a launcher
    /// sets it for each process, e.g. `spate-launch --threads`).
    ///
    /// ```
    /// let ctx = spate::Context::builder().parallelism(2).build()?;
    /// assert_eq!(ctx.default_parallelism(), 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn parallelism(mut self, threads: usize) -> Self {
        self.parallelism = Some(threads.max(1));
        self
    }

    /// Where shuffle files go (default: a fresh temporary directory, removed
    /// when the context is dropped). A given directory is created if needed
    /// and not removed.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let ctx = spate::Context::builder().scratch_dir(dir.path()).build()?;
    /// assert!(ctx.scratch_dir().starts_with(dir.path()));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch_dir = Some(dir.into());
        self
    }

    /// Attempts per task before its job fails (default 4).
    ///
    /// ```
    /// let ctx = spate::Context::builder().max_task_failures(1).build()?;
    /// // One failure fails the job: no retries.
    /// let err = ctx.parallelize(vec![1], 1).map(|_: i32| -> i32 { panic!("boom") }).collect();
    /// assert!(err.unwrap_err().to_string().contains("boom"));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn max_task_failures(mut self, attempts: u32) -> Self {
        self.max_task_failures = Some(attempts.max(1));
        self
    }

    /// Bytes of memory that shuffle outputs may keep in memory before they
    /// go to disk (default: half the physical memory).
    ///
    /// ```
    /// // Shuffles and caches spill to disk beyond 64 MiB.
    /// let ctx = spate::Context::builder().memory_limit(64 << 20).build()?;
    /// let sums = ctx.parallelize((0..10_000).map(|i| (i % 10, 1)).collect(), 4).reduce_by_key(|a, b| a + b);
    /// assert_eq!(sums.count()?, 10);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// In cluster mode, the bytes of shuffle blocks one reduce task may
    /// have requested from other processes and not yet begun to read
    /// (Spark's `spark.reducer.maxSizeInFlight`; default: the
    /// `SPATE_MAX_BYTES_IN_FLIGHT` environment variable, else 48 MiB). A
    /// block larger than this is fetched alone.
    ///
    /// ```
    /// let ctx = spate::Context::builder().max_bytes_in_flight(8 << 20).build().unwrap();
    /// assert_eq!(ctx.range(0, 10, 1, 2).count().unwrap(), 10);
    /// ```
    pub fn max_bytes_in_flight(mut self, bytes: u64) -> Self {
        self.max_bytes_in_flight = Some(bytes.max(1));
        self
    }

    /// In cluster mode, how long a task waits for a free slot on a process
    /// that holds its input (its cached partition, or a fifth or more of
    /// its shuffle blocks) before it runs on any free slot (Spark's
    /// `spark.locality.wait`; default: the `SPATE_LOCALITY_WAIT_MS`
    /// environment variable, else 3 s). Zero places every task on the
    /// first free slot.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = spate::Context::builder().locality_wait(Duration::ZERO).build().unwrap();
    /// assert_eq!(ctx.range(0, 10, 1, 2).count().unwrap(), 10);
    /// ```
    pub fn locality_wait(mut self, wait: std::time::Duration) -> Self {
        self.locality_wait = Some(wait);
        self
    }

    /// Writes every event of the application (jobs, stages, tasks, storage,
    /// streaming batches) to a JSON-lines file in `dir` (default: the
    /// `SPATE_EVENT_LOG_DIR` environment variable, else no file), named
    /// after [`Context::application_id`]: `<id>.jsonl.inprogress` while the
    /// context lives, `<id>.jsonl` once it is dropped (with the last of its
    /// handles and of the datasets made from it, which hold it). A
    /// writer thread of its own writes it, so tasks never wait for the
    /// disk; events that find its queue full are counted as dropped (the
    /// file's last line says how many), never waited for. In cluster mode
    /// the driver writes it. The format is [`observe`](crate::observe)'s.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let ctx = spate::Context::builder().event_log_dir(dir.path()).build()?;
    /// ctx.parallelize(vec![1, 2, 3], 2).count()?;
    /// let file = dir.path().join(format!("{}.jsonl", ctx.application_id()));
    /// drop(ctx);
    /// let log = spate::observe::read_event_log(&file)?;
    /// assert_eq!(log.engine_events().filter(|e| matches!(e, spate::Event::TaskEnd { .. })).count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn event_log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.event_log_dir = Some(dir.into());
        self
    }

    /// Serves the live web UI and its REST API on `127.0.0.1:port` (port 0
    /// picks a free one; default: the `SPATE_UI_PORT` environment
    /// variable, else no UI). The address is printed to standard error at
    /// start and given by [`Context::ui_url`]. Only the driver serves it.
    /// The pages and the API are described in the README.
    ///
    /// ```
    /// let ctx = spate::Context::builder().ui_port(0).build()?;
    /// assert!(ctx.ui_url().unwrap().starts_with("http://127.0.0.1:"));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn ui_port(self, port: u16) -> Self {
        self.ui_address(loopback(port))
    }

    /// Serves the web UI on `addr`, which may be another interface than
    /// loopback (anyone who reaches it sees the application's jobs and
    /// dataset names; the UI is read-only).
    ///
    /// ```
    /// let ctx = spate::Context::builder().ui_address("127.0.0.1:0".parse().unwrap()).build()?;
    /// assert!(ctx.ui_url().is_some());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn ui_address(mut self, addr: std::net::SocketAddr) -> Self {
        self.ui = Some(addr);
        self
    }

    /// Whether to draw a progress line per running stage on standard error
    /// (default: on, unless `SPATE_PROGRESS=0`); drawn only when standard
    /// error is a terminal, and only by the driver.
    ///
    /// ```
    /// let ctx = spate::Context::builder().console_progress(false).build()?;
    /// assert_eq!(ctx.parallelize(vec![1, 2], 2).count()?, 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn console_progress(mut self, on: bool) -> Self {
        self.console_progress = Some(on);
        self
    }

    /// How concurrent jobs share the task slots (Spark's
    /// `spark.scheduler.mode`; default FIFO: the earliest job's tasks
    /// first). With [`SchedulingMode::Fair`], slots are divided among the
    /// pools declared with [`pool`](Self::pool), and a thread's jobs go to
    /// the pool it chose with [`Context::set_pool`]. Pools order jobs in
    /// local mode; in cluster mode jobs run one at a time.
    ///
    /// ```
    /// use spate::{Pool, SchedulingMode};
    /// let ctx = spate::Context::builder()
    ///     .scheduling_mode(SchedulingMode::Fair)
    ///     .pool(Pool::new("interactive").weight(3).min_share(1))
    ///     .build()?;
    /// assert_eq!(ctx.pools().len(), 2); // "default" and "interactive"
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn scheduling_mode(mut self, mode: SchedulingMode) -> Self {
        self.scheduling_mode = mode;
        self
    }

    /// Declares a fair scheduling pool (an entry of Spark's
    /// `fairscheduler.xml`); needs [`SchedulingMode::Fair`]. A pool named
    /// `"default"` replaces the default pool's settings. `build` refuses a
    /// name declared twice and a weight of 0.
    ///
    /// ```
    /// use spate::{Pool, SchedulingMode};
    /// let ctx = spate::Context::builder()
    ///     .scheduling_mode(SchedulingMode::Fair)
    ///     .pool(Pool::new("etl").weight(2))
    ///     .pool(Pool::new("adhoc").min_share(1).mode(SchedulingMode::Fair))
    ///     .build()?;
    /// let names: Vec<String> = ctx.pools().iter().map(|p| p.pool.name().to_string()).collect();
    /// assert_eq!(names, ["default", "etl", "adhoc"]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pools.push(pool);
        self
    }

    /// Runs in this process alone, even when the environment describes a
    /// cluster.
    ///
    /// ```
    /// // Stays one process even under srun or a SPATE_* cluster environment.
    /// let ctx = spate::Context::builder().local().build()?;
    /// assert_eq!(ctx.num_processes(), 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn local(mut self) -> Self {
        self.cluster = ClusterChoice::Local;
        self
    }

    /// Joins the cluster `topology` describes instead of the one the
    /// environment describes.
    ///
    /// ```no_run
    /// // Join the cluster the launcher described (as `build` does by default).
    /// if let Some(topology) = spate::cluster::Topology::from_env()? {
    ///     let ctx = spate::Context::builder().cluster(topology).build()?;
    ///     println!("process {} of {}", ctx.rank(), ctx.num_processes());
    /// }
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn cluster(mut self, topology: Topology) -> Self {
        self.cluster = ClusterChoice::Given(topology);
        self
    }

    /// Creates the context: its thread pool and scratch directory; in
    /// cluster mode (the environment names a launcher's rank and world
    /// size of more than one process, see [`Topology::from_env`]) it joins
    /// the cluster first, printing the topology to standard error, and
    /// fails if the other processes do not join in time.
    ///
    /// ```
    /// let ctx = spate::Context::builder().parallelism(2).max_task_failures(2).build()?;
    /// assert_eq!(ctx.max_task_failures(), 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn build(self) -> Result<Context> {
        let pools = checked_pools(self.scheduling_mode, self.pools)?;
        let topology = match self.cluster {
            ClusterChoice::FromEnv => Topology::from_env()?,
            ClusterChoice::Local => None,
            ClusterChoice::Given(t) => Some(t),
        }
        .filter(|t| t.world_size > 1);
        if let Some(t) = &topology {
            eprintln!("spate: {t}");
        }
        let from_env = positive_from_env::<usize>("SPATE_THREADS")?;
        let in_flight_from_env = positive_from_env::<u64>("SPATE_MAX_BYTES_IN_FLIGHT")?;
        let wait_from_env =
            parsed_from_env::<u64>("SPATE_LOCALITY_WAIT_MS", "a number of milliseconds", |_| {
                true
            })?
            .map(std::time::Duration::from_millis);
        let ui_port = parsed_from_env::<u16>("SPATE_UI_PORT", "a port number", |_| true)?;
        let ui = self.ui.or_else(|| ui_port.map(loopback));
        let progress = match self.console_progress {
            Some(on) => on,
            None => parsed_from_env::<u8>("SPATE_PROGRESS", "0 or 1", |v| *v <= 1)? != Some(0),
        };
        let runtime = Runtime::new(RuntimeConfig {
            parallelism: self.parallelism.or(from_env),
            scratch_dir: self.scratch_dir,
            max_task_failures: self.max_task_failures,
            memory_limit: self.memory_limit,
            max_bytes_in_flight: self.max_bytes_in_flight.or(in_flight_from_env),
            locality_wait: self.locality_wait.or(wait_from_env),
            cluster: topology,
            event_log_dir: self
                .event_log_dir
                .or_else(|| std::env::var_os("SPATE_EVENT_LOG_DIR").map(PathBuf::from)),
        })?;
        let is_driver = runtime.rank() == 0;
        let ui = match ui.filter(|_| is_driver) {
            Some(addr) => {
                let ui = crate::ui::Ui::start(&runtime, addr)?;
                eprintln!("spate: web UI at {}", ui.url());
                Some(ui)
            }
            None => None,
        };
        if progress && is_driver && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            runtime
                .listeners()
                .add(Arc::new(crate::ui::Progress::default()));
        }
        Ok(Context {
            inner: Arc::new(Inner {
                scheduler: Scheduler::new(Arc::new(runtime), self.scheduling_mode, pools),
                checkpoint_dir: parking_lot::RwLock::new(None),
                ui,
            }),
        })
    }
}

impl Context {
    /// A context with default settings.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1, 2, 3], 2).count()?, 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn new() -> Result<Context> {
        Context::builder().build()
    }

    /// A builder for a configured context.
    ///
    /// ```
    /// let ctx = spate::Context::builder().parallelism(1).build()?;
    /// assert_eq!(ctx.default_parallelism(), 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// The application's id, `spate-<start time in ms>-<process id>-<n>`
    /// (`n` counts the contexts this process created): it names the event
    /// log file.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert!(ctx.application_id().starts_with("spate-"));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn application_id(&self) -> &str {
        self.runtime().app_id()
    }

    /// The event log file this process writes, by the name it has once
    /// closed (`<dir>/<application id>.jsonl`; until the context is dropped
    /// it is that name with `.inprogress` appended); `None` without an
    /// [`event_log_dir`](ContextBuilder::event_log_dir), and on executors.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let ctx = spate::Context::builder().event_log_dir(dir.path()).build()?;
    /// let path = ctx.event_log_path().unwrap().to_path_buf();
    /// assert_eq!(path, dir.path().join(format!("{}.jsonl", ctx.application_id())));
    /// drop(ctx);
    /// assert!(path.exists());
    /// assert_eq!(spate::Context::new()?.event_log_path(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn event_log_path(&self) -> Option<&std::path::Path> {
        self.runtime().event_file().map(|f| f.path())
    }

    /// The live web UI's address (`http://127.0.0.1:<port>/`), when the
    /// context serves one ([`ContextBuilder::ui_port`] or `SPATE_UI_PORT`).
    ///
    /// ```
    /// let ctx = spate::Context::builder().ui_port(0).build()?;
    /// let url = ctx.ui_url().unwrap();
    /// assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'));
    /// assert_eq!(spate::Context::builder().local().build()?.ui_url(), None);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn ui_url(&self) -> Option<String> {
        self.inner.ui.as_ref().map(|u| u.url())
    }

    /// The live UI's status store, for the streaming layer to feed.
    pub(crate) fn ui_status(&self) -> Option<&Arc<crate::ui::Status>> {
        self.inner.ui.as_ref().map(|u| u.status())
    }

    /// Whether this process is the driver: always in local mode; in cluster
    /// mode only rank 0. Guard side effects with it (printing, writing a
    /// report): every process runs the program, and each action's result
    /// is known to all of them.
    ///
    /// ```
    /// let ctx = spate::Context::builder().local().build().unwrap();
    /// assert!(ctx.is_driver());
    /// assert_eq!((ctx.rank(), ctx.num_processes()), (0, 1));
    /// ```
    pub fn is_driver(&self) -> bool {
        self.rank() == 0
    }

    /// Runs `f` on the driver only and returns its result in every process
    /// (in local mode: runs `f`). For what only one process should do or
    /// decide: read standard input, check or create an output directory,
    /// pick a random seed. Every process must reach it at the same point
    /// of the program, as an action.
    ///
    /// ```
    /// let ctx = spate::Context::builder().local().build().unwrap();
    /// let seed: u64 = ctx.run_on_driver(|| Ok(42)).unwrap();
    /// assert_eq!(seed, 42);
    /// ```
    pub fn run_on_driver<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R>
    where
        R: Send + Serialize + DeserializeOwned,
    {
        self.inner.scheduler.on_driver("run_on_driver", f)
    }

    /// Crate-internal [`run_on_driver`](Self::run_on_driver) naming the
    /// operation it serves, for error messages.
    pub(crate) fn on_driver<R>(
        &self,
        action: &'static str,
        f: impl FnOnce() -> Result<R>,
    ) -> Result<R>
    where
        R: Send + Serialize + DeserializeOwned,
    {
        self.inner.scheduler.on_driver(action, f)
    }

    /// This process's rank: 0 for the driver (and in local mode).
    ///
    /// ```
    /// let ctx = spate::Context::builder().local().build()?;
    /// assert_eq!(ctx.rank(), 0); // the driver
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn rank(&self) -> usize {
        self.runtime().cluster().map_or(0, |n| n.rank() as usize)
    }

    /// How many processes run the program (1 in local mode).
    ///
    /// ```
    /// let ctx = spate::Context::builder().local().build()?;
    /// assert_eq!(ctx.num_processes(), 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn num_processes(&self) -> usize {
        self.runtime().cluster().map_or(1, |n| n.world_size())
    }

    /// Sends the jobs this thread starts from now on to the scheduling
    /// pool `name` (Spark's `setLocalProperty("spark.scheduler.pool", …)`);
    /// `None` sends them to the default pool again. A streaming context
    /// started on this thread runs its batches' jobs in the same pool.
    /// Errs, naming the pools there are, for a pool that was not declared.
    ///
    /// ```
    /// use spate::{Pool, SchedulingMode};
    /// let ctx = spate::Context::builder()
    ///     .scheduling_mode(SchedulingMode::Fair)
    ///     .pool(Pool::new("reports"))
    ///     .build()?;
    /// ctx.set_pool(Some("reports"))?;
    /// assert_eq!(ctx.pool(), "reports");
    /// assert_eq!(ctx.parallelize((1..=4).collect(), 2).sum()?, 10);
    /// assert!(ctx.set_pool(Some("nightly")).is_err());
    /// ctx.set_pool(None)?;
    /// assert_eq!(ctx.pool(), "default");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn set_pool(&self, name: Option<&str>) -> Result<()> {
        self.inner.scheduler.set_pool(name)
    }

    /// The scheduling pool this thread's jobs go to.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.pool(), "default");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn pool(&self) -> String {
        self.inner.scheduler.pool_name()
    }

    /// Each scheduling pool's settings and its running and waiting tasks
    /// now, "default" first.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let pools = ctx.pools();
    /// assert_eq!((pools[0].pool.name(), pools[0].running_tasks), ("default", 0));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn pools(&self) -> Vec<PoolStatus> {
        self.inner.scheduler.pools()
    }

    /// The default partition count: this process's worker threads, or in
    /// cluster mode the worker threads of all processes together (the same
    /// number in every process).
    ///
    /// ```
    /// let ctx = spate::Context::builder().parallelism(3).build()?;
    /// // Without a count, shuffles and parallelize spread over this many partitions.
    /// assert_eq!(ctx.default_parallelism(), 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn default_parallelism(&self) -> usize {
        self.runtime().default_partitions()
    }

    /// Attempts per task before its job fails.
    ///
    /// ```
    /// let ctx = spate::Context::builder().max_task_failures(3).build()?;
    /// assert_eq!(ctx.max_task_failures(), 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn max_task_failures(&self) -> u32 {
        self.runtime().max_task_failures()
    }

    /// Where shuffle files are written.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // Shuffle and spill files live under it; removed when the context drops.
    /// assert!(ctx.scratch_dir().is_dir());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn scratch_dir(&self) -> &Path {
        self.runtime().scratch_dir()
    }

    /// The persisted datasets: level, partitions cached in memory and on
    /// disk, and their sizes (Spark's `getRDDStorageInfo`).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![1, 2, 3], 2).cache()?;
    /// r.count()?;
    /// let info = ctx.storage_info();
    /// assert_eq!((info.len(), info[0].rdd, info[0].memory_partitions), (1, r.id(), 2));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn storage_info(&self) -> Vec<RddStorageInfo> {
        self.runtime().blocks().info()
    }

    /// The memory budget in bytes, and how much of it is in use.
    ///
    /// ```
    /// let ctx = spate::Context::builder().memory_limit(1 << 20).build().unwrap();
    /// let before = ctx.memory_usage();
    /// assert_eq!((before.used, before.limit), (0, 1 << 20));
    /// let r = ctx.range(0, 1000, 1, 2).cache().unwrap();
    /// r.count().unwrap();
    /// assert!(ctx.memory_usage().used > 0);
    /// ```
    pub fn memory_usage(&self) -> crate::memory::MemoryUsage {
        let memory = self.runtime().memory();
        crate::memory::MemoryUsage {
            used: memory.used(),
            limit: memory.limit(),
        }
    }

    /// Registers a listener for scheduler events.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let ctx = spate::Context::new()?;
    /// let log = Arc::new(spate::EventLog::default());
    /// ctx.add_listener(log.clone());
    /// ctx.parallelize(vec![1, 2], 2).count()?;
    /// assert!(!log.events().is_empty());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn add_listener(&self, listener: Arc<dyn Listener>) {
        self.runtime().listeners().add(listener);
    }

    /// Sets the directory under which [`Rdd::checkpoint`] writes; created if
    /// needed.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let dir = tempfile::tempdir().unwrap();
    /// ctx.set_checkpoint_dir(dir.path())?;
    /// assert!(ctx.checkpoint_dir().is_some());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn set_checkpoint_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        *self.inner.checkpoint_dir.write() = Some(dir.to_path_buf());
        Ok(())
    }

    /// The checkpoint directory, if set.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.checkpoint_dir(), None);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn checkpoint_dir(&self) -> Option<PathBuf> {
        self.inner.checkpoint_dir.read().clone()
    }

    /// Injects the faults of `plan` into the jobs that run from now on
    /// (replacing any earlier plan). See [`FaultPlan`].
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // The first attempt of stage 0's partition 1 fails; the retry succeeds.
    /// ctx.set_fault_plan(spate::FaultPlan::new().fail_attempt(0, 1, 0));
    /// assert_eq!(ctx.parallelize(vec![1, 2, 3, 4], 2).count()?, 4);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        self.runtime().set_fault_plan(Some(plan));
    }

    /// Stops injecting faults.
    ///
    /// ```
    /// let ctx = spate::Context::builder().max_task_failures(1).build()?;
    /// ctx.set_fault_plan(spate::FaultPlan::new().fail_tasks_with_probability(1.0, 7));
    /// assert!(ctx.parallelize(vec![1], 1).count().is_err());
    /// ctx.clear_fault_plan();
    /// assert_eq!(ctx.parallelize(vec![1], 1).count()?, 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn clear_fault_plan(&self) {
        self.runtime().set_fault_plan(None);
    }

    pub(crate) fn faults(&self) -> Option<Arc<FaultInjector>> {
        self.runtime().faults()
    }

    /// Distributes a local collection over `num_partitions` partitions with
    /// Spark's slicing rule: partition i holds positions
    /// ⌊i·n/P⌋ .. ⌊(i+1)·n/P⌋.
    ///
    /// In cluster mode the driver's `data` is the dataset: executors fetch
    /// the slices they compute from the driver and drop the vector their
    /// own copy of the program built, so a collection that differs between
    /// processes (read from a file only the driver sees, timed, random)
    /// still gives the driver's result. Elements serialize for that, as
    /// Spark's do.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let parts = ctx.parallelize(vec![1, 2, 3, 4, 5], 2).glom().collect().unwrap();
    /// assert_eq!(parts, vec![vec![1, 2], vec![3, 4, 5]]);
    /// ```
    ///
    /// Zero partitions make every action on the dataset (and on datasets
    /// built from it) an [`Error::InvalidArgument`], as Spark refuses them
    /// when the job is submitted:
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let none = ctx.parallelize(vec![1, 2], 0).map(|x| x + 1);
    /// assert!(matches!(none.count(), Err(spate::Error::InvalidArgument(_))));
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn parallelize<T: Value>(&self, data: Vec<T>, num_partitions: usize) -> Rdd<T> {
        ParallelCollection::rdd(self, data, num_partitions.max(1))
            .refused_if(num_partitions == 0, || {
                crate::error::zero_partitions("parallelize")
            })
    }

    /// The integers `start, start + step, ...` below `end` (above, for a
    /// negative step), in `num_partitions` partitions sliced like
    /// [`parallelize`](Context::parallelize). A zero step, or zero
    /// partitions, make every action on it an [`Error::InvalidArgument`]
    /// (Spark refuses a zero step too).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// assert_eq!(ctx.range(10, 0, -3, 2).collect().unwrap(), [10, 7, 4, 1]);
    /// let stuck = ctx.range(0, 10, 0, 2);
    /// assert!(matches!(stuck.collect(), Err(spate::Error::InvalidArgument(_))));
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn range(&self, start: i64, end: i64, step: i64, num_partitions: usize) -> Rdd<i64> {
        RangeSource::rdd(self, start, end, step, num_partitions.max(1))
            .refused_if(step == 0, || format!("range({start}, {end}) with step 0"))
            .refused_if(num_partitions == 0, || {
                crate::error::zero_partitions("range")
            })
    }

    /// The lines of a text file, of every file in a directory, or of every
    /// file matching a glob pattern (or of a comma-separated list of these,
    /// in order), split into at least `min_partitions` byte ranges aligned
    /// to line boundaries (at most 32 MiB each, as Spark does for local
    /// files). Lines end at `\n`, `\r\n` or a lone `\r`, as Hadoop's line
    /// reader has them. Invalid UTF-8 fails the task with an error naming
    /// the file and the byte offset.
    ///
    /// Like every reader and writer, it also takes `file://` URLs and, with
    /// the `object-store` feature, object store URLs (`s3://bucket/logs/`,
    /// `gs://…`, `az://…`, `https://…`): a prefix is a directory, and each
    /// split is read by a ranged GET.
    ///
    /// A missing path, or zero partitions, is an error here, before any
    /// job runs.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("a.txt"), "one\r\ntwo\nthree").unwrap();
    /// let ctx = spate::Context::new()?;
    /// let lines = ctx.text_file(dir.path().join("a.txt"), 2)?;
    /// assert_eq!(lines.collect()?, ["one", "two", "three"]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn text_file(&self, path: impl AsRef<Path>, min_partitions: usize) -> Result<Rdd<String>> {
        at_least_one_partition("text_file", min_partitions)?;
        TextSource::rdd(self, path.as_ref(), min_partitions)
    }

    /// One `(path, contents)` record per file of a directory or glob, with
    /// the files spread over at most `min_partitions` partitions. Zero
    /// partitions are an [`Error::InvalidArgument`].
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("a.txt"), "x\ny").unwrap();
    /// std::fs::write(dir.path().join("b.txt"), "z").unwrap();
    /// let ctx = spate::Context::new()?;
    /// let mut files = ctx.whole_text_files(dir.path(), 1)?.collect()?;
    /// files.sort();
    /// assert_eq!(files[0].1, "x\ny");
    /// assert!(files[1].0.ends_with("b.txt"));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn whole_text_files(
        &self,
        path: impl AsRef<Path>,
        min_partitions: usize,
    ) -> Result<Rdd<(String, String)>> {
        at_least_one_partition("whole_text_files", min_partitions)?;
        WholeTextSource::rdd(self, path.as_ref(), min_partitions)
    }

    /// A dataset with no partitions and no elements.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let e = ctx.empty::<u32>();
    /// assert_eq!((e.num_partitions(), e.count()?), (0, 0));
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn empty<T: Data>(&self) -> Rdd<T> {
        ParallelCollection::empty(self)
    }

    /// The concatenation of `rdds` (their partitions, in order). Duplicates
    /// are kept, as in Spark.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let parts = [ctx.parallelize(vec![1], 1), ctx.parallelize(vec![2, 3], 1)];
    /// assert_eq!(ctx.union(&parts).collect()?, [1, 2, 3]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn union<T: Data>(&self, rdds: &[Rdd<T>]) -> Rdd<T> {
        crate::rdd::union_all(self, rdds)
    }

    /// Shares a read-only value with every task.
    ///
    /// In cluster mode the driver's `value` is the one every process gets:
    /// the driver sends it to the executors (a small job of its own, so
    /// every process must create its broadcasts in the same order, as it
    /// runs its actions), and an executor drops the value its own copy of
    /// the program computed. The error is that job's: the driver lost, or
    /// a value that does not serialize.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let names = ctx.broadcast(vec!["zero".to_string(), "one".to_string()])?;
    /// let named = ctx.parallelize(vec![1usize, 0], 2)
    ///     .map(move |i| names.value()[i].clone())
    ///     .collect()?;
    /// assert_eq!(named, ["one", "zero"]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn broadcast<T: Value>(&self, value: T) -> Result<Broadcast<T>> {
        let id = self.next_shared_id();
        let value = self.inner.scheduler.on_driver("broadcast", || Ok(value))?;
        Ok(Broadcast::new(id, value))
    }

    /// An accumulator with a custom merge: tasks `add` values that are
    /// merged into `zero` with `merge`; each successful task counts once.
    /// The value type serializes: in cluster mode, a task's partial value
    /// travels to the driver with its result.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // The longest line seen, merged with a function of your own.
    /// let longest = ctx.accumulator("longest", 0usize, |a, b| *a = (*a).max(b));
    /// let acc = longest.clone();
    /// ctx.parallelize(vec!["ab".to_string(), "abcd".to_string()], 2)
    ///     .foreach(move |l| acc.add(l.len()))?;
    /// assert_eq!(longest.value(), 4);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn accumulator<T>(
        &self,
        name: &str,
        zero: T,
        merge: impl Fn(&mut T, T) + Send + Sync + 'static,
    ) -> Accumulator<T>
    where
        T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        let acc = Accumulator::new(self.next_shared_id(), name.to_string(), zero, merge);
        self.inner.scheduler.accumulators().register(&acc);
        acc
    }

    /// A summing accumulator (counts are sums of ones).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let bad = ctx.sum_accumulator::<u64>("bad records");
    /// let counter = bad.clone();
    /// let parsed = ctx
    ///     .parallelize(vec!["1", "x", "3"].into_iter().map(String::from).collect(), 2)
    ///     .flat_map(move |s| {
    ///         let n = s.parse::<i32>().ok();
    ///         if n.is_none() {
    ///             counter.add(1);
    ///         }
    ///         n
    ///     });
    /// assert_eq!(parsed.collect()?, [1, 3]);
    /// assert_eq!(bad.value(), 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn sum_accumulator<T>(&self, name: &str) -> Accumulator<T>
    where
        T: Clone
            + Send
            + Sync
            + Serialize
            + DeserializeOwned
            + Default
            + std::ops::AddAssign
            + 'static,
    {
        self.accumulator(name, T::default(), |a, b| *a += b)
    }

    /// The runtime tasks use.
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        self.inner.scheduler.runtime()
    }

    /// Tells contexts apart while they live (the address of their shared
    /// state): a dataset keeps its context alive, so two live datasets of
    /// different contexts never share it.
    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    pub(crate) fn next_rdd_id(&self) -> RddId {
        self.runtime().next_rdd_id()
    }

    fn next_shared_id(&self) -> u64 {
        self.runtime().next_shared_id()
    }

    pub(crate) fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }

    pub(crate) fn blocks(&self) -> &BlockManager {
        self.runtime().blocks()
    }

    pub(crate) fn post(&self, event: Event) {
        self.runtime().post(event);
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("parallelism", &self.default_parallelism())
            .field("scratch_dir", &self.scratch_dir())
            .field("max_task_failures", &self.max_task_failures())
            .finish_non_exhaustive()
    }
}

/// A positive number from environment variable `name`, if it is set; any
/// other value is an `InvalidArgument` naming it.
fn positive_from_env<T: std::str::FromStr + Default + PartialEq>(name: &str) -> Result<Option<T>> {
    parsed_from_env(name, "a positive number", |n: &T| *n != T::default())
}

/// The value of environment variable `name`, if it is set; a value that does
/// not parse as `T` or is not `valid` is an `InvalidArgument` naming the
/// variable and saying it is not `what`.
fn parsed_from_env<T: std::str::FromStr>(
    name: &str,
    what: &str,
    valid: impl Fn(&T) -> bool,
) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) => match v.parse::<T>() {
            Ok(n) if valid(&n) => Ok(Some(n)),
            _ => Err(Error::InvalidArgument(format!(
                "{name}={v:?} is not {what}"
            ))),
        },
        Err(_) => Ok(None),
    }
}

/// `127.0.0.1:port`, where the web UI listens unless told otherwise.
fn loopback(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// An `InvalidArgument` when `op` is asked for zero partitions.
pub(crate) fn at_least_one_partition(op: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::InvalidArgument(crate::error::zero_partitions(op)));
    }
    Ok(())
}
