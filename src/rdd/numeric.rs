//! Statistics of numeric datasets (Spark's `DoubleRDDFunctions`).

use super::{Rdd, for_each_chunk};
use crate::data::Data;
use crate::error::{Error, Result};

/// A number a dataset can be summed and measured over.
pub trait Numeric: crate::data::Value + Copy + PartialOrd {
    /// The additive identity.
    fn zero() -> Self;
    /// Addition (wrapping for integers, so a sum never panics).
    fn plus(self, other: Self) -> Self;
    /// The value as `f64`, for statistics.
    fn to_f64(self) -> f64;
}

macro_rules! int_numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            fn zero() -> Self { 0 }
            fn plus(self, other: Self) -> Self { self.wrapping_add(other) }
            fn to_f64(self) -> f64 { self as f64 }
        }
    )*};
}
int_numeric!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize
);

macro_rules! float_numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            fn zero() -> Self { 0.0 }
            fn plus(self, other: Self) -> Self { self + other }
            fn to_f64(self) -> f64 { self as f64 }
        }
    )*};
}
float_numeric!(f32, f64);

/// Count, mean, variance, minimum and maximum, merged across partitions
/// with Chan et al.'s parallel algorithm (Spark's `StatCounter`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatCounter {
    n: u64,
    mu: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Default for StatCounter {
    fn default() -> Self {
        StatCounter {
            n: 0,
            mu: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl StatCounter {
    /// Adds one value.
    ///
    /// ```
    /// use spate::StatCounter;
    /// let mut s = StatCounter::default();
    /// for x in [1.0, 2.0, 6.0] {
    ///     s.push(x);
    /// }
    /// assert_eq!((s.count(), s.mean()), (3, 3.0));
    /// ```
    pub fn push(&mut self, x: f64) {
        let delta = x - self.mu;
        self.n += 1;
        self.mu += delta / self.n as f64;
        self.m2 += delta * (x - self.mu);
        self.min = nan_min(self.min, x);
        self.max = nan_max(self.max, x);
    }

    /// Merges another counter into this one.
    ///
    /// ```
    /// use spate::StatCounter;
    /// let (mut a, mut b) = (StatCounter::default(), StatCounter::default());
    /// a.push(1.0);
    /// b.push(3.0);
    /// a.merge(&b);
    /// assert_eq!((a.count(), a.mean(), a.max()), (2, 2.0, 3.0));
    /// ```
    pub fn merge(&mut self, other: &StatCounter) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let delta = other.mu - self.mu;
        let n = self.n + other.n;
        self.mu = if other.n * 10 < self.n {
            self.mu + delta * other.n as f64 / n as f64
        } else if self.n * 10 < other.n {
            other.mu - delta * self.n as f64 / n as f64
        } else {
            (self.mu * self.n as f64 + other.mu * other.n as f64) / n as f64
        };
        self.m2 += other.m2 + delta * delta * self.n as f64 * other.n as f64 / n as f64;
        self.n = n;
        self.min = nan_min(self.min, other.min);
        self.max = nan_max(self.max, other.max);
    }

    /// Number of values.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1.0, 2.0], 2).stats()?.count(), 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn count(&self) -> u64 {
        self.n
    }
    /// Mean (NaN when empty, as in Spark: there is no mean of nothing).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1.0, 2.0, 6.0], 2).stats()?.mean(), 3.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn mean(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.mu }
    }
    /// Sum of the values.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1.5, 2.5], 2).stats()?.sum(), 4.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn sum(&self) -> f64 {
        self.mu * self.n as f64
    }
    /// Population variance (NaN when empty).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1.0, 3.0], 2).stats()?.variance(), 1.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn variance(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.m2 / self.n as f64
        }
    }
    /// Sample variance (NaN with fewer than two values).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1.0, 3.0], 2).stats()?.sample_variance(), 2.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn sample_variance(&self) -> f64 {
        if self.n <= 1 {
            f64::NAN
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }
    /// Population standard deviation.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1.0, 3.0], 2).stats()?.stdev(), 1.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn stdev(&self) -> f64 {
        self.variance().sqrt()
    }
    /// Sample standard deviation.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1.0, 3.0], 2).stats()?.sample_stdev(), 2f64.sqrt());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn sample_stdev(&self) -> f64 {
        self.sample_variance().sqrt()
    }
    /// Smallest value (+inf when empty, NaN if any value is NaN).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![4.0, -1.5], 2).stats()?.min(), -1.5);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn min(&self) -> f64 {
        self.min
    }
    /// Largest value (-inf when empty, NaN if any value is NaN).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![4.0, -1.5], 2).stats()?.max(), 4.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn max(&self) -> f64 {
        self.max
    }
}

