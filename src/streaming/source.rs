//! Receiver-based inputs: a [`Receiver`] runs on its own thread and stores
//! records through a [`Sink`]; each batch takes everything stored since
//! the previous one, cut into blocks of consecutive records (one per core,
//! at least 1024 records each) that become the batch's partitions. Built in:
//! `socket_text_stream` (tokio TCP client) and `generator_stream` (a paced
//! generator for demos and benchmarks).

use super::context::StreamingContext;
use super::dstream::{DStream, NewStream, StreamOp};
use super::graph::{Graph, Input};
use super::rate::RateLimiter;
use super::time::Time;
use crate::data::{Data, Value};
use crate::error::{Error, Result};
use crate::rdd::Rdd;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A custom input (Spark's `Receiver`): [`receive`](Receiver::receive)
/// runs on a thread of its own from `start` until the context stops,
/// storing records through the sink. Records stored are not replayable:
/// after a crash, what was received but not yet processed is lost (use a
/// replayable input for exactly-once recovery).
pub trait Receiver: Send + 'static {
    /// The records it produces.
    type Item: Value;

    /// Prepares to receive (checks settings, opens what must be open),
    /// called by [`StreamingContext::start`] on its own thread before the
    /// receiving thread starts (Spark's `onStart`). An error fails `start`,
    /// which then stops every input it had started. By default nothing.
    fn on_start(&mut self) -> Result<()> {
        Ok(())
    }

    /// Receives until `sink.is_stopped()` or the input ends. An error is
    /// reported as an input warning and ends this receiver.
    fn receive(&mut self, sink: &Sink<Self::Item>) -> Result<()>;
}

/// Where a receiver stores records. Storing may block to respect the
/// receiver's rate limit (backpressure).
pub struct Sink<T> {
    shared: Arc<Received<T>>,
}

impl<T> Clone for Sink<T> {
    fn clone(&self) -> Self {
        Sink {
            shared: self.shared.clone(),
        }
    }
}

/// What a receiver stored and the batches have not taken yet.
pub(crate) struct Received<T> {
    records: Mutex<Vec<T>>,
    /// What each planned batch took: its records on the driver; on a
    /// cluster executor, how many the driver's batch holds (the executor
    /// fetches them from the driver).
    planned: Mutex<BTreeMap<Time, Planned<T>>>,
    stopped: AtomicBool,
    pub(crate) limiter: RateLimiter,
    /// Records that could not be stored as records (not UTF-8, ...), not
    /// yet reported.
    invalid: AtomicU64,
    warnings: Mutex<Vec<String>>,
}

