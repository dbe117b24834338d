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
