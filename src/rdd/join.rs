//! Hash joins: one input (the build side) is loaded into a hash table per
//! partition, the other (the stream side) is pulled through it chunk by
//! chunk, so output streams without grouping the stream side's values.
//! A build side larger than the task's memory share spills; then the stream
//! side is sorted by key hash as well and the two are merged.

use super::cogroup::Side;
use super::{ChunkIter, Chunks, Compute, NewRdd, Rdd, for_each_chunk};
use crate::data::{Data, Key, Value};
use crate::error::Result;
use crate::partitioner::Partitioner;
use crate::runtime::TaskContext;
use crate::shuffle::CombineMap;
use crate::shuffle::external_agg::{Growth, SpillingMap, hash_of};
use crate::shuffle::external_sort::{self, SortOrder};
use smallvec::{SmallVec, smallvec};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

/// A build-side key's values (kept beside a flag: did a stream record
/// match them). The first value lives in the table entry itself: keys are
/// mostly unique on a join's build side, and a separate `Vec` per key cost
/// an allocation each and a second cache miss on every probe.
type BuildValues<B> = SmallVec<[B; 1]>;

/// What a join emits for matched and unmatched records. `S` is the stream
/// side's value type, `B` the build side's.
pub(crate) trait JoinKind<K, S, B>: Send + Sync + 'static {
    type Out: Data;
    /// Whether build-side keys that no stream record matched are emitted.
    const EMIT_UNMATCHED_BUILD: bool;
    fn matched(k: &K, s: &S, b: &B, out: &mut Vec<Self::Out>);
    fn stream_only(k: K, s: S, out: &mut Vec<Self::Out>);
    fn build_only(k: K, b: B, out: &mut Vec<Self::Out>);
}

/// Inner join: `(k, (s, b))`.
pub(crate) struct Inner;
/// Left outer join with the stream side on the left: `(k, (s, Option<b>))`.
pub(crate) struct StreamOuter;
/// Right outer join with the stream side on the right: `(k, (Option<b>, s))`.
pub(crate) struct StreamOuterFlipped;
/// Full outer join: `(k, (Option<s>, Option<b>))`.
pub(crate) struct FullOuter;

impl<K: Key, S: Value, B: Value> JoinKind<K, S, B> for Inner {
    type Out = (K, (S, B));
    const EMIT_UNMATCHED_BUILD: bool = false;
    #[inline]
    fn matched(k: &K, s: &S, b: &B, out: &mut Vec<Self::Out>) {
        out.push((k.clone(), (s.clone(), b.clone())));
    }
    fn stream_only(_: K, _: S, _: &mut Vec<Self::Out>) {}
    fn build_only(_: K, _: B, _: &mut Vec<Self::Out>) {}
}

impl<K: Key, S: Value, B: Value> JoinKind<K, S, B> for StreamOuter {
    type Out = (K, (S, Option<B>));
    const EMIT_UNMATCHED_BUILD: bool = false;
    #[inline]
    fn matched(k: &K, s: &S, b: &B, out: &mut Vec<Self::Out>) {
        out.push((k.clone(), (s.clone(), Some(b.clone()))));
    }
    fn stream_only(k: K, s: S, out: &mut Vec<Self::Out>) {
        out.push((k, (s, None)));
    }
    fn build_only(_: K, _: B, _: &mut Vec<Self::Out>) {}
}

impl<K: Key, S: Value, B: Value> JoinKind<K, S, B> for StreamOuterFlipped {
    type Out = (K, (Option<B>, S));
    const EMIT_UNMATCHED_BUILD: bool = false;
    #[inline]
    fn matched(k: &K, s: &S, b: &B, out: &mut Vec<Self::Out>) {
        out.push((k.clone(), (Some(b.clone()), s.clone())));
    }
    fn stream_only(k: K, s: S, out: &mut Vec<Self::Out>) {
        out.push((k, (None, s)));
    }
    fn build_only(_: K, _: B, _: &mut Vec<Self::Out>) {}
}