impl<T: Data> Sink<T> {
    /// Stores records (waiting for the rate limit, if any). Returns `false`
    /// if the context is stopping and nothing was stored.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, Receiver, Sink, StreamingContext, Time};
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// struct Readings(mpsc::Sender<()>);
    /// impl Receiver for Readings {
    ///     type Item = f64;
    ///     fn receive(&mut self, sink: &Sink<f64>) -> spate::Result<()> {
    ///         sink.store(vec![20.5, 21.0]); // e.g. read from a device
    ///         let _ = self.0.send(());
    ///         Ok(())
    ///     }
    /// }
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let (tx, stored) = mpsc::channel();
    /// ssc.receiver_stream(Readings(tx)).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// stored.recv().unwrap();
    /// clock.advance(Duration::from_millis(100));
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// assert_eq!(ssc.batches()[0].input_records, 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn store(&self, records: Vec<T>) -> bool {
        if records.is_empty() {
            return true;
        }
        if !self
            .shared
            .limiter
            .acquire(records.len(), || self.is_stopped())
        {
            return false;
        }
        let mut buf = self.shared.records.lock();
        if buf.is_empty() {
            *buf = records;
        } else {
            buf.extend(records);
        }
        true
    }

    /// Whether the receiver should return.
    ///
    /// ```
    /// use spate::streaming::{Receiver, Sink, StopMode, StreamingContext};
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    /// struct Ticks(Arc<AtomicBool>);
    /// impl Receiver for Ticks {
    ///     type Item = u64;
    ///     fn receive(&mut self, sink: &Sink<u64>) -> spate::Result<()> {
    ///         let mut i = 0;
    ///         while !sink.is_stopped() {
    ///             sink.store(vec![i]);
    ///             i += 1;
    ///             std::thread::sleep(Duration::from_millis(1));
    ///         }
    ///         self.0.store(true, Ordering::SeqCst);
    ///         Ok(())
    ///     }
    /// }
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(20))?;
    /// let returned = Arc::new(AtomicBool::new(false));
    /// ssc.receiver_stream(Ticks(returned.clone())).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// std::thread::sleep(Duration::from_millis(50));
    /// ssc.stop(StopMode::Immediately)?; // waits for the receiver to return
    /// assert!(returned.load(Ordering::SeqCst));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// Counts `n` input records that could not be turned into records;
    /// they are reported with the next batch.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, Receiver, Sink, StreamingContext, Time};
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// struct Numbers(mpsc::Sender<()>);
    /// impl Receiver for Numbers {
    ///     type Item = i64;
    ///     fn receive(&mut self, sink: &Sink<i64>) -> spate::Result<()> {
    ///         let (good, bad): (Vec<_>, Vec<_>) = ["1", "x", "3"].iter().map(|s| s.parse::<i64>()).partition(|r| r.is_ok());
    ///         sink.store(good.into_iter().flatten().collect());
    ///         sink.report_invalid(bad.len() as u64); // counted, never dropped silently
    ///         let _ = self.0.send(());
    ///         Ok(())
    ///     }
    /// }
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let (tx, stored) = mpsc::channel();
    /// ssc.receiver_stream(Numbers(tx)).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// stored.recv().unwrap();
    /// clock.advance(Duration::from_millis(100));
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// let b = &ssc.batches()[0];
    /// assert_eq!((b.input_records, b.invalid_records), (2, 1));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn report_invalid(&self, n: u64) {
        self.shared.invalid.fetch_add(n, Ordering::Relaxed);
    }

    /// Reports a problem the receiver recovered from (a lost connection).
    ///
    /// ```
    /// use spate::streaming::{ManualClock, Receiver, Sink, StreamingContext, StreamingEvent, StreamingLog, Time};
    /// use std::sync::{Arc, mpsc};
    /// use std::time::Duration;
    /// struct Flaky(mpsc::Sender<()>);
    /// impl Receiver for Flaky {
    ///     type Item = u8;
    ///     fn receive(&mut self, sink: &Sink<u8>) -> spate::Result<()> {
    ///         sink.warn("connection lost, reconnected");
    ///         let _ = self.0.send(());
    ///         Ok(())
    ///     }
    /// }
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let log = Arc::new(StreamingLog::default());
    /// ssc.add_listener(log.clone());
    /// let (tx, warned) = mpsc::channel();
    /// ssc.receiver_stream(Flaky(tx)).foreach_rdd(|_, _| Ok(()))?;
    /// ssc.start()?;
    /// warned.recv().unwrap();
    /// clock.advance(Duration::from_millis(100));
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// let warnings: Vec<String> = log
    ///     .events()
    ///     .into_iter()
    ///     .filter_map(|e| match e {
    ///         StreamingEvent::InputWarning { message, .. } => Some(message),
    ///         _ => None,
    ///     })
    ///     .collect();
    /// assert_eq!(warnings, ["connection lost, reconnected"]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn warn(&self, message: impl Into<String>) {
        self.shared.warnings.lock().push(message.into());
    }
}

/// A batch's share of what a receiver stored.
enum Planned<T> {
    Records(Vec<T>),
    OnDriver(u64),
}

