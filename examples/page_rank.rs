//! PageRank over a link graph, iterating joins over cached links.
//!
//! ```text
//! cargo run --release --example page_rank -- [EDGES_FILE] [--iterations N] [--checkpoint-every N]
//! ```
//! With `--checkpoint-every N` the ranks are checkpointed every N
//! iterations (into a temporary directory, or `--checkpoint-dir`), which
//! keeps the lineage, and the cost of recovering a lost partition, bounded.
//! EDGES_FILE holds `src dst` lines (whitespace separated); without one a
//! small built-in graph is used.

mod workloads;

use clap::Parser;
use spate::Str;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "PageRank with Spate")]
struct Args {
    /// `src dst` lines (default: a built-in graph).
    edges: Option<PathBuf>,
    /// Number of iterations.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// How many top pages to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Checkpoint the ranks every N iterations (0: never).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: usize,
    /// Where checkpoints go (default: a temporary directory).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

const BUILT_IN: &str = "a b\na c\nb c\nc a\nd c\nd a\ne d\ne a\nf e\nb f\n";

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let ctx = args.ui.context()?;
    let n = ctx.default_parallelism();
    let temp = tempfile::tempdir()
        .map_err(|e| spate::Error::InvalidArgument(format!("no temporary directory: {e}")))?;
    if args.checkpoint_every > 0 {
        // Every process must write to the same directory: the driver's.
        let given = args.checkpoint_dir.clone();
        let dir = ctx.run_on_driver(|| Ok(given.unwrap_or(temp.path().to_path_buf())))?;
        ctx.set_checkpoint_dir(dir)?;
    }
    let lines = match &args.edges {
        Some(path) => ctx.text_file(path, n)?,
        None => ctx.parallelize(BUILT_IN.lines().map(String::from).collect(), n),
    };
    let links = lines
        .flat_map(|line| {
            let mut f = line.split_ascii_whitespace();
            match (f.next(), f.next()) {
                (Some(src), Some(dst)) => Some((Str::from(src), Str::from(dst))),
                _ => None,
            }
        })
        .distinct()
        .group_by_key()
        .cache()?;
    let mut ranks = links.map_values(|_| 1.0f64);
    for i in 1..=args.iterations {
        let contributions = links.join(&ranks).flat_map(|(_, (targets, rank))| {
            let share = rank / targets.len() as f64;
            targets
                .into_iter()
                .map(move |t| (t, share))
                .collect::<Vec<_>>()
        });
        ranks = contributions
            .reduce_by_key(|a, b| a + b)
            .map_values(|sum| 0.15 + 0.85 * sum)
            .cache()?;
        if args.checkpoint_every > 0 && i % args.checkpoint_every == 0 {
            ranks.checkpoint()?;
            ranks.count()?; // writes the checkpoint and truncates the lineage
        }
    }
    let top = ranks.take_ordered_by(args.top, |a, b| {
        b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0))
    })?;
    if ctx.is_driver() {
        for (page, rank) in top {
            println!("{page:>12}  {rank:.5}");
        }
    }
    args.ui.linger(&ctx);
    Ok(())
}
