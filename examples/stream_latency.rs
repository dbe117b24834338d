//! End-to-end latency of micro-batches over lines from
//! `../shared/bench/streaming/loadgen` (`<send_unix_micros> w1 w2 ...`).
//! Each batch parses its lines (and with `--words` also counts the words);
//! when a batch's output is complete, the latency of each of its lines is
//! now − send time.
//!
//! ```text
//! loadgen --port 9999 --rate 200000 --duration 30 &
//! cargo run --release --example stream_latency -- --connect 127.0.0.1:9999 --batch-ms 10 --duration 20 --warmup 10 [--words]
//! ```
//! Prints `STREAMRESULT system=spate batch_ms=… rows=… p50_ms=… p90_ms=… p99_ms=… max_ms=… batches=…`.

mod workloads;

use clap::Parser;
use spate::Str;
use spate::streaming::{StopMode, StreamingContext};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(about = "Per-line latency of micro-batches over a TCP line source")]
struct Args {
    /// The load generator, HOST:PORT.
    #[arg(long)]
    connect: String,
    /// Batch interval in milliseconds.
    #[arg(long, default_value_t = 100)]
    batch_ms: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds whose lines are not measured.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Also count the words of each batch.
    #[arg(long)]
    words: bool,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let (host, port) = workloads::host_port(&args.connect)?;
    let ctx = args.ui.context()?;
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(args.batch_ms))?;
    let lines = ssc.socket_text_stream(&host, port);
    let measure_from = now_micros() + args.warmup * 1_000_000;
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let batches = Arc::new(Mutex::new(0u64));
    let (lat, nb, words) = (latencies.clone(), batches.clone(), args.words);
    lines.foreach_rdd(move |rdd, _time| {
        // The send time of each line.
        let sent = rdd.map(|line| {
            line.split(' ')
                .next()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0)
        });
        let sent = sent.collect()?;
        if words {
            rdd.flat_map(|line| {
                line.split_ascii_whitespace()
                    .skip(1)
                    .map(Str::from)
                    .collect::<Vec<_>>()
            })
            .map(|w| (w, 1u64))
            .reduce_by_key(|a, b| a + b)
            .count()?;
        }
        let now = now_micros();
        let mut lat = lat
            .lock()
            .map_err(|_| spate::Error::InvalidArgument("poisoned".into()))?;
        lat.extend(
            sent.iter()
                .filter(|&&t| t >= measure_from)
                .map(|&t| now.saturating_sub(t).min(u32::MAX as u64) as u32),
        );
        if let Ok(mut n) = nb.lock() {
            *n += 1;
        }
        Ok(())
    })?;
    ssc.start()?;
    std::thread::sleep(Duration::from_secs(args.warmup + args.duration));
    ssc.stop(StopMode::Graceful)?;
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
    };
    let n = batches.lock().map(|n| *n).unwrap_or(0);
    eprintln!("summary: {}", ssc.summary());
    println!(
        "STREAMRESULT system=spate batch_ms={} rows={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} batches={}",
        args.batch_ms,
        lat.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        lat.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
        n
    );
    args.ui.linger(&ctx);
    Ok(())
}
