//! How keys are assigned to partitions: a stable hash partitioner, range
//! partitioners for sorting, and user-defined ones.

use crate::error::{Error, Result};
use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The direction of a sort (Spark's `ascending` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Smallest first.
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}

/// Decides which partition a key belongs to.
///
/// Two datasets with *equal* partitioners are co-partitioned: operations over
/// them (join, cogroup, reduce_by_key after partition_by) do not shuffle again.
/// Hash partitioners are equal when their partition counts are; a range or
/// custom partitioner is equal only to its clones.
///
/// ```
/// use spate::Partitioner;
/// let p = Partitioner::hash(4);
/// assert_eq!(p.num_partitions(), 4);
/// assert_eq!(p, Partitioner::hash(4));
/// assert_eq!(p.partition_of(&6i32), 2); // integers hash to themselves, as in Spark
/// ```
#[derive(Clone)]
pub struct Partitioner {
    kind: Kind,
    /// Built over zero partitions: a dataset partitioned by it refuses
    /// every action (it works as one partition until then).
    zero_requested: bool,
}

#[derive(Clone)]
enum Kind {
    Hash(usize),
    /// A typed function `Arc<dyn Fn(&K) -> usize>` stored as `Any`.
    Keyed {
        name: Arc<str>,
        num_partitions: usize,
        func: Arc<dyn Any + Send + Sync>,
        /// Set by [`Partitioner::range`]: partitions hold consecutive key
        /// ranges in this order, so a key range maps to a partition range.
        range: Option<Order>,
    },
}

type KeyFn<K> = Arc<dyn Fn(&K) -> usize + Send + Sync>;

impl Partitioner {
    /// Partitions by a stable hash of the key modulo `num_partitions`
    /// (Spark's `HashPartitioner`). The hash is the same in every process
    /// and run; an integer key hashes to its own value. Zero partitions
    /// make every action on a dataset partitioned by it an
    /// [`Error::InvalidArgument`].
    ///
    /// ```
    /// use spate::Partitioner;
    /// let p = Partitioner::hash(4);
    /// assert_eq!(p.num_partitions(), 4);
    /// // A key's partition is stable across runs and processes.
    /// assert_eq!(p.partition_of(&"user-7"), p.partition_of(&"user-7"));
    /// assert!(p.partition_of(&42u64) < 4);
    /// ```
    pub fn hash(num_partitions: usize) -> Self {
        Partitioner {
            kind: Kind::Hash(num_partitions.max(1)),
            zero_requested: num_partitions == 0,
        }
    }

