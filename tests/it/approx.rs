//! Approximate actions within a timeout (`count_approx`, `sum_approx`,
//! `mean_approx`): the estimate from the partitions done, checked against
//! Spark's evaluators computed here independently, and the exact final value
//! against a plain fold.

use crate::common;
use proptest::prelude::*;
use spate::{BoundedDouble, Context, Error, Event};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Long enough for three trivial partitions on a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(2);

/// `range(0, n, 1, 4)` whose last partition waits until the gate opens.
fn gated(ctx: &Context, n: i64) -> (spate::Rdd<i64>, Arc<AtomicBool>) {
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let first_of_last = n / 4 * 3;
    let rdd = ctx.range(0, n, 1, 4).map(move |x| {
        while x == first_of_last && !g.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2));
        }
        x
    });
    (rdd, gate)
}

/// The smallest k with P(X <= k) >= q for X ~ Poisson(lambda), by summing
/// the probability mass in log space (commons-math's definition, which
/// Spark uses).
pub(crate) fn poisson_quantile(lambda: f64, q: f64) -> f64 {
    let (mut k, mut cdf, mut ln_fact) = (0u64, 0.0, 0.0f64);
    loop {
        if k > 0 {
            ln_fact += (k as f64).ln();
        }
        cdf += (k as f64 * lambda.ln() - lambda - ln_fact).exp();
        if cdf >= q {
            return k as f64;
        }
        k += 1;
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn count_approx_answers_at_the_timeout_from_the_partitions_done_then_gives_the_exact_count() {
    let (ctx, log) = common::logged_ctx();
    let (rdd, gate) = gated(&ctx, 400);
    let partial = rdd.count_approx(TIMEOUT, 0.95).unwrap();
    assert!(!partial.is_initial_value_final());
    // 300 counted in 3 of 4 partitions: the rest is Poisson(100).
    let want = BoundedDouble {
        mean: 400.0,
        confidence: 0.95,
        low: 300.0 + poisson_quantile(100.0, 0.025),
        high: 300.0 + poisson_quantile(100.0, 0.975),
    };
    assert_eq!(*partial.initial_value(), want);
    gate.store(true, Ordering::Relaxed);
    // The next action runs after the approximate job, in every process.
    assert_eq!(ctx.range(0, 10, 1, 2).count().unwrap(), 10);
    let actions: Vec<String> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::JobStart { action, .. } => Some(action),
            _ => None,
        })
        .collect();
    assert_eq!(actions, ["count_approx", "count"]);
    assert_eq!(
        partial.final_value().unwrap(),
        BoundedDouble {
            mean: 400.0,
            confidence: 1.0,
            low: 400.0,
            high: 400.0
        }
    );
}

#[test]
fn mean_and_sum_approx_use_the_normal_beyond_100_elements_seen() {
    let ctx = common::ctx();
    // 600 of 800 elements seen: 0..600, mean 299.5, sample variance 30050.
    let z = 1.959963984540054; // the normal's 97.5% quantile
    let (n, mean, var) = (600.0f64, 299.5, 30050.0);
    let (rdd, gate) = gated(&ctx, 800);
    let m = rdd.mean_approx(TIMEOUT, 0.95).unwrap();
    let half = z * (var / n).sqrt();
    let got = *m.initial_value();
    assert!(!m.is_initial_value_final());
    assert_eq!((got.mean, got.confidence), (mean, 0.95));
    assert!(
        close(got.low, mean - half) && close(got.high, mean + half),
        "{got:?}"
    );
    gate.store(true, Ordering::Relaxed);
    assert_eq!(m.final_value().unwrap().mean, 399.5);

    let (rdd, gate) = gated(&ctx, 800);
    let s = rdd.sum_approx(TIMEOUT, 0.95).unwrap();
    let p = 0.75;
    let count = (n + 1.0 - p) / p;
    let count_var = (n + 1.0) * (1.0 - p) / (p * p);
    let mean_var = var / n;
    let sum = mean * count;
    let sum_sd = (mean * mean * count_var + count * count * mean_var + mean_var * count_var).sqrt();
    let got = *s.initial_value();
    assert!(close(got.mean, sum), "{got:?} vs {sum}");
    assert!(
        close(got.low, sum - z * sum_sd) && close(got.high, sum + z * sum_sd),
        "{got:?}"
    );
    gate.store(true, Ordering::Relaxed);
    assert_eq!(
        s.final_value().unwrap(),
        BoundedDouble {
            mean: 319_600.0,
            confidence: 1.0,
            low: 319_600.0,
            high: 319_600.0
        }
    );
}

