//! Scheduling pools: how concurrent jobs of one context share its task
//! slots (Spark's `spark.scheduler.mode` and fair scheduler pools).
//!
//! A context has one slot per worker thread. Every stage that runs on this
//! process's pool asks [`Slots`] for slots; a task runs only in a slot, and
//! when it ends the slot goes to whichever waiting stage should have it:
//! - **FIFO** (the default): the stage of the earliest job, then the
//!   earliest stage, as Spark's FIFO mode. A later job gets the slots an
//!   earlier one leaves free.
//! - **FAIR**: first the pool chosen by Spark's fair comparator (a pool
//!   running fewer tasks than its minimum share first, the neediest by
//!   running / min share; otherwise the lowest running / weight; ties by
//!   name), then, within that pool, by the pool's own mode: FIFO by job and
//!   stage, or FAIR (the stage running fewest tasks).
//!
//! Invariants: at most one task per slot runs at a time; a slot is never
//! left free while a stage has a task waiting; a stage's tasks are handed
//! out one per grant, so the counts in [`PoolStatus`] are exact.

use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::cmp::Ordering;

/// How a context orders concurrent jobs' tasks, or a pool its stages'
/// (Spark's `spark.scheduler.mode` and a pool's `schedulingMode`).
///
/// ```
/// use spate::{Pool, SchedulingMode};
/// let ctx = spate::Context::builder()
///     .scheduling_mode(SchedulingMode::Fair)
///     .pool(Pool::new("reports").mode(SchedulingMode::Fifo))
///     .build()?;
/// ctx.set_pool(Some("reports"))?;
/// assert_eq!(ctx.parallelize(vec![1, 2, 3], 2).count()?, 3);
/// # Ok::<(), spate::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SchedulingMode {
    /// First in, first out: the earliest job's tasks first.
    #[default]
    Fifo,
    /// Fair sharing: slots divided among pools (or a pool's stages) by
    /// weight and minimum share.
    Fair,
}

/// A fair scheduling pool, as an entry of Spark's `fairscheduler.xml`:
/// a name, a weight (its share of the slots relative to other pools), a
/// minimum share (slots it gets first, before weights count) and the mode
/// its own jobs are ordered by. Declared with
/// [`ContextBuilder::pool`](crate::ContextBuilder::pool); a thread's jobs go
/// to the pool it chose with [`Context::set_pool`](crate::Context::set_pool),
/// else to the pool named `"default"` (weight 1, minimum share 0, FIFO).
///
/// ```
/// use spate::{Pool, SchedulingMode};
/// let pool = Pool::new("etl").weight(2).min_share(1).mode(SchedulingMode::Fair);
/// assert_eq!((pool.name(), pool.weight_of(), pool.min_share_of()), ("etl", 2, 1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    name: String,
    weight: u32,
    min_share: usize,
    mode: SchedulingMode,
}

impl Pool {
    /// The name of the pool that jobs go to when their thread chose none.
    pub const DEFAULT: &'static str = "default";

    /// A pool with Spark's defaults: weight 1, minimum share 0, FIFO.
    ///
    /// ```
    /// let pool = spate::Pool::new("adhoc");
    /// assert_eq!((pool.weight_of(), pool.min_share_of()), (1, 0));
    /// ```
    pub fn new(name: impl Into<String>) -> Pool {
        Pool {
            name: name.into(),
            weight: 1,
            min_share: 0,
            mode: SchedulingMode::Fifo,
        }
    }

    /// Its share relative to other pools' weights, at least 1: a pool of
    /// weight 2 gets twice the slots of a pool of weight 1 while both wait.
    ///
    /// ```
    /// assert_eq!(spate::Pool::new("etl").weight(3).weight_of(), 3);
    /// ```
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Pool {
        self.weight = weight;
        self
    }

    /// The slots it is given first, before weights count, while it has
    /// tasks waiting.
    ///
    /// ```
    /// assert_eq!(spate::Pool::new("etl").min_share(2).min_share_of(), 2);
    /// ```
    #[must_use]
    pub fn min_share(mut self, slots: usize) -> Pool {
        self.min_share = slots;
        self
    }

    /// How the pool orders its own stages.
    ///
    /// ```
    /// use spate::{Pool, SchedulingMode};
    /// assert_eq!(Pool::new("etl").mode(SchedulingMode::Fair).mode_of(), SchedulingMode::Fair);
    /// ```
    #[must_use]
    pub fn mode(mut self, mode: SchedulingMode) -> Pool {
        self.mode = mode;
        self
    }

