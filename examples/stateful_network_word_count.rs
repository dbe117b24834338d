//! Running word totals over lines read from a TCP server, kept with
//! `update_state_by_key` (Spark's `StatefulNetworkWordCount`).
//!
//! ```text
//! nc -lk 9999
//! cargo run --release --example stateful_network_word_count -- localhost:9999 [--batch-ms 1000]
//! ```

mod workloads;

use clap::Parser;
use spate::Str;
use spate::streaming::StreamingContext;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Running word totals of lines from a TCP server")]
struct Args {
    /// The server to read lines from, HOST:PORT.
    address: String,
    /// Batch interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    batch_ms: u64,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let (host, port) = workloads::host_port(&args.address)?;
    let ctx = args.ui.context()?;
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(args.batch_ms))?;
    let totals = ssc
        .socket_text_stream(&host, port)
        .flat_map(|line| {
            line.split_ascii_whitespace()
                .map(Str::from)
                .collect::<Vec<_>>()
        })
        .map(|word| (word, 1u64))
        .update_state_by_key(|_word, new: Vec<u64>, total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        });
    totals.print(20)?;
    ssc.start()?;
    Ok(ssc.await_termination()?)
}
