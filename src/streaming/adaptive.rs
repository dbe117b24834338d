//! Adaptive batch interval (off by default), in the spirit of Das et al.,
//! "Adaptive Stream Processing using Dynamic Batch Sizing" (SoCC 2014):
//! after every batch, the context estimates the fixed cost of a batch and
//! the cost per record, and picks the shortest interval whose processing
//! stays below a fraction of it at the current input rate — short batches
//! (low latency) when load is light, longer ones (fewer fixed costs) when
//! it rises. Changes are bounded per step (at most ×2 or ÷2), so the
//! interval cannot oscillate wildly.
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
    /// Decayed sums for the least-squares fit processing = fixed +
    /// per_record · records: weight, Σn, Σp, Σn², Σnp.
    sums: [f64; 5],
    /// Estimated input rate, records per second.
    rate: f64,
    seeded: bool,
}

/// Weight of the newest observation in the rate estimate.
const SMOOTHING: f64 = 0.3;
/// How much of the fit each older batch keeps.
const DECAY: f64 = 0.9;

impl Controller {
    pub(crate) fn new(settings: AdaptiveBatching) -> Self {
        Controller {
            settings,
            sums: [0.0; 5],
            rate: 0.0,
            seeded: false,
        }
    }

    /// Fixed cost per batch and cost per record (seconds) from the decayed
    /// least-squares fit; with too little spread in batch sizes, the fixed
    /// cost is taken as the smallest seen relative to size.
    fn fit(&self) -> (f64, f64) {
        let [w, sn, sp, snn, snp] = self.sums;
        if w <= 0.0 {
            return (0.0, 0.0);
        }
        let denom = w * snn - sn * sn;
        let (mut fixed, mut per) = if denom > 1e-9 * w * snn.max(1.0) {
            let per = (w * snp - sn * sp) / denom;
            (((sp - per * sn) / w), per)
        } else {
            (0.0, if sn > 0.0 { sp / sn } else { 0.0 })
        };
        if per < 0.0 {
            per = 0.0;
            fixed = sp / w;
        }
        if fixed < 0.0 {
            fixed = 0.0;
            per = if snn > 0.0 { snp / snn } else { 0.0 };
        }
        (fixed, per)
    }

    /// The interval to use after a batch of `records` that covered
    /// `interval` and took `processing` (and had waited `delay`).
    pub(crate) fn next(
        &mut self,
        interval: Duration,
        records: u64,
        processing: Duration,
        delay: Duration,
    ) -> Duration {
        let (i, p) = (interval.as_secs_f64(), processing.as_secs_f64());
        let ewma = |old: f64, new: f64, seeded: bool| {
            if seeded {
                old + SMOOTHING * (new - old)
            } else {
                new
            }
        };
        // Records that arrived during the interval (and the wait before
        // this batch started) are the input rate.
        let covered = i + delay.as_secs_f64();
        self.rate = ewma(self.rate, records as f64 / covered.max(1e-3), self.seeded);
        self.seeded = true;
        let n = records as f64;
        for (sum, add) in self.sums.iter_mut().zip([1.0, n, p, n * n, n * p]) {
            *sum = *sum * DECAY + add;
        }
        let (fixed, per_record) = self.fit();
        let s = &self.settings;
        let (min, max) = (s.min_interval.as_secs_f64(), s.max_interval.as_secs_f64());
        // Stable when fixed + per_record·rate·I <= utilization·I.
        let slack = s.utilization - per_record * self.rate;
        let mut want = if slack <= 0.0 {
            max
        } else {
            // A fifth more than the bare minimum, for noise.
            1.2 * fixed / slack
        };
        // A batch that ran over means the estimate is behind: back off.
        if p > s.utilization * i {
            want = want.max(i * (p / (s.utilization * i)).min(2.0));
        }
        let target = s.target_latency.as_secs_f64();
        if want < target / 4.0 {
            // Comfortable: go down gently towards the minimum.
            want = want.max(min);
        }
        // Small corrections are not worth a change (no dithering).
        if (want - i).abs() < 0.1 * i {
            want = i;
        }
        let bounded = want.clamp(i / 2.0, i * 2.0).clamp(min, max);
        let ms = (bounded * 1000.0).round().max(1.0) as u64;
        Duration::from_millis(ms)
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
        c: &mut Controller,
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
            interval = c.next(
                interval,
                records as u64,
                Duration::from_secs_f64(processing),
                Duration::ZERO,
            );
            out.push(interval);
        }
        out
    }

    #[test]
    fn light_load_shrinks_the_interval_to_the_minimum() {
        let mut c = controller();
        let path = simulate(&mut c, 1000.0, 0.001, 1e-6, Duration::from_millis(500), 20);
        assert_eq!(*path.last().unwrap(), Duration::from_millis(10), "{path:?}");
    }

    #[test]
    fn heavy_load_grows_the_interval_until_processing_keeps_up_and_stays_there() {
        let mut c = controller();
        // 5 ms per batch, 2 us per record at 200k/s: 40% of the time goes to
        // records, so the interval must be at least 5 ms / (0.7 - 0.4).
        let path = simulate(
            &mut c,
            200_000.0,
            0.005,
            2e-6,
            Duration::from_millis(10),
            40,
        );
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
        let mut c = controller();
        let path = simulate(
            &mut c,
            1_000_000.0,
            0.005,
            1e-6,
            Duration::from_millis(10),
            30,
        );
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