/// A receiver's place in the graph: its thread and what it stored.
struct ReceiverInput<T, R> {
    received: Arc<Received<T>>,
    receiver: Mutex<Option<R>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<T: Data, R: Receiver<Item = T>> Input for ReceiverInput<T, R> {
    fn start(&self) -> Result<()> {
        let Some(mut receiver) = self.receiver.lock().take() else {
            return Ok(());
        };
        receiver.on_start()?;
        let sink = Sink {
            shared: self.received.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("spate-receiver".into())
            .spawn(move || {
                if let Err(e) = receiver.receive(&sink) {
                    sink.warn(format!("receiver stopped: {e}"));
                }
            })
            .map_err(|e| Error::io("spawning a receiver thread", e))?;
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    fn stop(&self) {
        self.received.stopped.store(true, Ordering::SeqCst);
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }

    fn has_pending(&self) -> bool {
        !self.received.records.lock().is_empty()
    }

    fn take_warnings(&self) -> (u64, Vec<String>) {
        (
            self.received.invalid.swap(0, Ordering::Relaxed),
            std::mem::take(&mut *self.received.warnings.lock()),
        )
    }

    fn rate_limited(&self) -> bool {
        true
    }

    fn set_rate(&self, rate: Option<f64>) {
        self.received.limiter.set_rate(rate);
    }

    fn plan(&self, time: Time) -> Result<()> {
        let records = std::mem::take(&mut *self.received.records.lock());
        self.received
            .planned
            .lock()
            .insert(time, Planned::Records(records));
        Ok(())
    }

    fn describe(&self, time: Time) -> Result<Vec<u8>> {
        let n = match self.received.planned.lock().get(&time) {
            Some(Planned::Records(r)) => r.len() as u64,
            Some(Planned::OnDriver(n)) => *n,
            None => 0,
        };
        Ok(n.to_le_bytes().to_vec())
    }

    fn follow(&self, time: Time, plan: &[u8]) -> Result<()> {
        let n = <[u8; 8]>::try_from(plan).map_err(|_| {
            Error::Cluster(format!(
                "the driver's record count for the batch at {time} is {} bytes, not 8: do all processes run the same binary?",
                plan.len()
            ))
        })?;
        self.received
            .planned
            .lock()
            .insert(time, Planned::OnDriver(u64::from_le_bytes(n)));
        Ok(())
    }
}

/// The stream op of a receiver: a batch takes what was stored so far.
struct ReceiverStream<T> {
    received: Arc<Received<T>>,
    graph: std::sync::Weak<Graph>,
}

impl<T: Value> StreamOp<T> for ReceiverStream<T> {
    fn compute(&self, this: &DStream<T>, time: Time) -> Result<Option<Rdd<T>>> {
        let planned = self.received.planned.lock().remove(&time);
        let (records, n) = match planned {
            Some(Planned::Records(r)) => {
                let n = r.len() as u64;
                (r, n)
            }
            // The driver's batch of `n` records, fetched from it.
            Some(Planned::OnDriver(n)) => (Vec::new(), n),
            None => {
                let r = std::mem::take(&mut *self.received.records.lock());
                let n = r.len() as u64;
                (r, n)
            }
        };
        if let Some(g) = self.graph.upgrade() {
            g.meters.count_input(time, n);
        }
        let ctx = this.context();
        if n == 0 {
            return Ok(Some(ctx.empty()));
        }
        // One partition per core, unless the batch is tiny; the same count
        // in every process.
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let parts = ctx.default_parallelism().min(n.div_ceil(1024)).max(1);
        Ok(Some(ctx.parallelize(records, parts)))
    }
}

impl StreamingContext {
    /// A stream of what `receiver` stores, cut into batches.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, Receiver, Sink, StreamingContext, Time};
    /// use std::sync::{Arc, Mutex, mpsc};
    /// use std::time::Duration;
    /// /// Lines from any source a thread can read (here a fixed list).
    /// struct Lines(Vec<String>, mpsc::Sender<()>);
    /// impl Receiver for Lines {
    ///     type Item = String;
    ///     fn receive(&mut self, sink: &Sink<String>) -> spate::Result<()> {
    ///         sink.store(std::mem::take(&mut self.0));
    ///         let _ = self.1.send(());
    ///         Ok(())
    ///     }
    /// }
    /// let ctx = spate::Context::new()?;
    /// let clock = ManualClock::new();
    /// let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())?;
    /// let (tx, stored) = mpsc::channel();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.receiver_stream(Lines(vec!["a b".into(), "c".into()], tx))
    ///     .flat_map(|l| l.split(' ').map(String::from).collect::<Vec<_>>())
    ///     .foreach_rdd(move |rdd, _| Ok(sink.lock().unwrap().extend(rdd.collect()?)))?;
    /// ssc.start()?;
    /// stored.recv().unwrap();
    /// clock.advance(Duration::from_millis(100));
    /// ssc.wait_for_batch(Time::from_millis(100))?;
    /// assert_eq!(*seen.lock().unwrap(), ["a", "b", "c"]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn receiver_stream<R: Receiver>(&self, receiver: R) -> DStream<R::Item> {
        let graph = self.graph();
        let received = Arc::new(Received {
            records: Mutex::new(Vec::new()),
            planned: Mutex::new(BTreeMap::new()),
            stopped: AtomicBool::new(false),
            limiter: RateLimiter::new(graph.pacing.backpressure().initial_or_max()),
            invalid: AtomicU64::new(0),
            warnings: Mutex::new(Vec::new()),
        });
        let spec = NewStream::input("receiver_stream", graph);
        let stream = DStream::from_op(
            graph,
            spec,
            ReceiverStream {
                received: received.clone(),
                graph: Arc::downgrade(graph),
            },
        );
        graph.add_input_for(
            stream.node.base.id,
            format!("receiver_stream from {}", std::any::type_name::<R>()),
            Arc::new(ReceiverInput {
                received,
                receiver: Mutex::new(Some(receiver)),
                thread: Mutex::new(None),
            }),
        );
        stream
    }

    /// Lines of text from a TCP server at `host:port`: connects as a
    /// client (as Spark does), reconnects with backoff (100 ms doubling to
    /// 5 s) when the connection fails or closes, and splits on `\n`
    /// (dropping a trailing `\r`). Lines that are not UTF-8, and lines
    /// longer than [`DEFAULT_MAX_LINE_BYTES`], are skipped and counted in
    /// [`BatchInfo::invalid_records`](super::BatchInfo) (an over-long line
    /// is also reported as an input warning), so a peer that never sends a
    /// newline cannot grow the process without bound.
    ///
    /// ```
    /// use spate::streaming::{StopMode, StreamingContext};
    /// use std::io::Write;
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// // A server sending two lines (as `nc -lk 9999` would).
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// std::thread::spawn(move || {
    ///     let (mut peer, _) = listener.accept().unwrap();
    ///     peer.write_all(b"hello world\nbye\n").unwrap();
    ///     std::thread::sleep(Duration::from_secs(5));
    /// });
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(20))?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// ssc.socket_text_stream("127.0.0.1", port)
    ///     .foreach_rdd(move |rdd, _| Ok(sink.lock().unwrap().extend(rdd.collect()?)))?;
    /// ssc.start()?;
    /// for _ in 0..250 {
    ///     if seen.lock().unwrap().len() == 2 {
    ///         break;
    ///     }
    ///     std::thread::sleep(Duration::from_millis(20));
    /// }
    /// ssc.stop(StopMode::Immediately)?;
    /// assert_eq!(*seen.lock().unwrap(), ["hello world", "bye"]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn socket_text_stream(&self, host: &str, port: u16) -> DStream<String> {
        self.socket_text_stream_with(host, port, DEFAULT_MAX_LINE_BYTES)
    }