    /// Its name.
    ///
    /// ```
    /// assert_eq!(spate::Pool::new("etl").name(), "etl");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its weight.
    ///
    /// ```
    /// assert_eq!(spate::Pool::new("etl").weight_of(), 1);
    /// ```
    pub fn weight_of(&self) -> u32 {
        self.weight
    }

    /// Its minimum share.
    ///
    /// ```
    /// assert_eq!(spate::Pool::new("etl").min_share_of(), 0);
    /// ```
    pub fn min_share_of(&self) -> usize {
        self.min_share
    }

    /// Its mode.
    ///
    /// ```
    /// assert_eq!(spate::Pool::new("etl").mode_of(), spate::SchedulingMode::Fifo);
    /// ```
    pub fn mode_of(&self) -> SchedulingMode {
        self.mode
    }
}

/// One pool's state now, from [`Context::pools`](crate::Context::pools)
/// (the "Fair Scheduler Pools" table of Spark's UI).
///
/// ```
/// let ctx = spate::Context::new()?;
/// let pools = ctx.pools();
/// assert_eq!(pools.len(), 1);
/// assert_eq!((pools[0].pool.name(), pools[0].running_tasks, pools[0].waiting_tasks), ("default", 0, 0));
/// # Ok::<(), spate::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// The pool's settings.
    pub pool: Pool,
    /// Tasks of its jobs running (holding a slot) now.
    pub running_tasks: usize,
    /// Tasks of its running stages waiting for a slot.
    pub waiting_tasks: usize,
    /// Stages of its jobs running or waiting now.
    pub active_stages: usize,
}

/// The pools a context was built with: "default" first, names unique,
/// weights at least 1.
pub(crate) fn checked_pools(mode: SchedulingMode, declared: Vec<Pool>) -> Result<Vec<Pool>> {
    if mode == SchedulingMode::Fifo && !declared.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "pool '{}' was declared but the scheduling mode is FIFO, which has no pools: set scheduling_mode(SchedulingMode::Fair)",
            declared[0].name
        )));
    }
    let mut pools = vec![Pool::new(Pool::DEFAULT)];
    for pool in declared {
        if pool.weight == 0 {
            return Err(Error::InvalidArgument(format!(
                "pool '{}' has weight 0: a weight is at least 1",
                pool.name
            )));
        }
        if pool.name.is_empty() {
            return Err(Error::InvalidArgument("a pool needs a name".into()));
        }
        match pools.iter().position(|p| p.name == pool.name) {
            // The default pool may be given settings of its own.
            Some(0) => pools[0] = pool,
            Some(_) => {
                return Err(Error::InvalidArgument(format!(
                    "pool '{}' is declared twice",
                    pool.name
                )));
            }
            None => pools.push(pool),
        }
    }
    Ok(pools)
}

/// The task slots of this process and the stages waiting for them.
pub(crate) struct Slots {
    state: Mutex<State>,
    /// Signalled when a stage is granted a slot.
    granted: Condvar,
}

struct State {
    mode: SchedulingMode,
    free: usize,
    pools: Vec<PoolState>,
    stages: Vec<StageEntry>,
    next_entry: u64,
}

struct PoolState {
    pool: Pool,
    running: usize,
}

struct StageEntry {
    id: u64,
    pool: usize,
    /// FIFO order: job, then stage.
    job: u64,
    stage: u64,
    /// Tasks not yet given a slot.
    waiting: usize,
    /// Slots given but not yet taken by the stage's driver thread.
    granted: usize,
    running: usize,
}

/// A stage's place in [`Slots`], from [`Slots::enter`].
pub(crate) struct Entry(u64);

impl Slots {
    /// `slots` task slots shared by `pools` (index 0 is "default").
    pub(crate) fn new(slots: usize, mode: SchedulingMode, pools: Vec<Pool>) -> Slots {
        Slots {
            state: Mutex::new(State {
                mode,
                free: slots,
                pools: pools
                    .into_iter()
                    .map(|pool| PoolState { pool, running: 0 })
                    .collect(),
                stages: Vec::new(),
                next_entry: 0,
            }),
            granted: Condvar::new(),
        }
    }

