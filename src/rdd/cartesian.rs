//! The cartesian product of two datasets.

use super::{ChunkIter, Chunks, Compute, NewRdd, Rdd, drain_all};
use crate::data::Data;
use crate::error::Result;
use crate::runtime::TaskContext;

struct CartesianOp<T, U> {
    left: Rdd<T>,
    right: Rdd<U>,
}

impl<T: Data, U: Data> Compute<(T, U)> for CartesianOp<T, U> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<(T, U)>> {
        let n = self.right.num_partitions();
        let right = drain_all(self.right.iterator(split % n, tc)?)?;
        Ok(Box::new(Product {
            left: self.left.iterator(split / n, tc)?,
            buf: Vec::new(),
            right,
        }))
    }
}

/// Streams the left partition, pairing each element with the whole
/// (materialized) right partition.
struct Product<T, U> {
    left: ChunkIter<T>,
    buf: Vec<T>,
    right: Vec<U>,
}

impl<T: Clone, U: Clone> Chunks<(T, U)> for Product<T, U> {
    fn next_chunk(&mut self, out: &mut Vec<(T, U)>, hint: usize) -> Result<bool> {
        let want = (hint / self.right.len().max(1)).max(1);
        let more = self.left.next_chunk(&mut self.buf, want)?;
        for x in self.buf.drain(..) {
            out.extend(self.right.iter().map(|y| (x.clone(), y.clone())));
        }
        Ok(more)
    }
}

impl<T: Data> Rdd<T> {
    /// Every pair `(x, y)` with `x` from `self` and `y` from `other`; one
    /// partition per pair of input partitions (left-major).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let c = ctx.parallelize(vec![1, 2], 2).cartesian(&ctx.parallelize(vec!['a', 'b'], 1));
    /// assert_eq!(c.num_partitions(), 2);
    /// assert_eq!(c.collect().unwrap(), [(1, 'a'), (1, 'b'), (2, 'a'), (2, 'b')]);
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn cartesian<U: Data>(&self, other: &Rdd<U>) -> Rdd<(T, U)> {
        let spec = NewRdd {
            op_name: "cartesian",
            num_partitions: self.num_partitions() * other.num_partitions(),
            deps: vec![self.narrow_dep(), other.narrow_dep()],
            partitioner: None,
        };
        let op = CartesianOp {
            left: self.clone(),
            right: other.clone(),
        };
        Rdd::from_op(self.context(), spec, op)
    }
}