/// Minimum that propagates NaN, like Scala's `math.min` (`f64::min` ignores it).
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

impl<T: Numeric> Rdd<T> {
    /// The sum of the elements (0 for an empty dataset); integers wrap on
    /// overflow.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// assert_eq!(ctx.range(1, 11, 1, 3).sum().unwrap(), 55);
    /// assert_eq!(ctx.empty::<i64>().sum().unwrap(), 0);
    /// ```
    pub fn sum(&self) -> Result<T> {
        let parts = self.run_partitions("sum", |it| {
            let mut s = T::zero();
            for_each_chunk(it, |b| {
                s = b.iter().fold(s, |a, x| a.plus(*x));
                Ok(())
            })?;
            Ok(s)
        })?;
        Ok(parts.into_iter().fold(T::zero(), T::plus))
    }

    /// Count, mean, variance, min and max in one pass.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let s = ctx.parallelize(vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], 3).stats().unwrap();
    /// assert_eq!((s.count(), s.mean(), s.stdev()), (8, 5.0, 2.0));
    /// ```
    pub fn stats(&self) -> Result<StatCounter> {
        let parts = self.run_partitions("stats", |it| {
            let mut s = StatCounter::default();
            for_each_chunk(it, |b| {
                b.iter().for_each(|x| s.push(x.to_f64()));
                Ok(())
            })?;
            Ok(s)
        })?;
        let mut total = StatCounter::default();
        parts.iter().for_each(|p| total.merge(p));
        Ok(total)
    }

    /// The mean (NaN for an empty dataset, as in Spark).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1, 2, 6], 2).mean()?, 3.0);
    /// assert!(ctx.empty::<f64>().mean()?.is_nan()); // as in Spark
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn mean(&self) -> Result<f64> {
        Ok(self.stats()?.mean())
    }

    /// The population variance (NaN for an empty dataset).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1, 3], 2).variance()?, 1.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn variance(&self) -> Result<f64> {
        Ok(self.stats()?.variance())
    }

    /// The sample variance (NaN with fewer than two elements).
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1, 3], 2).sample_variance()?, 2.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn sample_variance(&self) -> Result<f64> {
        Ok(self.stats()?.sample_variance())
    }

    /// The population standard deviation.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1, 3], 2).stdev()?, 1.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn stdev(&self) -> Result<f64> {
        Ok(self.stats()?.stdev())
    }

    /// The sample standard deviation.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// assert_eq!(ctx.parallelize(vec![1, 3], 2).sample_stdev()?, 2f64.sqrt());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn sample_stdev(&self) -> Result<f64> {
        Ok(self.stats()?.sample_stdev())
    }
}

/// Bucket boundaries and counts, from [`Rdd::histogram`].
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// `buckets.len() + 1` boundaries, ascending.
    pub boundaries: Vec<f64>,
    /// Elements per bucket; the last bucket includes its upper boundary.
    pub counts: Vec<u64>,
}

