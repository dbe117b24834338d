//! Partial results (Spark's `PartialResult` and `BoundedDouble`): an
//! approximate action runs its job on a thread of its own, answers with an
//! estimate from the partitions done when its timeout passes, and gives the
//! exact answer once the job ends.

use super::{ChunkIter, Rdd, run_job_with_hooks};
use crate::data::Data;
use crate::error::{Error, Result};
use crate::scheduler::JobHooks;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An estimate with its confidence interval (Spark's `BoundedDouble`):
/// with probability `confidence` the exact value is within
/// `[low, high]`. A final value has confidence 1 and `low == high == mean`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoundedDouble {
    /// The estimate.
    pub mean: f64,
    /// The probability that the exact value lies within the bounds.
    pub confidence: f64,
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

impl BoundedDouble {
    /// The exact value `v`.
    pub(crate) fn exact(v: f64) -> Self {
        BoundedDouble {
            mean: v,
            confidence: 1.0,
            low: v,
            high: v,
        }
    }

    /// Whether `v` lies within the bounds.
    ///
    /// ```
    /// let ctx = spate::Context::new().unwrap();
    /// let n = ctx.range(0, 10, 1, 2).count_approx(std::time::Duration::from_secs(60), 0.95).unwrap();
    /// assert!(n.initial_value().contains(10.0));
    /// ```
    pub fn contains(&self, v: f64) -> bool {
        self.low <= v && v <= self.high
    }
}

/// The answer of an approximate action (Spark's `PartialResult`): the
/// estimate when the timeout passed, and the exact answer later. Dropping it
/// lets the job finish on its own thread; like every job, it runs before
/// the next action of the context.
///
/// ```
/// use std::time::Duration;
/// let ctx = spate::Context::new().unwrap();
/// let r = ctx.range(0, 1000, 1, 4).count_approx(Duration::from_secs(60), 0.9).unwrap();
/// assert!(r.is_initial_value_final(), "60 s is plenty for 4 small partitions");
/// assert_eq!(r.initial_value().mean, 1000.0);
/// assert_eq!(r.final_value().unwrap().mean, 1000.0);
/// ```
pub struct PartialResult<R> {
    initial: R,
    is_final: bool,
    job: Option<JoinHandle<Result<R>>>,
}

impl<R> PartialResult<R> {
    /// The estimate when the timeout passed (or the exact value, if the job
    /// had ended by then).
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize((0..1_000).collect::<Vec<i32>>(), 4);
    /// let partial = r.count_approx(Duration::from_secs(10), 0.95)?;
    /// // Everything finished within the timeout: the estimate is exact.
    /// assert_eq!(partial.initial_value().mean, 1_000.0);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn initial_value(&self) -> &R {
        &self.initial
    }

    /// Whether the job had ended by the timeout, so the initial value is
    /// exact.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![1, 2, 3], 2);
    /// let partial = r.count_approx(Duration::from_secs(10), 0.95)?;
    /// assert!(partial.is_initial_value_final());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn is_initial_value_final(&self) -> bool {
        self.is_final
    }

    /// Waits for the job to end and returns the exact value, or the job's
    /// error.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![1.0, 2.0, 3.0], 3);
    /// // The timeout may pass before the job ends; the final value waits for it.
    /// let partial = r.sum_approx(Duration::from_millis(1), 0.9)?;
    /// let done = partial.final_value()?;
    /// assert_eq!((done.mean, done.low, done.high), (6.0, 6.0, 6.0));
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn final_value(self) -> Result<R> {
        match self.job {
            None => Ok(self.initial),
            Some(job) => job.join().unwrap_or_else(|payload| {
                Err(Error::Panicked(format!(
                    "an approximate job's thread panicked: {}",
                    crate::error::from_panic(payload)
                )))
            }),
        }
    }
}

impl<R: std::fmt::Debug> std::fmt::Debug for PartialResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialResult")
            .field("initial", &self.initial)
            .field("is_final", &self.is_final)
            .finish()
    }
}

/// What the waiting caller and the job's thread share.
struct Progress<A> {
    /// Each partition's result, once its task ended.
    parts: Vec<Option<A>>,
    started: bool,
    ended: bool,
}

/// Runs `per_partition` over every partition on a thread of its own and
/// answers, after at most `timeout` (counted from when the job has its
/// turn), with `evaluate(results so far, partitions)`; the final value is
/// `evaluate` of all the results. `evaluate` is given the done partitions'
/// results only.
pub(crate) fn approximate<T, A, R>(
    rdd: &Rdd<T>,
    action: &'static str,
    timeout: Duration,
    per_partition: impl Fn(ChunkIter<T>) -> Result<A> + Send + Sync + 'static,
    evaluate: impl Fn(&[&A], usize) -> R + Send + Sync + 'static,
) -> Result<PartialResult<R>>
where
    T: Data,
    A: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    R: Send + 'static,
{
    // The job's own thread runs no task: refuse a call from inside one here.
    crate::scheduler::refuse_inside_a_task(action)?;
    let total = rdd.num_partitions();
    let shared = Arc::new((
        Mutex::new(Progress {
            parts: vec![None; total],
            started: false,
            ended: false,
        }),
        Condvar::new(),
    ));
    let evaluate = Arc::new(evaluate);
    let job = {
        let (rdd, shared, evaluate) = (rdd.clone(), shared.clone(), evaluate.clone());
        std::thread::Builder::new()
            .name(format!("spate-{action}"))
            .spawn(move || {
                let (progress, changed) = &*shared;
                let started = || {
                    progress.lock().started = true;
                    changed.notify_all();
                };
                let result = |r: &(usize, A)| {
                    progress.lock().parts[r.0] = Some(r.1.clone());
                    changed.notify_all();
                };
                let hooks = JobHooks {
                    started: &started,
                    result: &result,
                };
                let all: Vec<usize> = (0..total).collect();
                let ran = run_job_with_hooks(
                    rdd.context(),
                    &rdd,
                    &all,
                    action,
                    |tc, it| Ok((tc.partition(), per_partition(it)?)),
                    &hooks,
                );
                progress.lock().ended = true;
                changed.notify_all();
                let parts = ran?;
                let refs: Vec<&A> = parts.iter().map(|(_, a)| a).collect();
                Ok(evaluate(&refs, total))
            })
            .map_err(|e| Error::io(std::path::Path::new("<approximate job thread>"), e))?
    };
    let (progress, changed) = &*shared;
    let mut p = progress.lock();
    while !p.started && !p.ended {
        changed.wait(&mut p);
    }
    let deadline = Instant::now() + timeout;
    while !p.ended && !p.parts.iter().all(Option::is_some) {
        if changed.wait_until(&mut p, deadline).timed_out() {
            break;
        }
    }
    let done = p.ended || p.parts.iter().all(Option::is_some);
    drop(p);
    if done {
        // The job ended (or is about to): its own answer, or its error.
        let value = job.join().unwrap_or_else(|payload| {
            Err(Error::Panicked(
                crate::error::from_panic(payload).to_string(),
            ))
        })?;
        return Ok(PartialResult {
            initial: value,
            is_final: true,
            job: None,
        });
    }
    let p = progress.lock();
    let refs: Vec<&A> = p.parts.iter().flatten().collect();
    let initial = evaluate(&refs, total);
    drop(p);
    Ok(PartialResult {
        initial,
        is_final: false,
        job: Some(job),
    })
}
