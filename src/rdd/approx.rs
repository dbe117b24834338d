//! Approximate actions: answers from sketches, cheaper than exact ones,
//! and answers within a timeout, estimated from the partitions done.

use super::partial::{BoundedDouble, PartialResult, approximate};
use super::{ChunkIter, Numeric, Rdd, StatCounter, for_each_chunk};
use crate::data::Data;
use crate::error::{Error, Result};
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use statrs::distribution::{ContinuousCDF, DiscreteCDF, Normal, Poisson, StudentsT};
use statrs::statistics::Distribution;
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

/// Every partition's sketch hashes the same way, so sketches merge.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Hashing;

/// SipHash with fixed keys: every process hashes a value alike, so sketches
/// from different processes merge.
impl BuildHasher for Hashing {
    type Hasher = DefaultHasher;
    fn build_hasher(&self) -> DefaultHasher {
        DefaultHasher::new()
    }
}

/// The most registers a sketch may have (2^18, about 0.2% error).
const MAX_PRECISION: u8 = 18;

impl<T: Data + Hash> Rdd<T> {
    /// The number of distinct elements, estimated with HyperLogLog++ to a
    /// relative standard deviation of about `relative_sd` (Spark's
    /// `countApproxDistinct`; 0.05 is Spark's default). Each task sketches
    /// its partition; the driver merges the sketches, so the estimate does
    /// not depend on how the data is partitioned. Small counts are exact.
    /// An `InvalidArgument` unless `relative_sd` is within about
    /// [0.002, 0.26] (the sketch's 2^18 down to 2^4 registers).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let ids = ctx.range(0, 100_000, 1, 4).map(|x| x % 20_000);
    /// let n = ids.count_approx_distinct(0.01).unwrap();
    /// assert!((19_400..=20_600).contains(&n), "{n}");
    /// assert_eq!(ctx.parallelize(vec!['a', 'b', 'a'], 2).count_approx_distinct(0.05).unwrap(), 2);
    /// ```
    pub fn count_approx_distinct(&self, relative_sd: f64) -> Result<u64> {
        // Spark's rule: 2^p registers give a standard error of 1.054/sqrt(2^p).
        let p = (2.0 * (1.054 / relative_sd).log2()).ceil();
        if !(relative_sd > 0.0 && (4.0..=f64::from(MAX_PRECISION)).contains(&p)) {
            return Err(Error::InvalidArgument(format!(
                "relative_sd {relative_sd} is outside what a sketch can give ({:.4} to {:.2})",
                1.054 / f64::from(1u32 << MAX_PRECISION).sqrt(),
                1.054 / 4.0
            )));
        }
        let p = p as u8;
        let sketch =
            || HyperLogLogPlus::<T, Hashing>::new(p, Hashing).expect("the precision was checked");
        let parts = self.run_partitions("count_approx_distinct", |it| {
            let mut s = sketch();
            for_each_chunk(it, |chunk| {
                chunk.iter().for_each(|x| s.insert(x));
                Ok(())
            })?;
            Ok(s)
        })?;
        let mut all = sketch();
        for s in &parts {
            all.merge(s).expect("every sketch has the same precision");
        }
        Ok(all.count().round() as u64)
    }
}

/// An `InvalidArgument` unless `confidence` is a probability.
fn check_confidence(confidence: f64) -> Result<()> {
    if (0.0..=1.0).contains(&confidence) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "confidence {confidence} is not within [0, 1]"
        )))
    }
}

/// The two-sided factor for `confidence` over `n` samples: Student's t
/// with n - 1 degrees of freedom up to 100 samples, the normal beyond (as
/// Spark's mean and sum evaluators).
fn confidence_factor(confidence: f64, n: u64) -> f64 {
    let q = 1.0 - (1.0 - confidence) / 2.0;
    if n > 100 {
        Normal::standard().inverse_cdf(q)
    } else {
        StudentsT::new(0.0, 1.0, (n - 1) as f64)
            .expect("n >= 2 gives positive degrees of freedom")
            .inverse_cdf(q)
    }
}

/// Spark's count estimate after `done` of `total` partitions counted
/// `seen`: the rest is Poisson with the rate seen so far.
fn estimate_count(seen: u64, done: usize, total: usize, confidence: f64) -> BoundedDouble {
    if done == total {
        return BoundedDouble::exact(seen as f64);
    }
    if done == 0 || seen == 0 {
        return BoundedDouble {
            mean: 0.0,
            confidence: 0.0,
            low: 0.0,
            high: f64::INFINITY,
        };
    }
    let p = done as f64 / total as f64;
    let rest = Poisson::new(seen as f64 * (1.0 - p) / p).expect("a positive rate");
    let seen_f = seen as f64;
    BoundedDouble {
        mean: seen_f + rest.mean().unwrap_or(0.0),
        confidence,
        low: seen_f + rest.inverse_cdf((1.0 - confidence) / 2.0) as f64,
        high: seen_f + rest.inverse_cdf((1.0 + confidence) / 2.0) as f64,
    }
}

/// Spark's mean estimate from the partitions done so far.
fn estimate_mean(s: &StatCounter, done: usize, total: usize, confidence: f64) -> BoundedDouble {
    if done == total {
        return BoundedDouble::exact(s.mean());
    }
    let unbounded = |mean| BoundedDouble {
        mean,
        confidence,
        low: f64::NEG_INFINITY,
        high: f64::INFINITY,
    };
    match s.count() {
        0 => BoundedDouble {
            confidence: 0.0,
            ..unbounded(0.0)
        },
        1 => unbounded(s.mean()),
        n => {
            let half = confidence_factor(confidence, n) * (s.sample_variance() / n as f64).sqrt();
            BoundedDouble {
                mean: s.mean(),
                confidence,
                low: s.mean() - half,
                high: s.mean() + half,
            }
        }
    }
}

