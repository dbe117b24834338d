//! Ids of datasets and shuffles, assigned per context in creation order, so
//! the same program assigns the same ids in every run and every process.
//! Newtypes, so a dataset id is never passed where a shuffle id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Dataset id, assigned per context in creation order.
///
/// ```
/// let ctx = spate::Context::new().unwrap();
/// let (a, b) = (ctx.range(0, 1, 1, 1), ctx.range(0, 1, 1, 1));
/// assert!(a.id() < b.id());
/// assert_eq!(a.id().to_string(), a.id().0.to_string());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RddId(pub u64);

/// Shuffle id, assigned per context in creation order (the first shuffle a
/// program declares is 0).
///
/// ```
/// let plan = spate::FaultPlan::new().lose_map_output(0, 1, spate::ShuffleLoss::Delete);
/// # let _ = plan;
/// let id: spate::ShuffleId = 3.into();
/// assert_eq!(id, spate::ShuffleId(3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShuffleId(pub u64);

impl fmt::Display for RddId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ShuffleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for RddId {
    fn from(id: u64) -> Self {
        RddId(id)
    }
}

impl From<u64> for ShuffleId {
    fn from(id: u64) -> Self {
        ShuffleId(id)
    }
}
