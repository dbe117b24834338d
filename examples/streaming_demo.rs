//! A self-contained streaming demo: a built-in generator produces lines of
//! words at a fixed rate; every 200 ms batch counts them, a running total is
//! kept per word, and the latency of each batch is printed. Runs for a few
//! seconds with no set-up.
//!
//! ```text
//! cargo run --release --example streaming_demo [-- --seconds 5 --rate 50000 --batch-ms 200]
//! ```
//!
//! With `--lines N` only the first N lines hold words and the demo stops
//! once all of them are counted, so its final totals are exact. On a
//! cluster the running totals need a checkpoint directory every process
//! reaches (a lost executor's state is recomputed from it):
//!
//! ```text
//! spate-launch -n 3 -- target/release/examples/streaming_demo --lines 20000 --checkpoint /tmp/demo-ckpt
//! ```

mod workloads;

use clap::Parser;
use spate::Str;
use spate::streaming::{StopMode, StreamingContext, StreamingEvent, StreamingListener};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Streaming word counts of generated lines, with latency figures")]
struct Args {
    /// How long to run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Generated lines per second.
    #[arg(long, default_value_t = 50_000.0)]
    rate: f64,
    /// Batch interval in milliseconds.
    #[arg(long, default_value_t = 200)]
    batch_ms: u64,
    /// Only the first N lines hold words; stop once they are all counted
    /// (or after `--seconds`).
    #[arg(long)]
    lines: Option<u64>,
    /// Checkpoint directory (needed on a cluster).
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

const WORDS: [&str; 8] = [
    "spate", "stream", "batch", "window", "state", "rust", "data", "flow",
];

/// Prints one line per batch: its records and delays.
struct BatchPrinter;

impl StreamingListener for BatchPrinter {
    fn on_event(&self, event: &StreamingEvent) {
        if let StreamingEvent::BatchCompleted(b) = event {
            println!(
                "batch {:>6}: {:>6} lines, scheduling delay {:>5.1} ms, processing {:>5.1} ms, state {} keys",
                b.time.millis() % 1_000_000,
                b.input_records,
                b.scheduling_delay.as_secs_f64() * 1e3,
                b.processing_time.as_secs_f64() * 1e3,
                b.state.first().map_or(0, |s| s.keys),
            );
        }
    }
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let ctx = args.ui.context()?;
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(args.batch_ms))?;
    if let Some(dir) = &args.checkpoint {
        ssc.checkpoint(dir)?;
    }
    // Every process runs this program; the driver prints.
    let driver = ctx.is_driver();
    if driver {
        ssc.add_listener(Arc::new(BatchPrinter));
    }
    // Line i holds three words picked from i (none past `--lines`).
    let limit = args.lines.unwrap_or(u64::MAX);
    let lines = ssc.generator_stream(args.rate, move |i| {
        if i >= limit {
            return String::new();
        }
        let w = |k: u64| WORDS[((i.wrapping_mul(2654435761) >> k) % 8) as usize];
        format!("{} {} {}", w(3), w(7), w(11))
    });
    let counts = lines
        .flat_map(|line| {
            line.split_ascii_whitespace()
                .map(Str::from)
                .collect::<Vec<_>>()
        })
        .map(|word| (word, 1u64))
        .reduce_by_key(|a, b| a + b);
    let totals = counts.update_state_by_key(|_, new: Vec<u64>, total: Option<u64>| {
        Some(total.unwrap_or(0) + new.iter().sum::<u64>())
    });
    // The words counted so far: three per line once every line is in.
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let final_totals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = counted.clone();
    let last = final_totals.clone();
    totals.foreach_rdd(move |rdd, time| {
        let mut top = rdd.collect()?;
        let words: u64 = top.iter().map(|(_, n)| n).sum();
        sink.store(words, std::sync::atomic::Ordering::Relaxed);
        top.sort();
        last.lock()
            .map_err(|_| spate::Error::Panicked("a lock".into()))?
            .clone_from(&top);
        if !driver {
            return Ok(());
        }
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let shown: Vec<String> = top
            .iter()
            .take(4)
            .map(|(w, n)| format!("{w}={n}"))
            .collect();
        println!(
            "  totals at {:>6}: {}",
            time.millis() % 1_000_000,
            shown.join(" ")
        );
        Ok(())
    })?;
    ssc.start()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(args.seconds);
    let all_in = || {
        args.lines
            .is_some_and(|n| counted.load(std::sync::atomic::Ordering::Relaxed) >= 3 * n)
    };
    while std::time::Instant::now() < deadline && !all_in() {
        std::thread::sleep(Duration::from_millis(20));
    }
    ssc.stop(StopMode::Graceful)?;
    if driver {
        println!("summary: {}", ssc.summary());
        println!(
            "words counted: {}",
            counted.load(std::sync::atomic::Ordering::Relaxed)
        );
        let totals = final_totals
            .lock()
            .map_err(|_| spate::Error::Panicked("a lock".into()))?;
        let shown: Vec<String> = totals.iter().map(|(w, n)| format!("{w}={n}")).collect();
        println!("final totals: {}", shown.join(" "));
    }
    args.ui.linger(&ctx);
    Ok(())
}
