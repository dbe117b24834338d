//! How batches are paced: the backpressure settings receivers start with,
//! adaptive batching, and the recent batch times (uneven with an adaptive
//! interval, so stateful streams ask for the batch before instead of
//! subtracting the interval).

use super::adaptive::AdaptiveBatching;
use super::rate::{Backpressure, RateEstimator};
use super::time::Time;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Pacing {
    backpressure: Mutex<Backpressure>,
    /// A user's estimator in place of the PID one, until `start` takes it.
    rate_estimator: Mutex<Option<Box<dyn RateEstimator>>>,
    /// Set when the batch interval adapts to the load.
    adaptive: Mutex<Option<AdaptiveBatching>>,
    /// Recent batch times.
    batch_log: Mutex<BTreeSet<Time>>,
    /// How long every stream keeps its datasets at least (`remember`).
    remember: Mutex<Duration>,
}

impl Pacing {
    pub(crate) fn set_remember(&self, d: Duration) {
        *self.remember.lock() = d;
    }

    pub(crate) fn remember(&self) -> Duration {
        *self.remember.lock()
    }

    pub(crate) fn backpressure(&self) -> Backpressure {
        self.backpressure.lock().clone()
    }

    pub(crate) fn set_backpressure(&self, b: Backpressure) {
        *self.backpressure.lock() = b;
    }

    pub(crate) fn set_rate_estimator(&self, e: Box<dyn RateEstimator>) {
        *self.rate_estimator.lock() = Some(e);
    }

    pub(crate) fn take_rate_estimator(&self) -> Option<Box<dyn RateEstimator>> {
        self.rate_estimator.lock().take()
    }

    pub(crate) fn set_adaptive(&self, a: AdaptiveBatching) {
        *self.adaptive.lock() = Some(a);
    }

    pub(crate) fn adaptive(&self) -> Option<AdaptiveBatching> {
        self.adaptive.lock().clone()
    }

    pub(crate) fn is_adaptive(&self) -> bool {
        self.adaptive.lock().is_some()
    }

    /// The latest batch before `time`, if one is remembered.
    pub(crate) fn batch_before(&self, time: Time) -> Option<Time> {
        self.batch_log.lock().range(..time).next_back().copied()
    }

    /// Notes that a batch runs at `time`.
    pub(crate) fn note_batch(&self, time: Time) {
        let mut log = self.batch_log.lock();
        log.insert(time);
        while log.len() > 4096 {
            log.pop_first();
        }
    }
}
