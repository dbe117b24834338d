//! Running word totals over lines from a TCP server that survive a crash:
//! the program checkpoints to `--checkpoint DIR`, and when restarted with
//! the same arguments it continues from there (totals included) instead of
//! starting over (Spark's `RecoverableNetworkWordCount`). Each batch's
//! totals go to `PREFIX-<batch_ms>` as `word<TAB>total` part files; a batch
//! that runs again after a restart replaces its directory.
//!
//! ```text
//! nc -lk 9999
//! cargo run --release --example recoverable_network_word_count -- localhost:9999 --checkpoint /tmp/ckpt --output /tmp/counts
//! ```
//! Lines received but not yet processed when the program dies are lost (a
//! TCP source cannot be replayed); use `text_file_stream` for exactly-once.

mod workloads;

use clap::Parser;
use spate::Str;
use spate::streaming::StreamingContext;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Running word totals of lines from a TCP server, restartable from a checkpoint")]
struct Args {
    /// The server to read lines from, HOST:PORT.
    address: String,
    /// Checkpoint directory (created if missing).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Write each batch's totals under PREFIX-<batch_ms>.
    #[arg(long)]
    output: String,
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
    let ssc = StreamingContext::get_or_create(&args.checkpoint, || {
        let ssc = StreamingContext::new(&ctx, Duration::from_millis(args.batch_ms))?;
        ssc.socket_text_stream(&host, port)
            .flat_map(|line| {
                line.split_ascii_whitespace()
                    .map(Str::from)
                    .collect::<Vec<_>>()
            })
            .map(|word| (word, 1u64))
            .update_state_by_key(|_word, new: Vec<u64>, total: Option<u64>| {
                Some(total.unwrap_or(0) + new.iter().sum::<u64>())
            })
            .map(|(word, total)| format!("{word}\t{total}"))
            .save_as_text_files(args.output.clone(), None)?;
        Ok(ssc)
    })?;
    ssc.start()?;
    Ok(ssc.await_termination()?)
}
