//! Datasets without parents in memory: local collections and integer
//! ranges (files are read by `crate::formats`).

use super::{ChunkIter, Chunks, Compute, IterChunks, NewRdd, Rdd, SharedChunks};
use crate::cluster::driver_data::SliceSource;
use crate::codec;
use crate::context::Context;
use crate::data::{Data, Value};
use crate::error::{Error, Result};
use crate::ids::RddId;
use crate::runtime::{MetricsCell, TaskContext};
use std::rc::Rc;
use std::sync::{Arc, OnceLock, Weak};

/// Spark's slicing rule: slice i of n items over p slices starts at ⌊i·n/p⌋.
pub(crate) fn slice_bounds(n: usize, p: usize, i: usize) -> (usize, usize) {
    let at = |i: usize| ((i as u128 * n as u128) / p as u128) as usize;
    (at(i), at(i + 1))
}

/// Counts the records a source hands out as its task's input, once per
/// chunk (the text reader counts its own lines and bytes).
struct Input<C> {
    inner: C,
    metrics: Rc<MetricsCell>,
}

impl<C> Input<C> {
    fn new(inner: C, tc: &TaskContext) -> Self {
        Input {
            inner,
            metrics: tc.metrics.clone(),
        }
    }
}

impl<T, C: Chunks<T>> Chunks<T> for Input<C> {
    fn next_chunk(&mut self, out: &mut Vec<T>, hint: usize) -> Result<bool> {
        let before = out.len();
        let more = self.inner.next_chunk(out, hint)?;
        let n = (out.len() - before) as u64;
        self.metrics.update(|m| m.input_records += n);
        Ok(more)
    }
}

/// The shape of a dataset without parents, of `n` partitions.
pub(crate) fn source(name: &'static str, n: usize) -> NewRdd {
    NewRdd {
        op_name: name,
        num_partitions: n,
        deps: Vec::new(),
        partitioner: None,
    }
}

/// A collection the program built in memory, sliced by Spark's rule.
///
/// In cluster mode the driver's collection is the dataset: the driver
/// serves its slices (`cluster::driver_data`) and an executor fetches each slice it
/// computes instead of using the vector its own copy of the program built,
/// which may differ (a file only the driver reads, a clock, a seed).
pub(crate) struct ParallelCollection<T> {
    slices: Arc<Vec<Arc<Vec<T>>>>,
    /// On an executor: this dataset's id, set once it has one, whose slices
    /// come from the driver, and how to decode one.
    from_driver: Option<(Arc<OnceLock<RddId>>, DecodeSlice<T>)>,
    /// On the driver: what its block server serves (the registry holds it
    /// weakly, so it goes with the dataset).
    _served: Option<Arc<dyn SliceSource>>,
}

impl<T: Data> ParallelCollection<T> {
    /// A dataset of no partitions (nothing to ship in any mode).
    pub(crate) fn empty(ctx: &Context) -> Rdd<T> {
        let op = ParallelCollection {
            slices: Arc::new(Vec::new()),
            from_driver: None,
            _served: None,
        };
        Rdd::from_op(ctx, source("parallelize", 0), op)
    }

    fn sliced(data: Vec<T>, parts: usize) -> Vec<Arc<Vec<T>>> {
        let n = data.len();
        let mut slices = Vec::with_capacity(parts);
        let mut rest = data.into_iter();
        for i in 0..parts {
            let (a, b) = slice_bounds(n, parts, i);
            slices.push(Arc::new(rest.by_ref().take(b - a).collect()));
        }
        slices
    }
}

impl<T: Value> ParallelCollection<T> {
    pub(crate) fn rdd(ctx: &Context, data: Vec<T>, parts: usize) -> Rdd<T> {
        let spec = source("parallelize", parts);
        match ctx.runtime().cluster() {
            None => {
                let op = ParallelCollection {
                    slices: Arc::new(Self::sliced(data, parts)),
                    from_driver: None,
                    _served: None,
                };
                Rdd::from_op(ctx, spec, op)
            }
            Some(node) if node.is_driver() => {
                let slices = Arc::new(Self::sliced(data, parts));
                let served: Arc<dyn SliceSource> = Arc::new(Served(Arc::downgrade(&slices)));
                let op = ParallelCollection {
                    slices,
                    from_driver: None,
                    _served: Some(served.clone()),
                };
                let rdd = Rdd::from_op(ctx, spec, op);
                node.driver_data().register(rdd.id(), &served);
                rdd
            }
            Some(_) => {
                drop(data);
                let id = Arc::new(OnceLock::new());
                let op = ParallelCollection {
                    slices: Arc::new(Vec::new()),
                    from_driver: Some((id.clone(), |b| codec::decode_record(b))),
                    _served: None,
                };
                let rdd = Rdd::from_op(ctx, spec, op);
                let _ = id.set(rdd.id());
                rdd
            }
        }
    }
}

type DecodeSlice<T> = fn(&[u8]) -> Result<Vec<T>>;

/// The driver's slices of one collection, as its block server serves them.
struct Served<T>(Weak<Vec<Arc<Vec<T>>>>);

impl<T: Value> SliceSource for Served<T> {
    fn encode_slice(&self, partition: usize) -> std::result::Result<Vec<u8>, String> {
        let slices = self.0.upgrade().ok_or("the dataset was dropped")?;
        let slice = slices
            .get(partition)
            .ok_or_else(|| format!("no partition {partition} of {}", slices.len()))?;
        let mut bytes = Vec::new();
        codec::encode_record(&**slice, &mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    }
}

impl<T: Data> Compute<T> for ParallelCollection<T> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<T>> {
        let (Some((id, decode)), Some(node)) = (&self.from_driver, tc.rt.cluster()) else {
            let slice = SharedChunks::new(self.slices[split].clone());
            return Ok(Box::new(Input::new(slice, tc)));
        };
        let id = *id.get().expect("a dataset's id is set at its creation");
        let bytes = node.fetch_slice(id, split).map_err(|why| {
            Error::Cluster(format!(
                "cannot fetch partition {split} of parallelized dataset {} from the driver: {why}",
                id.0
            ))
        })?;
        tc.metrics.update(|m| m.input_bytes += bytes.len() as u64);
        let slice = decode(&bytes)?;
        Ok(Box::new(Input::new(SharedChunks::new(Arc::new(slice)), tc)))
    }
}

pub(crate) struct RangeSource {
    start: i64,
    step: i64,
    count: u64,
    parts: usize,
}

impl RangeSource {
    pub(crate) fn rdd(ctx: &Context, start: i64, end: i64, step: i64, parts: usize) -> Rdd<i64> {
        let span = end as i128 - start as i128;
        let count = if step == 0 || span == 0 || (span > 0) != (step > 0) {
            0
        } else {
            let step = step as i128;
            ((span + step - step.signum()) / step) as u64
        };
        Rdd::from_op(
            ctx,
            source("range", parts),
            RangeSource {
                start,
                step,
                count,
                parts,
            },
        )
    }
}

impl Compute<i64> for RangeSource {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<i64>> {
        let (a, b) = slice_bounds(self.count as usize, self.parts, split);
        let (start, step) = (self.start, self.step);
        let values = (a as i64..b as i64).map(move |i| start.wrapping_add(i.wrapping_mul(step)));
        Ok(Box::new(Input::new(IterChunks(values), tc)))
    }
}