/// Spark's sum estimate: the mean seen so far times the estimated count,
/// with the variance of that product.
fn estimate_sum(s: &StatCounter, done: usize, total: usize, confidence: f64) -> BoundedDouble {
    if done == total {
        return BoundedDouble::exact(s.sum());
    }
    let unbounded = |mean| BoundedDouble {
        mean,
        confidence,
        low: f64::NEG_INFINITY,
        high: f64::INFINITY,
    };
    let n = s.count();
    if done == 0 || n == 0 {
        return BoundedDouble {
            confidence: 0.0,
            ..unbounded(0.0)
        };
    }
    let p = done as f64 / total as f64;
    let count_estimate = (n as f64 + 1.0 - p) / p;
    let count_var = (n as f64 + 1.0) * (1.0 - p) / (p * p);
    match n {
        1 => unbounded(s.mean() * count_estimate),
        n => {
            let (mean, mean_var) = (s.mean(), s.sample_variance() / n as f64);
            let sum = mean * count_estimate;
            let var = mean * mean * count_var
                + count_estimate * count_estimate * mean_var
                + mean_var * count_var;
            let half = confidence_factor(confidence, n) * var.sqrt();
            BoundedDouble {
                mean: sum,
                confidence,
                low: sum - half,
                high: sum + half,
            }
        }
    }
}

/// Each partition's statistics, for the sum and mean estimates.
fn partition_stats<T: Numeric>(it: ChunkIter<T>) -> Result<StatCounter> {
    let mut s = StatCounter::default();
    for_each_chunk(it, |b| {
        b.iter().for_each(|x| s.push(x.to_f64()));
        Ok(())
    })?;
    Ok(s)
}

fn merged(parts: &[&StatCounter]) -> StatCounter {
    let mut all = StatCounter::default();
    parts.iter().for_each(|p| all.merge(p));
    all
}

impl<T: Data> Rdd<T> {
    /// The number of elements, approximately, within `timeout` (Spark's
    /// `countApprox`): the job runs on; when the timeout passes (counted
    /// from when the job has its turn) the answer is estimated from the
    /// partitions counted so far, with bounds that hold with probability
    /// `confidence` (the uncounted rest is taken as Poisson at the rate
    /// seen, as Spark does). [`PartialResult::final_value`] waits for the
    /// exact count. An `InvalidArgument` unless `confidence` is in [0, 1].
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let slow = ctx.range(0, 400, 1, 4).map(|x| {
    ///     if x >= 300 { std::thread::sleep(Duration::from_millis(5)) } // the last partition is slow
    ///     x
    /// });
    /// let n = slow.count_approx(Duration::from_millis(200), 0.95).unwrap();
    /// assert!(!n.is_initial_value_final());
    /// let first = *n.initial_value();
    /// assert!(first.confidence == 0.95 && first.contains(400.0), "{first:?}");
    /// assert_eq!(n.final_value().unwrap(), spate::BoundedDouble {
    ///     mean: 400.0, confidence: 1.0, low: 400.0, high: 400.0,
    /// });
    /// ```
    pub fn count_approx(
        &self,
        timeout: Duration,
        confidence: f64,
    ) -> Result<PartialResult<BoundedDouble>> {
        check_confidence(confidence)?;
        approximate(
            self,
            "count_approx",
            timeout,
            super::actions::count_partition,
            move |parts: &[&u64], total| {
                let seen = parts.iter().copied().sum();
                estimate_count(seen, parts.len(), total, confidence)
            },
        )
    }
}

impl<T: Numeric> Rdd<T> {
    /// The sum, approximately, within `timeout` (Spark's `sumApprox`): as
    /// [`count_approx`](Rdd::count_approx), estimated from the mean and
    /// count of the partitions done so far (Student's t bounds up to 100
    /// elements seen, normal beyond, as Spark's). Sums are of the elements
    /// as `f64`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let s = ctx.range(1, 101, 1, 4).sum_approx(Duration::from_secs(60), 0.9).unwrap();
    /// assert_eq!(s.final_value().unwrap().mean, 5050.0);
    /// ```
    pub fn sum_approx(
        &self,
        timeout: Duration,
        confidence: f64,
    ) -> Result<PartialResult<BoundedDouble>> {
        check_confidence(confidence)?;
        approximate(
            self,
            "sum_approx",
            timeout,
            partition_stats,
            move |parts: &[&StatCounter], total| {
                estimate_sum(&merged(parts), parts.len(), total, confidence)
            },
        )
    }

    /// The mean, approximately, within `timeout` (Spark's `meanApprox`):
    /// as [`sum_approx`](Rdd::sum_approx), from the partitions done so far.
    /// The mean of an empty dataset is NaN, as [`mean`](Rdd::mean)'s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = spate::Context::new().unwrap();
    /// let m = ctx.range(1, 101, 1, 4).mean_approx(Duration::from_secs(60), 0.9).unwrap();
    /// assert_eq!(m.final_value().unwrap().mean, 50.5);
    /// ```
    pub fn mean_approx(
        &self,
        timeout: Duration,
        confidence: f64,
    ) -> Result<PartialResult<BoundedDouble>> {
        check_confidence(confidence)?;
        approximate(
            self,
            "mean_approx",
            timeout,
            partition_stats,
            move |parts: &[&StatCounter], total| {
                estimate_mean(&merged(parts), parts.len(), total, confidence)
            },
        )
    }
}