impl<K: Key, S: Value, B: Value> JoinKind<K, S, B> for FullOuter {
    type Out = (K, (Option<S>, Option<B>));
    const EMIT_UNMATCHED_BUILD: bool = true;
    #[inline]
    fn matched(k: &K, s: &S, b: &B, out: &mut Vec<Self::Out>) {
        out.push((k.clone(), (Some(s.clone()), Some(b.clone()))));
    }
    fn stream_only(k: K, s: S, out: &mut Vec<Self::Out>) {
        out.push((k, (Some(s), None)));
    }
    fn build_only(k: K, b: B, out: &mut Vec<Self::Out>) {
        out.push((k, (None, Some(b))));
    }
}

pub(crate) struct HashJoinOp<K, S, B, J> {
    stream: Side<K, S>,
    build: Side<K, B>,
    _kind: PhantomData<fn() -> J>,
}

impl<K: Key, S: Value, B: Value, J: JoinKind<K, S, B>> HashJoinOp<K, S, B, J> {
    /// Joins `stream` with `build` into `partitioner`'s partitions. The
    /// dependencies are listed stream side first.
    pub(crate) fn rdd(
        op_name: &'static str,
        stream: &Rdd<(K, S)>,
        build: &Rdd<(K, B)>,
        partitioner: Partitioner,
    ) -> Rdd<J::Out> {
        let op = HashJoinOp::<K, S, B, J> {
            stream: Side::new(stream, &partitioner),
            build: Side::new(build, &partitioner),
            _kind: PhantomData,
        };
        let spec = NewRdd {
            op_name,
            num_partitions: partitioner.num_partitions(),
            deps: vec![op.stream.dependency(), op.build.dependency()],
            partitioner: Some(partitioner),
        };
        Rdd::from_op(stream.context(), spec, op)
    }
}

impl<K: Key, S: Value, B: Value, J: JoinKind<K, S, B>> Compute<J::Out> for HashJoinOp<K, S, B, J> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<J::Out>> {
        let mut build = SpillingMap::<K, (BuildValues<B>, bool)>::new(tc, Growth::PerRecord);
        for_each_chunk(self.build.read(split, tc)?, |chunk| {
            build.insert_batch(
                chunk,
                |b| (smallvec![b], false),
                |(mut bs, m), b| {
                    bs.push(b);
                    (bs, m)
                },
            )
        })?;
        let stream = self.stream.read(split, tc)?;
        match build.into_memory() {
            Ok(table) => Ok(Box::new(Probe::<K, S, B, J> {
                stream: Some(stream),
                table,
                buf: Vec::new(),
                _kind: PhantomData,
            })),
            // The build side did not fit: sort the stream side by key hash
            // too and merge the two (a sort-merge join on the hash).
            Err(spilled) => {
                let build = spilled.finish(|(mut a, _), (mut b, _)| {
                    a.append(&mut b);
                    (a, false)
                })?;
                let by_hash = SortOrder::<(K, S)> {
                    sort: Arc::new(|v| v.sort_by_cached_key(|(k, _)| hash_of(k))),
                    cmp: Arc::new(|a, b| hash_of(&a.0).cmp(&hash_of(&b.0))),
                };
                let stream = external_sort::sort(stream, &by_hash, tc)?;
                Ok(Box::new(MergeJoin::<K, S, B, J> {
                    stream: Some(stream),
                    build: Some(build),
                    ahead: VecDeque::new(),
                    group: Vec::new(),
                    group_hash: None,
                    buf: Vec::new(),
                    _kind: PhantomData,
                }))
            }
        }
    }
}

/// Joins a stream side and a build side that both arrive in ascending key
/// hash order: the build entries of one hash at a time are held.
struct MergeJoin<K, S, B, J> {
    stream: Option<ChunkIter<(K, S)>>,
    build: Option<ChunkIter<(K, (BuildValues<B>, bool))>>,
    /// Build entries read but not yet grouped.
    ahead: VecDeque<(K, (BuildValues<B>, bool))>,
    /// The build entries whose hash is `group_hash`.
    group: Vec<(K, (BuildValues<B>, bool))>,
    group_hash: Option<u64>,
    buf: Vec<(K, S)>,
    _kind: PhantomData<fn() -> J>,
}

