//! Batch times and the clock that fires batches: the system clock, or a
//! manual clock that tests advance by hand so every batch is deterministic.

use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in stream time, in milliseconds (since the Unix epoch on the
/// system clock, since the clock's start on a [`ManualClock`]). Batch `k`
/// of a context has time `zero + k·interval`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Time(u64);

impl Time {
    /// The time `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms)
    }

    /// Milliseconds since the origin.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Whether `self - origin` is a whole number of `step`s.
    pub(crate) fn is_aligned(self, origin: Time, step: Duration) -> bool {
        let step = millis(step);
        self >= origin && step > 0 && (self.0 - origin.0) % step == 0
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

impl std::ops::Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0 + millis(d))
    }
}

impl std::ops::Sub<Duration> for Time {
    type Output = Time;
    /// Saturates at the origin.
    fn sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(millis(d)))
    }
}

impl std::ops::Sub<Time> for Time {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, t: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(t.0))
    }
}

/// Whole milliseconds of `d`.
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Checks that a duration given by the user is a positive whole number of
/// milliseconds.
pub(crate) fn check_duration(what: &str, d: Duration) -> Result<Duration> {
    if d.is_zero() || d.subsec_nanos() % 1_000_000 != 0 {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a positive whole number of milliseconds, got {d:?}"
        )));
    }
    Ok(d)
}

/// A clock a test drives by hand: batches fire when it is advanced past
/// their time. Clones share the same time.
///
/// ```
/// use spate::streaming::{ManualClock, Time};
/// use std::time::Duration;
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now(), Time::from_millis(250));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    state: Arc<ClockState>,
}

impl ManualClock {
    /// A clock at time 0.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, Time};
    /// let clock = ManualClock::new();
    /// assert_eq!(clock.now(), Time::from_millis(0));
    /// ```
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// The current time.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, Time};
    /// let clock = ManualClock::new();
    /// clock.advance(std::time::Duration::from_millis(30));
    /// assert_eq!(clock.now(), Time::from_millis(30));
    /// ```
    pub fn now(&self) -> Time {
        Time(*self.state.manual.lock())
    }

    /// Moves the clock forward by `d`, waking whatever waits on it.
    ///
    /// ```
    /// use spate::streaming::{ManualClock, Time};
    /// use std::time::Duration;
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_millis(100));
    /// clock.advance(Duration::from_millis(50));
    /// assert_eq!(clock.now(), Time::from_millis(150));
    /// ```
    pub fn advance(&self, d: Duration) {
        *self.state.manual.lock() += millis(d);
        self.state.changed.notify_all();
    }

    /// Sets the clock to `t` (never backwards).
    ///
    /// ```
    /// use spate::streaming::{ManualClock, Time};
    /// let clock = ManualClock::new();
    /// clock.set(Time::from_millis(500));
    /// clock.set(Time::from_millis(200)); // never backwards
    /// assert_eq!(clock.now(), Time::from_millis(500));
    /// ```
    pub fn set(&self, t: Time) {
        {
            let mut now = self.state.manual.lock();
            *now = (*now).max(t.0);
        }
        self.state.changed.notify_all();
    }
}

#[derive(Default)]
pub(crate) struct ClockState {
    manual: Mutex<u64>,
    changed: Condvar,
}

/// The clock a streaming context runs on.
#[derive(Clone)]
pub(crate) enum Clock {
    System(Arc<ClockState>),
    Manual(ManualClock),
}

impl Clock {
    pub(crate) fn system() -> Clock {
        Clock::System(Arc::default())
    }

    pub(crate) fn now(&self) -> Time {
        match self {
            Clock::System(_) => Time(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            ),
            Clock::Manual(m) => m.now(),
        }
    }

    fn state(&self) -> &ClockState {
        match self {
            Clock::System(s) => s,
            Clock::Manual(m) => &m.state,
        }
    }

    /// Blocks until the clock reaches `t` or `interrupted()` holds (checked
    /// whenever [`wake`](Self::wake) is called); returns whether `t` was
    /// reached.
    pub(crate) fn wait_until(&self, t: Time, interrupted: impl Fn() -> bool) -> bool {
        let state = self.state();
        let mut guard = state.manual.lock();
        loop {
            if interrupted() {
                return false;
            }
            let now = match self {
                Clock::System(_) => self.now(),
                Clock::Manual(_) => Time(*guard),
            };
            if now >= t {
                return true;
            }
            match self {
                Clock::System(_) => {
                    // Sleep precisely for short waits; the condvar lets a
                    // stop interrupt long ones.
                    let _ = state.changed.wait_for(&mut guard, t - now);
                }
                Clock::Manual(_) => state.changed.wait(&mut guard),
            }
        }
    }

    /// Wakes every waiter so it re-checks its interruption.
    pub(crate) fn wake(&self) {
        let state = self.state();
        let _guard = state.manual.lock();
        state.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_wakes_a_waiter_when_advanced_past_its_time() {
        let m = ManualClock::new();
        let clock = Clock::Manual(m.clone());
        let waiter = std::thread::spawn(move || clock.wait_until(Time(100), || false));
        m.advance(Duration::from_millis(60));
        std::thread::sleep(Duration::from_millis(10));
        assert!(!waiter.is_finished(), "60 ms is not yet 100 ms");
        m.advance(Duration::from_millis(40));
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn an_interrupted_wait_returns_false() {
        let clock = Clock::Manual(ManualClock::new());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c2, s2) = (clock.clone(), stop.clone());
        let waiter = std::thread::spawn(move || {
            c2.wait_until(Time(100), || s2.load(std::sync::atomic::Ordering::SeqCst))
        });
        std::thread::sleep(Duration::from_millis(10));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        clock.wake();
        assert!(!waiter.join().unwrap());
    }

    #[test]
    fn durations_must_be_whole_milliseconds() {
        assert!(check_duration("interval", Duration::from_millis(1)).is_ok());
        assert!(check_duration("interval", Duration::ZERO).is_err());
        assert!(check_duration("interval", Duration::from_micros(1500)).is_err());
    }

    #[test]
    fn alignment_is_relative_to_the_origin() {
        let d = Duration::from_millis(100);
        assert!(Time(300).is_aligned(Time(100), d));
        assert!(!Time(350).is_aligned(Time(100), d));
        assert!(!Time(0).is_aligned(Time(100), d));
    }
}