    /// [`socket_text_stream`](StreamingContext::socket_text_stream) with
    /// another cap on a line's length, in bytes (at least 1).
    ///
    /// ```no_run
    /// # let ctx = spate::Context::new().unwrap();
    /// # let ssc = spate::streaming::StreamingContext::new(&ctx, std::time::Duration::from_secs(1)).unwrap();
    /// // JSON documents of up to 16 MiB, one per line.
    /// let docs = ssc.socket_text_stream_with("localhost", 9999, 16 << 20);
    /// ```
    pub fn socket_text_stream_with(
        &self,
        host: &str,
        port: u16,
        max_line_bytes: usize,
    ) -> DStream<String> {
        self.receiver_stream(SocketLines {
            addr: format!("{host}:{port}"),
            max_line: max_line_bytes.max(1),
        })
    }

    /// `rate` records per second from `make(i)` for i = 0, 1, 2, ...: a
    /// self-contained input for demos and benchmarks (Spark's rate source).
    ///
    /// ```
    /// use spate::streaming::{StopMode, StreamingContext};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(20))?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// // 1 000 records a second: 0, 10, 20, ...
    /// ssc.generator_stream(1_000.0, |i| i * 10)
    ///     .foreach_rdd(move |rdd, _| Ok(sink.lock().unwrap().extend(rdd.collect()?)))?;
    /// ssc.start()?;
    /// while seen.lock().unwrap().len() < 5 {
    ///     std::thread::sleep(Duration::from_millis(10));
    /// }
    /// ssc.stop(StopMode::Immediately)?;
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen[..5], [0, 10, 20, 30, 40]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn generator_stream<T: Value>(
        &self,
        rate: f64,
        make: impl Fn(u64) -> T + Send + 'static,
    ) -> DStream<T> {
        self.receiver_stream(Generator {
            rate,
            make,
            next: 0,
        })
    }
}

