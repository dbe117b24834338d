//! Word counts over a sliding window of lines from a TCP server, updated
//! incrementally: each window is the previous one minus the batches that
//! left plus those that entered (`reduce_by_key_and_window_inv`).
//!
//! ```text
//! nc -lk 9999
//! cargo run --release --example windowed_word_count -- localhost:9999 [--batch-ms 1000] [--window-batches 30] [--slide-batches 10]
//! ```

mod workloads;

use clap::Parser;
use spate::Str;
use spate::streaming::StreamingContext;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Sliding-window word counts of lines from a TCP server")]
struct Args {
    /// The server to read lines from, HOST:PORT.
    address: String,
    /// Batch interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    batch_ms: u64,
    /// Window length, in batches.
    #[arg(long, default_value_t = 30)]
    window_batches: u32,
    /// Window slide, in batches.
    #[arg(long, default_value_t = 10)]
    slide_batches: u32,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let (host, port) = workloads::host_port(&args.address)?;
    let batch = Duration::from_millis(args.batch_ms);
    let ctx = args.ui.context()?;
    let ssc = StreamingContext::new(&ctx, batch)?;
    let windowed = ssc
        .socket_text_stream(&host, port)
        .flat_map(|line| {
            line.split_ascii_whitespace()
                .map(Str::from)
                .collect::<Vec<_>>()
        })
        .map(|word| (word, 1u64))
        .reduce_by_key_and_window_inv(
            |a, b| a + b,
            |a, b| a - b,
            batch * args.window_batches,
            batch * args.slide_batches,
            ctx.default_parallelism(),
            // Words that left the window entirely are dropped.
            Some(Arc::new(|(_, n): &(Str, u64)| *n > 0)),
        );
    windowed.print(20)?;
    ssc.start()?;
    Ok(ssc.await_termination()?)
}
