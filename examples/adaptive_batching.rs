//! The adaptive batch interval under a load that rises and falls: a
//! built-in receiver sends lines of words at a low rate, then a high one,
//! then low again; each batch counts words and keeps running totals
//! (`update_state_by_key`). Prints, every second, the batch interval chosen
//! and the latency of the lines (from creation to the end of their
//! batch's output), and a summary per phase.
//!
//! ```text
//! cargo run --release --example adaptive_batching                 # adaptive, 10 ms .. 1 s
//! cargo run --release --example adaptive_batching -- --fixed-ms 10  # for comparison
//! ```

mod workloads;

use clap::Parser;
use spate::Str;
use spate::streaming::{AdaptiveBatching, Receiver, Sink, StopMode, StreamingContext};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(about = "Adaptive batch interval under a load that steps up and down")]
struct Args {
    /// Use this fixed batch interval instead of adapting it.
    #[arg(long)]
    fixed_ms: Option<u64>,
    /// Lines per second in the low phases.
    #[arg(long, default_value_t = 20_000.0)]
    low: f64,
    /// Lines per second in the high phase.
    #[arg(long, default_value_t = 400_000.0)]
    high: f64,
    /// Seconds per phase (low, high, low).
    #[arg(long, default_value_t = 4)]
    phase_secs: u64,
    /// Distinct words (the size of the running-totals state, scanned by
    /// every batch: a fixed cost per batch).
    #[arg(long, default_value_t = 20_000)]
    keys: u64,
    /// Target latency for the adaptive interval, in milliseconds.
    #[arg(long, default_value_t = 100)]
    target_ms: u64,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Lines `<created_micros> w.. w..` at a rate that steps low, high, low.
struct SteppedLoad {
    low: f64,
    high: f64,
    phase: Duration,
    keys: u64,
}

impl Receiver for SteppedLoad {
    type Item = String;

    fn receive(&mut self, sink: &Sink<String>) -> spate::Result<()> {
        let start = Instant::now();
        let mut sent = 0f64;
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        while !sink.is_stopped() {
            let t = start.elapsed();
            if t >= self.phase * 3 {
                break;
            }
            // Lines due so far, phase by phase.
            let p = self.phase.as_secs_f64();
            let s = t.as_secs_f64();
            let due = self.low * s.min(p)
                + self.high * (s - p).clamp(0.0, p)
                + self.low * (s - 2.0 * p).max(0.0);
            let n = (due - sent) as usize;
            if n == 0 {
                std::thread::sleep(Duration::from_micros(500));
                continue;
            }
            let stamp = now_micros();
            let lines: Vec<String> = (0..n)
                .map(|_| {
                    let mut line = stamp.to_string();
                    for _ in 0..6 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        line.push_str(" w");
                        line.push_str(&(x % self.keys).to_string());
                    }
                    line
                })
                .collect();
            sent += n as f64;
            if !sink.store(lines) {
                break;
            }
        }
        Ok(())
    }
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let ctx = args.ui.context()?;
    let first = Duration::from_millis(args.fixed_ms.unwrap_or(100));
    let ssc = StreamingContext::new(&ctx, first)?;
    if args.fixed_ms.is_none() {
        ssc.set_adaptive_batching(AdaptiveBatching::new(
            Duration::from_millis(args.target_ms),
            Duration::from_millis(10),
            Duration::from_secs(1),
        ))?;
    }
    let phase = Duration::from_secs(args.phase_secs);
    let lines = ssc.receiver_stream(SteppedLoad {
        low: args.low,
        high: args.high,
        phase,
        keys: args.keys.max(1),
    });
    lines
        .flat_map(|line| {
            line.split_ascii_whitespace()
                .skip(1)
                .map(Str::from)
                .collect::<Vec<_>>()
        })
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .update_state_by_key(|_, new: Vec<u64>, total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        })
        .foreach_rdd(|rdd, _| rdd.count().map(|_| ()))?;
    // After the counts (outputs run in order): each line's latency.
    let started = now_micros();
    let samples: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let sink = samples.clone();
    lines.foreach_rdd(move |rdd, _| {
        let created = rdd
            .map(|l| {
                l.split(' ')
                    .next()
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .collect()?;
        let now = now_micros();
        if let Ok(mut s) = sink.lock() {
            s.extend(
                created
                    .iter()
                    .map(|&c| (c.saturating_sub(started), now.saturating_sub(c) as u32)),
            );
        }
        Ok(())
    })?;
    ssc.start()?;
    let started_batches = ssc.batches().len();
    let start_ms = now_micros() / 1000;
    let mut last_interval = first;
    for second in 1..=args.phase_secs * 3 {
        std::thread::sleep(Duration::from_secs(1));
        let batches = ssc.batches();
        if let Some(b) = batches.last() {
            last_interval = b.interval;
        }
        let lat = window_p99(&samples, second);
        println!(
            "t={second:>2}s interval {:>5} ms, p99 latency of the last second {:>7.1} ms",
            last_interval.as_millis(),
            lat
        );
    }
    ssc.stop(StopMode::Immediately)?;
    let p = args.phase_secs * 1_000_000;
    let phases = [
        ("low", 0, p),
        ("high", p, 2 * p),
        ("low-again", 2 * p, 3 * p),
    ];
    let mode = args
        .fixed_ms
        .map_or("adaptive".to_string(), |ms| format!("fixed-{ms}ms"));
    let mut line = format!("ADAPTIVE mode={mode}");
    for (name, from, to) in phases {
        let mut l: Vec<u32> = samples
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|(c, _)| *c >= from && *c < to)
                    .map(|(_, l)| *l)
                    .collect()
            })
            .unwrap_or_default();
        l.sort_unstable();
        let pct = |q: f64| {
            if l.is_empty() {
                f64::NAN
            } else {
                l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
            }
        };
        // Stability: batches that took longer than their interval, and
        // how late batches started.
        let batches: Vec<_> = ssc.batches()[started_batches..]
            .iter()
            .filter(|b| {
                let at = b.time.millis().saturating_sub(start_ms) * 1000;
                at >= from && at < to
            })
            .cloned()
            .collect();
        let overran = batches
            .iter()
            .filter(|b| b.processing_time > b.interval)
            .count();
        let mut delays: Vec<Duration> = batches.iter().map(|b| b.scheduling_delay).collect();
        delays.sort();
        let delay_p99 = delays
            .get(delays.len().saturating_sub(1) * 99 / 100)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        line.push_str(&format!(
            " {name}_rows={} {name}_p50_ms={:.1} {name}_p99_ms={:.1} {name}_overrun_pct={:.0} {name}_sched_delay_p99_ms={:.0}",
            l.len(),
            pct(0.5),
            pct(0.99),
            100.0 * overran as f64 / batches.len().max(1) as f64,
            delay_p99
        ));
    }
    println!("{line}");
    println!("summary: {}", ssc.summary());
    args.ui.linger(&ctx);
    Ok(())
}

/// The 99th percentile latency (ms) of lines created during second `s`.
fn window_p99(samples: &Mutex<Vec<(u64, u32)>>, s: u64) -> f64 {
    let (from, to) = ((s - 1) * 1_000_000, s * 1_000_000);
    let mut l: Vec<u32> = samples
        .lock()
        .map(|v| {
            v.iter()
                .filter(|(c, _)| *c >= from && *c < to)
                .map(|(_, l)| *l)
                .collect()
        })
        .unwrap_or_default();
    if l.is_empty() {
        return f64::NAN;
    }
    l.sort_unstable();
    l[(l.len() - 1) * 99 / 100] as f64 / 1000.0
}
