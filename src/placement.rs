//! Which process runs which task of a stage, in cluster mode: tasks go to
//! free task slots, each preferring the processes where its input is (a
//! cached partition, or a good share of a reducer's shuffle blocks), with
//! Spark's delay scheduling: a task waits up to the locality wait for a
//! slot on a preferred process before it takes any free slot.
//!
//! Pure bookkeeping, no I/O: the scheduler tells it the slots, the tasks
//! and every task's end, and launches what it returns.
//!
//! Invariants:
//! - A process never has more launched tasks than slots.
//! - A task never goes to a process in its `avoid` set; the driver (rank
//!   0) is never avoided or removed, so every task can be placed.
//! - With no preferences, tasks go out in index order, one per process in
//!   rank order per round, so a stage's first tasks spread evenly.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// The share of a reducer's input a process must hold to be preferred
/// (Spark's `REDUCER_PREF_LOCS_FRACTION`).
const REDUCER_SHARE: f64 = 0.2;

/// The tasks of one stage waiting for a slot, and the slots.
pub(crate) struct Placement {
    /// Free slots of each usable process (live, not excluded), by rank.
    free: BTreeMap<u32, usize>,
    /// Tasks not launched yet, in the order they came.
    waiting: Vec<Waiting>,
    locality_wait: Duration,
}

struct Waiting {
    task: usize,
    /// The processes where the task's input is; empty: anywhere.
    prefer: Vec<u32>,
    /// Processes it must not run on (where it just failed).
    avoid: HashSet<u32>,
    since: Instant,
}

impl Placement {
    /// `slots`: each usable process's task slots (rank 0, the driver,
    /// among them).
    pub(crate) fn new(
        slots: impl IntoIterator<Item = (u32, usize)>,
        locality_wait: Duration,
    ) -> Self {
        let free: BTreeMap<u32, usize> = slots.into_iter().collect();
        assert!(free.contains_key(&0), "the driver always has slots");
        Placement {
            free,
            waiting: Vec::new(),
            locality_wait,
        }
    }

    /// Queues `task` (the caller's index), preferring `prefer`, never on
    /// `avoid`.
    pub(crate) fn add(&mut self, task: usize, prefer: Vec<u32>, avoid: HashSet<u32>, now: Instant) {
        self.waiting.push(Waiting {
            task,
            prefer,
            avoid,
            since: now,
        });
    }

    /// Takes every task still waiting (the stage is aborted).
    pub(crate) fn take_waiting(&mut self) -> Vec<usize> {
        self.waiting.drain(..).map(|w| w.task).collect()
    }

    /// Tasks waiting for a slot.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// A task launched on `rank` ended: its slot is free again (unless the
    /// process was removed meanwhile).
    pub(crate) fn freed(&mut self, rank: u32) {
        if let Some(n) = self.free.get_mut(&rank) {
            *n += 1;
        }
    }

    /// Process `rank` takes no more tasks (lost, or excluded for the job).
    pub(crate) fn remove(&mut self, rank: u32) {
        if rank != 0 {
            self.free.remove(&rank);
        }
    }

    /// The tasks to launch now, each with its process. A task goes to a
    /// free slot on a process it prefers; a task with no usable preference,
    /// or that has waited the locality wait, takes any free slot it may.
    pub(crate) fn launch(&mut self, now: Instant) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        loop {
            let before = out.len();
            let ranks: Vec<u32> = self
                .free
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, _)| *r)
                .collect();
            for rank in ranks {
                let pick = self
                    .waiting
                    .iter()
                    .position(|w| !w.avoid.contains(&rank) && w.prefer.contains(&rank))
                    .or_else(|| {
                        self.waiting
                            .iter()
                            .position(|w| !w.avoid.contains(&rank) && self.may_go_anywhere(w, now))
                    });
                if let Some(i) = pick {
                    let w = self.waiting.remove(i);
                    *self.free.get_mut(&rank).expect("a listed process") -= 1;
                    out.push((w.task, rank));
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// When a waiting task's locality wait runs out (so `launch` may place
    /// it elsewhere); `None` when no task waits for locality.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.waiting
            .iter()
            .filter(|w| !self.may_go_anywhere(w, now))
            .map(|w| w.since + self.locality_wait)
            .min()
    }

    fn may_go_anywhere(&self, w: &Waiting, now: Instant) -> bool {
        let usable = w
            .prefer
            .iter()
            .any(|r| self.free.contains_key(r) && !w.avoid.contains(r));
        !usable || now.duration_since(w.since) >= self.locality_wait
    }
}

