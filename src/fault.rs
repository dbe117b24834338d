//! Fault injection: a public, documented way to make tasks fail, cached
//! blocks vanish and shuffle outputs go missing or corrupt, so users can
//! write chaos tests for their own pipelines.
//!
//! Every fault fires at most once per target (a task attempt, a cached
//! block, a map output), so recovery always makes progress, and every
//! fault that fires is reported as an [`Event::FaultInjected`](crate::Event).
//! Probabilistic faults are decided by a hash of the seed and the target's
//! ids, so the same plan, program and data inject the same faults.

use crate::ids::{RddId, ShuffleId};
use crate::partitioner::stable_hash;
use parking_lot::Mutex;
use std::collections::HashSet;

/// What happens to a lost map output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShuffleLoss {
    /// The output disappears: its file is deleted, or its in-memory blocks
    /// are dropped.
    Delete,
    /// The output's bytes are damaged: a file gets a flipped byte (caught by
    /// the frame checksums), in-memory blocks are marked corrupt.
    Corrupt,
}

/// A plan of faults for a [`Context`](crate::Context), set with
/// [`Context::set_fault_plan`](crate::Context::set_fault_plan).
///
/// Stage and shuffle ids come from the scheduler's events (see
/// [`EventLog`](crate::EventLog)); ids are assigned in creation order, so a
/// program gets the same ids on every run.
///
/// ```
/// use spate::{Context, FaultPlan};
/// let ctx = Context::builder().parallelism(2).max_task_failures(8).build().unwrap();
/// ctx.set_fault_plan(FaultPlan::new().fail_tasks_with_probability(0.3, 7));
/// let sum = ctx.range(0, 1000, 1, 8).map(|x| (x % 10, x)).reduce_by_key(|a, b| a + b).values().sum().unwrap();
/// assert_eq!(sum, 499_500); // the same answer as a clean run
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct FaultPlan {
    fail_attempts: Vec<(u64, usize, u32)>,
    fail_probability: Option<(f64, u64)>,
    drop_blocks: Vec<(RddId, usize)>,
    drop_probability: Option<(f64, u64)>,
    lose_outputs: Vec<(ShuffleId, usize, ShuffleLoss)>,
    lose_always: Vec<(ShuffleId, usize, ShuffleLoss)>,
    lose_probability: Option<(f64, u64, ShuffleLoss)>,
    kills: Vec<(usize, KillPoint)>,
}

/// Where a [`FaultPlan`] kills a process of a cluster (with SIGKILL: no
/// goodbye, no cleanup, as a crashed machine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KillPoint {
    /// When the process starts its first task of stage `stage`: mid map
    /// stage, mid reduce stage, or (a stage of a later job) while it holds
    /// cached partitions and map outputs of earlier jobs.
    TaskStart {
        /// The stage id, from the scheduler's events.
        stage: u64,
    },
    /// Right after the process has written map task `map`'s output of
    /// `shuffle` and reported it to the driver, before any reducer read it.
    AfterMapOutput {
        /// The shuffle id.
        shuffle: ShuffleId,
        /// The map partition.
        map: usize,
    },
}

