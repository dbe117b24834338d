//! A job's lineage drawn as SVG for the DAG page: one box per stage around
//! its fused narrow datasets, stages left to right in the order data flows,
//! solid edges inside a stage, dashed shuffle edges between stages,
//! persisted datasets filled, checkpointed ones with a double border. The
//! same graph as [`Rdd::to_dot`](crate::Rdd::to_dot), laid out without
//! Graphviz so the page needs nothing at run time.

use crate::ids::RddId;
use crate::runtime::LineageGraph;
use std::collections::HashMap;
use std::fmt::Write as _;

const NODE_W: i64 = 200;
const NODE_H: i64 = 54;
const GAP: i64 = 26;
const PAD: i64 = 16;
const HEADER: i64 = 26;
const COLUMN_GAP: i64 = 70;

/// Escapes text for an SVG text node or attribute.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Draws `graph`; `stage_ids` names the scheduler's stage id of the stage
/// whose tasks compute a dataset (the first dataset of each graph stage).
pub(crate) fn dag_svg(graph: &LineageGraph, stage_ids: &[(RddId, u64)]) -> String {
    // A parent stage is always numbered after the stage that reads it, so
    // descending numbers put data flow left to right.
    let mut stages: Vec<usize> = graph.nodes.iter().map(|n| n.stage).collect();
    stages.sort_unstable_by(|a, b| b.cmp(a));
    stages.dedup();
    let mut at: HashMap<RddId, (i64, i64)> = HashMap::new();
    let mut boxes = String::new();
    let mut nodes = String::new();
    let mut height = 0;
    for (column, stage) in stages.iter().enumerate() {
        let x = PAD + column as i64 * (NODE_W + 2 * PAD + COLUMN_GAP);
        // The walk meets a stage's datasets child first: draw sources on top.
        let members: Vec<_> = graph.nodes.iter().filter(|n| n.stage == *stage).collect();
        let title = members
            .first()
            .and_then(|top| stage_ids.iter().find(|(rdd, _)| *rdd == top.rdd))
            .map_or_else(
                || {
                    if *stage == 0 {
                        "result stage".to_string()
                    } else {
                        "shuffle map stage (skipped)".to_string()
                    }
                },
                |(_, id)| format!("Stage {id}"),
            );
        let box_h = HEADER + members.len() as i64 * (NODE_H + GAP) - GAP + 2 * PAD;
        height = height.max(box_h + 2 * PAD);
        let _ = write!(
            boxes,
            r##"<g class="stage"><rect x="{x}" y="{PAD}" width="{}" height="{box_h}" rx="6" fill="#f7f7fb" stroke="#8a8ab0"/><text x="{}" y="{}" class="stage-title">{}</text></g>"##,
            NODE_W + 2 * PAD,
            x + PAD,
            PAD + 18,
            escape(&title)
        );
        for (row, n) in members.iter().rev().enumerate() {
            let nx = x + PAD;
            let ny = PAD + HEADER + PAD + row as i64 * (NODE_H + GAP);
            at.insert(n.rdd, (nx, ny));
            let fill = if n.level.is_some() {
                "#bfe0ff"
            } else {
                "#ffffff"
            };
            let mut extra = String::new();
            if n.checkpointed {
                let _ = write!(
                    extra,
                    r##"<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="none" stroke="#333"/>"##,
                    nx + 3,
                    ny + 3,
                    NODE_W - 6,
                    NODE_H - 6
                );
            }
            let mut second = format!("{} partitions", n.partitions);
            if let Some(level) = n.level {
                let _ = write!(second, ", {level:?}");
            }
            if n.checkpointed {
                second.push_str(", checkpointed");
            }
            let first = match &n.name {
                Some(name) => format!("{} [{}] '{}'", n.op, n.rdd.0, name),
                None => format!("{} [{}]", n.op, n.rdd.0),
            };
            let _ = write!(
                nodes,
                r##"<g class="rdd" data-rdd="{}"><rect x="{nx}" y="{ny}" width="{NODE_W}" height="{NODE_H}" rx="4" fill="{fill}" stroke="#333"/>{extra}<text x="{}" y="{}">{}</text><text x="{}" y="{}" class="small">{}</text></g>"##,
                n.rdd.0,
                nx + 10,
                ny + 22,
                escape(&first),
                nx + 10,
                ny + 40,
                escape(&second)
            );
        }
    }
    let mut edges = String::new();
    for e in &graph.edges {
        let (Some(&(fx, fy)), Some(&(tx, ty))) = (at.get(&e.from), at.get(&e.to)) else {
            continue;
        };
        let (x1, y1, x2, y2) = if fx == tx {
            (fx + NODE_W / 2, fy + NODE_H, tx + NODE_W / 2, ty)
        } else {
            (fx + NODE_W, fy + NODE_H / 2, tx, ty + NODE_H / 2)
        };
        let dash = if e.shuffle {
            r#" stroke-dasharray="6 4" class="shuffle""#
        } else {
            ""
        };
        let _ = write!(
            edges,
            r##"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#333" marker-end="url(#arrow)"{dash}/>"##
        );
    }
    let width = PAD + stages.len() as i64 * (NODE_W + 2 * PAD + COLUMN_GAP) - COLUMN_GAP + PAD;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="13"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker><style>.small{{font-size:11px;fill:#555}} .stage-title{{font-weight:bold}}</style></defs>{boxes}{nodes}{edges}</svg>"##,
        width.max(2 * PAD)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{LineageEdge, LineageNode};
    use crate::storage::StorageLevel;

    fn node(rdd: u64, op: &str, stage: usize) -> LineageNode {
        LineageNode {
            rdd: RddId(rdd),
            op: op.into(),
            partitions: 2,
            name: None,
            level: None,
            checkpointed: false,
            stage,
        }
    }

    #[test]
    fn a_shuffled_job_draws_two_stage_boxes_with_a_dashed_edge_between_and_marks_the_cached_dataset()
     {
        let mut cached = node(1, "map", 1);
        cached.level = Some(StorageLevel::MemoryOnly);
        let graph = LineageGraph {
            nodes: vec![node(2, "reduce_by_key", 0), cached, node(0, "text_file", 1)],
            edges: vec![
                LineageEdge {
                    from: RddId(1),
                    to: RddId(2),
                    shuffle: true,
                },
                LineageEdge {
                    from: RddId(0),
                    to: RddId(1),
                    shuffle: false,
                },
            ],
        };
        let svg = dag_svg(&graph, &[(RddId(2), 7), (RddId(1), 6)]);
        assert_eq!(svg.matches(r#"<g class="stage">"#).count(), 2);
        assert_eq!(svg.matches(r#"<g class="rdd""#).count(), 3);
        assert_eq!(svg.matches("<line ").count(), 2);
        assert_eq!(svg.matches(r#"class="shuffle""#).count(), 1);
        assert_eq!(svg.matches("#bfe0ff").count(), 1);
        // The map stage (6) is drawn left of the result stage (7), the
        // source above the dataset it feeds.
        assert!(svg.find("Stage 6").unwrap() < svg.find("Stage 7").unwrap());
        assert!(svg.find("text_file [0]").unwrap() < svg.find("map [1]").unwrap());
        assert!(svg.contains("MemoryOnly"));
    }

    #[test]
    fn names_are_escaped() {
        let mut n = node(0, "parallelize", 0);
        n.name = Some("<a & 'b'>".into());
        let svg = dag_svg(
            &LineageGraph {
                nodes: vec![n],
                edges: vec![],
            },
            &[],
        );
        assert!(svg.contains("&lt;a &amp; &#39;b&#39;&gt;"));
        assert!(!svg.contains("<a "));
    }
}
