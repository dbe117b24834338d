//! The machinery of shuffles: redistributing keyed records by partitioner,
//! with map-side combine where an aggregator allows. The typed shuffle
//! dependency that drives a map task lives with the datasets
//! (`rdd/shuffle_dep.rs`); this module knows records, not datasets.
//!
//! A map task pulls one parent partition, optionally combines values per key
//! in a hash map, splits the result into one bucket per reduce partition and
//! hands the buckets to the [`ShuffleManager`] as a [`MapOutput`]. Buckets
//! stay typed in memory while the context's memory budget has room; the rest
//! is encoded (bincode), compressed (lz4) and written with a checksum per
//! frame to a file in the scratch directory. A reduce task reads its bucket
//! from every map output ([`reader`]), checking each frame; a missing or
//! corrupt block is a [`Error::ShuffleFetch`](crate::Error::ShuffleFetch).

mod aggregate;
pub(crate) mod external_agg;
pub(crate) mod external_sort;
mod manager;
pub(crate) mod reader;
pub(crate) mod writer;

pub(crate) use aggregate::{
    Aggregate, CombineMap, Combiner, GroupValues, NoAggregate, combine_chunk, new_map,
};
pub(crate) use manager::{BlockSizes, MapOutput, MapSlot, ShuffleManager};

use crate::data::Value;

/// Estimated bytes per entry of a combine map, sampled from a few entries.
pub(crate) fn combined_entry_bytes<K: Value, C: Value>(map: &aggregate::CombineMap<K, C>) -> usize {
    let sample: Vec<(&K, &C)> = map.iter().take(16).collect();
    if sample.is_empty() {
        return size_of::<(K, C)>() + 8;
    }
    // Inline size of the entry plus its sampled heap data, plus control bytes.
    (crate::memory::estimate_size(&sample) / sample.len()).max(1) + size_of::<(K, C)>() + 1
}
