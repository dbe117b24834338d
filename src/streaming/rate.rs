//! Backpressure: a token-bucket limiter on what receivers store, the
//! [`RateEstimator`] interface that sets its rate from how batches keep up,
//! and Spark's PID estimator, the default one.

use super::time::Time;
use crate::error::{Error, Result};
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
    /// Lower bound of the estimated rate (Spark's `pid.minRate`).
    pub min_rate: f64,
    /// The gains of the default PID estimator (Spark's
    /// `backpressure.pid.*`); a custom estimator set with
    /// [`StreamingContext::set_rate_estimator`](super::StreamingContext::set_rate_estimator)
    /// replaces it.
    pub pid: PidGains,
}

impl Default for Backpressure {
    fn default() -> Self {
        Backpressure {
            enabled: false,
            initial_rate: None,
            max_rate: None,
            min_rate: 100.0,
            pid: PidGains::default(),
        }
    }
}

/// The gains of [`PidRateEstimator`]; Spark's defaults: proportional 1.0,
/// integral 0.2, derivative 0.0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PidGains {
    /// Weight of the error between the last rate and the processing rate
    /// (`pid.proportional`).
    pub proportional: f64,
    /// Weight of the backlog the scheduling delay shows (`pid.integral`).
    pub integral: f64,
    /// Weight of the error's change (`pid.derived`).
    pub derivative: f64,
}

impl Default for PidGains {
    fn default() -> Self {
        PidGains {
            proportional: 1.0,
            integral: 0.2,
            derivative: 0.0,
        }
    }
}

/// Sets the receiving rate from how batches keep up (Spark's
/// `RateEstimator`, chosen by `spark.streaming.backpressure.rateEstimator`).
/// With backpressure enabled, the batch loop calls it after each batch; a
/// returned rate, capped by [`Backpressure::max_rate`], goes to every
/// rate-limited input and is posted as `StreamingEvent::RateChanged`.
///
/// ```
/// use spate::streaming::{RateEstimator, Time};
/// use std::time::Duration;
/// /// Aims for batches that take half the interval.
/// struct HalfInterval(Duration);
/// impl RateEstimator for HalfInterval {
///     fn compute(&mut self, _: Time, records: u64, processing: Duration, _: Duration) -> Option<f64> {
///         let per_second = records as f64 / processing.as_secs_f64().max(1e-3);
///         Some(per_second * self.0.as_secs_f64() / 2.0 / self.0.as_secs_f64())
///     }
/// }
/// let mut e = HalfInterval(Duration::from_secs(1));
/// assert_eq!(e.compute(Time::from_millis(1000), 1000, Duration::from_millis(500), Duration::ZERO), Some(1000.0));
/// ```
pub trait RateEstimator: Send + 'static {
    /// The new rate in records per second per receiver after the batch at
    /// `time`, which held `records` per receiver and took `processing`
    /// after waiting `scheduling`; `None` keeps the current rate.
    fn compute(
        &mut self,
        time: Time,
        records: u64,
        processing: Duration,
        scheduling: Duration,
    ) -> Option<f64>;
}