impl FaultPlan {
    /// An empty plan.
    ///
    /// ```
    /// let plan = spate::FaultPlan::new();
    /// let ctx = spate::Context::new()?;
    /// ctx.set_fault_plan(plan); // injects nothing
    /// assert_eq!(ctx.parallelize(vec![1], 1).count()?, 1);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the `attempt`-th start (0 = first) of the task for `partition`
    /// of stage `stage` within a job. Starts are counted across retries and
    /// across re-runs of the stage after lost shuffle output, so
    /// `fail_attempt(s, p, 1)` can target the re-run of a map task.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// // The first two attempts of partition 0 fail; the third succeeds.
    /// ctx.set_fault_plan(spate::FaultPlan::new().fail_attempt(0, 0, 0).fail_attempt(0, 0, 1));
    /// assert_eq!(ctx.parallelize(vec![1, 2], 2).count()?, 2);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn fail_attempt(mut self, stage: u64, partition: usize, attempt: u32) -> Self {
        self.fail_attempts.push((stage, partition, attempt));
        self
    }

    /// Fails each task attempt with probability `p`, decided from `seed`
    /// and the attempt's id. Injected task failures strike as the attempt
    /// ends: its work is done and then thrown away (with its accumulator
    /// updates and outputs), the costliest moment for a crash.
    ///
    /// ```
    /// let ctx = spate::Context::builder().max_task_failures(20).build()?;
    /// ctx.set_fault_plan(spate::FaultPlan::new().fail_tasks_with_probability(0.3, 42));
    /// // Results do not change, only the work done.
    /// assert_eq!(ctx.parallelize((0..100).collect::<Vec<i32>>(), 8).map(|x| x * 2).reduce(|a, b| a + b)?, 9_900);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn fail_tasks_with_probability(mut self, p: f64, seed: u64) -> Self {
        self.fail_probability = Some((p, seed));
        self
    }

    /// Drops cached partition `partition` of dataset `rdd` the next time it
    /// is read, so it is recomputed from lineage.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize(vec![1, 2, 3, 4], 2).map(|x| x * 10).cache()?;
    /// r.count()?;
    /// ctx.set_fault_plan(spate::FaultPlan::new().drop_cached_block(r.id(), 1));
    /// assert_eq!(r.collect()?, [10, 20, 30, 40]); // partition 1 recomputed
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn drop_cached_block(mut self, rdd: RddId, partition: usize) -> Self {
        self.drop_blocks.push((rdd, partition));
        self
    }

    /// Drops each cached block, with probability `p`, when it is first read.
    ///
    /// ```
    /// let ctx = spate::Context::new()?;
    /// let r = ctx.parallelize((0..50).collect::<Vec<i32>>(), 5).cache()?;
    /// r.count()?;
    /// ctx.set_fault_plan(spate::FaultPlan::new().drop_cached_blocks_with_probability(0.5, 1));
    /// assert_eq!(r.count()?, 50);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn drop_cached_blocks_with_probability(mut self, p: f64, seed: u64) -> Self {
        self.drop_probability = Some((p, seed));
        self
    }

    /// Kills process `rank` of a cluster at `at` (once). Only executors
    /// (rank 1 and up) are killed; in local mode nothing is.
    ///
    /// ```
    /// use spate::{FaultPlan, KillPoint};
    /// let plan = FaultPlan::new().kill_process(1, KillPoint::TaskStart { stage: 1 });
    /// # let _ = plan;
    /// ```
    pub fn kill_process(mut self, rank: usize, at: KillPoint) -> Self {
        self.kills.push((rank, at));
        self
    }

    /// Loses the output of map task `map` of shuffle `shuffle` right after
    /// it is written.
    ///
    /// ```
    /// use spate::{FaultPlan, ShuffleLoss};
    /// let ctx = spate::Context::new()?;
    /// ctx.set_fault_plan(FaultPlan::new().lose_map_output(0, 1, ShuffleLoss::Delete));
    /// let sums = ctx.parallelize(vec![(1, 1), (2, 2), (1, 3)], 2).reduce_by_key(|a, b| a + b);
    /// let mut got = sums.collect()?; // the lost output is recomputed from lineage
    /// got.sort();
    /// assert_eq!(got, [(1, 4), (2, 2)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn lose_map_output(
        mut self,
        shuffle: impl Into<ShuffleId>,
        map: usize,
        how: ShuffleLoss,
    ) -> Self {
        self.lose_outputs.push((shuffle.into(), map, how));
        self
    }

    /// Loses the output of map task `map` of shuffle `shuffle` every time it
    /// is written (a permanently bad disk): the job fails once the stage has
    /// used up its attempts.
    ///
    /// ```
    /// use spate::{FaultPlan, ShuffleLoss};
    /// let ctx = spate::Context::new()?;
    /// ctx.set_fault_plan(FaultPlan::new().lose_map_output_every_time(0, 0, ShuffleLoss::Corrupt));
    /// let sums = ctx.parallelize(vec![(1, 1), (2, 2)], 2).reduce_by_key(|a, b| a + b);
    /// assert!(sums.collect().is_err(), "no attempt can succeed");
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn lose_map_output_every_time(
        mut self,
        shuffle: impl Into<ShuffleId>,
        map: usize,
        how: ShuffleLoss,
    ) -> Self {
        self.lose_always.push((shuffle.into(), map, how));
        self
    }

    /// Loses each map output, with probability `p`, right after it is
    /// first written.
    ///
    /// ```
    /// use spate::{FaultPlan, ShuffleLoss};
    /// let ctx = spate::Context::new()?;
    /// ctx.set_fault_plan(FaultPlan::new().lose_map_outputs_with_probability(0.5, 3, ShuffleLoss::Delete));
    /// let sums = ctx.parallelize((0..100).map(|i| (i % 3, 1)).collect(), 4).reduce_by_key(|a, b| a + b);
    /// let mut got = sums.collect()?;
    /// got.sort();
    /// assert_eq!(got, [(0, 34), (1, 33), (2, 33)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn lose_map_outputs_with_probability(
        mut self,
        p: f64,
        seed: u64,
        how: ShuffleLoss,
    ) -> Self {
        self.lose_probability = Some((p, seed, how));
        self
    }
}

