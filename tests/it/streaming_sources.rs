//! Receiver inputs on the system clock: the TCP line client, the generator,
//! and backpressure.

use crate::common;
use spate::streaming::{Backpressure, StreamingContext, StreamingEvent, StreamingLog};
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Collects every record of `stream`, across batches.
fn gather<T: spate::Value>(stream: &spate::streaming::DStream<T>) -> Arc<Mutex<Vec<T>>> {
    let out: Arc<Mutex<Vec<T>>> = Arc::default();
    let sink = out.clone();
    stream
        .foreach_rdd(move |rdd, _| {
            sink.lock().unwrap().extend(rdd.collect()?);
            Ok(())
        })
        .unwrap();
    out
}

fn wait_until(deadline: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

#[test]
fn the_socket_client_reads_lines_reconnects_and_counts_bad_utf8() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // First connection: two good lines, one that is not UTF-8, then a
        // close in the middle of nowhere.
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"a b\r\n\xff\xfe\nc\n").unwrap();
        drop(c);
        // The client reconnects.
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"d\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    let ctx = common::ctx();
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(20)).unwrap();
    let log = Arc::new(StreamingLog::default());
    ssc.add_listener(log.clone());
    let lines = gather(&ssc.socket_text_stream("127.0.0.1", port));
    ssc.start().unwrap();
    assert!(wait_until(Duration::from_secs(10), || lines
        .lock()
        .unwrap()
        .len()
        >= 3));
    server.join().unwrap();
    ssc.stop(spate::streaming::StopMode::Graceful).unwrap();
    let mut got = lines.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["a b", "c", "d"]);
    let invalid: u64 = log.batches().iter().map(|b| b.invalid_records).sum();
    assert_eq!(invalid, 1, "the line that is not UTF-8 is counted");
    let received: u64 = log.batches().iter().map(|b| b.input_records).sum();
    assert_eq!(received, 3);
    let warnings: Vec<String> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            StreamingEvent::InputWarning { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("closed the connection")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("could not be read")),
        "{warnings:?}"
    );
}

#[test]
fn the_socket_client_retries_until_a_server_appears() {
    // Reserve a port, close it, and open the server only later.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctx = common::ctx();
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(20)).unwrap();
    let lines = gather(&ssc.socket_text_stream("127.0.0.1", port));
    ssc.start().unwrap();
    std::thread::sleep(Duration::from_millis(250));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (mut c, _) = listener.accept().unwrap();
    c.write_all(b"late\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || !lines
        .lock()
        .unwrap()
        .is_empty()));
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    assert_eq!(*lines.lock().unwrap(), ["late"]);
}

#[test]
fn a_graceful_stop_processes_every_generated_record_exactly_once() {
    let ctx = common::ctx();
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(10)).unwrap();
    let got = gather(&ssc.generator_stream(20_000.0, |i| i));
    ssc.start().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    ssc.stop(spate::streaming::StopMode::Graceful).unwrap();
    let mut got = got.lock().unwrap().clone();
    got.sort();
    let n = got.len() as u64;
    assert!(n > 1000, "generated {n}");
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "no gap, no duplicate");
    let summary = ssc.summary();
    assert_eq!(summary.input_records, n);
}

#[test]
fn backpressure_caps_and_lowers_the_receiving_rate_when_batches_fall_behind() {
    let ctx = common::ctx();
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(20)).unwrap();
    ssc.set_backpressure(Backpressure {
        enabled: true,
        initial_rate: None,
        max_rate: Some(20_000.0),
        min_rate: 100.0,
        ..Backpressure::default()
    })
    .unwrap();
    let log = Arc::new(StreamingLog::default());
    ssc.add_listener(log.clone());
    // Generates far more than the cap; each batch takes 40 ms, twice the
    // interval, so the rate must come down.
    ssc.generator_stream(200_000.0, |i| i)
        .foreach_rdd(|rdd, _| {
            rdd.count()?;
            std::thread::sleep(Duration::from_millis(40));
            Ok(())
        })
        .unwrap();
    ssc.start().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    let rates: Vec<f64> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            StreamingEvent::RateChanged { rate, .. } => Some(rate),
            _ => None,
        })
        .collect();
    assert!(rates.len() >= 3, "{rates:?}");
    assert!(rates.iter().all(|r| *r <= 20_000.0), "capped: {rates:?}");
    assert!(rates.iter().any(|r| *r < 15_000.0), "lowered: {rates:?}");
    // Received no faster than the cap (plus a small burst).
    let batches = log.batches();
    let received: u64 = batches.iter().map(|b| b.input_records).sum();
    let span = batches.last().unwrap().time - batches[0].time + Duration::from_millis(20);
    assert!(
        received as f64 <= 20_000.0 * span.as_secs_f64() * 1.2 + 2_000.0,
        "{received} records in {span:?}"
    );
}

/// Records what it is called with; answers 1000 plus the batch time in ms.
struct Recording(Arc<std::sync::Mutex<Vec<(u64, u64, Duration, Duration)>>>);

