//! Sums the integer values of `key<TAB>value` lines per key with `reduce_by_key`.
//!
//! ```text
//! cargo run --release --example group_sum -- INPUT --output DIR
//! ```
//! Writes `key<TAB>sum` lines. Lines without a tab or with a value that is
//! not an integer are skipped and counted (the count is printed).

mod workloads;

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Sum values per key with Spate")]
struct Args {
    /// Input file, directory or glob pattern.
    input: PathBuf,
    /// Output directory (must not exist).
    #[arg(long)]
    output: PathBuf,
    /// Print each stage's duration and shuffle volume on stderr.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let started = Instant::now();
    let (ctx, log) = workloads::context(args.verbose, None, &args.ui)?;
    let malformed = ctx.sum_accumulator::<u64>("malformed lines");
    let lines = ctx.text_file(&args.input, ctx.default_parallelism())?;
    workloads::group_sums(&lines, &malformed).save_as_text_file(&args.output)?;
    workloads::finish(&ctx, "groupby", &malformed, &log, started);
    args.ui.linger(&ctx);
    Ok(())
}
