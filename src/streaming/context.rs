//! `StreamingContext`: owns the stream graph and the thread that fires a
//! batch at every interval, generates its datasets and runs its output
//! jobs, one batch at a time in time order.

use super::adaptive::{AdaptiveBatching, Controller};
use super::dstream::AnyStream;
use super::generator::JobGenerator;
use super::graph::{Graph, Input};
use super::metrics::{BatchInfo, StreamingEvent, StreamingListener, StreamingSummary};
use super::rate::{Backpressure, PidRateEstimator, RateEstimator};
use super::time::{Clock, ManualClock, Time, check_duration, millis};
use crate::context::Context;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How [`StreamingContext::stop`] ends the batches (Spark's
/// `stopGracefully` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// After the batch running now, if any.
    Immediately,
    /// After batches have processed everything the inputs received.
    Graceful,
}

/// The entry point of streaming (Spark's `StreamingContext`): define input
/// streams and their transformations and outputs, then [`start`].
///
/// ```
/// use spate::streaming::{ManualClock, StreamQueue, StreamingContext};
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// let ctx = spate::Context::new().unwrap();
/// let clock = ManualClock::new();
/// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone()).unwrap();
/// let queue = StreamQueue::new();
/// queue.push(ctx.parallelize(vec!["a b".to_string(), "b".to_string()], 2));
/// let counts = Arc::new(Mutex::new(Vec::new()));
/// let sink = counts.clone();
/// ssc.queue_stream(&queue, spate::streaming::Dequeue::OneAtATime)
///     .flat_map(|line| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
///     .map(|w| (w, 1))
///     .reduce_by_key(|a, b| a + b)
///     .foreach_rdd(move |rdd, _time| {
///         let mut batch = rdd.collect()?;
///         batch.sort();
///         sink.lock().unwrap().push(batch);
///         Ok(())
///     });
/// ssc.start().unwrap();
/// clock.advance(Duration::from_millis(100));
/// ssc.wait_for_batch(spate::streaming::Time::from_millis(100)).unwrap();
/// ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
/// assert_eq!(counts.lock().unwrap()[0], [("a".to_string(), 1), ("b".to_string(), 2)]);
/// ```
///
/// [`start`]: StreamingContext::start
pub struct StreamingContext {
    inner: Arc<Shared>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Life {
    Initialized,
    Active,
    Stopped,
}

pub(super) struct Progress {
    life: Life,
    /// The latest batch that finished.
    pub(super) last_done: Option<Time>,
    /// The time of the next batch, while the batch thread waits for it.
    pub(super) next_due: Option<Time>,
    /// Why the batches stopped, until `await_termination` reports it.
    pub(super) error: Option<Error>,
    /// The generator thread has exited.
    pub(super) terminated: bool,
}

pub(super) struct Shared {
    pub(super) graph: Arc<Graph>,
    pub(super) clock: Clock,
    pub(super) progress: Mutex<Progress>,
    pub(super) changed: Condvar,
    pub(super) stop_requested: AtomicBool,
    pub(super) graceful: AtomicBool,
    generator: Mutex<Option<JoinHandle<()>>>,
    listeners: RwLock<Vec<Arc<dyn StreamingListener>>>,
    pub(super) batches: Mutex<Vec<BatchInfo>>,
}

impl StreamingContext {
    /// A streaming context on the system clock, firing a batch every
    /// `batch_interval` (whole milliseconds, at least 1 ms).
    ///
    /// ```
    /// use spate::streaming::StreamingContext;
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_secs(1))?;
    /// assert_eq!(ssc.batch_interval(), Duration::from_secs(1));
    /// assert!(StreamingContext::new(&ctx, Duration::ZERO).is_err());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn new(ctx: &Context, batch_interval: Duration) -> Result<StreamingContext> {
        Self::with_clock(ctx, batch_interval, Clock::system())
    }

    /// A streaming context whose batches fire when `clock` is advanced:
    /// deterministic tests.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![1, 2], 1));
    /// ssc.queue_stream(&q, Dequeue::OneAtATime).print(10)?;
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(100)); // fires the batch at 100 ms
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// assert_eq!(ssc.batches()[0].time, Time::from_millis(100));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn with_manual_clock(
        ctx: &Context,
        batch_interval: Duration,
        clock: ManualClock,
    ) -> Result<StreamingContext> {
        Self::with_clock(ctx, batch_interval, Clock::Manual(clock))
    }

    fn with_clock(ctx: &Context, batch_interval: Duration, clock: Clock) -> Result<Self> {
        let interval = check_duration("batch interval", batch_interval)?;
        Ok(StreamingContext {
            inner: Arc::new(Shared {
                graph: Arc::new(Graph::new(ctx.clone(), interval)),
                clock,
                progress: Mutex::new(Progress {
                    life: Life::Initialized,
                    last_done: None,
                    next_due: None,
                    error: None,
                    terminated: false,
                }),
                changed: Condvar::new(),
                stop_requested: AtomicBool::new(false),
                graceful: AtomicBool::new(false),
                generator: Mutex::new(None),
                listeners: RwLock::new(Vec::new()),
                batches: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The engine context batches run on.
    ///
    /// ```
    /// use spate::streaming::StreamingContext;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, std::time::Duration::from_secs(1))?;
    /// assert_eq!(ssc.context().parallelize(vec![1, 2, 3], 1).count()?, 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn context(&self) -> &Context {
        &self.inner.graph.ctx
    }

    /// The batch interval.
    ///
    /// ```
    /// use spate::streaming::StreamingContext;
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(250))?;
    /// assert_eq!(ssc.batch_interval(), Duration::from_millis(250));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn batch_interval(&self) -> Duration {
        self.inner.graph.batch
    }

    pub(crate) fn graph(&self) -> &Arc<Graph> {
        &self.inner.graph
    }

    /// Sets how fast receivers may store records (see [`Backpressure`]);
    /// before [`start`](Self::start). A rate or gain out of its domain is
    /// an `InvalidArgument` at once.
    ///
    /// ```
    /// use spate::streaming::{Backpressure, StreamingContext};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(100))?;
    /// ssc.set_backpressure(Backpressure {
    ///     enabled: true,
    ///     max_rate: Some(50_000.0), // records per second per receiver
    ///     ..Backpressure::default()
    /// })?;
    /// let bad = Backpressure { min_rate: 0.0, ..Backpressure::default() };
    /// assert!(matches!(ssc.set_backpressure(bad), Err(spate::Error::InvalidArgument(_))));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn set_backpressure(&self, backpressure: Backpressure) -> Result<()> {
        if self.inner.progress.lock().life != Life::Initialized {
            return Err(Error::StreamingState(
                "backpressure must be set before start".into(),
            ));
        }
        backpressure.check(self.batch_interval())?;
        self.inner.graph.pacing.set_backpressure(backpressure);
        Ok(())
    }

    /// Replaces the PID estimator of backpressure by `estimator` (Spark's
    /// `backpressure.rateEstimator`); before [`start`](Self::start). It is
    /// used when backpressure is enabled ([`set_backpressure`](Self::set_backpressure)).
    ///
    /// ```
    /// use spate::streaming::{Backpressure, RateEstimator, StreamingContext, Time};
    /// use std::time::Duration;
    /// struct Fixed(f64);
    /// impl RateEstimator for Fixed {
    ///     fn compute(&mut self, _: Time, _: u64, _: Duration, _: Duration) -> Option<f64> {
    ///         Some(self.0)
    ///     }
    /// }
    /// let ctx = spate::Context::new().unwrap();
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(100)).unwrap();
    /// ssc.set_backpressure(Backpressure { enabled: true, ..Backpressure::default() }).unwrap();
    /// ssc.set_rate_estimator(Fixed(5_000.0)).unwrap();
    /// ```
    pub fn set_rate_estimator(&self, estimator: impl RateEstimator) -> Result<()> {
        if self.inner.progress.lock().life != Life::Initialized {
            return Err(Error::StreamingState(
                "the rate estimator must be set before start".into(),
            ));
        }
        self.inner
            .graph
            .pacing
            .set_rate_estimator(Box::new(estimator));
        Ok(())
    }

    /// Lets the batch interval adapt to the load (see [`AdaptiveBatching`]);
    /// before [`start`](Self::start). The interval given at construction is
    /// the first one.
    ///
    /// ```
    /// use spate::streaming::{AdaptiveBatching, StreamingContext};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(100))?;
    /// let ms = Duration::from_millis;
    /// // Batches between 10 ms and 1 s, aiming at 200 ms from arrival to output.
    /// ssc.set_adaptive_batching(AdaptiveBatching::new(ms(200), ms(10), ms(1_000)))?;
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn set_adaptive_batching(&self, settings: AdaptiveBatching) -> Result<()> {
        if self.inner.progress.lock().life != Life::Initialized {
            return Err(Error::StreamingState(
                "adaptive batching must be set before start".into(),
            ));
        }
        for (what, d) in [
            ("minimum interval", settings.min_interval),
            ("maximum interval", settings.max_interval),
        ] {
            check_duration(what, d)?;
        }
        if settings.min_interval > settings.max_interval
            || !(settings.utilization > 0.0 && settings.utilization < 1.0)
        {
            return Err(Error::InvalidArgument(format!(
                "adaptive batching needs min <= max and a utilization in (0, 1): {settings:?}"
            )));
        }
        self.inner.graph.pacing.set_adaptive(settings);
        Ok(())
    }

    /// Makes every stream keep the datasets of its batches for at least
    /// `duration` (Spark's `remember`), so [`slice`](super::DStream::slice)
    /// and queries made from outputs can reach further back; streams that
    /// need longer (windows) keep their own span. Before
    /// [`start`](Self::start).
    ///
    /// ```
    /// # use spate::streaming::{ManualClock, StreamingContext};
    /// # use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), ManualClock::new()).unwrap();
    /// ssc.remember(Duration::from_secs(60)).unwrap();
    /// ```
    pub fn remember(&self, duration: Duration) -> Result<()> {
        if self.inner.progress.lock().life != Life::Initialized {
            return Err(Error::StreamingState(
                "remember must be set before start".into(),
            ));
        }
        self.inner.graph.pacing.set_remember(duration);
        Ok(())
    }

    /// Registers a listener for batch events.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, StreamingLog, Time};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let log = Arc::new(StreamingLog::default());
    /// ssc.add_listener(log.clone());
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec!['a'], 1));
    /// ssc.queue_stream(&q, Dequeue::OneAtATime).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(100));
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// assert_eq!(log.batches().len(), 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn add_listener(&self, listener: Arc<dyn StreamingListener>) {
        self.inner.listeners.write().push(listener);
    }

    /// Starts the inputs and the batches. The first batch is at
    /// `zero + interval`, where zero is the clock's time rounded down to
    /// the interval (a manual clock's current time).
    ///
    /// ```
    /// use spate::streaming::{Dequeue, StreamQueue, StreamingContext};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(50))?;
    /// // Nothing to run yet: start refuses.
    /// assert!(matches!(ssc.start(), Err(spate::Error::StreamingState(_))));
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(50))?;
    /// ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// assert!(ssc.start().is_err(), "started once only");
    /// ssc.stop(spate::streaming::StopMode::Immediately)?;
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn start(&self) -> Result<()> {
        let inner = &self.inner;
        {
            let mut p = inner.progress.lock();
            if p.life != Life::Initialized {
                return Err(Error::StreamingState(format!(
                    "start on a context that is {:?}",
                    p.life
                )));
            }
            if inner.graph.outputs.lock().is_empty() {
                return Err(Error::StreamingState(
                    "no output operations registered, so nothing would run".into(),
                ));
            }
            p.life = Life::Active;
        }
        // Everything that can fail before anything runs; an error leaves
        // the context stopped with nothing started.
        let prepared = self.prepare();
        let (generator, first, zero) = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.set_stopped();
                return Err(e);
            }
        };
        let interval = inner.graph.batch;
        // Then the inputs and the batch thread; if one of them fails, what
        // was started is stopped again. A cluster executor starts no input:
        // the driver's inputs decide every batch.
        let follower = inner.graph.follows_driver();
        let inputs: Vec<_> = if follower {
            Vec::new()
        } else {
            inner.graph.inputs.lock().clone()
        };
        let mut started = Vec::new();
        for (_, input) in &inputs {
            if let Err(e) = input.start() {
                started.iter().for_each(|i: &&Arc<dyn Input>| i.stop());
                self.set_stopped();
                return Err(e);
            }
            started.push(input);
        }
        inner.post(&StreamingEvent::Started { zero, interval });
        // The batches' jobs go to the pool of the thread that started them.
        let ctx = inner.graph.ctx.clone();
        let pool = ctx.pool();
        let spawned = std::thread::Builder::new()
            .name("spate-batches".into())
            .spawn(move || {
                ctx.set_pool(Some(&pool))
                    .expect("the starting thread's pool is one of the context's");
                if follower {
                    generator.follow()
                } else {
                    generator.run(first)
                }
            });
        match spawned {
            Ok(handle) => {
                *inner.generator.lock() = Some(handle);
                Ok(())
            }
            Err(e) => {
                started.iter().for_each(|i| i.stop());
                self.set_stopped();
                Err(Error::io("spawning the batch thread", e))
            }
        }
    }

    /// Marks a context whose start failed as stopped.
    fn set_stopped(&self) {
        self.inner.progress.lock().life = Life::Stopped;
        self.inner.changed.notify_all();
    }

    /// Fixes the zero time, checks the graph, restores a checkpoint, and
    /// builds the batch loop; returns it with the first batch time and the
    /// zero time.
    fn prepare(&self) -> Result<(JobGenerator, Time, Time)> {
        let inner = &self.inner;
        if let Some(e) = inner.graph.take_refusal() {
            return Err(e);
        }
        if inner.graph.recovery.checkpoint_dir().is_some()
            && let Some((stream, _)) = inner
                .graph
                .inputs
                .lock()
                .iter()
                .find(|(_, input)| !input.recoverable())
        {
            return Err(Error::StreamingState(format!(
                "stream {stream} is a queue_stream, whose datasets live only in this process: \
                 it cannot be recovered from a checkpoint; use a replayable input, or no checkpoint"
            )));
        }
        if inner.graph.in_cluster() {
            self.check_for_cluster()?;
        }
        let interval = inner.graph.batch;
        // The driver's clock: every process starts from the same zero time.
        let now = Time::from_millis(
            self.context()
                .on_driver("streaming start", || Ok(inner.clock.now().millis()))?,
        );
        let restored = inner.graph.recovery.take_restored();
        let zero = match (&restored, &inner.clock) {
            (Some(cp), _) => Time::from_millis(cp.zero_ms),
            (None, Clock::Manual(_)) => now,
            (None, Clock::System(_)) => {
                Time::from_millis(now.millis() / millis(interval) * millis(interval))
            }
        };
        inner.graph.set_zero_time(zero);
        let streams = all_streams(&inner.graph);
        let mut controller = None;
        if let Some(a) = inner.graph.pacing.adaptive() {
            let windowed = |s: &&Arc<dyn AnyStream>| {
                s.base().slide != interval || !s.base().reads_back.is_zero()
            };
            if let Some(s) = streams.iter().find(windowed) {
                return Err(Error::StreamingState(format!(
                    "stream {} ({}) is a processing-time window, which needs a fixed batch interval; with adaptive batching use event-time windows",
                    s.base().id,
                    s.base().name
                )));
            }
            controller = Some(Controller::new(a));
        }
        let remember = interval.max(inner.graph.pacing.remember());
        for op in inner.graph.outputs.lock().iter() {
            op.stream.remember(remember);
        }
        let max_remember = streams
            .iter()
            .map(|s| s.remembered())
            .max()
            .unwrap_or(interval);
        let mut first = zero + interval;
        if let Some(cp) = &restored {
            self.restore(cp, now)?;
            if let Some(done) = cp.last_done_ms {
                first = Time::from_millis(done) + interval;
                inner.progress.lock().last_done = Some(Time::from_millis(done));
            }
        }
        inner.graph.recovery.drop_restorers();
        let backpressure = inner.graph.pacing.backpressure();
        let custom = inner.graph.pacing.take_rate_estimator();
        let rate_estimator: Option<Box<dyn RateEstimator>> = match (backpressure.enabled, custom) {
            (false, _) => None,
            (true, Some(custom)) => Some(custom),
            (true, None) => Some(Box::new(PidRateEstimator::new(
                interval,
                backpressure.pid,
                backpressure.min_rate,
            )?)),
        };
        let receivers = inner
            .graph
            .inputs
            .lock()
            .iter()
            .filter(|(_, i)| i.rate_limited())
            .count();
        let generator = JobGenerator {
            shared: inner.clone(),
            rate_estimator,
            controller,
            receivers,
            max_remember,
        };
        Ok((generator, first, zero))
    }

    /// What cluster mode needs of the stream graph: inputs whose batches
    /// the driver can describe to the executors, and a checkpoint
    /// directory for stateful streams, whose state a lost executor takes
    /// with it and which is recomputed from its last checkpoint.
    fn check_for_cluster(&self) -> Result<()> {
        let graph = &self.inner.graph;
        if let Some((stream, _)) = graph.inputs.lock().iter().find(|(_, i)| !i.recoverable()) {
            return Err(Error::Cluster(format!(
                "stream {stream} is a queue_stream, whose datasets each process's program builds by itself: \
                 in cluster mode use a replayable input or a receiver"
            )));
        }
        if graph.recovery.checkpoint_dir().is_none()
            && let Some(stream) = graph.recovery.first_stateful()
        {
            return Err(Error::Cluster(format!(
                "stream {stream} keeps state, which in cluster mode needs a checkpoint directory \
                 (StreamingContext::checkpoint, on storage every process reaches): a lost executor's state \
                 is recomputed from its last checkpoint"
            )));
        }
        Ok(())
    }

    /// Blocks until the context stops; the error that stopped it, if any
    /// (reported once).
    ///
    /// ```
    /// use spate::streaming::{Dequeue, StopMode, StreamQueue, StreamingContext};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(20))?;
    /// ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// std::thread::scope(|s| {
    ///     // Another thread (a signal handler, an admin endpoint) stops it.
    ///     s.spawn(|| {
    ///         std::thread::sleep(Duration::from_millis(50));
    ///         ssc.stop(StopMode::Graceful)
    ///     });
    ///     ssc.await_termination() // returns once stopped
    /// })?;
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn await_termination(&self) -> Result<()> {
        let mut p = self.inner.progress.lock();
        while !p.terminated && p.life != Life::Stopped {
            self.inner.changed.wait(&mut p);
        }
        p.error.take().map_or(Ok(()), Err)
    }

    /// [`await_termination`](Self::await_termination) for at most
    /// `timeout`: `Ok(true)` if the context stopped.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, StreamQueue, StreamingContext};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(20))?;
    /// ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// // Still running after 50 ms: false.
    /// assert!(!ssc.await_termination_or_timeout(Duration::from_millis(50))?);
    /// ssc.stop(spate::streaming::StopMode::Immediately)?;
    /// assert!(ssc.await_termination_or_timeout(Duration::from_millis(50))?);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn await_termination_or_timeout(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut p = self.inner.progress.lock();
        while !p.terminated && p.life != Life::Stopped {
            if self.inner.changed.wait_until(&mut p, deadline).timed_out() {
                break;
            }
        }
        if let Some(e) = p.error.take() {
            return Err(e);
        }
        Ok(p.terminated || p.life == Life::Stopped)
    }

    /// Blocks until the batch at `time` (and every earlier one) finished;
    /// an error if the batches stopped first. For tests on a manual clock:
    /// advance the clock, then wait for the batch.
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(300));
    /// ssc.wait_for_batch(Time::from_millis(300))?; // the batches at 100, 200 and 300 ms ran
    /// assert_eq!(ssc.batches().len(), 3);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn wait_for_batch(&self, time: Time) -> Result<()> {
        let mut p = self.inner.progress.lock();
        loop {
            if p.last_done.is_some_and(|t| t >= time) {
                return Ok(());
            }
            if let Some(e) = p.error.take() {
                return Err(e);
            }
            if p.terminated || p.life == Life::Stopped {
                return Err(Error::StreamingState(format!(
                    "stopped before the batch at {time}"
                )));
            }
            self.inner.changed.wait(&mut p);
        }
    }

    /// Blocks until every batch at or before `time` finished: the batch
    /// thread waits for a later one. For tests on a manual clock whose
    /// batch times are not known in advance (adaptive batching).
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(250));
    /// // Every batch due by 250 ms (those at 100 and 200) has run.
    /// ssc.await_batches_until(Time::from_millis(250))?;
    /// assert_eq!(ssc.batches().len(), 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn await_batches_until(&self, time: Time) -> Result<()> {
        let mut p = self.inner.progress.lock();
        loop {
            if p.next_due.is_some_and(|t| t > time) {
                return Ok(());
            }
            if let Some(e) = p.error.take() {
                return Err(e);
            }
            if p.terminated || p.life == Life::Stopped {
                return Err(Error::StreamingState(format!(
                    "stopped before the batches up to {time}"
                )));
            }
            self.inner.changed.wait(&mut p);
        }
    }

    /// Stops the batches and the inputs. With [`StopMode::Graceful`], the
    /// data already received is processed first: batches keep running
    /// (without waiting for the clock) until no input has anything
    /// pending. The engine context stays usable.
    ///
    /// ```
    /// use spate::streaming::{StopMode, StreamQueue, StreamingContext};
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, std::time::Duration::from_millis(50))?;
    /// ssc.queue_stream(&StreamQueue::<u8>::new(), spate::streaming::Dequeue::OneAtATime).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// ssc.stop(StopMode::Graceful)?;
    /// assert_eq!(ctx.parallelize(vec![1, 2], 1).count()?, 2); // still usable
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn stop(&self, mode: StopMode) -> Result<()> {
        let graceful = mode == StopMode::Graceful;
        let inner = &self.inner;
        {
            let mut p = inner.progress.lock();
            match p.life {
                Life::Stopped => return Ok(()),
                Life::Initialized => {
                    p.life = Life::Stopped;
                    drop(p);
                    inner.changed.notify_all();
                    return Ok(());
                }
                Life::Active => {}
            }
        }
        for (_, input) in inner.graph.inputs.lock().iter() {
            input.stop();
        }
        inner.graceful.store(graceful, Ordering::SeqCst);
        inner.stop_requested.store(true, Ordering::SeqCst);
        inner.clock.wake();
        let handle = inner.generator.lock().take();
        if let Some(h) = handle {
            if h.thread().id() == std::thread::current().id() {
                // Called from an output on the batch thread: it ends after
                // this batch; joining it here would wait forever.
                *inner.generator.lock() = Some(h);
                inner.progress.lock().life = Life::Stopped;
                inner.changed.notify_all();
                return Ok(());
            }
            let _ = h.join();
        }
        let summary = self.summary();
        {
            let mut p = inner.progress.lock();
            p.life = Life::Stopped;
        }
        inner.changed.notify_all();
        inner.post(&StreamingEvent::Stopped(summary));
        Ok(())
    }

    /// The finished batches, oldest first (the most recent 100,000).
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let q = StreamQueue::new();
    /// q.push(ctx.parallelize(vec![1, 2, 3], 1));
    /// ssc.queue_stream(&q, Dequeue::OneAtATime).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(200));
    /// ssc.wait_for_batch(Time::from_millis(200))?;
    /// let times: Vec<u64> = ssc.batches().iter().map(|b| b.time.millis()).collect();
    /// assert_eq!(times, [100, 200]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn batches(&self) -> Vec<BatchInfo> {
        self.inner.batches.lock().clone()
    }

    /// Totals over the finished batches (those [`batches`](Self::batches)
    /// keeps).
    ///
    /// ```
    /// use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, Time};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// ssc.queue_stream(&StreamQueue::<u8>::new(), Dequeue::All).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// clock.advance(Duration::from_millis(300));
    /// ssc.wait_for_batch(Time::from_millis(300))?;
    /// let s = ssc.summary();
    /// assert_eq!(s.batches, 3);
    /// assert!(s.processing_p50 <= s.processing_p99);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn summary(&self) -> StreamingSummary {
        StreamingSummary::of(&self.inner.batches.lock())
    }
}

