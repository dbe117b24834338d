//! The bounds that element, key and value types must meet.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::hash::Hash;

/// An element of a dataset: owned, clonable and shareable across task threads.
///
/// Implemented for every type that meets the bounds.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}

/// A value that may cross a shuffle: it must serialize, since shuffle blocks
/// spill to disk when they do not fit the memory budget.
pub trait Value: Data + Serialize + DeserializeOwned {}
impl<T: Data + Serialize + DeserializeOwned> Value for T {}

/// A shuffle key: a [`Value`] that can be hashed and compared for equality.
pub trait Key: Value + Hash + Eq {}
impl<T: Value + Hash + Eq> Key for T {}
