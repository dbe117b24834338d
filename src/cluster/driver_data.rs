//! Data that only the driver's copy of the program is trusted to hold:
//! the slices of `parallelize`d collections. Every process runs the same
//! `main`, but a vector built there may differ between processes (a file
//! only the driver can read, a clock, a random seed); the driver's is the
//! dataset. The driver registers each such dataset here and its block
//! server hands the slices out; an executor never computes a slice from
//! its own copy, it fetches the driver's.
//!
//! Entries hold the dataset weakly: a slice asked for after the driver
//! dropped the dataset is an error naming it, never another value.

use crate::ids::RddId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// A driver-held dataset that can encode one of its partitions for an
/// executor.
pub(crate) trait SliceSource: Send + Sync {
    /// Partition `partition`'s records in the engine's record codec, or why
    /// not (the dataset is gone, no such partition).
    fn encode_slice(&self, partition: usize) -> std::result::Result<Vec<u8>, String>;
}

/// The driver's registry of [`SliceSource`]s, by dataset id.
#[derive(Default)]
pub(crate) struct DriverData {
    sources: Mutex<HashMap<RddId, Weak<dyn SliceSource>>>,
}

impl DriverData {
    /// Serves `source` as dataset `rdd`'s slices, for as long as it lives.
    pub(crate) fn register(&self, rdd: RddId, source: &Arc<dyn SliceSource>) {
        let mut sources = self.sources.lock();
        sources.retain(|_, s| s.strong_count() > 0);
        sources.insert(rdd, Arc::downgrade(source));
    }

    /// Partition `partition` of dataset `rdd`, encoded.
    pub(crate) fn slice(
        &self,
        rdd: RddId,
        partition: usize,
    ) -> std::result::Result<Vec<u8>, String> {
        let source = self.sources.lock().get(&rdd).and_then(Weak::upgrade);
        match source {
            Some(source) => source.encode_slice(partition),
            None => Err(format!(
                "the driver holds no parallelized dataset {} (dropped, or the processes build different datasets)",
                rdd.0
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Numbers(Vec<Vec<u8>>);
    impl SliceSource for Numbers {
        fn encode_slice(&self, partition: usize) -> std::result::Result<Vec<u8>, String> {
            self.0
                .get(partition)
                .cloned()
                .ok_or_else(|| "no such partition".into())
        }
    }

    #[test]
    fn a_dropped_dataset_is_an_error_naming_it_not_an_empty_slice() {
        let data = DriverData::default();
        let source: Arc<dyn SliceSource> = Arc::new(Numbers(vec![vec![1, 2], vec![3]]));
        data.register(RddId(7), &source);
        assert_eq!(data.slice(RddId(7), 1), Ok(vec![3]));
        assert_eq!(
            data.slice(RddId(7), 2),
            Err("no such partition".to_string())
        );
        drop(source);
        let err = data.slice(RddId(7), 0).unwrap_err();
        assert!(err.contains("no parallelized dataset 7"), "{err}");
        assert!(data.slice(RddId(8), 0).unwrap_err().contains("dataset 8"));
    }
}