/// The processes a reducer prefers: each holding at least a fifth of its
/// input bytes (`bytes` by rank), as Spark prefers them. Nothing when the
/// input is empty.
pub(crate) fn reducer_preference(bytes: &BTreeMap<u32, u64>) -> Vec<u32> {
    let total: u64 = bytes.values().sum();
    if total == 0 {
        return Vec::new();
    }
    bytes
        .iter()
        .filter(|(_, b)| **b as f64 >= REDUCER_SHARE * total as f64)
        .map(|(r, _)| *r)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(3);

    fn placement(slots: &[(u32, usize)]) -> Placement {
        Placement::new(slots.iter().copied(), WAIT)
    }

    #[test]
    fn tasks_without_preferences_spread_one_per_process_per_round() {
        let now = Instant::now();
        let mut p = placement(&[(0, 2), (1, 2), (2, 1)]);
        for t in 0..7 {
            p.add(t, vec![], HashSet::new(), now);
        }
        assert_eq!(
            p.launch(now),
            vec![(0, 0), (1, 1), (2, 2), (3, 0), (4, 1)],
            "five slots, five tasks, in rank order per round"
        );
        assert_eq!(p.waiting(), 2);
        p.freed(2);
        assert_eq!(
            p.launch(now),
            vec![(5, 2)],
            "the freed slot takes the next task"
        );
    }

    #[test]
    fn a_slow_process_gets_fewer_tasks_because_tasks_wait_for_free_slots() {
        // The bug this guards: placing partition p on process p mod n gave
        // a slow process its full share however long its tasks took.
        let now = Instant::now();
        let mut p = placement(&[(0, 1), (1, 1)]);
        for t in 0..10 {
            p.add(t, vec![], HashSet::new(), now);
        }
        let mut on = vec![Vec::new(); 2];
        for (t, r) in p.launch(now) {
            on[r as usize].push(t);
        }
        // Process 1 never finishes; process 0 keeps taking tasks.
        while p.waiting() > 0 {
            p.freed(0);
            for (t, r) in p.launch(now) {
                on[r as usize].push(t);
            }
        }
        assert_eq!(on, vec![vec![0, 2, 3, 4, 5, 6, 7, 8, 9], vec![1]]);
    }

    #[test]
    fn a_task_waits_for_its_preferred_process_until_the_locality_wait() {
        let now = Instant::now();
        let mut p = placement(&[(0, 1), (1, 1)]);
        p.add(0, vec![1], HashSet::new(), now);
        p.add(1, vec![1], HashSet::new(), now);
        p.add(2, vec![], HashSet::new(), now);
        assert_eq!(
            p.launch(now),
            vec![(2, 0), (0, 1)],
            "the driver's slot takes the task that prefers nothing"
        );
        p.freed(0);
        assert_eq!(p.launch(now), vec![], "task 1 waits for process 1");
        assert_eq!(p.next_deadline(now), Some(now + WAIT));
        let later = now + WAIT;
        assert_eq!(p.launch(later), vec![(1, 0)], "then takes any slot");
    }

    #[test]
    fn a_preferred_process_takes_its_tasks_before_others() {
        let now = Instant::now();
        let mut p = placement(&[(0, 1), (1, 1), (2, 1)]);
        p.add(0, vec![2], HashSet::new(), now);
        p.add(1, vec![1], HashSet::new(), now);
        p.add(2, vec![0], HashSet::new(), now);
        let mut got = p.launch(now);
        got.sort();
        assert_eq!(got, vec![(0, 2), (1, 1), (2, 0)]);
    }

    #[test]
    fn a_lost_or_avoided_preferred_process_does_not_hold_a_task_back() {
        let now = Instant::now();
        let mut p = placement(&[(0, 1), (1, 1), (2, 1)]);
        p.remove(1);
        p.add(0, vec![1], HashSet::new(), now);
        p.add(1, vec![2], HashSet::from([2]), now);
        assert_eq!(p.next_deadline(now), None, "nothing waits for locality");
        assert_eq!(
            p.launch(now),
            vec![(0, 0)],
            "task 0 runs anywhere; task 1 may not run where it failed"
        );
        p.freed(0);
        assert_eq!(p.launch(now), vec![(1, 0)]);
    }

    #[test]
    fn a_reducer_prefers_every_process_with_a_fifth_of_its_input() {
        let bytes = |v: &[(u32, u64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        assert_eq!(
            reducer_preference(&bytes(&[(0, 10), (1, 70), (2, 20)])),
            vec![1, 2]
        );
        assert_eq!(
            reducer_preference(&bytes(&[(0, 34), (1, 33), (2, 33)])),
            vec![0, 1, 2]
        );
        assert_eq!(
            reducer_preference(&bytes(&[(0, 0), (1, 0)])),
            Vec::<u32>::new()
        );
        assert_eq!(reducer_preference(&bytes(&[(2, 5)])), vec![2]);
    }
}
