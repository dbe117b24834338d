//! Estimates π by throwing darts at the unit square (Monte Carlo).
//!
//! ```text
//! cargo run --release --example pi -- [SAMPLES] [--ui]
//! ```

mod workloads;

use clap::Parser;
use rand::{Rng, SeedableRng};

#[derive(Parser)]
#[command(about = "Estimate pi with Spate")]
struct Args {
    /// How many darts to throw.
    #[arg(default_value_t = 10_000_000)]
    samples: i64,
    #[command(flatten)]
    ui: workloads::UiArgs,
}

fn main() -> Result<(), spate::Report> {
    let args = Args::parse();
    let samples = args.samples;
    let ctx = args.ui.context()?;
    let partitions = ctx.default_parallelism() * 4;
    let inside = ctx
        .range(0, samples, 1, partitions)
        .map_partitions_with_index(|index, darts| {
            // One seeded generator per partition: a rerun gives the same darts.
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(index as u64);
            darts.map(move |_| {
                let (x, y): (f64, f64) = (rng.random(), rng.random());
                u64::from(x * x + y * y <= 1.0)
            })
        })
        .sum()?;
    let pi = 4.0 * inside as f64 / samples.max(1) as f64;
    println!("Pi is roughly {pi:.6} ({samples} samples)");
    args.ui.linger(&ctx);
    Ok(())
}
