//! Counts words in each batch of lines read from a TCP server (Spark's
//! `NetworkWordCount`).
//!
//! ```text
//! nc -lk 9999        # in another terminal; type lines
//! cargo run --release --example network_word_count -- localhost:9999 [--batch-ms 1000] [--output PREFIX]
//! ```
//! With `--output`, each batch is written to the directory
//! `PREFIX-<batch_ms>` as `word<TAB>count` part files.

mod workloads;

use clap::Parser;
use spate::Str;
use spate::streaming::StreamingContext;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Per-batch word counts of lines from a TCP server")]
struct Args {
    /// The server to read lines from, HOST:PORT.
    address: String,
    /// Batch interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    batch_ms: u64,
    /// Write each batch's counts under PREFIX-<batch_ms>.
    #[arg(long)]
    output: Option<String>,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let (host, port) = workloads::host_port(&args.address)?;
    let ctx = args.ui.context()?;
    let ssc = StreamingContext::new(&ctx, Duration::from_millis(args.batch_ms))?;
    let counts = ssc
        .socket_text_stream(&host, port)
        .flat_map(|line| {
            line.split_ascii_whitespace()
                .map(Str::from)
                .collect::<Vec<_>>()
        })
        .map(|word| (word, 1u64))
        .reduce_by_key(|a, b| a + b);
    counts.print(20)?;
    if let Some(prefix) = args.output {
        counts
            .map(|(w, n)| format!("{w}\t{n}"))
            .save_as_text_files(prefix, None)?;
    }
    ssc.start()?;
    Ok(ssc.await_termination()?)
}