impl Backpressure {
    /// An `InvalidArgument` naming the first setting out of its domain:
    /// rates must be finite and positive, gains finite and not negative.
    pub(crate) fn check(&self, batch: Duration) -> Result<()> {
        for (what, rate) in [
            ("initial_rate", self.initial_rate),
            ("max_rate", self.max_rate),
        ] {
            if let Some(r) = rate
                && !(r.is_finite() && r > 0.0)
            {
                return Err(Error::InvalidArgument(format!(
                    "backpressure {what} must be finite and positive, not {r}"
                )));
            }
        }
        PidRateEstimator::new(batch, self.pid, self.min_rate).map(drop)
    }

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
/// and scheduling delay, the rate the system can sustain. The default
/// estimator; public so a custom one can build on it.
///
/// ```
/// use spate::streaming::{PidGains, PidRateEstimator, RateEstimator, Time};
/// use std::time::Duration;
/// let ms = Duration::from_millis;
/// let mut pid = PidRateEstimator::new(ms(100), PidGains::default(), 100.0).unwrap();
/// assert_eq!(pid.compute(Time::from_millis(100), 1000, ms(50), ms(0)), None, "calibrates");
/// // 20,000 records/s processed, no backlog: the rate follows.
/// assert_eq!(pid.compute(Time::from_millis(200), 1000, ms(50), ms(0)), Some(20_000.0));
/// let bad = PidGains { integral: -1.0, ..PidGains::default() };
/// assert!(PidRateEstimator::new(ms(100), bad, 100.0).is_err());
/// ```
pub struct PidRateEstimator {
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

impl PidRateEstimator {
    /// An estimator for batches of `batch` with `gains`, never below
    /// `min_rate`. As Spark, an `InvalidArgument` unless the gains are at
    /// least 0 and `min_rate` is above 0, all finite.
    ///
    /// ```
    /// use spate::streaming::{PidGains, PidRateEstimator, RateEstimator, Time};
    /// use std::time::Duration;
    /// let mut pid = PidRateEstimator::new(Duration::from_secs(1), PidGains::default(), 100.0)?;
    /// // The first batch only sets the starting point.
    /// assert_eq!(pid.compute(Time::from_millis(1_000), 1_000, Duration::from_millis(500), Duration::ZERO), None);
    /// // 2 000 records in 500 ms: 4 000 per second could be handled.
    /// let rate = pid.compute(Time::from_millis(2_000), 2_000, Duration::from_millis(500), Duration::ZERO);
    /// assert!(rate.is_some_and(|r| r > 100.0));
    /// assert!(PidRateEstimator::new(Duration::from_secs(1), PidGains::default(), 0.0).is_err());
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn new(batch: Duration, gains: PidGains, min_rate: f64) -> Result<Self> {
        let PidGains {
            proportional,
            integral,
            derivative,
        } = gains;
        for (name, v) in [
            ("proportional", proportional),
            ("integral", integral),
            ("derivative", derivative),
        ] {
            if v.is_nan() || v < 0.0 || v.is_infinite() {
                return Err(Error::InvalidArgument(format!(
                    "the PID estimator's {name} gain is {v}; it must be finite and at least 0"
                )));
            }
        }
        if min_rate.is_nan() || min_rate <= 0.0 || min_rate.is_infinite() {
            return Err(Error::InvalidArgument(format!(
                "the PID estimator's minimum rate is {min_rate}; it must be finite and above 0"
            )));
        }
        if batch.is_zero() {
            return Err(Error::InvalidArgument(
                "the PID estimator's batch interval is 0".into(),
            ));
        }
        Ok(PidRateEstimator {
            batch_ms: batch.as_secs_f64() * 1000.0,
            proportional,
            integral,
            derivative,
            min_rate,
            first_run: true,
            latest_time_ms: -1,
            latest_rate: -1.0,
            latest_error: -1.0,
        })
    }
}

impl RateEstimator for PidRateEstimator {
    fn compute(
        &mut self,
        time: Time,
        records: u64,
        processing: Duration,
        scheduling: Duration,
    ) -> Option<f64> {
        let time_ms = time.millis() as i64;
        let processing_ms = processing.as_secs_f64() * 1000.0;
        let scheduling_ms = scheduling.as_secs_f64() * 1000.0;
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

    fn pid() -> PidRateEstimator {
        PidRateEstimator::new(Duration::from_millis(100), PidGains::default(), 100.0).unwrap()
    }

    fn t(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1000.0)
    }

    #[test]
    fn the_first_batch_only_calibrates() {
        let mut pid = pid();
        assert_eq!(pid.compute(t(100), 1000, ms(50.0), ms(0.0)), None);
        assert!(pid.compute(t(200), 1000, ms(50.0), ms(0.0)).is_some());
    }

    #[test]
    fn the_rate_falls_when_batches_take_longer_than_the_interval_and_rises_again() {
        let mut pid = pid();
        // 10,000 records per batch: processing takes 200 ms (rate 50k/s)
        // with a growing scheduling delay.
        pid.compute(t(100), 10_000, ms(200.0), ms(0.0));
        let slow = pid.compute(t(200), 10_000, ms(200.0), ms(100.0)).unwrap();
        assert!(slow < 50_000.0, "below the processing rate: {slow}");
        // Load falls: 1,000 records in 10 ms (100k/s), no delay.
        let mut rate = slow;
        for i in 3..10 {
            rate = pid.compute(t(i * 100), 1_000, ms(10.0), ms(0.0)).unwrap();
        }
        assert!(rate > slow, "rises again: {slow} -> {rate}");
    }

    #[test]
    fn the_rate_never_goes_below_the_minimum() {
        let mut pid = pid();
        pid.compute(t(100), 10, ms(1000.0), ms(0.0));
        let r = pid.compute(t(200), 10, ms(1000.0), ms(10_000.0)).unwrap();
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
