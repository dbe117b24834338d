//! Cached partitions of persisted datasets.

use crate::rdd::RddId;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Where a persisted dataset keeps its computed partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageLevel {
    /// As typed values in memory (Spark's `MEMORY_ONLY`). A partition that
    /// is dropped is recomputed from lineage when next needed.
    MemoryOnly,
}

/// Holds cached partitions as typed, shared vectors keyed by (dataset, partition).
#[derive(Default)]
pub(crate) struct BlockManager {
    blocks: Mutex<HashMap<(RddId, usize), Arc<dyn Any + Send + Sync>>>,
    /// Blocks stored at least once since the dataset was persisted: a miss
    /// on one of these is a recomputation.
    stored: Mutex<HashSet<(RddId, usize)>>,
}

impl BlockManager {
    pub(crate) fn get<T: Send + Sync + 'static>(
        &self,
        rdd: RddId,
        split: usize,
    ) -> Option<Arc<Vec<T>>> {
        let block = self.blocks.lock().get(&(rdd, split))?.clone();
        block.downcast::<Vec<T>>().ok()
    }

    /// Stores a block; returns whether it had been stored before (so this
    /// is a recomputation).
    pub(crate) fn put<T: Send + Sync + 'static>(
        &self,
        rdd: RddId,
        split: usize,
        data: Arc<Vec<T>>,
    ) -> bool {
        self.blocks.lock().insert((rdd, split), data);
        !self.stored.lock().insert((rdd, split))
    }

    /// Drops one cached partition (lost, evicted or dropped by a fault).
    pub(crate) fn remove(&self, rdd: RddId, split: usize) -> bool {
        self.blocks.lock().remove(&(rdd, split)).is_some()
    }

    /// Forgets a dataset's blocks (unpersist).
    pub(crate) fn remove_rdd(&self, rdd: RddId) {
        self.blocks.lock().retain(|(r, _), _| *r != rdd);
        self.stored.lock().retain(|(r, _)| *r != rdd);
    }

    pub(crate) fn cached_partitions(&self, rdd: RddId) -> usize {
        self.blocks.lock().keys().filter(|(r, _)| *r == rdd).count()
    }
}
