//! Backpressure: a token-bucket limiter on what receivers store, and
//! Spark's PID estimator that sets its rate from how batches keep up.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Receiver rate settings (Spark's `spark.streaming.backpressure.*` and
/// `receiver.maxRate`).
#[derive(Clone, Debug, PartialEq)]
pub struct Backpressure {
    /// Whether the rate adapts to the processing speed.
    pub enabled: bool,
    /// Records per second each receiver may store before the first
    /// estimate (`None`: unlimited).
    pub initial_rate: Option<f64>,
    /// Upper bound on the rate of each receiver (`None`: unlimited).
    pub max_rate: Option<f64>,
    /// Lower bound of the estimated rate.
    pub min_rate: f64,
}

impl Default for Backpressure {
    fn default() -> Self {
        Backpressure {
            enabled: false,
            initial_rate: None,
            max_rate: None,
            min_rate: 100.0,
        }
    }
}

impl Backpressure {
    /// The rate receivers start with: the initial rate, capped by the
    /// maximum.
    pub(crate) fn initial_or_max(&self) -> Option<f64> {
        match (self.initial_rate, self.max_rate) {
            (Some(i), Some(m)) => Some(i.min(m)),
            (i, m) => i.or(m),
        }
    }
}

/// Limits records per second; `acquire` blocks until the records fit.
pub(crate) struct RateLimiter {
    state: Mutex<Bucket>,
}

struct Bucket {
    /// Records per second; `None` is unlimited.
    rate: Option<f64>,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub(crate) fn new(rate: Option<f64>) -> Self {
        RateLimiter {
            state: Mutex::new(Bucket {
                rate,
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    pub(crate) fn set_rate(&self, rate: Option<f64>) {
        let mut b = self.state.lock();
        b.rate = rate.map(|r| r.max(1.0));
    }

    /// Waits until `n` records may pass; returns early (with `false`) when
    /// `stopped()` holds.
    pub(crate) fn acquire(&self, n: usize, stopped: impl Fn() -> bool) -> bool {
        loop {
            let wait = {
                let mut b = self.state.lock();
                let Some(rate) = b.rate else {
                    return true;
                };
                let now = Instant::now();
                // At most a tenth of a second of burst.
                let cap = (rate / 10.0).max(n as f64);
                b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(cap);
                b.last = now;
                if b.tokens >= n as f64 {
                    b.tokens -= n as f64;
                    return true;
                }
                Duration::from_secs_f64(((n as f64 - b.tokens) / rate).min(0.05))
            };
            if stopped() {
                return false;
            }
            std::thread::sleep(wait);
        }
    }
}

/// Spark's `PIDRateEstimator`: from each batch's size, processing delay
/// and scheduling delay, the rate the system can sustain.
pub(crate) struct PidEstimator {
    batch_ms: f64,
    proportional: f64,
    integral: f64,
    derivative: f64,
    min_rate: f64,
    first_run: bool,
    latest_time_ms: i64,
    latest_rate: f64,
    latest_error: f64,
}

impl PidEstimator {
    /// With Spark's default gains: proportional 1.0, integral 0.2,
    /// derivative 0.0.
    pub(crate) fn new(batch: Duration, min_rate: f64) -> Self {
        PidEstimator {
            batch_ms: batch.as_secs_f64() * 1000.0,
            proportional: 1.0,
            integral: 0.2,
            derivative: 0.0,
            min_rate,
            first_run: true,
            latest_time_ms: -1,
            latest_rate: -1.0,
            latest_error: -1.0,
        }
    }

    /// A new rate after the batch at `time_ms` (records, processing and
    /// scheduling delays in ms), or `None` when there is nothing to learn.
    pub(crate) fn compute(
        &mut self,
        time_ms: i64,
        records: u64,
        processing_ms: f64,
        scheduling_ms: f64,
    ) -> Option<f64> {
        if time_ms <= self.latest_time_ms || records == 0 || processing_ms <= 0.0 {
            return None;
        }
        let since_update_s = (time_ms - self.latest_time_ms) as f64 / 1000.0;
        let processing_rate = records as f64 / processing_ms * 1000.0;
        let error = self.latest_rate - processing_rate;
        // The backlog from scheduling delay, as a rate over one interval.
        let historical_error = scheduling_ms * processing_rate / self.batch_ms;
        let d_error = (error - self.latest_error) / since_update_s;
        let new_rate = (self.latest_rate
            - self.proportional * error
            - self.integral * historical_error
            - self.derivative * d_error)
            .max(self.min_rate);
        self.latest_time_ms = time_ms;
        if self.first_run {
            self.latest_rate = processing_rate;
            self.latest_error = 0.0;
            self.first_run = false;
            None
        } else {
            self.latest_rate = new_rate;
            self.latest_error = error;
            Some(new_rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_batch_only_calibrates() {
        let mut pid = PidEstimator::new(Duration::from_millis(100), 100.0);
        assert_eq!(pid.compute(100, 1000, 50.0, 0.0), None);
        assert!(pid.compute(200, 1000, 50.0, 0.0).is_some());
    }

    #[test]
    fn the_rate_falls_when_batches_take_longer_than_the_interval_and_rises_again() {
        let mut pid = PidEstimator::new(Duration::from_millis(100), 100.0);
        // 10,000 records per batch: processing takes 200 ms (rate 50k/s)
        // with a growing scheduling delay.
        pid.compute(100, 10_000, 200.0, 0.0);
        let slow = pid.compute(200, 10_000, 200.0, 100.0).unwrap();
        assert!(slow < 50_000.0, "below the processing rate: {slow}");
        // Load falls: 1,000 records in 10 ms (100k/s), no delay.
        let mut rate = slow;
        for t in 3..10 {
            rate = pid.compute(t * 100, 1_000, 10.0, 0.0).unwrap();
        }
        assert!(rate > slow, "rises again: {slow} -> {rate}");
    }

    #[test]
    fn the_rate_never_goes_below_the_minimum() {
        let mut pid = PidEstimator::new(Duration::from_millis(100), 100.0);
        pid.compute(100, 10, 1000.0, 0.0);
        let r = pid.compute(200, 10, 1000.0, 10_000.0).unwrap();
        assert_eq!(r, 100.0);
    }

    #[test]
    fn the_limiter_paces_records() {
        let l = RateLimiter::new(Some(1000.0));
        let start = Instant::now();
        for _ in 0..10 {
            assert!(l.acquire(20, || false));
        }
        // 200 records at 1000/s: about 0.2 s (less the initial burst).
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(90), "{took:?}");
        let unlimited = RateLimiter::new(None);
        assert!(unlimited.acquire(1_000_000, || false));
    }
}