    /// The index of the pool named `name`, or an error naming the pools
    /// there are.
    pub(crate) fn pool_index(&self, name: &str) -> Result<usize> {
        let state = self.state.lock();
        state
            .pools
            .iter()
            .position(|p| p.pool.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = state.pools.iter().map(|p| p.pool.name()).collect();
                Error::InvalidArgument(format!(
                    "no scheduling pool named '{name}' (the context has: {}); declare it with ContextBuilder::pool",
                    names.join(", ")
                ))
            })
    }

    /// The name of the pool at `index`.
    pub(crate) fn pool_name(&self, index: usize) -> String {
        self.state.lock().pools[index].pool.name.clone()
    }

    /// Each pool's state now.
    pub(crate) fn status(&self) -> Vec<PoolStatus> {
        let state = self.state.lock();
        state
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let stages = state.stages.iter().filter(|s| s.pool == i);
                PoolStatus {
                    pool: p.pool.clone(),
                    running_tasks: p.running,
                    waiting_tasks: stages.clone().map(|s| s.waiting).sum(),
                    active_stages: stages.count(),
                }
            })
            .collect()
    }

    /// Enters a stage of `tasks` tasks (at least one) of `job` in pool
    /// `pool`; free slots are handed out at once.
    pub(crate) fn enter(&self, pool: usize, job: u64, stage: u64, tasks: usize) -> Entry {
        let mut state = self.state.lock();
        let id = state.next_entry;
        state.next_entry += 1;
        state.stages.push(StageEntry {
            id,
            pool,
            job,
            stage,
            waiting: tasks,
            granted: 0,
            running: 0,
        });
        if state.fill() {
            self.granted.notify_all();
        }
        Entry(id)
    }

    /// Waits until the stage is given slots and takes them: how many (each
    /// for one task), or 0 when every task of the stage has had a slot.
    pub(crate) fn take(&self, entry: &Entry) -> usize {
        let mut state = self.state.lock();
        loop {
            let e = state.entry(entry);
            if e.granted > 0 {
                return std::mem::take(&mut e.granted);
            }
            if e.waiting == 0 {
                return 0;
            }
            self.granted.wait(&mut state);
        }
    }

    /// A task of the stage ended in its slot: `true` if the slot stays
    /// with this stage for its next task, `false` if it went elsewhere
    /// (or is free).
    pub(crate) fn task_ended(&self, entry: &Entry) -> bool {
        let mut state = self.state.lock();
        let e = state.entry(entry);
        e.running -= 1;
        let pool = e.pool;
        state.pools[pool].running -= 1;
        state.free += 1;
        let next = state.best();
        if next == Some(entry.0) {
            let i = state.index(entry.0);
            state.give(i);
            if state.stages[i].waiting == 0 {
                // Its driver thread may wait to learn that all were given.
                self.granted.notify_all();
            }
            return true;
        }
        if state.fill() {
            self.granted.notify_all();
        }
        false
    }

    /// Takes the stage out once all its tasks have ended.
    pub(crate) fn leave(&self, entry: Entry) {
        let mut state = self.state.lock();
        let i = state.index(entry.0);
        let e = state.stages.remove(i);
        assert!(
            e.running == 0 && e.granted == 0,
            "a stage left the slots with tasks in them"
        );
    }
}

impl State {
    fn index(&self, id: u64) -> usize {
        self.stages
            .iter()
            .position(|s| s.id == id)
            .expect("a stage entry is in the slots until it leaves")
    }

    fn entry(&mut self, entry: &Entry) -> &mut StageEntry {
        let i = self.index(entry.0);
        &mut self.stages[i]
    }

    /// Gives one slot to stage `i`.
    fn give(&mut self, i: usize) {
        let e = &mut self.stages[i];
        e.waiting -= 1;
        e.running += 1;
        self.pools[e.pool].running += 1;
        self.free -= 1;
    }

    /// Hands free slots to waiting stages; whether any was given.
    fn fill(&mut self) -> bool {
        let mut given = false;
        while self.free > 0
            && let Some(id) = self.best()
        {
            let i = self.index(id);
            self.give(i);
            self.stages[i].granted += 1;
            given = true;
        }
        given
    }

    /// The waiting stage that should have the next free slot.
    fn best(&self) -> Option<u64> {
        let waiting = || self.stages.iter().filter(|s| s.waiting > 0);
        let fifo = |a: &&StageEntry, b: &&StageEntry| (a.job, a.stage).cmp(&(b.job, b.stage));
        if self.mode == SchedulingMode::Fifo {
            return waiting().min_by(fifo).map(|s| s.id);
        }
        let pool = (0..self.pools.len())
            .filter(|&p| waiting().any(|s| s.pool == p))
            .min_by(|&a, &b| {
                let (a, b) = (&self.pools[a], &self.pools[b]);
                fair_order(
                    (a.running, a.pool.min_share, a.pool.weight, &a.pool.name),
                    (b.running, b.pool.min_share, b.pool.weight, &b.pool.name),
                )
            })?;
        let in_pool = waiting().filter(|s| s.pool == pool);
        match self.pools[pool].pool.mode {
            SchedulingMode::Fifo => in_pool.min_by(fifo),
            // Stages compete as pools of weight 1 and no minimum share.
            SchedulingMode::Fair => {
                in_pool.min_by(|a, b| a.running.cmp(&b.running).then_with(|| fifo(a, b)))
            }
        }
        .map(|s| s.id)
    }
}

