//! Long lineages: deep narrow chains must not overflow any stack.

use crate::common::ctx;

#[test]
fn ten_thousand_chained_narrow_transformations_run_print_and_drop() {
    let ctx = ctx();
    let mut r = ctx.range(0, 100, 1, 2);
    for _ in 0..10_000 {
        r = r.map(|x| x + 1);
    }
    assert_eq!(r.take(1).unwrap(), vec![10_000]);
    assert_eq!(r.sum().unwrap(), (0..100).map(|x| x + 10_000).sum::<i64>());
    assert_eq!(r.to_debug_string().lines().count(), 10_001);
    drop(r); // dropped iteratively on this (2 MiB) test thread
}
