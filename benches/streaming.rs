//! Streaming benchmarks.
//!
//! ```text
//! cargo bench --bench streaming                 # empty-batch overhead + latency cases
//! cargo bench --bench streaming -- overhead     # only the empty-batch overhead
//! cargo bench --bench streaming -- latency [--spark] [--seconds S] [--warmup S]
//! cargo bench --bench streaming -- adaptive     # adaptive vs fixed 10 ms and 1 s intervals
//! ```
//!
//! *overhead*: a 1 ms batch interval over an input with no data, each batch
//! running a word count's worth of operators and an action; reports the
//! processing time and total delay per empty batch, beside one small job
//! (a one-element dataset counted) in the same process, for scale.
//!
//! *latency*: runs `../shared/bench/streaming/loadgen` on loopback and the
//! `stream_latency` example against it for the issue's cases (200k lines/s
//! at 10 ms, with and without `--words`; 1M lines/s at 100 ms), printing
//! each STREAMRESULT line; with `--spark`, also Spark Structured Streaming
//! on the same machine (`run_spark_stream.sh`, needs `install_peers.sh`).

use spate::Str;
use spate::streaming::{StreamQueue, StreamingContext};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn overhead() {
    let ctx = spate::Context::new().expect("context");
    // For scale: one small job outside streaming (a one-element dataset
    // counted on the pool).
    let mut jobs: Vec<Duration> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            ctx.parallelize(vec![1u64], 1).count().expect("count");
            t.elapsed()
        })
        .collect();
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(1)).expect("streaming context");
    let queue: StreamQueue<String> = StreamQueue::new();
    ssc.queue_stream(&queue, spate::streaming::Dequeue::OneAtATime)
        .flat_map(|line| {
            line.split_ascii_whitespace()
                .map(Str::from)
                .collect::<Vec<_>>()
        })
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .foreach_rdd(|rdd, _| rdd.count().map(|_| ()))
        .expect("output");
    ssc.start().expect("start");
    std::thread::sleep(Duration::from_secs(3));
    ssc.stop(spate::streaming::StopMode::Immediately)
        .expect("stop");
    let batches = ssc.batches();
    let mut processing: Vec<Duration> = batches.iter().map(|b| b.processing_time).collect();
    let mut total: Vec<Duration> = batches.iter().map(|b| b.total_delay).collect();
    let job_p50 = percentile(&mut jobs, 0.5);
    let p50 = percentile(&mut processing, 0.5);
    println!(
        "empty batch (1 ms interval, {} batches): processing p50 {:?} p99 {:?}; total delay p99 {:?} (clock ms granularity); one small job p50 {:?}; ratio {:.2}",
        batches.len(),
        p50,
        percentile(&mut processing, 0.99),
        percentile(&mut total, 0.99),
        job_p50,
        p50.as_secs_f64() / job_p50.as_secs_f64(),
    );
}

fn latency(spark: bool, seconds: u64, warmup: u64) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = std::env::var("HOME").unwrap_or_default();
    let peers = PathBuf::from(&home).join(".cache/spate-bench/peers");
    let loadgen = peers.join("build/loadgen/release/loadgen");
    let shared = manifest.join("../shared/bench/streaming");
    if !loadgen.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--release", "-q"])
            .env("CARGO_TARGET_DIR", peers.join("build/loadgen"))
            .current_dir(shared.join("loadgen"))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot build the load generator in {}", shared.display());
            return;
        }
    }
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--example",
            "stream_latency",
            "--quiet",
        ])
        .current_dir(manifest)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("cannot build the stream_latency example");
        return;
    }
    let client = manifest.join("target/release/examples/stream_latency");
    let cases: [(u64, u64, bool); 4] = [
        (200_000, 10, false),
        (200_000, 10, true),
        (1_000_000, 100, false),
        (1_000_000, 100, true),
    ];
    for (i, (rate, batch_ms, words)) in cases.into_iter().enumerate() {
        let port = 9970 + i as u16;
        let mut lg = Command::new(&loadgen)
            .args(["--port", &port.to_string(), "--rate", &rate.to_string()])
            .args(["--duration", &(seconds + warmup + 2).to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("loadgen");
        std::thread::sleep(Duration::from_millis(300));
        let mut cmd = Command::new(&client);
        cmd.args(["--connect", &format!("127.0.0.1:{port}")])
            .args(["--batch-ms", &batch_ms.to_string()])
            .args([
                "--duration",
                &seconds.to_string(),
                "--warmup",
                &warmup.to_string(),
            ]);
        if words {
            cmd.arg("--words");
        }
        let out = cmd.output().expect("stream_latency");
        let _ = lg.kill();
        let _ = lg.wait();
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines().filter(|l| l.starts_with("STREAMRESULT")) {
            println!("{line} target_rate={rate} words={words}");
        }
    }
    if spark {
        let script = shared.join("run_spark_stream.sh");
        for (rate, trigger, mode) in [(10_000, 0, "line"), (20_000, 0, "line"), (10_000, 0, "wc")] {
            let out = Command::new("bash")
                .arg(&script)
                .args([rate.to_string(), trigger.to_string(), seconds.to_string()])
                .args([mode.to_string(), warmup.to_string()])
                .env("PORT", "9980")
                .output();
            if let Ok(out) = out {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if line.starts_with("STREAMRESULT") || line.starts_with("LOADGEN") {
                        println!("{line} mode={mode}");
                    }
                }
            }
        }
    }
}

/// The `adaptive_batching` example in three modes under the same stepped
/// load (low, high, low), with a large running state so that every batch
/// has a real fixed cost.
fn adaptive() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--example",
            "adaptive_batching",
            "--quiet",
        ])
        .current_dir(manifest)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("cannot build the adaptive_batching example");
        return;
    }
    let program = manifest.join("target/release/examples/adaptive_batching");
    for mode in [vec![], vec!["--fixed-ms", "10"], vec!["--fixed-ms", "1000"]] {
        let out = Command::new(&program)
            .args(&mode)
            .args(["--keys", "200000", "--high", "300000", "--phase-secs", "5"])
            .output()
            .expect("adaptive_batching");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.starts_with("ADAPTIVE") {
                println!("{line}");
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let value = |a: &str, d: u64| {
        args.iter()
            .position(|x| x == a)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let all = !has("overhead") && !has("latency") && !has("adaptive");
    if all || has("overhead") {
        overhead();
    }
    if all || has("latency") {
        latency(
            has("--spark"),
            value("--seconds", 20),
            value("--warmup", 10),
        );
    }
    if all || has("adaptive") {
        adaptive();
    }
}