    /// A user-defined partitioner: `func(key)` must return a value below
    /// `num_partitions` (larger values are reduced modulo the count). The
    /// name (owned or static) is shown in debug output and errors. Zero
    /// partitions are refused as [`hash`](Partitioner::hash) refuses them.
    ///
    /// ```
    /// use spate::Partitioner;
    /// let by_region = format!("region-{}", 3);
    /// let p = Partitioner::custom(by_region, 3, |k: &u32| (*k / 100) as usize);
    /// assert_eq!(p.partition_of(&250u32), 2);
    /// assert_eq!(format!("{p:?}"), "Partitioner(region-3, 3)");
    /// ```
    pub fn custom<K: 'static>(
        name: impl Into<Arc<str>>,
        num_partitions: usize,
        func: impl Fn(&K) -> usize + Send + Sync + 'static,
    ) -> Self {
        let func: KeyFn<K> = Arc::new(func);
        Partitioner {
            kind: Kind::Keyed {
                name: name.into(),
                num_partitions: num_partitions.max(1),
                func: Arc::new(func),
                range: None,
            },
            zero_requested: num_partitions == 0,
        }
    }

    /// Partitions ordered keys by the upper `bounds` of each partition
    /// (Spark's `RangePartitioner`): partition i holds keys in
    /// (bounds\[i-1\], bounds\[i\]], the last one the rest. With
    /// [`Order::Descending`] the partition order is reversed.
    ///
    /// ```
    /// use spate::{Order, Partitioner};
    /// let p = Partitioner::range(vec![10, 20], Order::Descending);
    /// assert_eq!(p.partition_of(&5), 2);
    /// assert_eq!(p.partition_of(&25), 0);
    /// ```
    pub fn range<K: Ord + Send + Sync + 'static>(bounds: Vec<K>, order: Order) -> Self {
        let ascending = order == Order::Ascending;
        let n = bounds.len() + 1;
        let func = move |k: &K| {
            let i = bounds.partition_point(|b| b < k);
            if ascending { i } else { n - 1 - i }
        };
        let mut p = Partitioner::custom("range", n, func);
        if let Kind::Keyed { name, range, .. } = &mut p.kind {
            *name = Arc::from(if ascending { "range-asc" } else { "range-desc" });
            *range = Some(order);
        }
        p
    }

    /// The number of partitions keys are spread over.
    ///
    /// ```
    /// assert_eq!(spate::Partitioner::range(vec![10, 20], spate::Order::Ascending).num_partitions(), 3);
    /// ```
    pub fn num_partitions(&self) -> usize {
        match &self.kind {
            Kind::Hash(n) => *n,
            Kind::Keyed { num_partitions, .. } => *num_partitions,
        }
    }

    /// Why a dataset partitioned by this refuses actions, if it does.
    pub(crate) fn refusal(&self) -> Option<String> {
        self.zero_requested
            .then(|| crate::error::zero_partitions(&format!("{self:?}")))
    }

    /// The partition of one key (for lookups; tasks resolve the partitioner
    /// once, through a crate-internal typed view, instead).
    ///
    /// ```
    /// use spate::{Order, Partitioner};
    /// let p = Partitioner::range(vec![10, 20], Order::Ascending);
    /// assert_eq!([5, 15, 25].map(|k: i32| p.partition_of(&k)), [0, 1, 2]);
    /// ```
    pub fn partition_of<K: Hash + 'static>(&self, key: &K) -> usize {
        match self.for_keys::<K>() {
            Ok(f) => f.partition(key),
            Err(_) => 0,
        }
    }

    /// The partitions that can hold keys in `lower..=upper`, when this is a
    /// range partitioner over `K` (`None` otherwise: any partition can).
    pub(crate) fn partitions_for_range<K: Hash + 'static>(
        &self,
        lower: &K,
        upper: &K,
    ) -> Option<std::ops::RangeInclusive<usize>> {
        let Kind::Keyed {
            range: Some(order), ..
        } = &self.kind
        else {
            return None;
        };
        let f = self.for_keys::<K>().ok()?;
        let (a, b) = (f.partition(lower), f.partition(upper));
        Some(match order {
            Order::Ascending => a..=b,
            Order::Descending => b..=a,
        })
    }

    /// Resolves this partitioner for key type `K`, once per task.
    pub(crate) fn for_keys<K: Hash + 'static>(&self) -> Result<KeyPartition<K>> {
        match &self.kind {
            Kind::Hash(n) => Ok(KeyPartition::Hash(*n)),
            Kind::Keyed {
                name,
                num_partitions,
                func,
                ..
            } => match func.downcast_ref::<KeyFn<K>>() {
                Some(f) => Ok(KeyPartition::Keyed(f.clone(), *num_partitions)),
                None => Err(Error::InvalidArgument(format!(
                    "{name} partitioner was built for another key type than {}",
                    std::any::type_name::<K>()
                ))),
            },
        }
    }
}

/// What a reliable checkpoint records of a partitioner: a hash partitioner
/// whole; a keyed one by name and count, since its function cannot be
/// written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum SavedPartitioner {
    Hash(usize),
    Keyed { name: String, num_partitions: usize },
}

impl SavedPartitioner {
    /// The partitioner itself, when the record holds all of it.
    pub(crate) fn restore(&self) -> Option<Partitioner> {
        match self {
            SavedPartitioner::Hash(n) => Some(Partitioner::hash(*n)),
            SavedPartitioner::Keyed { .. } => None,
        }
    }
}

