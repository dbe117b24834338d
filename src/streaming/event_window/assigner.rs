//! Window types and the assigners that put a record into windows:
//! tumbling, sliding, session (merging) and count windows.

use crate::streaming::watermark::EventTime;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A window `[start, end)` in event time (or, for count windows, in the
/// key's record count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First instant in the window.
    pub start: EventTime,
    /// First instant after it.
    pub end: EventTime,
}

/// When the windows of an assigner fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// When the watermark reaches the window's end.
    EventTime,
    /// When the window holds this many records (it then closes at once;
    /// watermarks and lateness do not apply).
    Count(u64),
}

/// Assigns records to windows. Implement it for custom windows; see
/// [`CountWindows`].
pub trait WindowAssigner: Send + Sync + 'static {
    /// The windows of a record with event time `time` that is the key's
    /// `index`-th record (0, 1, 2, ... in arrival order).
    fn assign(&self, time: EventTime, index: u64) -> Vec<Window>;
    /// Whether overlapping or touching windows of a key merge (sessions).
    fn merges(&self) -> bool {
        false
    }
    /// When windows fire.
    fn trigger(&self) -> Trigger {
        Trigger::EventTime
    }
}

pub(super) fn ms(d: Duration) -> EventTime {
    d.as_millis() as EventTime
}

/// Fixed-size, non-overlapping windows aligned to 0.
#[derive(Clone, Debug)]
pub struct TumblingWindows {
    size: EventTime,
}

impl TumblingWindows {
    /// Windows of `size`.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{TumblingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// // Clicks (user, event time in ms) counted per user and second.
    /// let clicks = vec![vec![('a', 100i64), ('a', 900), ('b', 1_500)], vec![('z', 5_000)]];
    /// let out = run_batches(clicks, |s| {
    ///     s.with_timestamps(|c| c.1, WatermarkStrategy::monotonous())
    ///         .key_by(|c| c.0)
    ///         .window(TumblingWindows::of(Duration::from_secs(1)))
    ///         .aggregate(|_| 1u32, |n, _| n + 1, |a, b| a + b, |n| *n)
    ///         .results
    ///         .map(|r| (r.key, r.window.start, r.value))
    /// })?;
    /// // Each window is emitted once, in the batch whose watermark closes it.
    /// assert_eq!(out, [vec![('a', 0, 2)], vec![('b', 1_000, 1)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn of(size: Duration) -> Self {
        TumblingWindows {
            size: ms(size).max(1),
        }
    }
}

impl WindowAssigner for TumblingWindows {
    fn assign(&self, time: EventTime, _: u64) -> Vec<Window> {
        let start = time.div_euclid(self.size) * self.size;
        vec![Window {
            start,
            end: start + self.size,
        }]
    }
}

/// Windows of `size` starting every `slide`, aligned to 0.
#[derive(Clone, Debug)]
pub struct SlidingWindows {
    size: EventTime,
    slide: EventTime,
}

impl SlidingWindows {
    /// Windows of `size`, one starting every `slide`.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{SlidingWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// // Two-second windows starting every second: each record is in two.
    /// let out = run_batches(vec![vec![('k', 1_500i64)], vec![('k', 9_000)]], |s| {
    ///     s.with_timestamps(|c| c.1, WatermarkStrategy::monotonous())
    ///         .key_by(|c| c.0)
    ///         .window(SlidingWindows::of(Duration::from_secs(2), Duration::from_secs(1)))
    ///         .aggregate(|_| 1u32, |n, _| n + 1, |a, b| a + b, |n| *n)
    ///         .results
    ///         .map(|r| (r.window.start, r.window.end, r.value))
    /// })?;
    /// assert_eq!(out[1], [(0, 2_000, 1), (1_000, 3_000, 1)]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingWindows {
            size: ms(size).max(1),
            slide: ms(slide).max(1),
        }
    }
}

impl WindowAssigner for SlidingWindows {
    fn assign(&self, time: EventTime, _: u64) -> Vec<Window> {
        let last_start = time.div_euclid(self.slide) * self.slide;
        let mut out = Vec::new();
        let mut start = last_start;
        while start > time - self.size {
            out.push(Window {
                start,
                end: start + self.size,
            });
            start -= self.slide;
        }
        out.reverse();
        out
    }
}

/// Sessions: a record opens `[time, time + gap)`; sessions of a key that
/// overlap or touch merge.
#[derive(Clone, Debug)]
pub struct SessionWindows {
    gap: EventTime,
}

impl SessionWindows {
    /// Sessions that end after `gap` without records.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{SessionWindows, WatermarkStrategy};
    /// use std::time::Duration;
    /// // Sessions end after 1 s without a click; 100 and 600 share one.
    /// let clicks = vec![vec![('a', 100i64), ('a', 600), ('a', 3_000)], vec![('z', 9_000)]];
    /// let out = run_batches(clicks, |s| {
    ///     s.with_timestamps(|c| c.1, WatermarkStrategy::monotonous())
    ///         .key_by(|c| c.0)
    ///         .window(SessionWindows::with_gap(Duration::from_secs(1)))
    ///         .aggregate(|_| 1u32, |n, _| n + 1, |a, b| a + b, |n| *n)
    ///         .results
    ///         .map(|r| (r.window.start, r.window.end, r.value))
    /// })?;
    /// assert_eq!(out, [vec![(100, 1_600, 2)], vec![(3_000, 4_000, 1)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn with_gap(gap: Duration) -> Self {
        SessionWindows {
            gap: ms(gap).max(1),
        }
    }
}

impl WindowAssigner for SessionWindows {
    fn assign(&self, time: EventTime, _: u64) -> Vec<Window> {
        vec![Window {
            start: time,
            end: time + self.gap,
        }]
    }
    fn merges(&self) -> bool {
        true
    }
}

/// Every `n` records of a key, in arrival order, form a window (its bounds
/// count records: `[k·n, (k+1)·n)`); it fires when full. An example of a
/// custom assigner.
#[derive(Clone, Debug)]
pub struct CountWindows {
    n: u64,
}

impl CountWindows {
    /// Windows of `n` records.
    ///
    /// ```
    /// use spate::streaming::testing::run_batches;
    /// use spate::streaming::{CountWindows, WatermarkStrategy};
    /// // Every 2 readings of a sensor, their sum.
    /// let out = run_batches(vec![vec![('s', 0i64, 5), ('s', 1, 7), ('s', 2, 1)]], |s| {
    ///     s.with_timestamps(|r| r.1, WatermarkStrategy::monotonous())
    ///         .key_by(|r| r.0)
    ///         .window(CountWindows::of(2))
    ///         .aggregate(|r| r.2, |sum, r| sum + r.2, |a, b| a + b, |sum| *sum)
    ///         .results
    ///         .map(|r| (r.window.start, r.value))
    /// })?;
    /// assert_eq!(out, [vec![(0, 12)]]);
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn of(n: u64) -> Self {
        CountWindows { n: n.max(1) }
    }
}

impl WindowAssigner for CountWindows {
    fn assign(&self, _: EventTime, index: u64) -> Vec<Window> {
        let start = (index / self.n * self.n) as EventTime;
        vec![Window {
            start,
            end: start + self.n as EventTime,
        }]
    }
    fn trigger(&self) -> Trigger {
        Trigger::Count(self.n)
    }
}