struct Generator<F> {
    rate: f64,
    make: F,
    next: u64,
}

impl<T: Value, F: Fn(u64) -> T + Send + 'static> Receiver for Generator<F> {
    type Item = T;

    fn receive(&mut self, sink: &Sink<T>) -> Result<()> {
        let pace = RateLimiter::new(Some(self.rate));
        // Chunks of about a millisecond's worth of records.
        let chunk = ((self.rate / 1000.0) as usize).clamp(1, 4096);
        while !sink.is_stopped() {
            if !pace.acquire(chunk, || sink.is_stopped()) {
                break;
            }
            let records: Vec<T> = (self.next..self.next + chunk as u64)
                .map(&self.make)
                .collect();
            self.next += chunk as u64;
            if !sink.store(records) {
                break;
            }
        }
        Ok(())
    }
}

/// The longest line `socket_text_stream` accepts: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// The TCP line client behind `socket_text_stream`.
struct SocketLines {
    addr: String,
    max_line: usize,
}

impl Receiver for SocketLines {
    type Item = String;

    fn receive(&mut self, sink: &Sink<String>) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the socket receiver's runtime", e))?;
        rt.block_on(read_socket_lines(&self.addr, self.max_line, sink));
        Ok(())
    }
}

async fn read_socket_lines(addr: &str, max_line: usize, sink: &Sink<String>) {
    use tokio::io::AsyncReadExt;
    let mut backoff = Duration::from_millis(100);
    while !sink.is_stopped() {
        let stream = match tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                sink.warn(format!(
                    "cannot connect to {addr}: {e}; retrying in {backoff:?}"
                ));
                pause(&mut backoff, sink).await;
                continue;
            }
            Err(_) => {
                sink.warn(format!(
                    "connecting to {addr} timed out; retrying in {backoff:?}"
                ));
                pause(&mut backoff, sink).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = Duration::from_millis(100);
        let mut stream = stream;
        let mut buf = vec![0u8; 1 << 16];
        let mut lines = LineSplitter::new(max_line);
        loop {
            if sink.is_stopped() {
                return;
            }
            // Wake up now and then to notice a stop.
            let n = match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf))
                .await
            {
                Err(_) => continue,
                Ok(Ok(0)) => {
                    sink.warn(format!("{addr} closed the connection; reconnecting"));
                    break;
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    sink.warn(format!("reading from {addr} failed: {e}; reconnecting"));
                    break;
                }
            };
            let complete = lines.split(&buf[..n], sink, addr);
            if !sink.store(complete) {
                return;
            }
        }
        // A line cut off by the lost connection is incomplete: counted.
        if lines.has_partial() {
            sink.report_invalid(1);
        }
    }
}