impl Partitioner {
    /// What a checkpoint records of this partitioner.
    pub(crate) fn saved(&self) -> SavedPartitioner {
        match &self.kind {
            Kind::Hash(n) => SavedPartitioner::Hash(*n),
            Kind::Keyed {
                name,
                num_partitions,
                ..
            } => SavedPartitioner::Keyed {
                name: name.to_string(),
                num_partitions: *num_partitions,
            },
        }
    }
}

impl PartialEq for Partitioner {
    fn eq(&self, other: &Self) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Hash(a), Kind::Hash(b)) => a == b,
            (Kind::Keyed { func: a, .. }, Kind::Keyed { func: b, .. }) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
impl Eq for Partitioner {}

impl fmt::Debug for Partitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Hash(n) => write!(f, "HashPartitioner({n})"),
            Kind::Keyed {
                name,
                num_partitions,
                ..
            } => write!(f, "Partitioner({name}, {num_partitions})"),
        }
    }
}

/// A partitioner resolved for one key type: what a map task calls per record.
pub(crate) enum KeyPartition<K> {
    Hash(usize),
    Keyed(KeyFn<K>, usize),
}

impl<K: Hash> KeyPartition<K> {
    #[inline]
    pub(crate) fn partition(&self, key: &K) -> usize {
        match self {
            KeyPartition::Hash(n) => (stable_hash(key) % *n as u64) as usize,
            KeyPartition::Keyed(f, n) => f(key) % *n,
        }
    }
}

/// A hash of `value` that is the same in every process, run and platform of
/// the same Spate version. A value that hashes as a single integer (every
/// integer type) hashes to that integer, like Java's `Integer.hashCode`.
///
/// ```
/// // The same on every machine and run (unlike std's RandomState).
/// assert_eq!(spate::stable_hash(&"key"), spate::stable_hash(&"key"));
/// assert_ne!(spate::stable_hash(&1u32), spate::stable_hash(&2u32));
/// ```
pub fn stable_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = StableHasher::default();
    value.hash(&mut h);
    h.finish()
}

/// FxHash with a fixed seed for mixing, plus a record of whether the input
/// was exactly one integer, whose value is then the hash.
///
/// The seed matters: the hash maps that combine and join records inside a
/// partition use plain FxHash; if partitioning used the same function, all
/// keys of one partition would share hash residues and crowd into a few
/// buckets of those maps.
struct StableHasher {
    fx: rustc_hash::FxHasher,
    writes: u32,
    int: Option<u64>,
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher {
            fx: rustc_hash::FxHasher::with_seed(0x5EED_CAFE),
            writes: 0,
            int: None,
        }
    }
}

