//! Estimates π by throwing darts at the unit square (Monte Carlo).
//!
//! ```text
//! cargo run --release --example pi -- [SAMPLES]
//! ```

use rand::{Rng, SeedableRng};
use spate::Context;

fn main() -> Result<(), spate::Report> {
    let samples: i64 = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|_| {
            spate::Error::InvalidArgument(format!("SAMPLES must be a whole number, not {s:?}"))
        })?,
        None => 10_000_000,
    };
    let ctx = Context::new()?;
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
    Ok(())
}
