//! Pairing elements positionally: zip, zip_with_index, zip_with_unique_id.

use super::{ChunkIter, Chunks, Compute, NewRdd, Rdd};
use crate::data::Data;
use crate::error::{Error, Result};
use crate::runtime::TaskContext;

struct ZipOp<T, U> {
    left: Rdd<T>,
    right: Rdd<U>,
}

impl<T: Data, U: Data> Compute<(T, U)> for ZipOp<T, U> {
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<ChunkIter<(T, U)>> {
        Ok(Box::new(Zipped {
            left: self.left.iterator(split, tc)?,
            right: self.right.iterator(split, tc)?,
            lbuf: std::collections::VecDeque::new(),
            rbuf: std::collections::VecDeque::new(),
            lmore: true,
            rmore: true,
            split,
        }))
    }
}

struct Zipped<T, U> {
    left: ChunkIter<T>,
    right: ChunkIter<U>,
    lbuf: std::collections::VecDeque<T>,
    rbuf: std::collections::VecDeque<U>,
    lmore: bool,
    rmore: bool,
    split: usize,
}

impl<T, U> Chunks<(T, U)> for Zipped<T, U> {
    fn next_chunk(&mut self, out: &mut Vec<(T, U)>, hint: usize) -> Result<bool> {
        let mut tmp_l = Vec::new();
        let mut tmp_r = Vec::new();
        if self.lbuf.len() < hint && self.lmore {
            self.lmore = self.left.next_chunk(&mut tmp_l, hint)?;
            self.lbuf.extend(tmp_l);
        }
        if self.rbuf.len() < hint && self.rmore {
            self.rmore = self.right.next_chunk(&mut tmp_r, hint)?;
            self.rbuf.extend(tmp_r);
        }
        while !self.lbuf.is_empty() && !self.rbuf.is_empty() {
            let (Some(l), Some(r)) = (self.lbuf.pop_front(), self.rbuf.pop_front()) else {
                break;
            };
            out.push((l, r));
        }
        let left_done = !self.lmore && self.lbuf.is_empty();
        let right_done = !self.rmore && self.rbuf.is_empty();
        if left_done != right_done {
            return Err(Error::ZipMismatch(format!(
                "partition {} has a different number of elements on each side",
                self.split
            )));
        }
        Ok(!(left_done && right_done))
    }
}

impl<T: Data> Rdd<T> {
    /// Pairs the i-th element of each partition of `self` with the i-th
    /// element of the same partition of `other`. Both must have the same
    /// number of partitions (checked here) and the same number of elements
    /// in each partition (checked as the job runs).
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let a = ctx.parallelize(vec![1, 2, 3], 2);
    /// let z = a.zip(&a.map(|x| x * 10)).unwrap();
    /// assert_eq!(z.collect().unwrap(), [(1, 10), (2, 20), (3, 30)]);
    /// ```
    pub fn zip<U: Data>(&self, other: &Rdd<U>) -> Result<Rdd<(T, U)>> {
        if self.num_partitions() != other.num_partitions() {
            return Err(Error::ZipMismatch(format!(
                "{} partitions against {}",
                self.num_partitions(),
                other.num_partitions()
            )));
        }
        let spec = NewRdd {
            op_name: "zip",
            num_partitions: self.num_partitions(),
            deps: vec![self.narrow_dep(), other.narrow_dep()],
            partitioner: None,
        };
        let op = ZipOp {
            left: self.clone(),
            right: other.clone(),
        };
        Ok(Rdd::from_op(self.context(), spec, op))
    }

    /// Pairs each element with its position in the dataset (partition order,
    /// then order within the partition). Runs a job now to count the
    /// elements of every partition but the last, as Spark does.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let z = ctx.parallelize(vec!['a', 'b', 'c'], 2).zip_with_index().unwrap();
    /// assert_eq!(z.collect().unwrap(), [('a', 0), ('b', 1), ('c', 2)]);
    /// ```
    pub fn zip_with_index(&self) -> Result<Rdd<(T, u64)>> {
        let n = self.num_partitions();
        let mut starts = vec![0u64; n];
        if n > 1 {
            let parts: Vec<usize> = (0..n - 1).collect();
            let counts =
                crate::rdd::run_job(self.context(), self, &parts, "zip_with_index", |_, it| {
                    super::actions::count_partition(it)
                })?;
            for i in 1..n {
                starts[i] = starts[i - 1] + counts[i - 1];
            }
        }
        Ok(
            self.map_partitions_op("zip_with_index", false, move |split, it| {
                let start = starts[split];
                it.enumerate().map(move |(i, x)| (x, start + i as u64))
            }),
        )
    }

    /// Pairs each element with a unique id: the i-th element of partition k
    /// gets `i * n + k` for n partitions. Needs no job, but ids have gaps.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // Partition k's i-th element gets i * n + k: unique, not consecutive, no job.
    /// let r = ctx.parallelize(vec!['a', 'b', 'c'], 2).zip_with_unique_id();
    /// assert_eq!(r.collect()?, [('a', 0), ('b', 1), ('c', 3)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    #[must_use = "datasets are lazy: run an action such as collect() or count()"]
    pub fn zip_with_unique_id(&self) -> Rdd<(T, u64)> {
        let n = self.num_partitions() as u64;
        self.map_partitions_op("zip_with_unique_id", false, move |split, it| {
            it.enumerate()
                .map(move |(i, x)| (x, i as u64 * n + split as u64))
        })
    }
}
