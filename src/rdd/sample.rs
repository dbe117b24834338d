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

/// Whether a sample may pick an element more than once (Spark's
/// `withReplacement` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sampling {
    /// Each element at most once.
    WithoutReplacement,
    /// An element any number of times.
    WithReplacement,
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
    /// use spate::Sampling::WithoutReplacement;
    /// let s = data.sample(WithoutReplacement, 0.1, 42).unwrap();
    /// let n = s.count().unwrap();
    /// assert!((800..1200).contains(&n), "{n}");
    /// assert_eq!(s.collect().unwrap(), data.sample(WithoutReplacement, 0.1, 42).unwrap().collect().unwrap());
    /// ```
    pub fn sample(&self, sampling: Sampling, fraction: f64, seed: u64) -> Result<Rdd<T>> {
        let with_replacement = sampling == Sampling::WithReplacement;
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

    /// Splits the dataset randomly into one dataset per weight, each
    /// element going to exactly one of them with probability proportional
    /// to its weight (Spark's `randomSplit`). Weights must be finite, not
    /// negative, with a positive sum; they are normalized. The same seed
    /// gives the same split; recomputed partitions split the same way.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let data = ctx.range(0, 1000, 1, 4);
    /// let parts = data.random_split(&[0.7, 0.3], 11).unwrap();
    /// let (a, b) = (parts[0].count().unwrap(), parts[1].count().unwrap());
    /// assert_eq!(a + b, 1000);
    /// assert!((600..800).contains(&a), "{a}");
    /// ```
    pub fn random_split(&self, weights: &[f64], seed: u64) -> Result<Vec<Rdd<T>>> {
        let total: f64 = weights.iter().sum();
        if weights.is_empty()
            || weights.iter().any(|w| !w.is_finite() || *w < 0.0)
            || !(total > 0.0 && total.is_finite())
        {
            return Err(Error::InvalidArgument(format!(
                "random_split weights {weights:?} must be finite, not negative, with a positive sum"
            )));
        }
        let mut bounds = Vec::with_capacity(weights.len() + 1);
        let mut acc = 0.0;
        bounds.push(0.0);
        for w in weights {
            acc += w / total;
            bounds.push(acc);
        }
        // Rounding must not lose the top of the last range.
        *bounds.last_mut().expect("one bound per weight, plus zero") = 1.0;
        Ok(bounds
            .windows(2)
            .map(|r| {
                let (low, high) = (r[0], r[1]);
                self.map_partitions_op("random_split", true, move |split, it| {
                    // Every split draws the same numbers for the same
                    // element, so the ranges cut one draw into disjoint sets.
                    let mut rng = partition_rng(seed, split);
                    it.filter(move |_| {
                        let u: f64 = rng.random();
                        low <= u && u < high
                    })
                })
            })
            .collect())
    }

    /// Exactly `num` elements drawn at random (fewer only if the dataset
    /// has fewer, without replacement), in random order, on the driver
    /// (Spark's `takeSample`). The same seed gives the same sample.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let data = ctx.range(0, 1000, 1, 4);
    /// use spate::Sampling::WithoutReplacement;
    /// let s = data.take_sample(WithoutReplacement, 5, 7).unwrap();
    /// assert_eq!(s.len(), 5);
    /// assert_eq!(s, data.take_sample(WithoutReplacement, 5, 7).unwrap());
    /// ```
    pub fn take_sample(&self, sampling: Sampling, num: usize, seed: u64) -> Result<Vec<T>>
    where
        T: crate::data::Value,
    {
        use rand::seq::SliceRandom;
        let with_replacement = sampling == Sampling::WithReplacement;
        if with_replacement && num > 1 << 30 {
            return Err(Error::InvalidArgument(format!(
                "take_sample of {num} elements is more than a driver can hold"
            )));
        }
        let total = if num == 0 { 0 } else { self.count()? };
        if num == 0 || total == 0 {
            return Ok(Vec::new());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        if !with_replacement && num as u64 >= total {
            let mut all = self.collect()?;
            all.shuffle(&mut rng);
            return Ok(all);
        }
        let fraction = fraction_for_sample_size(num as f64, total as f64, with_replacement);
        // The fraction makes a short sample unlikely (1e-4); draw again if so.
        for attempt in 0u64.. {
            let seed = seed.wrapping_add(attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut picked = self.sample(sampling, fraction, seed)?.collect()?;
            if picked.len() >= num {
                picked.shuffle(&mut rng);
                picked.truncate(num);
                return Ok(picked);
            }
        }
        unreachable!("the attempts never end")
    }
}

/// A sampling fraction that yields at least `num` of `total` elements with
/// probability about 0.9999 (Spark's `computeFractionForSampleSize`).
fn fraction_for_sample_size(num: f64, total: f64, with_replacement: bool) -> f64 {
    if with_replacement {
        // Poisson upper bound: a few standard deviations over the mean.
        let sd = if num < 6.0 {
            12.0
        } else if num < 16.0 {
            9.0
        } else {
            6.0
        };
        (num + sd * num.sqrt()).max(1e-10) / total
    } else {
        // Binomial upper bound for failure probability 1e-4.
        let q = num / total;
        let gamma = -(1e-4f64).ln() / total;
        (q + gamma + (gamma * gamma + 2.0 * gamma * q).sqrt()).min(1.0)
    }
}
