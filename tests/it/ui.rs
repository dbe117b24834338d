//! The web UI and its REST API, over HTTP, during and after real jobs (a
//! blocked job, a cached and spilled word count with a retried task, a
//! failing job, a stream), checked against the jobs' own events; and the
//! history view's answers against the live UI's.

use crate::http::{get_json, request, wait_until};
use serde_json::Value;
use spate::observe::HistoryServer;
use spate::streaming::{Dequeue, ManualClock, StreamQueue, StreamingContext};
use spate::{Context, Event, EventLog, StorageLevel};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The event stream's figures for one stage id: successful and failed
/// task ends, their summed metrics, their durations in ms.
struct StageFigures {
    ok: u64,
    failed: u64,
    metrics: spate::TaskMetrics,
    durations: Vec<f64>,
}

fn figures(events: &[Event], stage: u64) -> StageFigures {
    let mut f = StageFigures {
        ok: 0,
        failed: 0,
        metrics: Default::default(),
        durations: Vec::new(),
    };
    for e in events {
        if let Event::TaskEnd {
            task,
            failure,
            metrics,
            duration,
            ..
        } = e
            && task.stage == stage
        {
            if failure.is_some() {
                f.failed += 1;
            } else {
                f.ok += 1;
                f.durations.push(duration.as_secs_f64() * 1000.0);
                let m = &mut f.metrics;
                m.input_records += metrics.input_records;
                m.input_bytes += metrics.input_bytes;
                m.records_out += metrics.records_out;
                m.shuffle_records_read += metrics.shuffle_records_read;
                m.shuffle_records_written += metrics.shuffle_records_written;
                m.shuffle_bytes_read += metrics.shuffle_bytes_read;
                m.shuffle_bytes_written += metrics.shuffle_bytes_written;
                m.spilled_bytes += metrics.spilled_bytes;
            }
        }
    }
    f.durations.sort_by(f64::total_cmp);
    f
}

/// Every GET endpoint of the application, with its answer.
fn all_answers(base: &str, app: &str) -> Vec<(String, String)> {
    let api = format!("/api/v1/applications/{app}");
    let mut paths = vec![
        format!("{api}/jobs"),
        format!("{api}/stages"),
        format!("{api}/storage/rdd"),
        format!("{api}/executors"),
        format!("{api}/streaming/statistics"),
        format!("{api}/streaming/batches"),
    ];
    for job in get_json(base, &format!("{api}/jobs")).as_array().unwrap() {
        let id = &job["jobId"];
        paths.push(format!("{api}/jobs/{id}"));
        paths.push(format!("{api}/jobs/{id}/dag.svg"));
    }
    for stage in get_json(base, &format!("{api}/stages")).as_array().unwrap() {
        let (id, attempt) = (&stage["stageId"], &stage["attemptId"]);
        paths.push(format!("{api}/stages/{id}"));
        paths.push(format!("{api}/stages/{id}/{attempt}"));
        paths.push(format!("{api}/stages/{id}/{attempt}/taskList"));
        paths.push(format!("{api}/stages/{id}/{attempt}/taskSummary"));
    }
    for rdd in get_json(base, &format!("{api}/storage/rdd"))
        .as_array()
        .unwrap()
    {
        paths.push(format!("{api}/storage/rdd/{}", rdd["id"]));
    }
    paths
        .into_iter()
        .map(|p| {
            let r = request(base, "GET", &p);
            assert_eq!(r.status, 200, "GET {p}: {}", r.body);
            (p, r.body)
        })
        .collect()
}