/// Spark's fair comparator over (running tasks, minimum share, weight,
/// name): `Less` if the first should get the next slot.
fn fair_order(a: (usize, usize, u32, &str), b: (usize, usize, u32, &str)) -> Ordering {
    let needy = |(running, min_share, ..): (usize, usize, u32, &str)| running < min_share;
    let share_ratio = |(running, min_share, ..): (usize, usize, u32, &str)| {
        running as f64 / min_share.max(1) as f64
    };
    let weight_ratio =
        |(running, _, weight, _): (usize, usize, u32, &str)| running as f64 / f64::from(weight);
    let by_ratio = match (needy(a), needy(b)) {
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (true, true) => share_ratio(a).total_cmp(&share_ratio(b)),
        (false, false) => weight_ratio(a).total_cmp(&weight_ratio(b)),
    };
    by_ratio.then_with(|| a.3.cmp(b.3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fair(pools: Vec<Pool>, slots: usize) -> Slots {
        Slots::new(
            slots,
            SchedulingMode::Fair,
            checked_pools(SchedulingMode::Fair, pools).unwrap(),
        )
    }

    #[test]
    fn a_needy_pool_goes_first_whatever_the_weights() {
        assert_eq!(fair_order((0, 2, 1, "b"), (0, 0, 10, "a")), Ordering::Less);
        assert_eq!(
            fair_order((2, 2, 1, "b"), (0, 0, 10, "a")),
            Ordering::Greater
        );
        // Both needy: the lower share of their minimum first.
        assert_eq!(fair_order((1, 4, 1, "a"), (1, 2, 1, "b")), Ordering::Less);
        // Neither: running per weight, then the name.
        assert_eq!(
            fair_order((2, 0, 2, "b"), (1, 0, 1, "a")),
            Ordering::Greater
        );
        assert_eq!(fair_order((1, 0, 1, "a"), (1, 0, 1, "b")), Ordering::Less);
    }

    #[test]
    fn a_slot_that_ends_stays_with_its_stage_when_it_is_the_best_and_moves_when_not() {
        let slots = fair(vec![Pool::new("a"), Pool::new("b")], 2);
        let (a, b) = (
            slots.pool_index("a").unwrap(),
            slots.pool_index("b").unwrap(),
        );
        let x = slots.enter(a, 0, 0, 3);
        assert_eq!(slots.take(&x), 2);
        let y = slots.enter(b, 1, 1, 2);
        // Pool a runs 2, pool b none: the slot moves to b.
        assert!(!slots.task_ended(&x));
        assert_eq!(slots.take(&y), 1);
        // Now a runs none and b one: a keeps the slot.
        assert!(slots.task_ended(&x));
        let status = slots.status();
        assert_eq!(
            status
                .iter()
                .map(|s| (s.running_tasks, s.waiting_tasks))
                .collect::<Vec<_>>(),
            [(0, 0), (1, 0), (1, 1)]
        );
        assert!(!slots.task_ended(&x));
        assert_eq!(slots.take(&y), 1);
        assert_eq!(slots.take(&x), 0);
        assert!(!slots.task_ended(&y));
        assert!(!slots.task_ended(&y));
        assert_eq!(slots.take(&y), 0);
        slots.leave(x);
        slots.leave(y);
        assert_eq!(slots.state.lock().free, 2);
    }

    #[test]
    fn undeclared_and_doubly_declared_pools_and_zero_weights_are_refused() {
        let slots = fair(vec![Pool::new("a")], 1);
        let err = slots.pool_index("b").unwrap_err().to_string();
        assert!(
            err.contains("no scheduling pool named 'b'") && err.contains("default, a"),
            "{err}"
        );
        for (pools, want) in [
            (vec![Pool::new("a"), Pool::new("a")], "declared twice"),
            (vec![Pool::new("a").weight(0)], "weight 0"),
        ] {
            let err = checked_pools(SchedulingMode::Fair, pools)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        let err = checked_pools(SchedulingMode::Fifo, vec![Pool::new("a")]).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
