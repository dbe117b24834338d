//! Property tests: random data, random partition counts, thread counts and
//! memory budgets, compared with plain Vec/HashMap computations.

use proptest::prelude::*;
use spate::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// Contexts reused across cases: in-memory shuffles on 1 and 3 threads, and
/// shuffles that always go to disk.
fn contexts() -> &'static [Context; 3] {
    static CTXS: OnceLock<[Context; 3]> = OnceLock::new();
    CTXS.get_or_init(|| {
        [
            Context::builder().parallelism(1).build().unwrap(),
            Context::builder().parallelism(3).build().unwrap(),
            Context::builder()
                .parallelism(2)
                .memory_limit(0)
                .build()
                .unwrap(),
        ]
    })
}

fn pairs() -> impl Strategy<Value = Vec<(u8, i32)>> {
    // Small key space: many collisions, skew, empty partitions.
    prop::collection::vec((0u8..12, -1000i32..1000), 0..300)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn aggregations_match_a_map(data in pairs(), parts in 1usize..20, out in 1usize..9, c in 0usize..3) {
        let ctx = &contexts()[c];
        let r = ctx.parallelize(data.clone(), parts);
        let mut sums: BTreeMap<u8, i64> = BTreeMap::new();
        let mut groups: BTreeMap<u8, Vec<i32>> = BTreeMap::new();
        for &(k, v) in &data {
            *sums.entry(k).or_default() += v as i64;
            groups.entry(k).or_default().push(v);
        }
        let got: BTreeMap<u8, i64> = r.map_values(|v| v as i64).reduce_by_key_with(out, |a, b| a + b).collect().unwrap().into_iter().collect();
        prop_assert_eq!(&got, &sums);
        let got: BTreeMap<u8, Vec<i32>> = r.group_by_key_with(out).map_values(sorted).collect().unwrap().into_iter().collect();
        let expected: BTreeMap<u8, Vec<i32>> = groups.into_iter().map(|(k, v)| (k, sorted(v))).collect();
        prop_assert_eq!(got, expected);
        let counts = r.count_by_key().unwrap();
        prop_assert_eq!(counts.values().sum::<u64>(), data.len() as u64);
    }

    #[test]
    fn joins_match_nested_loops(a in pairs(), b in pairs(), pa in 1usize..8, pb in 1usize..8, c in 0usize..3) {
        let ctx = &contexts()[c];
        let (ra, rb) = (ctx.parallelize(a.clone(), pa), ctx.parallelize(b.clone(), pb));
        let mut inner = Vec::new();
        for &(k, v) in &a {
            for &(k2, w) in &b {
                if k == k2 { inner.push((k, (v, w))); }
            }
        }
        prop_assert_eq!(sorted(ra.join(&rb).collect().unwrap()), sorted(inner.clone()));
        let bk: BTreeSet<u8> = b.iter().map(|p| p.0).collect();
        let ak: BTreeSet<u8> = a.iter().map(|p| p.0).collect();
        let mut left: Vec<(u8, (i32, Option<i32>))> = inner.iter().map(|&(k, (v, w))| (k, (v, Some(w)))).collect();
        left.extend(a.iter().filter(|p| !bk.contains(&p.0)).map(|&(k, v)| (k, (v, None))));
        prop_assert_eq!(sorted(ra.left_outer_join(&rb).collect().unwrap()), sorted(left));
        let mut full: Vec<(u8, (Option<i32>, Option<i32>))> = inner.iter().map(|&(k, (v, w))| (k, (Some(v), Some(w)))).collect();
        full.extend(a.iter().filter(|p| !bk.contains(&p.0)).map(|&(k, v)| (k, (Some(v), None))));
        full.extend(b.iter().filter(|p| !ak.contains(&p.0)).map(|&(k, w)| (k, (None, Some(w)))));
        prop_assert_eq!(sorted(ra.full_outer_join(&rb).collect().unwrap()), sorted(full));
        let sub: Vec<(u8, i32)> = a.iter().copied().filter(|p| !bk.contains(&p.0)).collect();
        prop_assert_eq!(sorted(ra.subtract_by_key(&rb).collect().unwrap()), sorted(sub));
    }

    #[test]
    fn sorting_matches_sort(data in prop::collection::vec(any::<i16>(), 0..400), parts in 1usize..12, out in 1usize..8, asc in any::<bool>(), c in 0usize..3) {
        let ctx = &contexts()[c];
        let r = ctx.parallelize(data.iter().map(|&x| (x, ())).collect(), parts).sort_by_key(if asc { spate::Order::Ascending } else { spate::Order::Descending }, Some(out)).unwrap();
        let mut expected = data.clone();
        expected.sort();
        if !asc { expected.reverse(); }
        prop_assert_eq!(r.keys().collect().unwrap(), expected);
    }

    #[test]
    fn set_operations_match_sets(a in prop::collection::vec(0u16..50, 0..200), b in prop::collection::vec(0u16..50, 0..200), pa in 1usize..10, c in 0usize..3) {
        let ctx = &contexts()[c];
        let (ra, rb) = (ctx.parallelize(a.clone(), pa), ctx.parallelize(b.clone(), 3));
        let (sa, sb): (BTreeSet<u16>, BTreeSet<u16>) = (a.iter().copied().collect(), b.iter().copied().collect());
        prop_assert_eq!(sorted(ra.distinct().collect().unwrap()), sa.iter().copied().collect::<Vec<_>>());
        prop_assert_eq!(sorted(ra.intersection(&rb).collect().unwrap()), sa.intersection(&sb).copied().collect::<Vec<_>>());
        prop_assert_eq!(sorted(ra.subtract(&rb).collect().unwrap()), sorted(a.iter().copied().filter(|x| !sb.contains(x)).collect()));
    }

    #[test]
    fn layout_changes_keep_every_element(data in prop::collection::vec(any::<u32>(), 0..300), parts in 1usize..16, n in 1usize..16, c in 0usize..3) {
        let ctx = &contexts()[c];
        let r = ctx.parallelize(data.clone(), parts);
        prop_assert_eq!(r.coalesce(n).collect().unwrap(), data.clone());
        let rep = r.repartition(n);
        prop_assert_eq!(rep.num_partitions(), n);
        prop_assert_eq!(sorted(rep.collect().unwrap()), sorted(data.clone()));
        prop_assert_eq!(rep.collect().unwrap(), rep.collect().unwrap());
        prop_assert_eq!(r.union(&r).count().unwrap(), 2 * data.len() as u64);
        prop_assert_eq!(r.zip_with_index().unwrap().values().collect().unwrap(), (0..data.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn actions_match_iterators(data in prop::collection::vec(-100i64..100, 0..300), parts in 1usize..16, n in 0usize..40, c in 0usize..3) {
        let ctx = &contexts()[c];
        let r = ctx.parallelize(data.clone(), parts);
        prop_assert_eq!(r.take(n).unwrap(), data.iter().copied().take(n).collect::<Vec<_>>());
        prop_assert_eq!(r.take_ordered(n).unwrap(), sorted(data.clone()).into_iter().take(n).collect::<Vec<_>>());
        prop_assert_eq!(r.sum().unwrap(), data.iter().sum::<i64>());
        prop_assert_eq!(r.count().unwrap(), data.len() as u64);
        prop_assert_eq!(r.reduce(|a, b| a.max(b)).ok(), data.iter().copied().max());
        prop_assert_eq!(r.tree_aggregate(0i64, |a, x| a + x, |a, b| a + b, 2).unwrap(), data.iter().sum::<i64>());
    }

    #[test]
    fn text_files_read_every_line_once(lines in prop::collection::vec("[a-z ]{0,30}", 0..80), crlf in any::<bool>(), min_parts in 1usize..50) {
        let dir = tempfile::tempdir().unwrap();
        let sep = if crlf { "\r\n" } else { "\n" };
        let text = lines.iter().map(|l| format!("{l}{sep}")).collect::<String>();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, &text).unwrap();
        let got = contexts()[1].text_file(&path, min_parts).unwrap().collect().unwrap();
        prop_assert_eq!(got, lines);
    }
}

/// The pipelines the chaos property runs; each returns a canonical (sorted)
/// result so runs can be compared.
fn pipeline(ctx: &Context, which: u8, data: &[(u8, i32)], parts: usize) -> Vec<(u8, i64)> {
    let r = ctx
        .parallelize(data.to_vec(), parts)
        .map_values(|v| v as i64);
    let out = match which % 5 {
        0 => r.reduce_by_key(|a, b| a + b).collect(),
        1 => r
            .group_by_key()
            .map_values(|v| v.iter().sum::<i64>() * 1000 + v.len() as i64)
            .collect(),
        2 => {
            let other = r
                .map_values(|v| v % 7)
                .reduce_by_key_with(3, |a, b| a.max(b));
            r.join(&other).map_values(|(a, b)| a * 10 + b).collect()
        }
        3 => r
            .sort_by_key(spate::Order::Ascending, Some(3))
            .map(|p| p.map(|(k, v)| (k, v)))
            .and_then(|s| s.collect()),
        _ => {
            let cached = r.repartition(4).cache().unwrap();
            cached
                .count()
                .and_then(|_| cached.reduce_by_key(|a, b| a + b).collect())
        }
    };
    sorted(out.expect("the pipeline recovers from every injected fault"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_pipelines_under_random_faults_match_the_clean_run(
        which in 0u8..5,
        data in pairs(),
        parts in 1usize..8,
        fail in 0.0f64..0.3,
        lose in 0.0f64..0.5,
        drop in 0.0f64..0.5,
        seed in any::<u64>(),
        disk in any::<bool>(),
    ) {
        let clean = pipeline(&contexts()[0], which, &data, parts);
        let faulty_ctx = Context::builder()
            .parallelism(2)
            .max_task_failures(12)
            .memory_limit(if disk { 0 } else { usize::MAX })
            .build()
            .unwrap();
        let how = if seed % 2 == 0 { spate::ShuffleLoss::Delete } else { spate::ShuffleLoss::Corrupt };
        faulty_ctx.set_fault_plan(
            spate::FaultPlan::new()
                .fail_tasks_with_probability(fail, seed)
                .lose_map_outputs_with_probability(lose, seed, how)
                .drop_cached_blocks_with_probability(drop, seed),
        );
        prop_assert_eq!(pipeline(&faulty_ctx, which, &data, parts), clean);
    }
}
