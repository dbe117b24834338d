//! Fallible closures (`try_map`, `try_filter`, `try_flat_map`,
//! `try_for_each`): with closures that succeed they give what the plain
//! operations give on a Vec; an `Err` fails the task with the user's error
//! as the source, is retried like a panic, and names stage and partition.

use crate::common::PARTITIONS;
use proptest::prelude::*;
use spate::{Context, Error};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The user's own error type, to find again as the source.
#[derive(Debug, PartialEq)]
struct Odd(i64);

impl std::fmt::Display for Odd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is odd", self.0)
    }
}

impl std::error::Error for Odd {}

fn contexts() -> Vec<Context> {
    [1, 3]
        .iter()
        .map(|&t| Context::builder().parallelism(t).build().unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn succeeding_closures_give_what_the_plain_operations_give(
        data in prop::collection::vec(-500i64..500, 0..200),
        parts in 1usize..9,
    ) {
        for ctx in contexts() {
            let r = ctx.parallelize(data.clone(), parts);
            let mapped = r.try_map(|x| Ok::<_, Odd>(x * 3)).collect().unwrap();
            prop_assert_eq!(mapped, data.iter().map(|x| x * 3).collect::<Vec<_>>());
            let kept = r.try_filter(|x| Ok::<_, Odd>(x % 3 == 0)).collect().unwrap();
            prop_assert_eq!(kept, data.iter().copied().filter(|x| x % 3 == 0).collect::<Vec<_>>());
            let spread = r
                .try_flat_map(|x| Ok::<_, Odd>(vec![x; (x.rem_euclid(3)) as usize]))
                .collect()
                .unwrap();
            let want: Vec<i64> = data.iter().flat_map(|&x| vec![x; x.rem_euclid(3) as usize]).collect();
            prop_assert_eq!(spread, want);
            let sum = AtomicU64::new(0);
            r.try_for_each(|x| {
                sum.fetch_add((x + 500) as u64, Ordering::Relaxed);
                Ok::<_, Odd>(())
            })
            .unwrap();
            prop_assert_eq!(sum.into_inner(), data.iter().map(|x| (x + 500) as u64).sum::<u64>());
        }
    }
}

#[test]
fn an_err_fails_the_job_with_the_users_error_as_the_source_after_every_retry() {
    let ctx = Context::builder()
        .parallelism(2)
        .max_task_failures(3)
        .build()
        .unwrap();
    for &parts in &PARTITIONS {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        // Only 41 is odd: the last element, in the last partition.
        let data: Vec<i64> = (0..40).map(|x| x * 2).chain([41]).collect();
        let err = ctx
            .parallelize(data, parts)
            .try_map(move |x| {
                if x == 41 {
                    c.fetch_add(1, Ordering::Relaxed);
                    return Err(Odd(x));
                }
                Ok(x)
            })
            .collect()
            .unwrap_err();
        let Error::TaskFailed {
            partition,
            attempts,
            cause,
            ..
        } = &err
        else {
            panic!("{parts} partitions: {err}");
        };
        assert_eq!(*partition, parts - 1, "{err}");
        assert_eq!(*attempts, 3, "retried like a panic: {err}");
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        let Error::User(source) = cause.as_ref() else {
            panic!("not a user error: {cause}");
        };
        assert_eq!(source.downcast_ref::<Odd>(), Some(&Odd(41)));
        assert!(
            err.to_string().contains("user code failed: 41 is odd"),
            "{err}"
        );
        assert_eq!(
            std::error::Error::source(cause.as_ref()).map(|s| s.to_string()),
            Some("41 is odd".to_string())
        );
    }
    // The context is still usable.
    assert_eq!(ctx.range(0, 10, 1, 3).count().unwrap(), 10);
}

#[test]
fn an_err_that_goes_away_on_retry_gives_the_exact_result() {
    let ctx = Context::builder().parallelism(2).build().unwrap();
    let failed_once = Arc::new(AtomicU32::new(0));
    let f = failed_once.clone();
    let got = ctx
        .range(0, 1000, 1, 4)
        .try_filter(move |x| {
            if *x == 500 && f.fetch_add(1, Ordering::Relaxed) == 0 {
                return Err(format!("transient failure at {x}"));
            }
            Ok(x % 7 == 0)
        })
        .collect()
        .unwrap();
    assert_eq!(got, (0..1000).filter(|x| x % 7 == 0).collect::<Vec<i64>>());
    assert_eq!(
        failed_once.load(Ordering::Relaxed),
        2,
        "one failure, one retry"
    );
}

#[test]
fn try_flat_map_and_try_for_each_report_a_message_error() {
    let ctx = Context::builder()
        .parallelism(2)
        .max_task_failures(1)
        .build()
        .unwrap();
    let err = ctx
        .parallelize(vec!["a b".to_string(), String::new()], 2)
        .try_flat_map(|line| {
            if line.is_empty() {
                return Err("an empty line");
            }
            Ok(line.split(' ').map(str::to_string).collect::<Vec<_>>())
        })
        .collect()
        .unwrap_err();
    assert!(matches!(err.root_cause(), Error::User(_)), "{err}");
    assert!(err.to_string().contains("partition 1 of stage"), "{err}");
    assert!(
        err.to_string().ends_with("user code failed: an empty line"),
        "{err}"
    );
    let err = ctx
        .range(0, 10, 1, 2)
        .try_for_each(|x| if x == 3 { Err(Odd(3)) } else { Ok(()) })
        .unwrap_err();
    assert!(err.to_string().contains("partition 0 of stage"), "{err}");
    assert!(
        err.to_string().ends_with("user code failed: 3 is odd"),
        "{err}"
    );
}

#[test]
fn stream_try_operations_give_the_plain_results_and_an_err_stops_the_context() {
    use spate::streaming::{ManualClock, StreamQueue, StreamingContext, Time};
    use std::sync::Mutex;
    let ctx = Context::builder()
        .parallelism(2)
        .max_task_failures(1)
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let tick = std::time::Duration::from_millis(100);
    let ssc = StreamingContext::with_manual_clock(&ctx, tick, clock.clone()).unwrap();
    let q = StreamQueue::new();
    q.push(ctx.parallelize((0..20i64).collect(), 3));
    q.push(ctx.parallelize(vec![5i64, -1], 2));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let stream = ssc
        .queue_stream(&q, spate::streaming::Dequeue::OneAtATime)
        .try_filter(|x| if *x < 0 { Err(Odd(*x)) } else { Ok(x % 2 == 0) })
        .try_flat_map(|x| Ok::<_, Odd>([x, x + 1]))
        .try_map(|x| Ok::<_, Odd>(x * 10));
    stream
        .foreach_rdd(move |rdd, _| {
            let mut v = rdd.collect()?;
            v.sort();
            sink.lock().unwrap().push(v);
            Ok(())
        })
        .unwrap();
    let total = Arc::new(AtomicU64::new(0));
    let t = total.clone();
    stream
        .try_for_each(move |x| {
            t.fetch_add(x as u64, Ordering::Relaxed);
            Ok::<_, Odd>(())
        })
        .unwrap();
    ssc.start().unwrap();
    clock.advance(tick);
    ssc.wait_for_batch(Time::from_millis(100)).unwrap();
    let want: Vec<i64> = (0..20)
        .filter(|x| x % 2 == 0)
        .flat_map(|x| [x * 10, (x + 1) * 10])
        .collect();
    assert_eq!(*seen.lock().unwrap(), std::slice::from_ref(&want));
    assert_eq!(
        total.load(Ordering::Relaxed),
        want.iter().sum::<i64>() as u64
    );
    // The second batch holds -1: its Err fails the batch.
    clock.advance(tick);
    let err = ssc.wait_for_batch(Time::from_millis(200)).unwrap_err();
    assert!(
        err.to_string().contains("user code failed: -1 is odd"),
        "{err}"
    );
    assert!(matches!(err.root_cause(), Error::User(_)), "{err}");
}
