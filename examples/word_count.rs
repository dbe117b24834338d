//! Counts words: `text_file` → `flat_map` → `map` → `reduce_by_key`.
//!
//! ```text
//! cargo run --release --example word_count -- [INPUT...] [--output DIR] [--partitions N] [--top K] [--memory SIZE]
//! ```
//! With no INPUT it counts a built-in sample text. Words are the runs of
//! non-whitespace (ASCII whitespace) in each line.

mod workloads;

use clap::Parser;
use spate::{Context, Rdd};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Count words in text files with Spate")]
struct Args {
    /// Text files, directories or glob patterns (default: a built-in sample).
    inputs: Vec<PathBuf>,
    /// Write `word<TAB>count` part files into this new directory.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Minimum number of input partitions (default: the number of cores).
    #[arg(long)]
    partitions: Option<usize>,
    /// How many of the most frequent words to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print each stage's duration and shuffle volume on stderr.
    #[arg(long)]
    verbose: bool,
    /// Memory budget for shuffle and cached blocks, e.g. 64MB.
    #[arg(long, value_parser = workloads::parse_size)]
    memory: Option<usize>,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

const SAMPLE: &str = include_str!("data/sample.txt");

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let started = Instant::now();
    let mut builder = args.ui.apply(Context::builder());
    if let Some(t) = args.threads {
        builder = builder.parallelism(t);
    }
    if let Some(bytes) = args.memory {
        builder = builder.memory_limit(bytes);
    }
    let ctx = builder.build()?;
    let log = std::sync::Arc::new(spate::EventLog::default());
    if args.verbose {
        ctx.add_listener(log.clone());
    }
    let partitions = args.partitions.unwrap_or(ctx.default_parallelism());

    let lines: Rdd<String> = if args.inputs.is_empty() {
        ctx.parallelize(SAMPLE.lines().map(String::from).collect(), partitions)
    } else {
        let files = args
            .inputs
            .iter()
            .map(|path| ctx.text_file(path, partitions))
            .collect::<Result<Vec<_>, _>>()?;
        ctx.union(&files)
    };

    let counts = workloads::word_counts(&lines).cache()?;

    let top = counts.take_ordered_by(args.top, |a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)))?;
    let total = counts.values().sum()?;
    let distinct = counts.count()?;
    if let Some(dir) = &args.output {
        counts
            .map(|(word, count)| format!("{word}\t{count}"))
            .save_as_text_file(dir)?;
    }

    // Every process runs this program (cluster mode) and knows the
    // results; the driver reports them.
    if ctx.is_driver() {
        for (word, count) in &top {
            println!("{count:>10}  {word}");
        }
        println!("total words: {total}, distinct: {distinct}");
        eprint!("{}", log.stage_report());
        eprintln!(
            "JOBTIME spate-wordcount {:.3}",
            started.elapsed().as_secs_f64()
        );
    }
    args.ui.linger(&ctx);
    Ok(())
}
