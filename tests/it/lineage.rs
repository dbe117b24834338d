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

#[test]
fn to_dot_draws_each_stage_around_its_narrow_datasets_with_shuffle_edges_between() {
    let ctx = spate::Context::builder().parallelism(2).build().unwrap();
    let words = ctx
        .parallelize(
            vec!["a", "b", "a"].into_iter().map(String::from).collect(),
            2,
        )
        .map(|w| (w, 1u32))
        .set_name("pairs")
        .cache()
        .unwrap();
    let counts = words.reduce_by_key(|a, b| a + b);
    let lengths = ctx
        .parallelize(vec![("a".to_string(), 1usize)], 1)
        .map_values(|n| n * 2);
    let joined = counts.join(&lengths).filter(|_| true);
    // `counts` is already partitioned as the join's output: read in place;
    // `lengths` is shuffled.
    let expected = r#"digraph lineage {
  rankdir=BT;
  node [shape=box];
  subgraph cluster_0 {
    label="result stage";
    rdd6 [label="filter [6]\n2 partitions"];
    rdd5 [label="join [5]\n2 partitions"];
    rdd2 [label="reduce_by_key [2]\n2 partitions"];
  }
  subgraph cluster_1 {
    label="shuffle map stage 1";
    rdd4 [label="map_values [4]\n1 partitions"];
    rdd3 [label="parallelize [3]\n1 partitions"];
  }
  subgraph cluster_2 {
    label="shuffle map stage 2";
    rdd1 [label="map [1]\n2 partitions\n'pairs'\nMemoryOnly", style=filled, fillcolor=lightblue];
    rdd0 [label="parallelize [0]\n2 partitions"];
  }
  rdd5 -> rdd6;
  rdd2 -> rdd5;
  rdd4 -> rdd5 [style=dashed, label="shuffle"];
  rdd3 -> rdd4;
  rdd1 -> rdd2 [style=dashed, label="shuffle"];
  rdd0 -> rdd1;
}
"#;
    assert_eq!(joined.to_dot(), expected);
    // A checkpoint cuts the lineage: the dataset stands alone, marked.
    let dir = tempfile::tempdir().unwrap();
    ctx.set_checkpoint_dir(dir.path()).unwrap();
    counts.checkpoint().unwrap();
    assert_eq!(counts.count().unwrap(), 2);
    let dot = counts.to_dot();
    assert!(
        dot.contains(
            "rdd2 [label=\"reduce_by_key [2]\\n2 partitions\\ncheckpointed\", peripheries=2];"
        ),
        "{dot}"
    );
    assert!(!dot.contains("->"), "{dot}");
}
