//! Adaptive batch interval (off by default), in the spirit of Das et al.,
//! "Adaptive Stream Processing using Dynamic Batch Sizing" (SoCC 2014):
//! a batch's processing time is about a fixed cost plus a cost per record,
//! so its share of the interval falls as the interval grows. After every
//! batch the controller compares that share with a band below the
//! configured utilization and steers toward the band's middle: a longer
//! interval when batches take too large a share (load rose, or a backlog
//! builds up), a shorter one — lower latency — when they take little. This
//! is the fixed-point iteration of the paper on measured shares; each step
//! at most doubles or halves the interval and nothing changes inside the
//! band, so the interval settles instead of oscillating.
//!
//! Only streams defined every batch work with a changing interval: event
//! time operations (which never depend on batches) and per-batch and state
//! operations; processing-time windows are refused at start.

use std::time::Duration;

/// Settings of the adaptive batch interval.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveBatching {
    /// The latency to aim for: the interval is never raised above it unless
    /// processing could not keep up otherwise.
    pub target_latency: Duration,
    /// Shortest interval.
    pub min_interval: Duration,
    /// Longest interval.
    pub max_interval: Duration,
    /// Processing must stay below this fraction of the interval (0..1).
    pub utilization: f64,
}

impl AdaptiveBatching {
    /// Between `min` and `max`, aiming at `target_latency`, keeping
    /// processing under 70% of the interval.
    ///
    /// ```
    /// use spate::streaming::{AdaptiveBatching, StreamingContext};
    /// use std::time::Duration;
    /// let ctx = spate::Context::new()?;
    /// let ssc = StreamingContext::new(&ctx, Duration::from_millis(100))?;
    /// let ms = Duration::from_millis;
    /// let settings = AdaptiveBatching::new(ms(500), ms(20), ms(1_000));
    /// assert_eq!(settings.utilization, 0.7);
    /// ssc.set_adaptive_batching(settings)?;
    /// # Ok::<(), spate::Error>(())
    /// ```
    pub fn new(target_latency: Duration, min: Duration, max: Duration) -> Self {
        AdaptiveBatching {
            target_latency,
            min_interval: min,
            max_interval: max,
            utilization: 0.7,
        }
    }
}

/// The interval controller.
pub(crate) struct Controller {
    settings: AdaptiveBatching,
}

impl Controller {
    pub(crate) fn new(settings: AdaptiveBatching) -> Self {
        Controller { settings }
    }

    /// The interval to use after a batch that covered `interval` and took
    /// `processing`.
    pub(crate) fn next(&self, interval: Duration, processing: Duration) -> Duration {
        let s = &self.settings;
        let (i, p) = (interval.as_secs_f64(), processing.as_secs_f64());
        let share = p / i.max(1e-3);
        // The band: above `high` batches risk falling behind, below `low`
        // the interval is longer than it needs to be.
        let high = s.utilization;
        let low = s.utilization * 0.5;
        let aim = s.utilization * 0.8;
        let want = if share > high {
            i * (share / aim).min(2.0)
        } else if share < low {
            i * (share / aim).max(0.5)
        } else {
            i
        };
        let (min, max) = (s.min_interval.as_secs_f64(), s.max_interval.as_secs_f64());
        // Beyond the target latency only when processing needs it.
        let cap = if share > high {
            max
        } else {
            max.min(s.target_latency.as_secs_f64().max(min))
        };
        let bounded = want
            .clamp(min, cap.max(min))
            .clamp(i / 2.0, i * 2.0)
            .clamp(min, max);
        Duration::from_millis((bounded * 1000.0).round().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> Controller {
        Controller::new(AdaptiveBatching::new(
            Duration::from_millis(200),
            Duration::from_millis(10),
            Duration::from_secs(1),
        ))
    }

    /// Simulates a system with `fixed` seconds per batch and `per` seconds
    /// per record under `rate` records/s, from interval `start`.
    fn simulate(
        c: &Controller,
        rate: f64,
        fixed: f64,
        per: f64,
        start: Duration,
        steps: usize,
    ) -> Vec<Duration> {
        let mut interval = start;
        let mut out = Vec::new();
        let mut backlog = 0.0f64;
        for _ in 0..steps {
            let records = rate * interval.as_secs_f64() + backlog;
            let processing = fixed + per * records;
            backlog = (processing - interval.as_secs_f64()).max(0.0) * rate;
            interval = c.next(interval, Duration::from_secs_f64(processing));
            out.push(interval);
        }
        out
    }

    #[test]
    fn light_load_shrinks_the_interval_to_the_minimum() {
        let c = controller();
        let path = simulate(&c, 1000.0, 0.001, 1e-6, Duration::from_millis(500), 20);
        assert_eq!(*path.last().unwrap(), Duration::from_millis(10), "{path:?}");
    }

    #[test]
    fn heavy_load_grows_the_interval_until_processing_keeps_up_and_stays_there() {
        let c = controller();
        // 5 ms per batch, 2 us per record at 200k/s: 40% of the time goes to
        // records, so the interval must be at least 5 ms / (0.7 - 0.4).
        let path = simulate(&c, 200_000.0, 0.005, 2e-6, Duration::from_millis(10), 40);
        let last = *path.last().unwrap();
        assert!(
            last >= Duration::from_millis(17) && last <= Duration::from_millis(60),
            "{path:?}"
        );
        // Stable: the last steps stay within 10% of each other.
        let tail = &path[path.len() - 10..];
        let (lo, hi) = (tail.iter().min().unwrap(), tail.iter().max().unwrap());
        assert!(hi.as_secs_f64() <= lo.as_secs_f64() * 1.1, "{tail:?}");
    }

    #[test]
    fn overload_goes_to_the_maximum_and_steps_never_more_than_double() {
        let c = controller();
        let path = simulate(&c, 1_000_000.0, 0.005, 1e-6, Duration::from_millis(10), 30);
        assert_eq!(*path.last().unwrap(), Duration::from_secs(1), "{path:?}");
        let mut prev = Duration::from_millis(10);
        for d in &path {
            assert!(
                d.as_secs_f64() <= prev.as_secs_f64() * 2.0 + 0.001,
                "{path:?}"
            );
            prev = *d;
        }
    }
}
