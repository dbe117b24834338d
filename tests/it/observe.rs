//! The event log file against the in-memory listener that saw the same
//! events, and read back after the program ended or while it runs.

use spate::observe::{Logged, read_event_log};
use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext, StreamingEvent};
use spate::{Context, Error, Event, EventLog};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn debug_sorted<T: std::fmt::Debug>(events: impl IntoIterator<Item = T>) -> Vec<String> {
    let mut v: Vec<String> = events.into_iter().map(|e| format!("{e:?}")).collect();
    v.sort();
    v
}

#[test]
fn the_event_log_file_holds_every_event_listeners_saw_of_cached_retried_and_spilled_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::builder()
        .parallelism(2)
        .memory_limit(64 << 10) // the shuffle spills
        .event_log_dir(dir.path())
        .build()
        .unwrap();
    let seen = Arc::new(EventLog::default());
    ctx.add_listener(seen.clone());
    let failed_once = Arc::new(AtomicBool::new(false));
    let words = ctx
        .parallelize((0..20_000u32).map(|i| format!("w{}", i % 997)).collect(), 4)
        .map(move |w| {
            if w == "w5" && !failed_once.swap(true, Ordering::SeqCst) {
                panic!("the first attempt fails");
            }
            (w, 1u64)
        })
        .cache()
        .unwrap();
    let counts = words.reduce_by_key(|a, b| a + b);
    assert_eq!(counts.count().unwrap(), 997);
    assert_eq!(counts.lookup(&"w5".to_string()).unwrap(), [21]);
    let metrics = seen.job_metrics();
    assert!(
        metrics.tasks_failed >= 1 && metrics.spills >= 1,
        "{metrics:?}"
    );
    let path = ctx.event_log_path().unwrap().to_path_buf();
    let id = ctx.application_id().to_string();
    // Datasets hold their context: the log closes with the last of them.
    drop((words, counts));
    assert!(!path.exists());
    drop(ctx);

    let log = read_event_log(&path).unwrap();
    assert_eq!(log.app_id, id);
    assert_eq!((log.parallelism, log.processes), (2, 1));
    assert_eq!(log.spate_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(log.dropped, Some(0));
    assert!(log.start_ms <= log.events[0].time_ms);
    assert!(log.events.last().unwrap().time_ms <= log.end_ms.unwrap());
    // The same events as the listener (task threads interleave their
    // posts to the two listeners, so compare them as multisets).
    assert_eq!(
        debug_sorted(log.engine_events()),
        debug_sorted(seen.events())
    );
    let failures = log
        .engine_events()
        .filter(|e| matches!(e, Event::TaskEnd { failure: Some(f), .. } if f.contains("the first attempt fails")))
        .count();
    assert_eq!(failures, 1);
    let jobs_ok = log
        .engine_events()
        .filter(|e| {
            matches!(
                e,
                Event::JobEnd {
                    succeeded: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(jobs_ok, 2);
}

#[test]
fn streaming_batches_are_in_the_event_log_as_the_streaming_context_reported_them() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::builder()
        .parallelism(2)
        .event_log_dir(dir.path())
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let ssc = StreamingContext::with_manual_clock(&ctx, Duration::from_millis(100), clock.clone())
        .unwrap();
    let queue = StreamQueue::new();
    for batch in [vec![1, 2, 3], vec![], vec![4]] {
        queue.push(ctx.parallelize(batch, 2));
    }
    ssc.queue_stream(&queue, Dequeue::OneAtATime)
        .map(|x: i32| x * 2)
        .foreach_rdd(|rdd, _| rdd.count().map(|_| ()))
        .unwrap();
    ssc.start().unwrap();
    for _ in 0..3 {
        clock.advance(Duration::from_millis(100));
        ssc.wait_for_batch(clock.now()).unwrap();
    }
    let reported = ssc.batches();
    ssc.stop(spate::streaming::StopMode::Immediately).unwrap();
    let path = ctx.event_log_path().unwrap().to_path_buf();
    drop(ssc);
    drop(ctx);

    let log = read_event_log(&path).unwrap();
    let logged: Vec<_> = log
        .streaming_events()
        .filter_map(|e| match e {
            StreamingEvent::BatchCompleted(info) => Some(info.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(logged, reported);
    assert_eq!(logged.len(), 3);
    assert!(matches!(
        log.streaming_events().next(),
        Some(StreamingEvent::Started { .. })
    ));
    assert!(matches!(
        log.streaming_events().last(),
        Some(StreamingEvent::Stopped(_))
    ));
    // The batches' jobs are there too, interleaved in time order.
    let times: Vec<u64> = log.events.iter().map(|e| e.time_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        log.events
            .iter()
            .any(|e| matches!(e.event, Logged::Engine(Event::JobEnd { .. })))
    );
}

#[test]
fn a_running_programs_log_is_readable_and_complete_only_once_its_context_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::builder()
        .event_log_dir(dir.path())
        .build()
        .unwrap();
    ctx.parallelize(vec![1, 2, 3], 3).count().unwrap();
    let running = dir
        .path()
        .join(format!("{}.jsonl.inprogress", ctx.application_id()));
    // The writer flushes once its queue is empty; wait for the job's end.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = read_event_log(&running).unwrap();
        if log
            .engine_events()
            .any(|e| matches!(e, Event::JobEnd { .. }))
        {
            break log;
        }
        assert!(std::time::Instant::now() < deadline, "{log:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!((log.dropped, log.end_ms), (None, None));
    assert_eq!(
        log.engine_events()
            .filter(|e| matches!(e, Event::TaskEnd { .. }))
            .count(),
        3
    );
    assert!(!ctx.event_log_path().unwrap().exists());
    drop(ctx);
    assert!(!running.exists());
}

#[test]
fn an_event_log_dir_that_cannot_be_created_fails_the_build_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let err = Context::builder().event_log_dir(&file).build().unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == file),
        "{err}"
    );
}

#[test]
fn malformed_lines_and_unknown_schema_versions_are_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::builder()
        .event_log_dir(dir.path())
        .build()
        .unwrap();
    ctx.parallelize(vec![1], 1).count().unwrap();
    let path = ctx.event_log_path().unwrap().to_path_buf();
    drop(ctx);
    let good = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let check = |name: &str, text: String, line: usize, reason: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        match read_event_log(&p) {
            Err(Error::MalformedEventLog {
                path,
                line: l,
                reason: r,
            }) => {
                assert_eq!((path, l), (p, line), "{r}");
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("{name}: {other:?}"),
        }
    };
    let mut broken = lines.clone();
    broken[2] = "{\"schema\":1,\"time_ms\":5,\"source\":\"engine\",\"event\":{\"NoSuchEvent\":{}}}";
    check("unknown-event", broken.join("\n"), 3, "NoSuchEvent");
    let newer = lines[1].replacen("\"schema\":1", "\"schema\":2", 1);
    let mut v2 = lines.clone();
    v2[1] = &newer;
    check(
        "newer",
        v2.join("\n"),
        2,
        "schema version 2 (this Spate reads version 1)",
    );
    check(
        "not-a-log",
        lines[1..].join("\n"),
        1,
        "an event before the ApplicationStart line",
    );
    let mut garbage = lines.clone();
    garbage.insert(2, "not json");
    check("garbage", garbage.join("\n"), 3, "expected");
    // A last line cut short, as a running writer leaves it, is not an error.
    let cut = format!("{}\n{}", lines[..3].join("\n"), &lines[3][..10]);
    let p = dir.path().join("cut");
    std::fs::write(&p, cut).unwrap();
    assert_eq!(read_event_log(&p).unwrap().events.len(), 2);
}

#[test]
fn spate_event_log_dir_in_the_environment_turns_the_log_on() {
    if let Some(dir) = std::env::var_os("SPATE_EVENT_LOG_DIR") {
        let ctx = Context::new().unwrap();
        assert_eq!(
            ctx.event_log_path().unwrap().parent().unwrap(),
            std::path::Path::new(&dir)
        );
        ctx.parallelize(vec![1, 2], 2).count().unwrap();
        println!("LOG {}", ctx.event_log_path().unwrap().display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::run_child_test(&mut crate::common::child_test(
        "observe::spate_event_log_dir_in_the_environment_turns_the_log_on",
        ("SPATE_EVENT_LOG_DIR", dir.path().as_os_str()),
    ));
    let path = out
        .lines()
        .find_map(|l| l.split("LOG ").nth(1))
        .expect("the child prints its log's path");
    let log = read_event_log(path).unwrap();
    assert_eq!(log.dropped, Some(0));
    assert_eq!(
        log.engine_events()
            .filter(|e| matches!(e, Event::TaskEnd { failure: None, .. }))
            .count(),
        2
    );
}

/// A `tracing` subscriber that keeps span names and warning messages.
#[derive(Default)]
struct Recorder {
    spans: std::sync::Mutex<Vec<String>>,
    warnings: std::sync::Mutex<Vec<String>>,
    next: std::sync::atomic::AtomicU64,
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let name = span.metadata().name().to_string();
        self.spans.lock().unwrap().push(name);
        tracing::span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut m = Message(String::new());
            event.record(&mut m);
            self.warnings.lock().unwrap().push(m.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn jobs_stages_and_task_attempts_are_tracing_spans_and_a_failed_attempt_a_warning() {
    const CHILD: &str = "SPATE_TEST_TRACING_CHILD";
    if std::env::var_os(CHILD).is_some() {
        // A process of its own: the subscriber is global, for the task threads.
        let recorder = Arc::new(Recorder::default());
        tracing::subscriber::set_global_default(recorder.clone()).unwrap();
        let ctx = Context::builder().parallelism(2).build().unwrap();
        let failed_once = Arc::new(AtomicBool::new(false));
        let n = ctx
            .parallelize(vec![1, 2, 3, 4], 2)
            .map(move |x| {
                if x == 3 && !failed_once.swap(true, Ordering::SeqCst) {
                    panic!("first attempt");
                }
                x
            })
            .count()
            .unwrap();
        assert_eq!(n, 4);
        let mut spans = recorder.spans.lock().unwrap().clone();
        spans.sort();
        let warnings: Vec<String> = recorder.warnings.lock().unwrap().clone();
        println!("SPANS {}", spans.join(","));
        println!(
            "FAILED {}",
            warnings
                .iter()
                .filter(|w| w.contains("task attempt failed"))
                .count()
        );
        return;
    }
    let out = crate::common::run_child_test(&mut crate::common::child_test(
        "observe::jobs_stages_and_task_attempts_are_tracing_spans_and_a_failed_attempt_a_warning",
        (CHILD, std::ffi::OsStr::new("1")),
    ));
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.split(name).nth(1))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .trim()
            .to_string()
    };
    // One job, one (result) stage, two tasks of which one ran twice.
    assert_eq!(field("SPANS "), "job,stage,task,task,task");
    assert_eq!(field("FAILED "), "1");
}
