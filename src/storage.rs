//! Cached partitions of persisted datasets.

use crate::rdd::RddId;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::HashMap;
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

    pub(crate) fn put<T: Send + Sync + 'static>(
        &self,
        rdd: RddId,
        split: usize,
        data: Arc<Vec<T>>,
    ) {
        self.blocks.lock().insert((rdd, split), data);
    }

    pub(crate) fn remove_rdd(&self, rdd: RddId) {
        self.blocks.lock().retain(|(r, _), _| *r != rdd);
    }

    pub(crate) fn cached_partitions(&self, rdd: RddId) -> usize {
        self.blocks.lock().keys().filter(|(r, _)| *r == rdd).count()
    }
}
