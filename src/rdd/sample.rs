//! Random sampling, reproducible from a seed.

use super::Rdd;
use crate::data::Data;
use crate::error::{Error, Result};
use crate::partitioner::stable_hash;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};

/// A generator for one partition: the same seed and partition always give
/// the same stream, so a recomputed partition samples the same elements.
pub(crate) fn partition_rng(seed: u64, split: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ stable_hash(&(split as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

impl<T: Data> Rdd<T> {
    /// A random sample. Without replacement each element is kept with
    /// probability `fraction` (in \[0, 1\]); with replacement each element
    /// appears a Poisson(`fraction`)-distributed number of times
    /// (`fraction` ≥ 0 is the expected count). The same seed gives the same
    /// sample. A fraction outside its range, NaN, infinite, or too large for
    /// a Poisson draw (above about 1.8e19) is an [`Error::InvalidArgument`].
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let data = ctx.range(0, 10_000, 1, 4);
    /// let s = data.sample(false, 0.1, 42).unwrap();
    /// let n = s.count().unwrap();
    /// assert!((800..1200).contains(&n), "{n}");
    /// assert_eq!(s.collect().unwrap(), data.sample(false, 0.1, 42).unwrap().collect().unwrap());
    /// ```
    pub fn sample(&self, with_replacement: bool, fraction: f64, seed: u64) -> Result<Rdd<T>> {
        if fraction.is_nan() || fraction < 0.0 || (!with_replacement && fraction > 1.0) {
            return Err(Error::InvalidArgument(format!(
                "sample fraction {fraction} is outside {}",
                if with_replacement {
                    "[0, inf)"
                } else {
                    "[0, 1]"
                }
            )));
        }
        let poisson = match with_replacement && fraction > 0.0 {
            true => Some(Poisson::new(fraction).map_err(|e| {
                Error::InvalidArgument(format!(
                    "sample fraction {fraction} cannot be drawn with replacement: {e}"
                ))
            })?),
            false => None,
        };
        if with_replacement {
            Ok(self.map_partitions_op("sample", true, move |split, it| {
                let mut rng = partition_rng(seed, split);
                it.flat_map(move |x| {
                    let k = poisson.as_ref().map_or(0, |p| p.sample(&mut rng) as usize);
                    std::iter::repeat_n(x, k)
                })
            }))
        } else {
            Ok(self.map_partitions_op("sample", true, move |split, it| {
                let mut rng = partition_rng(seed, split);
                it.filter(move |_| rng.random::<f64>() < fraction)
            }))
        }
    }
}
