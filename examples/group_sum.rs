//! Sums the integer values per key with `reduce_by_key`.
//!
//! ```text
//! cargo run --release --example group_sum -- INPUT --output DIR [--format text|csv|jsonl|parquet]
//! ```
//! Input, by `--format`: `key<TAB>value` lines (text, the default); CSV
//! with a header line `key,value`; JSON lines `{"key": "…", "value": …}`;
//! Parquet with columns `key` (string) and `value` (int64). Writes
//! `key<TAB>sum` lines. Malformed records are skipped and counted (the
//! count is printed).

mod workloads;

use clap::{Parser, ValueEnum};
use spate::{BadRecords, CsvOptions, JsonLinesOptions, Rdd, Str};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Csv,
    Jsonl,
    Parquet,
}

#[derive(Parser)]
#[command(about = "Sum values per key with Spate")]
struct Args {
    /// Input file, directory or glob pattern.
    input: PathBuf,
    /// Output directory (must not exist).
    #[arg(long)]
    output: PathBuf,
    /// What the input is.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print each stage's duration and shuffle volume on stderr.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

/// A record of the typed formats.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Pair {
    key: Str,
    value: i64,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let started = Instant::now();
    let (ctx, log) = workloads::context(args.verbose, None, &args.ui)?;
    let malformed = ctx.sum_accumulator::<u64>("malformed lines");
    // The typed readers count the records they skip in the job's metrics.
    let seen = std::sync::Arc::new(spate::EventLog::default());
    if !matches!(args.format, Format::Text) {
        ctx.add_listener(seen.clone());
    }
    let sums = match args.format {
        Format::Text => {
            let lines = ctx.text_file(&args.input, ctx.default_parallelism())?;
            workloads::group_sums(&lines, &malformed)
        }
        Format::Csv => {
            let options = CsvOptions::default().bad_records(BadRecords::Skip);
            typed_sums(&ctx.csv_file::<Pair>(&args.input, &options)?)
        }
        Format::Jsonl => {
            let options = JsonLinesOptions::default().bad_records(BadRecords::Skip);
            typed_sums(&ctx.json_lines_file::<Pair>(&args.input, &options)?)
        }
        Format::Parquet => typed_sums(&ctx.parquet_file::<Pair>(&args.input)?),
    };
    sums.save_as_text_file(&args.output)?;
    let skipped = seen.job_metrics().bad_records_skipped;
    if skipped > 0 {
        eprintln!("skipped {skipped} malformed records");
    }
    workloads::finish(&ctx, "groupby", &malformed, &log, started);
    args.ui.linger(&ctx);
    Ok(())
}

fn typed_sums(pairs: &Rdd<Pair>) -> Rdd<String> {
    pairs
        .map(|p| (p.key, p.value))
        .reduce_by_key(|a, b| a + b)
        .map(|(k, sum)| format!("{k}\t{sum}"))
}
