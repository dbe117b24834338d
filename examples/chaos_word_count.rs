//! Word count under injected faults: the answer must equal a clean run's.
//!
//! ```text
//! cargo run --release --example chaos_word_count -- INPUT --output DIR --fail-prob P --seed S [--drop-cache] [--lose-shuffle]
//! ```
//! Each task attempt fails with probability P; `--drop-cache` drops cached
//! blocks of the counts (half of them, when first read) so they are
//! recomputed from lineage; `--lose-shuffle` deletes or corrupts a fifth of
//! the map outputs right after they are written. Tasks get 8 attempts (not
//! 4) so that P = 0.2 almost never exhausts them. Prints what was injected
//! and redone, and writes the same `word<TAB>count` part files as
//! `word_count`.

mod workloads;

use clap::Parser;
use spate::{Context, EventLog, FaultPlan, ShuffleLoss};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Word count under injected faults")]
struct Args {
    /// Text files, directories or glob patterns.
    input: PathBuf,
    /// Output directory (must not exist).
    #[arg(long)]
    output: PathBuf,
    /// Probability that a task attempt fails.
    #[arg(long, default_value_t = 0.2)]
    fail_prob: f64,
    /// Seed of the fault plan: the same seed injects the same faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Drop half of the cached blocks when they are first read.
    #[arg(long)]
    drop_cache: bool,
    /// Delete or corrupt a fifth of the map outputs after they are written.
    #[arg(long)]
    lose_shuffle: bool,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let started = Instant::now();
    let ctx = args
        .ui
        .apply(Context::builder().max_task_failures(8))
        .build()?;
    let log = Arc::new(EventLog::default());
    ctx.add_listener(log.clone());
    let mut plan = FaultPlan::new().fail_tasks_with_probability(args.fail_prob, args.seed);
    if args.drop_cache {
        plan = plan.drop_cached_blocks_with_probability(0.5, args.seed);
    }
    if args.lose_shuffle {
        let how = if args.seed % 2 == 0 {
            ShuffleLoss::Delete
        } else {
            ShuffleLoss::Corrupt
        };
        plan = plan.lose_map_outputs_with_probability(0.2, args.seed, how);
    }
    ctx.set_fault_plan(plan);

    let lines = ctx.text_file(&args.input, ctx.default_parallelism())?;
    let counts = workloads::word_counts(&lines).cache()?;
    let top = counts.take_ordered_by(10, |a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)))?;
    let total = counts.values().sum()?;
    counts
        .map(|(word, count)| format!("{word}\t{count}"))
        .save_as_text_file(&args.output)?;

    for (word, count) in &top {
        println!("{count:>10}  {word}");
    }
    println!("total words: {total}, distinct: {}", counts.count()?);
    let m = log.job_metrics();
    println!(
        "faults injected: {}; task attempts: {} ({} failed); stage attempts: {}; map outputs recomputed: {}; cached partitions recomputed: {}",
        m.faults_injected,
        m.tasks_run,
        m.tasks_failed,
        m.stage_attempts,
        m.map_outputs_recomputed,
        m.cached_partitions_recomputed
    );
    eprintln!(
        "JOBTIME spate-chaos-wordcount {:.3}",
        started.elapsed().as_secs_f64()
    );
    args.ui.linger(&ctx);
    Ok(())
}
