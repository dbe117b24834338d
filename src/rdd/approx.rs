//! Approximate actions: answers from sketches, cheaper than exact ones.

use super::{Rdd, for_each_chunk};
use crate::data::Data;
use crate::error::{Error, Result};
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, Hash};

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