impl<K: Key, S: Value, B: Value, J: JoinKind<K, S, B>> MergeJoin<K, S, B, J> {
    /// Emits what the current group owes (unmatched build values for a full
    /// outer join) and loads the group of the next hash; `false` when the
    /// build side is exhausted.
    fn next_group(&mut self, out: &mut Vec<J::Out>) -> Result<bool> {
        for (k, (bs, matched)) in self.group.drain(..) {
            if J::EMIT_UNMATCHED_BUILD && !matched {
                bs.into_iter()
                    .for_each(|b| J::build_only(k.clone(), b, out));
            }
        }
        self.group_hash = None;
        loop {
            if self.ahead.is_empty() {
                let Some(build) = &mut self.build else { break };
                let mut chunk = Vec::new();
                let more = build.next_chunk(&mut chunk, super::CHUNK)?;
                self.ahead.extend(chunk);
                if !more {
                    self.build = None;
                }
                continue;
            }
            let h = hash_of(&self.ahead[0].0);
            match self.group_hash {
                None => self.group_hash = Some(h),
                Some(g) if g != h => break,
                Some(_) => {}
            }
            let entry = self.ahead.pop_front().expect("checked non-empty");
            self.group.push(entry);
        }
        Ok(self.group_hash.is_some())
    }
}

impl<K: Key, S: Value, B: Value, J: JoinKind<K, S, B>> Chunks<J::Out> for MergeJoin<K, S, B, J> {
    fn next_chunk(&mut self, out: &mut Vec<J::Out>, hint: usize) -> Result<bool> {
        let Some(stream) = &mut self.stream else {
            return Ok(false);
        };
        let more = stream.next_chunk(&mut self.buf, hint)?;
        let records = std::mem::take(&mut self.buf);
        for (k, s) in records.iter() {
            let h = hash_of(k);
            while self.group_hash.is_none_or(|g| g < h) {
                if !self.next_group(out)? {
                    break;
                }
            }
            let found = match self.group_hash {
                Some(g) if g == h => self.group.iter_mut().find(|(gk, _)| gk == k),
                _ => None,
            };
            match found {
                Some((_, (bs, matched))) => {
                    *matched = true;
                    for b in bs.iter() {
                        J::matched(k, s, b, out);
                    }
                }
                None => J::stream_only(k.clone(), s.clone(), out),
            }
        }
        self.buf = records;
        self.buf.clear();
        if more {
            return Ok(true);
        }
        self.stream = None;
        // The rest of the build side matched nothing.
        while self.next_group(out)? {}
        Ok(false)
    }
}

struct Probe<K, S, B, J> {
    stream: Option<ChunkIter<(K, S)>>,
    table: CombineMap<K, (BuildValues<B>, bool)>,
    buf: Vec<(K, S)>,
    _kind: PhantomData<fn() -> J>,
}

impl<K: Key, S: Value, B: Value, J: JoinKind<K, S, B>> Chunks<J::Out> for Probe<K, S, B, J> {
    fn next_chunk(&mut self, out: &mut Vec<J::Out>, hint: usize) -> Result<bool> {
        let Some(stream) = &mut self.stream else {
            return Ok(false);
        };
        let more = stream.next_chunk(&mut self.buf, hint)?;
        // Probe with keys where they lie in the chunk (see `combine_chunk`).
        for (k, s) in self.buf.iter() {
            match self.table.get_mut(k) {
                Some((bs, matched)) => {
                    *matched = true;
                    for b in bs.iter() {
                        J::matched(k, s, b, out);
                    }
                }
                None => J::stream_only(k.clone(), s.clone(), out),
            }
        }
        self.buf.clear();
        if more {
            return Ok(true);
        }
        self.stream = None;
        if J::EMIT_UNMATCHED_BUILD {
            for (k, (bs, matched)) in self.table.drain() {
                if !matched {
                    bs.into_iter()
                        .for_each(|b| J::build_only(k.clone(), b, out));
                }
            }
        }
        Ok(false)
    }
}