impl spate::streaming::RateEstimator for Recording {
    fn compute(
        &mut self,
        time: spate::streaming::Time,
        records: u64,
        processing: Duration,
        scheduling: Duration,
    ) -> Option<f64> {
        self.0
            .lock()
            .unwrap()
            .push((time.millis(), records, processing, scheduling));
        Some(1000.0 + time.millis() as f64)
    }
}

#[test]
fn a_custom_rate_estimator_sees_every_batch_and_sets_the_rate_capped_by_the_maximum() {
    use spate::streaming::{ManualClock, Time};
    let ctx = common::ctx();
    let clock = ManualClock::new();
    let tick = Duration::from_millis(100);
    let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    ssc.set_backpressure(Backpressure {
        enabled: true,
        max_rate: Some(1250.0),
        ..Backpressure::default()
    })
    .unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    ssc.set_rate_estimator(Recording(calls.clone())).unwrap();
    let log = Arc::new(StreamingLog::default());
    ssc.add_listener(log.clone());
    // One receiver, generating in real time; batches on the manual clock.
    ssc.generator_stream(2000.0, |i| i)
        .foreach_rdd(|rdd, _| rdd.count().map(|_| ()))
        .unwrap();
    ssc.start().unwrap();
    for b in 1..=3 {
        std::thread::sleep(Duration::from_millis(60));
        clock.advance(tick);
        ssc.wait_for_batch(Time::from_millis(100 * b)).unwrap();
    }
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    let calls = calls.lock().unwrap().clone();
    let batches = log.batches();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for (call, b) in calls.iter().zip(&batches) {
        assert_eq!(
            *call,
            (
                b.time.millis(),
                b.input_records,
                b.processing_time,
                b.scheduling_delay
            )
        );
    }
    assert!(calls.iter().any(|c| c.1 > 0), "records reach it: {calls:?}");
    let rates: Vec<f64> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            StreamingEvent::RateChanged { rate, .. } => Some(rate),
            _ => None,
        })
        .collect();
    assert_eq!(rates, [1100.0, 1200.0, 1250.0], "capped at the maximum");
    let err = ssc
        .set_rate_estimator(Recording(Arc::default()))
        .unwrap_err();
    assert!(err.to_string().contains("before start"), "{err}");
}

#[test]
fn backpressure_settings_out_of_their_domain_are_refused_when_set() {
    use spate::streaming::PidGains;
    let ctx = common::ctx();
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(50)).unwrap();
    let negative_gain = Backpressure {
        enabled: true,
        pid: PidGains {
            derivative: -0.5,
            ..PidGains::default()
        },
        ..Backpressure::default()
    };
    let zero_max = Backpressure {
        max_rate: Some(0.0),
        ..Backpressure::default()
    };
    let nan_initial = Backpressure {
        initial_rate: Some(f64::NAN),
        ..Backpressure::default()
    };
    for (settings, expected) in [
        (negative_gain, "derivative gain is -0.5"),
        (zero_max, "max_rate must be finite and positive, not 0"),
        (
            nan_initial,
            "initial_rate must be finite and positive, not NaN",
        ),
    ] {
        let err = ssc.set_backpressure(settings).unwrap_err();
        assert!(
            matches!(&err, spate::Error::InvalidArgument(m) if m.contains(expected)),
            "{err}"
        );
    }
    // Valid gains are kept and the context runs with them.
    ssc.set_backpressure(Backpressure {
        enabled: true,
        pid: PidGains {
            derivative: 0.5,
            ..PidGains::default()
        },
        ..Backpressure::default()
    })
    .unwrap();
    ssc.generator_stream(1000.0, |i| i)
        .foreach_rdd(|_, _| Ok(()))
        .unwrap();
    ssc.start().unwrap();
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
}

/// Runs until stopped, counting the receiving threads that ended.
struct Counted {
    ended: Arc<std::sync::atomic::AtomicUsize>,
}

impl spate::streaming::Receiver for Counted {
    type Item = u64;
    fn receive(&mut self, sink: &spate::streaming::Sink<u64>) -> spate::Result<()> {
        while !sink.is_stopped() {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// Fails at start, as a receiver with bad settings would.
struct Misconfigured;

impl spate::streaming::Receiver for Misconfigured {
    type Item = u64;
    fn on_start(&mut self) -> spate::Result<()> {
        Err(spate::Error::InvalidArgument("no such topic".into()))
    }
    fn receive(&mut self, _: &spate::streaming::Sink<u64>) -> spate::Result<()> {
        unreachable!("never started")
    }
}

#[test]
fn a_start_that_fails_part_way_stops_the_receivers_it_had_started() {
    let ctx = common::ctx();
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(20)).unwrap();
    let ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first = ssc.receiver_stream(Counted {
        ended: ended.clone(),
    });
    let second = ssc.receiver_stream(Misconfigured);
    first.union(&second).foreach_rdd(|_, _| Ok(())).unwrap();
    let err = ssc.start().unwrap_err();
    assert!(
        matches!(&err, spate::Error::InvalidArgument(m) if m == "no such topic"),
        "{err}"
    );
    // The first receiver's thread was started and is stopped again,
    // joined before start returned.
    assert_eq!(
        ended.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the first receiver's thread still runs"
    );
    assert!(matches!(ssc.start(), Err(spate::Error::StreamingState(_))));
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
}
