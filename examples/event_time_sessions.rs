//! Per-user sessions over out-of-order clicks, in event time. A built-in
//! generator makes clicks for a few users, who pause for 0.8 s every 2 s;
//! clicks arrive up to 2 s out of order. Sessions end after 0.5 s without
//! clicks, the watermark trails the latest click by 0.6 s, sessions stay
//! open 0.3 s more for late clicks, and clicks later than that are printed
//! from the late-data side stream. Self-contained: no input needed.
//!
//! ```text
//! cargo run --release --example event_time_sessions [-- --seconds 5 --rate 200]
//! ```

mod workloads;

use clap::Parser;
use spate::streaming::{
    OutputMode, SessionWindows, StopMode, StreamingContext, StreamingEvent, StreamingListener,
    WatermarkStrategy,
};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Event-time sessions over generated out-of-order clicks")]
struct Args {
    /// How long to run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Clicks per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Batch interval in milliseconds.
    #[arg(long, default_value_t = 250)]
    batch_ms: u64,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

/// A click: user and event time (ms since the generator started).
type Click = (String, i64);

const USERS: [&str; 4] = ["ana", "bo", "cy", "dee"];

/// Prints each batch's watermark and late count.
struct Progress;

impl StreamingListener for Progress {
    fn on_event(&self, event: &StreamingEvent) {
        if let StreamingEvent::BatchCompleted(b) = event {
            if let Some((_, w)) = b.watermarks.first() {
                println!(
                    "batch {:>6}: {:>4} clicks, watermark {:>6} ms, {} late",
                    b.time.millis() % 1_000_000,
                    b.input_records,
                    w.max(&0),
                    b.late_records
                );
            }
        }
    }
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let ctx = args.ui.context()?;
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(args.batch_ms))?;
    ssc.add_listener(Arc::new(Progress));
    let per_ms = args.rate / 1000.0;
    // Click i happens at i / rate and arrives up to 2 s late.
    let clicks = ssc.generator_stream(args.rate, move |i| {
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let user = USERS[(h >> 60) as usize % USERS.len()];
        let now = (i as f64 / per_ms) as i64;
        let delay = ((h >> 20) % 2000) as i64;
        (user.to_string(), (now - delay).max(0))
    });
    let sessions = clicks
        .filter(|(user, t)| {
            // Each user pauses 0.8 s of every 2 s, at its own phase.
            (t + 500 * user.len() as i64) % 2000 < 1200
        })
        .with_timestamps(
            |c: &Click| c.1,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(600)),
        )
        .key_by(|c| c.0.clone())
        .window(SessionWindows::with_gap(Duration::from_millis(500)))
        .allowed_lateness(Duration::from_millis(300))
        .output_mode(OutputMode::Append)
        .aggregate(|_c: Click| 1u64, |n, _| n + 1, |a, b| a + b, |n| *n);
    sessions.results.foreach_rdd(|rdd, _| {
        let mut closed = rdd.collect()?;
        closed.sort_by(|a, b| (a.window, &a.key).cmp(&(b.window, &b.key)));
        for s in closed {
            println!(
                "  session {:<4} [{:>6}, {:>6}) ms: {:>4} clicks ({} late)",
                s.key, s.window.start, s.window.end, s.value, s.late_updates
            );
        }
        Ok(())
    })?;
    sessions.late.foreach_rdd(|rdd, _| {
        for (user, t) in rdd.take(3)? {
            println!("  too late: {user} at {t} ms");
        }
        Ok(())
    })?;
    ssc.start()?;
    std::thread::sleep(Duration::from_secs(args.seconds));
    ssc.stop(StopMode::Graceful)?;
    println!("summary: {}", ssc.summary());
    args.ui.linger(&ctx);
    Ok(())
}
