//! Ids of datasets and shuffles, assigned per context in creation order, so
//! the same program assigns the same ids in every run and every process.

/// Dataset id, assigned per context in creation order.
pub type RddId = u64;

/// Shuffle id, assigned per context in creation order.
pub(crate) type ShuffleId = u64;
