//! The web UI in a real browser: headless Chromium (started by
//! `scripts/services.sh start chromium`, driven over its DevTools
//! protocol) opens every page while a stream and batch jobs run, waits for
//! the pages to update themselves, checks that the DAG, the task table and
//! the streaming charts are drawn, and saves a screenshot of each page
//! under `target/tmp/ui-screenshots/`. A system test: run by
//! `scripts/system-tests.sh`.

use crate::http::{get_json, request, wait_until};
use base64::Engine;
use serde_json::{Value, json};
use spate::streaming::{StopMode, StreamingContext};
use spate::{Context, StorageLevel};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Where the DevTools endpoint of the service listens.
fn devtools() -> String {
    let port = std::env::var("SPATE_CHROMIUM_PORT").unwrap_or_else(|_| "9222".into());
    format!("http://127.0.0.1:{port}")
}

/// One browser tab, driven over the DevTools protocol. Script errors and
/// console errors of the pages are collected as they are reported.
struct Tab {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    id: String,
    next: u64,
    errors: Vec<String>,
}

impl Tab {
    fn open() -> Tab {
        let r = request(&devtools(), "PUT", "/json/new?about:blank");
        assert_eq!(r.status, 200, "a new tab: {}", r.body);
        let target: Value = serde_json::from_str(&r.body).unwrap();
        let url = target["webSocketDebuggerUrl"].as_str().unwrap();
        let (ws, _) = tungstenite::connect(url).unwrap();
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        let mut tab = Tab {
            ws,
            id: target["id"].as_str().unwrap().to_string(),
            next: 0,
            errors: Vec::new(),
        };
        tab.call("Page.enable", json!({}));
        tab.call("Runtime.enable", json!({}));
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        tab
    }

    /// Sends one command and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => self
                    .errors
                    .push(v["params"]["exceptionDetails"].to_string()),
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.errors.push(v["params"]["args"].to_string())
                }
                _ => {}
            }
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `body` (the body of an async function that may use
    /// `waitFor(what, predicate)`) in the page and returns its value.
    fn eval(&mut self, body: &str) -> Value {
        let expression = format!(
            r##"(async () => {{
                const waitFor = (what, ok) => new Promise((resolve, reject) => {{
                    const t0 = Date.now();
                    const tick = () => {{
                        let v = null;
                        try {{ v = ok(); }} catch (e) {{}}
                        if (v) resolve(v);
                        else if (Date.now() - t0 > 30000) reject(new Error("timed out waiting for " + what
                            + "; the page says: " + (document.body ? document.body.innerText.slice(0, 400) : "")));
                        else setTimeout(tick, 50);
                    }};
                    tick();
                }});
                {body}
            }})()"##
        );
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "script failed: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Opens `url` and waits until the page has drawn itself once.
    fn go(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        let target = serde_json::to_string(url).unwrap();
        // Until the new document is the one evaluated in, and has rendered.
        wait_until(&format!("{url} to render"), || {
            let r = self.call(
                "Runtime.evaluate",
                json!({"expression": format!(
                    "location.href === new URL({target}).href && Number(document.body?.dataset.renders || 0) >= 1"),
                    "returnByValue": true}),
            );
            r["result"]["value"] == true
        });
    }

    /// Saves the whole page as `name`.png and returns the file.
    fn screenshot(&mut self, name: &str) -> PathBuf {
        let height = self.eval("return document.documentElement.scrollHeight;");
        let height = height.as_u64().unwrap().clamp(300, 4000);
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(&png[1..4], b"PNG", "{name} is a PNG");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.png"));
        std::fs::write(&file, &png).unwrap();
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        file
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        let _ = request(&devtools(), "GET", &format!("/json/close/{}", self.id));
    }
}

