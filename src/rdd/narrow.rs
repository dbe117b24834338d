//! The two building blocks of every one-to-one narrow transformation:
//! a chunk-to-chunk function ([`PipeOp`]) and a partition-to-iterator
//! function ([`MapPartitionsOp`]).

use super::{ChunkIter, Chunks, Compute, PartitionIter, Rdd};
use crate::data::Data;
use crate::error::Result;
use crate::runtime::TaskContext;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

/// Computes a partition by applying `f(input_batch, output)` to each chunk
/// of the parent partition. `f` drains its input; its error (a fallible
/// user closure's) fails the task. Map, filter, flat_map and
/// their keyed variants are all `PipeOp`s with different closures, each
/// compiled into its own tight loop.
pub(crate) struct PipeOp<T, U, F> {
    pub(crate) parent: Rdd<T>,
    pub(crate) f: Arc<F>,
    pub(crate) _out: PhantomData<fn() -> U>,
}

impl<T, U, F> Compute<U> for PipeOp<T, U, F>
where
    T: Data,
    U: Data,
    F: Fn(&mut Vec<T>, &mut Vec<U>) -> Result<()> + Send + Sync + 'static,
{
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<U>> {
        Ok(Box::new(Pipe {
            parent: self.parent.iterator(split, tc)?,
            buf: Vec::new(),
            f: self.f.clone(),
        }))
    }
}

struct Pipe<T, F> {
    parent: ChunkIter<T>,
    buf: Vec<T>,
    f: Arc<F>,
}

impl<T, U, F: Fn(&mut Vec<T>, &mut Vec<U>) -> Result<()>> Chunks<U> for Pipe<T, F> {
    #[inline]
    fn next_chunk(&mut self, out: &mut Vec<U>, hint: usize) -> Result<bool> {
        let more = self.parent.next_chunk(&mut self.buf, hint)?;
        let done = (self.f)(&mut self.buf, out);
        self.buf.clear();
        done.map(|()| more)
    }
}

/// Computes a partition by handing the parent partition, as an iterator,
/// to `f(partition_index, iter)` and pulling the iterator it returns.
pub(crate) struct MapPartitionsOp<T, U, F> {
    pub(crate) parent: Rdd<T>,
    pub(crate) f: Arc<F>,
    pub(crate) _out: PhantomData<fn() -> U>,
}

impl<T, U, I, F> Compute<U> for MapPartitionsOp<T, U, F>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    I::IntoIter: 'static,
    F: Fn(usize, PartitionIter<T>) -> I + Send + Sync + 'static,
{
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<U>> {
        let error = Rc::new(RefCell::new(None));
        let input = PartitionIter::new(self.parent.iterator(split, tc)?, error.clone());
        Ok(Box::new(UserIter {
            iter: (self.f)(split, input).into_iter(),
            error,
        }))
    }
}

/// Chunks pulled from a user's iterator; an input error seen by the
/// iterator surfaces once it ends.
struct UserIter<I> {
    iter: I,
    error: Rc<RefCell<Option<crate::Error>>>,
}

impl<I: Iterator> Chunks<I::Item> for UserIter<I> {
    fn next_chunk(&mut self, out: &mut Vec<I::Item>, hint: usize) -> Result<bool> {
        for _ in 0..hint.max(1) {
            match self.iter.next() {
                Some(x) => out.push(x),
                None => {
                    return match self.error.borrow_mut().take() {
                        Some(e) => Err(e),
                        None => Ok(false),
                    };
                }
            }
        }
        Ok(true)
    }
}