impl StableHasher {
    fn int(&mut self, v: u64) {
        self.writes += 1;
        self.int = Some(v);
        self.fx.write_u64(v);
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        match (self.writes, self.int) {
            (1, Some(v)) => v,
            _ => self.fx.finish(),
        }
    }
    fn write(&mut self, bytes: &[u8]) {
        self.writes += 1;
        self.int = None;
        self.fx.write(bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.int(i as u64)
    }
    fn write_u16(&mut self, i: u16) {
        self.int(i as u64)
    }
    fn write_u32(&mut self, i: u32) {
        self.int(i as u64)
    }
    fn write_u64(&mut self, i: u64) {
        self.int(i)
    }
    fn write_usize(&mut self, i: usize) {
        self.int(i as u64)
    }
    // Signed integers map to their absolute value, so a negative key lands
    // in a valid partition under `%` just as Spark's non-negative modulo does.
    fn write_i8(&mut self, i: i8) {
        self.int((i as i64).unsigned_abs())
    }
    fn write_i16(&mut self, i: i16) {
        self.int((i as i64).unsigned_abs())
    }
    fn write_i32(&mut self, i: i32) {
        self.int((i as i64).unsigned_abs())
    }
    fn write_i64(&mut self, i: i64) {
        self.int(i.unsigned_abs())
    }
    fn write_isize(&mut self, i: isize) {
        self.int((i as i64).unsigned_abs())
    }
}

/// How a wide transformation partitions its output.
///
/// `Default` follows Spark's rule: reuse the partitioner of an input that
/// has one (and is not much smaller than the largest input), else hash into
/// as many partitions as the largest input has. A count hashes into that many
/// partitions; a [`Partitioner`] is used as given.
///
/// ```
/// use spate::{Partitioner, Partitioning};
/// let _: Partitioning = 8.into();
/// let _: Partitioning = Partitioner::hash(8).into();
/// let _: Partitioning = Partitioning::Default;
/// ```
#[derive(Clone, Debug, Default)]
pub enum Partitioning {
    /// Spark's default partitioner rule.
    #[default]
    Default,
    /// Hash into this many partitions.
    Count(usize),
    /// Use this partitioner.
    By(Partitioner),
}

impl From<usize> for Partitioning {
    fn from(n: usize) -> Self {
        Partitioning::Count(n)
    }
}

impl From<Partitioner> for Partitioning {
    fn from(p: Partitioner) -> Self {
        Partitioning::By(p)
    }
}

impl From<Option<usize>> for Partitioning {
    fn from(n: Option<usize>) -> Self {
        n.map_or(Partitioning::Default, Partitioning::Count)
    }
}

impl Partitioning {
    /// Resolves to a partitioner for an operation over datasets with these
    /// partitioners and partition counts.
    pub(crate) fn resolve(self, inputs: &[(Option<&Partitioner>, usize)]) -> Partitioner {
        match self {
            Partitioning::Count(n) => Partitioner::hash(n),
            Partitioning::By(p) => p,
            Partitioning::Default => default_partitioner(inputs),
        }
    }
}

/// Spark's `Partitioner.defaultPartitioner`, without a configured default
/// parallelism: the largest existing partitioner when it is eligible (its
/// partition count within a factor of ten of the largest input's), else a
/// hash partitioner over the largest input's partition count.
fn default_partitioner(inputs: &[(Option<&Partitioner>, usize)]) -> Partitioner {
    let max_parts = inputs.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let best = inputs
        .iter()
        .filter_map(|(p, _)| *p)
        .filter(|p| p.num_partitions() > 0)
        .max_by_key(|p| p.num_partitions());
    match best {
        Some(p) if (max_parts as f64).log10() - (p.num_partitions() as f64).log10() < 1.0 => {
            p.clone()
        }
        _ => Partitioner::hash(max_parts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_hash_to_themselves() {
        assert_eq!(stable_hash(&17u32), 17);
        assert_eq!(stable_hash(&17i64), 17);
        assert_eq!(stable_hash(&-3i32), 3);
        assert_eq!(Partitioner::hash(4).partition_of(&10usize), 2);
    }

    #[test]
    fn hash_is_fixed_across_runs() {
        // Pinned values: if one changes, data partitioned by an earlier
        // build (a checkpoint, another process) would no longer line up.
        assert_eq!(stable_hash("spate"), 15_033_718_126_876_953_885);
        assert_eq!(
            stable_hash(&String::from("spate")),
            15_033_718_126_876_953_885
        );
        assert_eq!(stable_hash(&("a", 1u8)), 18_054_194_033_021_552_397);
        assert_eq!(stable_hash(&vec![1u64, 2, 3]), 833_294_411_439_032_144);
        assert_ne!(stable_hash("a"), stable_hash("b"));
    }

    #[test]
    fn range_partitioner_respects_bounds_and_direction() {
        let asc = Partitioner::range(vec![10, 20], Order::Ascending);
        let f = asc.for_keys::<i32>().unwrap();
        assert_eq!(
            [5, 10, 11, 20, 21].map(|k| f.partition(&k)),
            [0, 0, 1, 1, 2]
        );
        let desc = Partitioner::range(vec![10, 20], Order::Descending);
        let f = desc.for_keys::<i32>().unwrap();
        assert_eq!(
            [5, 10, 11, 20, 21].map(|k| f.partition(&k)),
            [2, 2, 1, 1, 0]
        );
        assert!(asc.for_keys::<String>().is_err());
        assert_ne!(asc, Partitioner::range(vec![10, 20], Order::Ascending));
        assert_eq!(asc, asc.clone());
    }
}