/// Draws a deterministic number in [0, 1) from a seed and ids.
fn chance(seed: u64, ids: &(impl std::hash::Hash + ?Sized)) -> f64 {
    let h = stable_hash(&(seed, stable_hash(ids)));
    // Mix once more: stable_hash of small tuples is not uniform in its top bits.
    let mixed = h.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (h >> 29);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Kill(KillPoint),
    Attempt(u64, u64, usize, u32),
    Block(RddId, usize),
    Output(ShuffleId, usize),
}

/// A plan in force, remembering which faults have fired.
pub(crate) struct FaultInjector {
    plan: FaultPlan,
    fired: Mutex<HashSet<Target>>,
    /// Starts of each (job, stage, partition) so far.
    starts: Mutex<std::collections::HashMap<(u64, u64, usize), u32>>,
}

impl FaultInjector {
    pub(crate) fn new(plan: FaultPlan) -> Self {
        FaultInjector {
            plan,
            fired: Mutex::new(HashSet::new()),
            starts: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn fire(&self, target: Target) -> bool {
        self.fired.lock().insert(target)
    }

    /// Whether the plan kills executor `rank` at `at` (and has not yet).
    pub(crate) fn would_kill(&self, rank: usize, at: KillPoint) -> bool {
        rank != 0
            && self.plan.kills.contains(&(rank, at))
            && !self.fired.lock().contains(&Target::Kill(at))
    }

    /// Kills this process (executor `rank`) if the plan says so at `at`.
    pub(crate) fn kill_point(&self, rank: usize, at: KillPoint) {
        if rank == 0 || !self.plan.kills.contains(&(rank, at)) || !self.fire(Target::Kill(at)) {
            return;
        }
        eprintln!("spate: the fault plan kills process {rank} at {at:?}");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        // `kill` is missing: die as abruptly as we can.
        std::process::abort();
    }

    /// Whether this start of a task should fail; returns the reason.
    pub(crate) fn task_fault(&self, job: u64, stage: u64, partition: usize) -> Option<String> {
        let attempt = {
            let mut starts = self.starts.lock();
            let n = starts.entry((job, stage, partition)).or_insert(0);
            *n += 1;
            *n - 1
        };
        let listed = self
            .plan
            .fail_attempts
            .contains(&(stage, partition, attempt));
        let drawn = self
            .plan
            .fail_probability
            .is_some_and(|(p, seed)| chance(seed, &(job, stage, partition, attempt)) < p);
        if (listed || drawn) && self.fire(Target::Attempt(job, stage, partition, attempt)) {
            return Some(format!(
                "injected failure of stage {stage} partition {partition} (start {attempt} in job {job})"
            ));
        }
        None
    }

    /// Whether a cached block should be dropped before this read.
    pub(crate) fn drop_block(&self, rdd: RddId, partition: usize) -> bool {
        let listed = self.plan.drop_blocks.contains(&(rdd, partition));
        let drawn = self
            .plan
            .drop_probability
            .is_some_and(|(p, seed)| chance(seed, &(rdd, partition)) < p);
        (listed || drawn) && self.fire(Target::Block(rdd, partition))
    }

    /// How a freshly written map output should be lost, if at all.
    pub(crate) fn map_output_loss(&self, shuffle: ShuffleId, map: usize) -> Option<ShuffleLoss> {
        let listed = self
            .plan
            .lose_outputs
            .iter()
            .find(|(s, m, _)| *s == shuffle && *m == map)
            .map(|l| l.2);
        let drawn = self
            .plan
            .lose_probability
            .and_then(|(p, seed, how)| (chance(seed, &(shuffle, map)) < p).then_some(how));
        if let Some(always) = self
            .plan
            .lose_always
            .iter()
            .find(|(s, m, _)| *s == shuffle && *m == map)
        {
            return Some(always.2);
        }
        let how = listed.or(drawn)?;
        self.fire(Target::Output(shuffle, map)).then_some(how)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_roughly_honoured_and_deterministic() {
        let hits = (0..10_000u64).filter(|i| chance(42, i) < 0.2).count();
        assert!((1_800..2_200).contains(&hits), "{hits}");
        assert_eq!(chance(1, &(2, 3)), chance(1, &(2, 3)));
        assert_ne!(chance(1, &(2, 3)), chance(2, &(2, 3)));
    }

    #[test]
    fn each_fault_fires_once() {
        let inj = FaultInjector::new(
            FaultPlan::new()
                .fail_attempt(1, 2, 0)
                .drop_cached_block(RddId(5), 0),
        );
        assert!(inj.task_fault(0, 1, 2).is_some(), "first start fails");
        assert!(inj.task_fault(0, 1, 2).is_none(), "the retry runs");
        assert!(inj.task_fault(1, 1, 2).is_some(), "counted per job");
        assert!(inj.drop_block(RddId(5), 0));
        assert!(!inj.drop_block(RddId(5), 0));
    }
}