#[test]
fn mean_approx_uses_students_t_up_to_100_elements_seen() {
    let ctx = common::ctx();
    // 30 of 40 seen: 0..30, mean 14.5, sample variance 77.5; t(29) at 97.5%.
    let t29 = 2.045229642132703;
    let (rdd, gate) = gated(&ctx, 40);
    let m = rdd.mean_approx(TIMEOUT, 0.95).unwrap();
    let got = *m.initial_value();
    let half = t29 * (77.5f64 / 30.0).sqrt();
    assert_eq!(got.mean, 14.5);
    assert!(
        close(got.low, 14.5 - half) && close(got.high, 14.5 + half),
        "{got:?}"
    );
    gate.store(true, Ordering::Relaxed);
    assert_eq!(m.final_value().unwrap().mean, 19.5);
}

#[test]
fn nothing_done_by_the_timeout_is_an_estimate_of_nothing_with_zero_confidence() {
    let ctx = Context::builder().parallelism(1).build().unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let rdd = ctx.range(0, 100, 1, 2).map(move |x| {
        while !g.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2));
        }
        x
    });
    let c = rdd.count_approx(Duration::from_millis(50), 0.9).unwrap();
    let want = BoundedDouble {
        mean: 0.0,
        confidence: 0.0,
        low: 0.0,
        high: f64::INFINITY,
    };
    assert_eq!(*c.initial_value(), want);
    gate.store(true, Ordering::Relaxed);
    assert_eq!(c.final_value().unwrap().mean, 100.0);
}

#[test]
fn a_bad_confidence_a_failing_job_and_a_call_inside_a_task_are_errors() {
    let ctx = common::ctx();
    let r = ctx.range(0, 10, 1, 2);
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = r.count_approx(TIMEOUT, bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("confidence")),
            "{err}"
        );
    }
    let failing = r.map(|x| if x == 7 { panic!("bad record 7") } else { x });
    let err = failing.sum_approx(TIMEOUT, 0.9).unwrap_err();
    assert!(
        matches!(&err, Error::TaskFailed { cause, .. } if cause.to_string().contains("bad record 7")),
        "{err}"
    );
    let inner = r.clone();
    let nested = ctx.range(0, 2, 1, 1).try_map(move |_| {
        inner
            .count_approx(TIMEOUT, 0.9)
            .map(|c| c.initial_value().mean)
    });
    let err = nested.collect().unwrap_err();
    assert!(
        matches!(
            err.root_cause(),
            Error::ActionInTask {
                action: "count_approx",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(r.count().unwrap(), 10, "the context stays usable");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// With time to spare, every approximate action is exact and final, on
    /// any partitioning (empty partitions included) and thread count.
    #[test]
    fn with_time_to_spare_the_answer_is_exact(
        data in prop::collection::vec(-1000i64..1000, 0..300),
        parts in 1usize..9,
        threads in prop::sample::select(vec![1usize, 3]),
    ) {
        let ctx = Context::builder().parallelism(threads).build().unwrap();
        let r = ctx.parallelize(data.clone(), parts);
        let n = data.len() as f64;
        let sum: i64 = data.iter().sum();
        let count = r.count_approx(Duration::from_secs(60), 0.9).unwrap();
        prop_assert!(count.is_initial_value_final());
        prop_assert_eq!(*count.initial_value(), BoundedDouble { mean: n, confidence: 1.0, low: n, high: n });
        let s = r.sum_approx(Duration::from_secs(60), 0.9).unwrap().final_value().unwrap();
        prop_assert!(close(s.mean, sum as f64) && s.confidence == 1.0 && s.low == s.high);
        let m = r.mean_approx(Duration::from_secs(60), 0.9).unwrap().final_value().unwrap();
        if data.is_empty() {
            prop_assert!(m.mean.is_nan());
        } else {
            prop_assert!(close(m.mean, sum as f64 / n), "{:?}", m);
        }
    }
}
