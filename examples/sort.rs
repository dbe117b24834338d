//! Sorts `key<TAB>value` lines by key (byte order) with `sort_by_key`.
//!
//! ```text
//! cargo run --release --example sort -- INPUT --output DIR [--partitions N] [--memory SIZE]
//! ```
//! The part files, read in name order, are globally sorted. Lines without a
//! tab are skipped and counted (the count is printed), never silently dropped.

mod workloads;

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Sort key<TAB>value lines by key with Spate")]
struct Args {
    /// Input file, directory or glob pattern.
    input: PathBuf,
    /// Output directory (must not exist).
    #[arg(long)]
    output: PathBuf,
    /// Output partitions (default: as many as input partitions).
    #[arg(long)]
    partitions: Option<usize>,
    /// Print each stage's duration and shuffle volume on stderr.
    #[arg(long)]
    verbose: bool,
    /// Memory budget for shuffle and cached blocks, e.g. 256MB.
    #[arg(long, value_parser = workloads::parse_size)]
    memory: Option<usize>,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let started = Instant::now();
    let (ctx, log) = workloads::context(args.verbose, args.memory, &args.ui)?;
    let malformed = ctx.sum_accumulator::<u64>("malformed lines");
    let lines = ctx.text_file(&args.input, ctx.default_parallelism())?;
    workloads::sorted_lines(&lines, args.partitions, &malformed)?
        .save_as_text_file(&args.output)?;
    workloads::finish(&ctx, "sort", &malformed, &log, started);
    args.ui.linger(&ctx);
    Ok(())
}