#[test]
#[ignore = "needs headless Chromium: scripts/system-tests.sh starts it"]
fn chromium_draws_every_page_and_the_pages_follow_a_running_stream_and_job() {
    let ctx = Context::builder()
        .parallelism(2)
        .ui_port(0)
        .console_progress(false)
        .build()
        .unwrap();
    let base = ctx.ui_url().unwrap().trim_end_matches('/').to_string();
    let api = format!("/api/v1/applications/{}", ctx.application_id());

    // A finished batch job: a persisted word count (two stages).
    let words = ctx
        .parallelize((0..5_000u32).map(|i| format!("w{}", i % 97)).collect(), 4)
        .map(|w| (w, 1u64))
        .persist(StorageLevel::MemoryAndDisk)
        .unwrap();
    assert_eq!(words.reduce_by_key(|a, b| a + b).count().unwrap(), 97);
    let word_count = get_json(&base, &format!("{api}/jobs"))
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "count")
        .expect("the word count job")
        .clone();
    assert_eq!(word_count["stageIds"].as_array().unwrap().len(), 2);

    // A stream that keeps running: 2 000 words a second in 200 ms batches.
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(200)).unwrap();
    ssc.generator_stream(2_000.0, |i| format!("w{}", i % 50))
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .foreach_rdd(|rdd, _| rdd.count().map(|_| ()))
        .unwrap();
    ssc.start().unwrap();

    let mut tab = Tab::open();
    let mut shots = Vec::new();

    // Streaming: the page follows new batches without being reloaded, and
    // draws its six charts.
    tab.go(&format!("{base}/streaming/"));
    let seen = tab.eval(
        r##"window.firstDocument = true;
        const rows = () => document.querySelectorAll("#batches tbody tr").length;
        const first = rows();
        await waitFor("new batches", () => rows() > first);
        await waitFor("three batches with input", () => [...document.querySelectorAll("#batches tbody tr")]
            .filter(tr => Number(tr.children[2].textContent) > 0).length >= 3);
        return {first, now: rows(), same: window.firstDocument === true,
            charts: document.querySelectorAll("#charts .chart").length,
            lines: [...document.querySelectorAll("#charts svg polyline")].map(p => p.points.length),
            drawn: [...document.querySelectorAll("#charts svg")].map(s => s.getBoundingClientRect().width)};"##,
    );
    assert!(seen["now"].as_u64() > seen["first"].as_u64(), "{seen}");
    assert_eq!(seen["same"], true, "the page updated in place: {seen}");
    assert_eq!(seen["charts"], 6, "{seen}");
    let lines = seen["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 6, "every chart has a line: {seen}");
    assert!(lines.iter().all(|n| n.as_u64().unwrap() >= 2), "{seen}");
    assert!(
        seen["drawn"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w.as_f64().unwrap() > 100.0),
        "{seen}"
    );
    shots.push(tab.screenshot("streaming"));

    // The word count's job page: the DAG as SVG, two stage boxes around
    // their datasets, one shuffle edge, the persisted dataset marked.
    let job = &word_count["jobId"];
    tab.go(&format!("{base}/jobs/job/?id={job}"));
    let dag = tab.eval(
        r##"await waitFor("the DAG", () => document.querySelector("#dag svg"));
        const box = s => [...document.querySelectorAll(s)].map(e => e.getBBox());
        return {stages: box("#dag g.stage rect").map(b => [b.width, b.height]),
            datasets: box("#dag g.rdd").length,
            shuffles: document.querySelectorAll("#dag .shuffle").length,
            text: document.querySelector("#dag svg").textContent,
            stageRows: document.querySelectorAll("#job-stages tbody tr").length};"##,
    );
    let stage_boxes = dag["stages"].as_array().unwrap();
    assert_eq!(stage_boxes.len(), 2, "{dag}");
    for b in stage_boxes {
        assert!(
            b[0].as_f64().unwrap() > 50.0 && b[1].as_f64().unwrap() > 20.0,
            "{dag}"
        );
    }
    assert_eq!(dag["shuffles"], 1, "{dag}");
    assert!(dag["datasets"].as_u64().unwrap() >= 3, "{dag}");
    assert!(
        dag["text"].as_str().unwrap().contains("MemoryAndDisk"),
        "{dag}"
    );
    assert_eq!(dag["stageRows"], 2, "{dag}");
    shots.push(tab.screenshot("job"));

    // Its map stage: one task-table row per task the API lists, and the
    // summary's rows.
    let stage = word_count["stageIds"].as_array().unwrap()[0].clone();
    let listed = get_json(&base, &format!("{api}/stages/{stage}/0/taskList"));
    tab.go(&format!("{base}/stages/stage/?id={stage}&attempt=0"));
    let tasks = tab.eval(
        r##"await waitFor("the task table", () => document.querySelector("#tasks"));
        return {rows: [...document.querySelectorAll("#tasks tbody tr")].map(tr => [...tr.children].map(td => td.textContent)),
            summary: document.querySelectorAll("#task-summary tbody tr").length,
            height: document.querySelector("#tasks").getBoundingClientRect().height};"##,
    );
    let rows = tasks["rows"].as_array().unwrap();
    assert_eq!(rows.len(), listed.as_array().unwrap().len(), "{tasks}");
    assert_eq!(rows.len(), 4, "{tasks}");
    for (row, t) in rows.iter().zip(listed.as_array().unwrap()) {
        assert_eq!(row[0], t["index"].to_string(), "{tasks}");
        assert_eq!(row[2], "SUCCESS", "{tasks}");
    }
    assert_eq!(tasks["summary"], 9, "{tasks}");
    assert!(tasks["height"].as_f64().unwrap() > 60.0, "{tasks}");
    shots.push(tab.screenshot("stage"));

    // The jobs page follows a job from running to finished in place.
    let release = Arc::new(AtomicBool::new(false));
    let held = {
        let (ctx, release) = (ctx.clone(), release.clone());
        std::thread::spawn(move || {
            ctx.parallelize((0..4u32).collect(), 2)
                .map(move |x| {
                    while !release.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    x
                })
                .sum()
        })
    };
    let mut running = Value::Null;
    wait_until("the held job", || {
        let jobs = get_json(&base, &format!("{api}/jobs"));
        let held = jobs.as_array().unwrap().iter().find(|j| j["name"] == "sum");
        running = held.map_or(Value::Null, |j| j["jobId"].clone());
        held.is_some_and(|j| j["status"] == "RUNNING")
    });
    let running = running.to_string();
    tab.go(&format!("{base}/jobs/"));
    tab.eval(&format!(
        r##"window.firstDocument = true;
        await waitFor("the held job running", () => [...document.querySelectorAll("#jobs tbody tr")]
            .find(tr => tr.children[0].textContent === "{running}" && tr.children[2].textContent === "RUNNING"));
        return true;"##
    ));
    shots.push(tab.screenshot("jobs-running"));
    release.store(true, Ordering::SeqCst);
    assert_eq!(held.join().unwrap().unwrap(), 6);
    let finished = tab.eval(&format!(
        r##"const row = () => [...document.querySelectorAll("#jobs tbody tr")].find(tr => tr.children[0].textContent === "{running}");
        await waitFor("the job to finish", () => row().children[2].textContent === "SUCCEEDED");
        return window.firstDocument === true;"##
    ));
    assert_eq!(finished, true, "the jobs page updated in place");
    shots.push(tab.screenshot("jobs"));

    // Storage and executors.
    tab.go(&format!("{base}/storage/"));
    let storage = tab.eval(
        r##"return [...document.querySelectorAll("#storage tbody tr")].map(tr => [...tr.children].map(td => td.textContent));"##,
    );
    let storage = storage.as_array().unwrap();
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert_eq!(storage[0][2], "MemoryAndDisk", "{storage:?}");
    assert_eq!(storage[0][3], "4/4", "{storage:?}");
    shots.push(tab.screenshot("storage"));
    tab.go(&format!("{base}/executors/"));
    let executors = tab.eval(
        r##"return [...document.querySelectorAll("#executors tbody tr")].map(tr => tr.children[0].textContent);"##,
    );
    assert_eq!(executors, json!(["driver"]));
    shots.push(tab.screenshot("executors"));

    assert!(
        tab.errors.is_empty(),
        "the pages reported errors: {:?}",
        tab.errors
    );
    ssc.stop(StopMode::Immediately).unwrap();
    for shot in &shots {
        assert!(std::fs::metadata(shot).unwrap().len() > 10_000, "{shot:?}");
    }
    eprintln!("screenshots: {:?}", shots);
}