#[test]
fn every_page_and_endpoint_shows_the_jobs_figures_live_and_the_history_view_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::builder()
        .parallelism(2)
        .memory_limit(64 << 10) // the shuffle spills, some cached blocks go to disk
        .event_log_dir(dir.path())
        .ui_port(0)
        .console_progress(false)
        .build()
        .unwrap();
    let base = ctx.ui_url().unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let app = ctx.application_id().to_string();
    let api = format!("/api/v1/applications/{app}");
    let seen = Arc::new(EventLog::default());
    ctx.add_listener(seen.clone());

    // A job held in its tasks: the API shows it running.
    let release = Arc::new(AtomicBool::new(false));
    let blocked = {
        let (ctx, release) = (ctx.clone(), release.clone());
        std::thread::spawn(move || {
            ctx.parallelize((0..4u32).collect(), 2)
                .map(move |x| {
                    while !release.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    x
                })
                .count()
        })
    };
    wait_until("a running job with running tasks", || {
        let jobs = get_json(&base, &format!("{api}/jobs"));
        jobs.as_array().unwrap().len() == 1
            && jobs[0]["status"] == "RUNNING"
            && jobs[0]["numActiveTasks"] == 2
    });
    let stages = get_json(&base, &format!("{api}/stages"));
    assert_eq!(stages[0]["status"], "ACTIVE");
    assert_eq!(stages[0]["numActiveTasks"], 2);
    let (stage, attempt) = (&stages[0]["stageId"], &stages[0]["attemptId"]);
    let tasks = get_json(&base, &format!("{api}/stages/{stage}/{attempt}/taskList"));
    assert_eq!(tasks.as_array().unwrap().len(), 2);
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "RUNNING")
    );
    let executors = get_json(&base, &format!("{api}/executors"));
    assert_eq!(executors[0]["activeTasks"], 2);
    release.store(true, Ordering::SeqCst);
    assert_eq!(blocked.join().unwrap().unwrap(), 4);

    // A cached (memory and disk) word count with a task that fails once, and a spilled shuffle.
    let failed_once = Arc::new(AtomicBool::new(false));
    let words = ctx
        .parallelize((0..20_000u32).map(|i| format!("w{}", i % 997)).collect(), 4)
        .map(move |w| {
            if w == "w5" && !failed_once.swap(true, Ordering::SeqCst) {
                panic!("the first attempt fails");
            }
            (w, 1u64)
        })
        .persist(StorageLevel::MemoryAndDisk)
        .unwrap();
    let counts = words.reduce_by_key(|a, b| a + b);
    assert_eq!(counts.count().unwrap(), 997);
    // A job that fails: every attempt panics.
    let err = ctx
        .parallelize(vec![1, 2, 3], 3)
        .map(|x: i32| {
            if x == 2 {
                panic!("two is refused");
            }
            x
        })
        .count()
        .unwrap_err();
    assert!(err.to_string().contains("two is refused"), "{err}");

    // A stream of three batches on the same context.
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

    let events = seen.events();
    // Jobs: one per JobEnd, the failed one with its cause.
    let jobs = get_json(&base, &format!("{api}/jobs"));
    let ends: Vec<(u64, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::JobEnd { job, succeeded, .. } => Some((*job, *succeeded)),
            _ => None,
        })
        .collect();
    assert_eq!(jobs.as_array().unwrap().len(), ends.len());
    for (job, succeeded) in &ends {
        let j = get_json(&base, &format!("{api}/jobs/{job}"));
        assert_eq!(j["status"], if *succeeded { "SUCCEEDED" } else { "FAILED" });
    }
    let failed: Vec<&Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["status"] == "FAILED")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["failureReason"]
            .as_str()
            .unwrap()
            .contains("two is refused")
    );

    // Stages and tasks: the figures of the events.
    let stages = get_json(&base, &format!("{api}/stages"));
    let submitted = events
        .iter()
        .filter(|e| matches!(e, Event::StageSubmitted { .. }))
        .count();
    assert_eq!(stages.as_array().unwrap().len(), submitted);
    let mut spilled_somewhere = false;
    let mut input_somewhere = 0;
    for s in stages.as_array().unwrap() {
        let id = s["stageId"].as_u64().unwrap();
        let f = figures(&events, id);
        let succeeded = events.iter().any(
            |e| matches!(e, Event::StageCompleted { stage, succeeded: true, .. } if *stage == id),
        );
        let status = if succeeded { "COMPLETE" } else { "FAILED" };
        assert_eq!(s["status"], status, "stage {id}: {s}");
        spilled_somewhere |= f.metrics.spilled_bytes > 0;
        let attempt = &s["attemptId"];
        let detail = get_json(&base, &format!("{api}/stages/{id}/{attempt}"));
        assert_eq!(detail["numCompleteTasks"], f.ok, "stage {id}");
        assert_eq!(detail["numFailedTasks"], f.failed, "stage {id}");
        assert_eq!(detail["inputRecords"], f.metrics.input_records);
        assert_eq!(detail["inputBytes"], f.metrics.input_bytes);
        input_somewhere += f.metrics.input_records;
        assert_eq!(detail["outputRecords"], f.metrics.records_out);
        assert_eq!(detail["shuffleReadRecords"], f.metrics.shuffle_records_read);
        assert_eq!(
            detail["shuffleWriteRecords"],
            f.metrics.shuffle_records_written
        );
        assert_eq!(detail["shuffleReadBytes"], f.metrics.shuffle_bytes_read);
        assert_eq!(detail["shuffleWriteBytes"], f.metrics.shuffle_bytes_written);
        assert_eq!(detail["diskBytesSpilled"], f.metrics.spilled_bytes);
        let list = get_json(&base, &format!("{api}/stages/{id}/{attempt}/taskList"));
        assert_eq!(list.as_array().unwrap().len() as u64, f.ok + f.failed);
        let summary = get_json(&base, &format!("{api}/stages/{id}/{attempt}/taskSummary"));
        let n = f.durations.len();
        let expected: Vec<f64> = [0.0, 0.25, 0.5, 0.75, 1.0]
            .iter()
            .map(|q| f.durations[((n - 1) as f64 * q).round() as usize])
            .collect();
        let got: Vec<f64> = summary["duration"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got, expected, "stage {id}");
    }
    assert!(spilled_somewhere, "the word count's shuffle spilled");
    assert!(
        input_somewhere >= 20_000,
        "the word count's words are input"
    );
    // The retried attempt is a failed task of the word count's map stage.
    let retried = events
        .iter()
        .find_map(|e| match e {
            Event::TaskEnd {
                task,
                failure: Some(f),
                ..
            } if f.contains("the first attempt fails") => Some(*task),
            _ => None,
        })
        .unwrap();
    let list = get_json(&base, &format!("{api}/stages/{}/0/taskList", retried.stage));
    let failed_task = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"] == "FAILED")
        .unwrap();
    assert_eq!(failed_task["index"], retried.partition);
    assert!(
        failed_task["errorMessage"]
            .as_str()
            .unwrap()
            .contains("the first attempt fails")
    );

    // Storage: what the context itself reports.
    let storage = get_json(&base, &format!("{api}/storage/rdd"));
    let info = ctx.storage_info();
    assert_eq!(storage.as_array().unwrap().len(), info.len());
    for (api_rdd, i) in storage.as_array().unwrap().iter().zip(&info) {
        assert_eq!(api_rdd["id"], i.rdd.0);
        assert_eq!(api_rdd["storageLevel"], "MemoryAndDisk");
        assert_eq!(api_rdd["numPartitions"], i.partitions);
        assert_eq!(
            api_rdd["numCachedPartitions"],
            i.memory_partitions + i.disk_partitions
        );
        assert_eq!(api_rdd["memoryUsed"], i.memory_bytes);
        assert_eq!(api_rdd["diskUsed"], i.disk_bytes);
    }
    assert!(info[0].disk_partitions > 0, "{info:?}");

    // Executors: the one process, with every task.
    let executors = get_json(&base, &format!("{api}/executors"));
    let task_ends = |failed: bool| {
        events
            .iter()
            .filter(|e| matches!(e, Event::TaskEnd { failure, .. } if failure.is_some() == failed))
            .count()
    };
    assert_eq!(executors.as_array().unwrap().len(), 1);
    assert_eq!(executors[0]["id"], "driver");
    assert_eq!(executors[0]["activeTasks"], 0);
    assert_eq!(executors[0]["completedTasks"], task_ends(false));
    assert_eq!(executors[0]["failedTasks"], task_ends(true));

    // Streaming: the batches the streaming context reported.
    let batches = get_json(&base, &format!("{api}/streaming/batches"));
    let batches: Vec<&Value> = batches.as_array().unwrap().iter().rev().collect();
    assert_eq!(batches.len(), reported.len());
    for (b, r) in batches.iter().zip(&reported) {
        assert_eq!(b["batchTime"], r.time.millis());
        assert_eq!(b["inputSize"], r.input_records);
        assert_eq!(
            b["processingTime"].as_f64().unwrap(),
            r.processing_time.as_secs_f64() * 1000.0
        );
        assert_eq!(
            b["totalDelay"].as_f64().unwrap(),
            r.total_delay.as_secs_f64() * 1000.0
        );
    }
    let stats = get_json(&base, &format!("{api}/streaming/statistics"));
    assert_eq!(stats["started"]["batchDuration"], 100.0);
    assert_eq!(stats["numBatches"], 3);

    // The DAG of the word count: two stages, one shuffle edge, the persisted dataset filled.
    let word_count_job = ends[1].0;
    let svg = request(
        &base,
        "GET",
        &format!("{api}/jobs/{word_count_job}/dag.svg"),
    );
    assert_eq!(
        (svg.status, svg.content_type.as_str()),
        (200, "image/svg+xml")
    );
    assert_eq!(svg.body.matches(r#"<g class="stage">"#).count(), 2);
    assert_eq!(svg.body.matches(r#"class="shuffle""#).count(), 1);
    assert!(svg.body.contains("MemoryAndDisk"));

    // Every page is served, with its script and style.
    for page in [
        "/",
        "/jobs/",
        "/jobs/job/?id=1",
        "/stages/",
        "/stages/stage/?id=1&attempt=0",
        "/storage/",
        "/executors/",
        "/streaming/",
    ] {
        let r = request(&base, "GET", page);
        assert_eq!(r.status, 200, "{page}");
        assert!(r.content_type.starts_with("text/html"), "{page}");
        assert!(r.body.contains("/static/app.js"), "{page}");
    }
    let script = request(&base, "GET", "/static/app.js");
    assert!(script.content_type.starts_with("text/javascript"));
    assert!(script.body.contains("/api/v1/applications"));
    assert_eq!(request(&base, "GET", "/static/style.css").status, 200);

    // Unknown or malformed ids and paths are 404s; the UI is read-only.
    for bad in [
        "/api/v1/applications/no-such-app/jobs".to_string(),
        format!("{api}/jobs/99999"),
        format!("{api}/jobs/abc"),
        format!("{api}/jobs/-1"),
        format!("{api}/jobs/+1"),
        format!("{api}/jobs/99999999999999999999999"),
        format!("{api}/stages/1/x/taskList"),
        format!("{api}/stages/1/7"),
        format!("{api}/storage/rdd/123456"),
        format!("{api}/nothing"),
        format!("{api}/jobs/1/dag.svg/more"),
        "/api/v1/".to_string(),
        "/no/such/page".to_string(),
    ] {
        assert_eq!(request(&base, "GET", &bad).status, 404, "{bad}");
    }
    assert_eq!(request(&base, "POST", &format!("{api}/jobs")).status, 405);
    assert_eq!(request(&base, "DELETE", "/").status, 405);

    // The history view of the running application's log, once the writer
    // caught up, answers every endpoint as the live UI does.
    let live = all_answers(&base, &app);
    let history = HistoryServer::start(dir.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let hbase = history.url();
    wait_until("the history view to catch up", || {
        request(&hbase, "GET", &format!("{api}/jobs")).body == live[0].1
            && request(&hbase, "GET", &format!("{api}/streaming/statistics")).body == live[4].1
    });
    for (path, answer) in &live {
        assert_eq!(&request(&hbase, "GET", path).body, answer, "GET {path}");
    }
    let listed = get_json(&hbase, "/api/v1/applications");
    assert_eq!(listed[0]["id"], app.as_str());
    assert_eq!(listed[0]["attempts"][0]["completed"], false);

    // After the program ends, the complete log shows the same jobs and stages, ended.
    drop((words, counts, ssc));
    drop(ctx);
    wait_until("the complete log", || {
        get_json(&hbase, "/api/v1/applications")[0]["attempts"][0]["completed"] == true
    });
    for (path, answer) in live
        .iter()
        .filter(|(p, _)| p.contains("/jobs") || p.contains("/stages"))
    {
        assert_eq!(&request(&hbase, "GET", path).body, answer, "GET {path}");
    }
    // Dropping the datasets unpersisted them.
    assert_eq!(
        get_json(&hbase, &format!("{api}/storage/rdd")),
        Value::Array(vec![])
    );
}

#[test]
fn a_busy_port_is_an_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Context::builder().ui_port(port).build().err().unwrap();
    assert!(
        err.to_string()
            .contains(&format!("web UI cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn clients_that_never_read_or_never_finish_a_request_stall_neither_jobs_nor_other_clients() {
    use std::io::Write as _;
    let ctx = Context::builder()
        .parallelism(2)
        .ui_port(0)
        .console_progress(false)
        .build()
        .unwrap();
    let base = ctx.ui_url().unwrap();
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let api = format!("/api/v1/applications/{}", ctx.application_id());
    // A stage of 2 000 tasks: its task list is a big answer.
    assert_eq!(ctx.range(0, 2_000, 1, 2_000).count().unwrap(), 2_000);
    let big = format!("{api}/stages/0/0/taskList");
    let size = request(&base, "GET", &big).body.len();
    assert!(size > 200_000, "{size} bytes");
    // Clients that ask for it again and again (more than the socket
    // buffers hold) and never read a byte, and clients that never finish
    // their request line.
    let mut stalled = Vec::new();
    for i in 0..12 {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        if i % 2 == 0 {
            for _ in 0..20 {
                write!(conn, "GET {big} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
            }
        } else {
            write!(conn, "GET /api/v1/appli").unwrap();
        }
        stalled.push(conn);
    }
    // Jobs still run and the UI still follows them, for another client.
    let ctx2 = ctx.clone();
    let jobs = std::thread::spawn(move || {
        (0..20)
            .map(|i| ctx2.range(0, 1_000, 1, 8).map(move |x| x * i).count())
            .collect::<spate::Result<Vec<u64>>>()
    });
    let counted = jobs.join().unwrap().unwrap();
    assert_eq!(counted, vec![1_000; 20]);
    let listed = get_json(&base, &format!("{api}/jobs"));
    assert_eq!(listed.as_array().unwrap().len(), 21);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "SUCCEEDED")
    );
    assert_eq!(request(&base, "GET", &big).body.len(), size);
    drop(stalled); // held open until here
}