/// How many finished batches a context keeps for `batches()` and the
/// summary.
pub(super) const MAX_KEPT_BATCHES: usize = 100_000;

impl Drop for StreamingContext {
    fn drop(&mut self) {
        let _ = self.stop(StopMode::Immediately);
        // Outputs hold streams, which hold the graph: break the cycle.
        self.inner.graph.outputs.lock().clear();
        self.inner.graph.recovery.drop_restorers();
        self.inner.graph.inputs.lock().clear();
        self.inner.graph.recovery.release_checkpoint_dir();
    }
}

/// Every stream the outputs derive from, each once.
fn all_streams(graph: &Graph) -> Vec<Arc<dyn AnyStream>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut stack: Vec<Arc<dyn AnyStream>> = graph
        .outputs
        .lock()
        .iter()
        .map(|o| o.stream.clone())
        .collect();
    while let Some(s) = stack.pop() {
        if seen.insert(s.base().id) {
            stack.extend(s.base().parents.iter().cloned());
            out.push(s);
        }
    }
    out
}

impl Shared {
    pub(super) fn post(&self, event: &StreamingEvent) {
        let ctx = &self.graph.ctx;
        let file = ctx.runtime().event_file();
        let ui = ctx.ui_status();
        if file.is_some() || ui.is_some() {
            ctx.runtime().listeners().at_now(|t| {
                if let Some(file) = file {
                    file.post(crate::runtime::Source::Streaming, t, event.clone());
                }
                if let Some(ui) = ui {
                    ui.apply_streaming(super::status::row(event));
                }
            });
        }
        for l in self.listeners.read().iter() {
            l.on_event(event);
        }
    }
}
