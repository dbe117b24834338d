//! Output operations: what runs for each batch. Registering one makes its
//! stream (and the streams it derives from) part of every batch.

use super::dstream::DStream;
use super::graph::OutputOp;
use super::time::Time;
use crate::data::Data;
use crate::error::{Error, Result};
use crate::rdd::Rdd;
use std::fmt::{Debug, Display};
use std::path::PathBuf;

impl<T: Data> DStream<T> {
    /// Runs `f` on the dataset of every batch time this stream is defined
    /// at (an empty dataset when the batch had no data), on the batch
    /// thread; an error from `f` fails the batch and stops the context.
    /// An error if the context has already started.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use std::sync::{Arc, Mutex};
    /// // Any action on each batch's dataset, on the driver, with the batch time.
    /// let totals = Arc::new(Mutex::new(Vec::new()));
    /// let sink = totals.clone();
    /// let _ = run_batches(vec![vec![1, 2], vec![5]], move |s| {
    ///     s.foreach_rdd(move |rdd, time| {
    ///         let sum: i32 = rdd.collect()?.iter().sum();
    ///         sink.lock().unwrap().push((time.millis(), sum));
    ///         Ok(())
    ///     })
    ///     .unwrap();
    ///     s.clone()
    /// })?;
    /// assert_eq!(*totals.lock().unwrap(), [(100, 3), (200, 5)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn foreach_rdd(
        &self,
        f: impl Fn(&Rdd<T>, Time) -> Result<()> + Send + Sync + 'static,
    ) -> Result<()> {
        let graph = self.graph();
        if graph.zero_time().is_some() {
            return Err(Error::StreamingState(
                "outputs must be registered before start".into(),
            ));
        }
        let stream = self.clone();
        graph.add_output(OutputOp {
            stream: self.as_any(),
            run: Box::new(move |time| match stream.get_or_compute(time)? {
                Some(rdd) => f(&rdd, time),
                None => Ok(()),
            }),
        });
        Ok(())
    }

    /// Runs `f` on every element of every batch (an output); an `Err`
    /// fails its task as [`Rdd::try_for_each`] does, and then the batch,
    /// which stops the context with the error.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// // The closure's Err fails the batch, keeping the user's error.
    /// let result = run_batches(vec![vec![1, -2]], |s| {
    ///     s.try_for_each(|x: i32| if x < 0 { Err(format!("negative: {x}")) } else { Ok(()) })
    ///         .unwrap();
    ///     s.clone()
    /// });
    /// let err = result.unwrap_err().to_string();
    /// assert!(err.contains("negative: -2"), "{err}");
    /// ```
    pub fn try_for_each<E: Into<crate::rdd::UserError>>(
        &self,
        f: impl Fn(T) -> std::result::Result<(), E> + Send + Sync + 'static,
    ) -> Result<()> {
        self.foreach_rdd(move |rdd, _| rdd.try_for_each(&f))
    }

    /// Prints the first `n` elements of every batch, under a header with
    /// the batch time (Spark's `print`).
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// // Prints "Time: 100 ms", then up to 10 elements of each batch.
    /// let out = run_batches(vec![vec![1, 2]], |s| {
    ///     s.print(10).unwrap();
    ///     s.clone()
    /// })?;
    /// assert_eq!(out, [vec![1, 2]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn print(&self, n: usize) -> Result<()>
    where
        T: Debug + crate::data::Value,
    {
        self.foreach_rdd(move |rdd, time| {
            let first = rdd.take(n + 1)?;
            let mut out = format!("-------------------------------------------\nTime: {time}\n-------------------------------------------\n");
            for x in first.iter().take(n) {
                out.push_str(&format!("{x:?}\n"));
            }
            if first.len() > n {
                out.push_str("...\n");
            }
            println!("{out}");
            Ok(())
        })
    }

    /// Writes every batch as text files (one line per element, `part-NNNNN`
    /// files) into the directory `prefix-<batch_ms>` (`.suffix` appended
    /// when given). Each directory appears atomically, and a batch run
    /// again (after a recovery) replaces its directory, so outputs are
    /// never duplicated.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// let dir = tempfile::tempdir().unwrap();
    /// let prefix = dir.path().join("counts").to_string_lossy().into_owned();
    /// let p = prefix.clone();
    /// run_batches(vec![vec![1, 2]], move |s| {
    ///     s.save_as_text_files(p, Some("txt")).unwrap();
    ///     s.clone()
    /// })?;
    /// // One directory per batch: PREFIX-TIME_MS.SUFFIX
    /// let saved = spate::Context::new()?.text_file(format!("{prefix}-100.txt"), 1)?;
    /// let mut lines = saved.collect()?;
    /// lines.sort();
    /// assert_eq!(lines, ["1", "2"]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn save_as_text_files(&self, prefix: impl Into<String>, suffix: Option<&str>) -> Result<()>
    where
        T: Display,
    {
        let prefix = prefix.into();
        let suffix = suffix.map(|s| format!(".{s}")).unwrap_or_default();
        self.foreach_rdd(move |rdd, time| {
            let dir = PathBuf::from(format!("{prefix}-{}{suffix}", time.millis()));
            write_batch_dir(rdd, &dir)
        })
    }
}

/// Writes `rdd` to `dir` through a temporary sibling, replacing `dir` if a
/// previous run of the same batch left one.
fn write_batch_dir<T: Data + Display>(rdd: &Rdd<T>, dir: &std::path::Path) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    rdd.save_as_text_file(&tmp)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
}