async fn pause(backoff: &mut Duration, sink: &Sink<String>) {
    let mut left = *backoff;
    while !left.is_zero() && !sink.is_stopped() {
        let step = left.min(Duration::from_millis(50));
        tokio::time::sleep(step).await;
        left -= step;
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
}

/// Cuts a byte stream into lines, carrying an unfinished line from one
/// read to the next but never more than `max_line` bytes of it.
struct LineSplitter {
    partial: Vec<u8>,
    max_line: usize,
    /// Inside an over-long line: its bytes are dropped up to its newline.
    skipping: bool,
}

impl LineSplitter {
    fn new(max_line: usize) -> Self {
        LineSplitter {
            partial: Vec::new(),
            max_line,
            skipping: false,
        }
    }

    fn has_partial(&self) -> bool {
        self.skipping || !self.partial.is_empty()
    }

    /// The complete lines in `data` (after what was carried over); lines
    /// that are not UTF-8 or are too long are counted on `sink` and skipped.
    fn split(&mut self, data: &[u8], sink: &Sink<String>, from: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', data) {
            let piece = &data[start..end];
            start = end + 1;
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if self.partial.len() + piece.len() > self.max_line + 1 {
                self.partial.clear();
                self.oversized(sink, from);
                continue;
            }
            let line: &[u8] = if self.partial.is_empty() {
                piece
            } else {
                self.partial.extend_from_slice(piece);
                self.partial.as_slice()
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match std::str::from_utf8(line) {
                Ok(s) if s.len() <= self.max_line => lines.push(s.to_owned()),
                Ok(_) => self.oversized(sink, from),
                Err(_) => sink.report_invalid(1),
            }
            self.partial.clear();
        }
        let rest = &data[start..];
        if !self.skipping {
            if self.partial.len() + rest.len() > self.max_line + 1 {
                // Stop buffering: the line is too long whatever follows.
                self.partial = Vec::new();
                self.skipping = true;
                self.oversized(sink, from);
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
        lines
    }

    fn oversized(&self, sink: &Sink<String>, from: &str) {
        sink.report_invalid(1);
        sink.warn(format!(
            "skipped a line from {from} longer than {} bytes",
            self.max_line
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> Sink<String> {
        Sink {
            shared: Arc::new(Received {
                records: Mutex::new(Vec::new()),
                planned: Mutex::new(BTreeMap::new()),
                stopped: AtomicBool::new(false),
                limiter: RateLimiter::new(None),
                invalid: AtomicU64::new(0),
                warnings: Mutex::new(Vec::new()),
            }),
        }
    }

    #[test]
    fn lines_split_across_reads_are_joined_and_bad_utf8_is_counted() {
        let s = sink();
        let mut split = LineSplitter::new(DEFAULT_MAX_LINE_BYTES);
        let mut lines = split.split(b"ab\r\ncd", &s, "peer");
        lines.extend(split.split(b"ef\n\xff\xfe\nok\n", &s, "peer"));
        assert_eq!(lines, ["ab", "cdef", "ok"]);
        assert!(!split.has_partial());
        assert_eq!(s.shared.invalid.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_line_without_end_is_not_buffered_past_the_cap_and_is_counted_once() {
        let s = sink();
        let mut split = LineSplitter::new(16);
        let mut lines = split.split(b"0123456789abcdef\n", &s, "peer");
        assert_eq!(lines, ["0123456789abcdef"], "exactly the cap is fine");
        // A megabyte without a newline, in reads of 64 KiB.
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..16 {
            lines.extend(split.split(&chunk, &s, "peer"));
            assert!(split.partial.capacity() <= 17 + (1 << 16), "bounded");
            assert!(split.partial.len() <= 17);
        }
        lines.extend(split.split(b"xx\nafter\n0123456789abcdefg\nend\r\n", &s, "peer"));
        assert_eq!(lines, ["0123456789abcdef", "after", "end"]);
        assert_eq!(
            s.shared.invalid.load(Ordering::Relaxed),
            2,
            "two long lines"
        );
        let warnings = s.shared.warnings.lock().clone();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("longer than 16 bytes"), "{warnings:?}");
    }
}