impl<T: Data> Rdd<T> {
    /// A histogram with `buckets` evenly spaced buckets between the minimum
    /// and the maximum (one bucket if they are equal). An error on an empty
    /// dataset or one holding NaN or infinite values.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let h = ctx.parallelize(vec![0.0, 1.0, 2.0, 3.0, 4.0], 2).histogram(2).unwrap();
    /// assert_eq!(h.boundaries, [0.0, 2.0, 4.0]);
    /// assert_eq!(h.counts, [2, 3]);
    /// ```
    pub fn histogram(&self, buckets: usize) -> Result<Histogram>
    where
        T: super::Numeric,
    {
        if buckets == 0 {
            return Err(Error::InvalidArgument(
                "histogram needs at least one bucket".into(),
            ));
        }
        let stats = self.stats()?;
        if stats.count() == 0 {
            return Err(Error::EmptyDataset("histogram"));
        }
        let (lo, hi) = (stats.min(), stats.max());
        if !lo.is_finite() || !hi.is_finite() {
            return Err(Error::InvalidArgument(
                "histogram of NaN or infinite values".into(),
            ));
        }
        let boundaries: Vec<f64> = if lo == hi {
            vec![lo, hi]
        } else {
            (0..=buckets)
                .map(|i| {
                    if i == buckets {
                        hi
                    } else {
                        lo + (hi - lo) * i as f64 / buckets as f64
                    }
                })
                .collect()
        };
        let counts =
            self.count_in_buckets(&boundaries, |x| Some(x.to_f64()).filter(|v| !v.is_nan()))?;
        Ok(Histogram { boundaries, counts })
    }

    /// Counts per bucket for ascending `bounds` over any ordered type,
    /// floats included (PySpark's `histogram` with explicit buckets): bucket
    /// i holds `bounds[i] <= x < bounds[i + 1]`, the last one also
    /// `x == bounds[n]`; elements outside, and those not comparable with
    /// themselves (NaN), are not counted. An `InvalidArgument` unless there
    /// are at least two bounds, strictly ascending.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let words = ctx.parallelize(vec!['a', 'k', 'm', 'z', 'f'], 2);
    /// assert_eq!(words.histogram_by_bounds(&['a', 'g', 'n', 'z']).unwrap(), [2, 2, 1]);
    /// let xs = ctx.parallelize(vec![0.5, 1.5, 2.0, f64::NAN], 2);
    /// assert_eq!(xs.histogram_by_bounds(&[0.0, 1.0, 2.0]).unwrap(), [1, 2]);
    /// ```
    pub fn histogram_by_bounds(&self, bounds: &[T]) -> Result<Vec<u64>>
    where
        T: PartialOrd,
    {
        if bounds.len() < 2
            || bounds
                .windows(2)
                .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        {
            return Err(Error::InvalidArgument(
                "histogram bounds must be at least two, strictly ascending".into(),
            ));
        }
        #[allow(clippy::eq_op)] // NaN is the value not equal to itself
        self.count_in_buckets(bounds, |x| (x == x).then_some(x))
    }

    /// Counts per bucket of ascending `bounds` (bucket i is `[b[i], b[i+1])`,
    /// the last one closed) of each element's `value`; elements outside,
    /// or without a value, are not counted.
    fn count_in_buckets<B: PartialOrd + Sync>(
        &self,
        bounds: &[B],
        value: impl Fn(T) -> Option<B> + Sync,
    ) -> Result<Vec<u64>> {
        let last = bounds.len() - 1;
        let parts = self.run_partitions("histogram", |it| {
            let mut counts = vec![0u64; last];
            for_each_chunk(it, |chunk| {
                for v in chunk.drain(..).filter_map(&value) {
                    if v < bounds[0] || v > bounds[last] {
                        continue;
                    }
                    let i = if v == bounds[last] {
                        last - 1
                    } else {
                        bounds.partition_point(|b| *b <= v) - 1
                    };
                    counts[i] += 1;
                }
                Ok(())
            })?;
            Ok(counts)
        })?;
        let mut total = vec![0u64; last];
        for p in parts {
            total.iter_mut().zip(p).for_each(|(t, c)| *t += c);
        }
        Ok(total)
    }
}
