//! Lineage without element types: what the scheduler, the checkpoint
//! writer and `to_debug_string` see of a dataset (its id, partitions,
//! dependencies, storage level), and how a long lineage is released.

use crate::error::Result;
use crate::ids::RddId;
use crate::ids::ShuffleId;
use crate::partitioner::Partitioner;
use crate::runtime::{LineageEdge, LineageGraph, LineageNode, TaskContext};
use crate::shuffle::MapOutput;
use crate::storage::StorageLevel;
use parking_lot::{Mutex, RwLock};
use std::fmt::Write as _;
use std::sync::Arc;

/// Writes a dataset's checkpoint and truncates its lineage; set by
/// `checkpoint()`, run after the next job over the dataset.
pub(crate) type PendingCheckpoint = Arc<dyn Fn() -> Result<()> + Send + Sync>;

/// The untyped face of a shuffle dependency, as the scheduler sees it.
pub(crate) trait ShuffleDep: Send + Sync {
    fn shuffle_id(&self) -> ShuffleId;
    /// The dataset whose partitions the map tasks read.
    fn parent(&self) -> Arc<dyn AnyRdd>;
    /// Runs the map task for partition `tc.partition()`.
    fn run_map_task(&self, tc: &TaskContext) -> Result<MapOutput>;
}

/// How a dataset depends on a parent.
#[derive(Clone)]
pub(crate) enum Dependency {
    /// Each partition reads a bounded set of parent partitions in the same
    /// task (map, filter, union, coalesce, zip, cartesian ...).
    Narrow(Arc<dyn AnyRdd>),
    /// The parent is redistributed by key: a stage boundary.
    Shuffle(Arc<dyn ShuffleDep>),
}

/// The untyped part of a dataset: what the scheduler and `to_debug_string`
/// need.
pub(crate) struct RddBase {
    pub(crate) id: RddId,
    /// The [`identity`](crate::Context) of the context it belongs to.
    pub(crate) context: usize,
    pub(crate) op_name: &'static str,
    pub(crate) num_partitions: usize,
    /// Emptied when the lineage is truncated by a checkpoint.
    pub(crate) deps: RwLock<Vec<Dependency>>,
    pub(crate) partitioner: Option<Partitioner>,
    pub(crate) storage: Mutex<Option<StorageLevel>>,
    pub(crate) name: Mutex<Option<String>>,
    /// Set by `checkpoint()`/`local_checkpoint()`: writes the data and
    /// truncates the lineage after the next job that computes this dataset.
    pub(crate) pending_checkpoint: Mutex<Option<PendingCheckpoint>>,
    /// Where the checkpoint was written, once it has been.
    pub(crate) checkpoint_path: Mutex<Option<std::path::PathBuf>>,
    /// Whether the lineage was truncated by a checkpoint.
    pub(crate) checkpointed: std::sync::atomic::AtomicBool,
    /// Why every action on this dataset is an `InvalidArgument`: an
    /// argument it or an ancestor was built with (zero partitions, a zero
    /// step), as Spark refuses them when the job is submitted.
    pub(crate) refused: std::sync::OnceLock<String>,
}

impl Dependency {
    /// The parent dataset.
    pub(crate) fn parent(&self) -> Arc<dyn AnyRdd> {
        match self {
            Dependency::Narrow(p) => p.clone(),
            Dependency::Shuffle(s) => s.parent(),
        }
    }
}

/// A dataset seen without its element type.
pub(crate) trait AnyRdd: Send + Sync {
    fn base(&self) -> &RddBase;
}

thread_local! {
    /// Dependencies waiting to be dropped on this thread; `Some` while a
    /// drop loop runs further up the stack.
    static DROPPING: std::cell::RefCell<Option<Vec<Dependency>>> = const { std::cell::RefCell::new(None) };
}

pub(crate) type PanicPayload = Box<dyn std::any::Any + Send>;

/// Runs `f`, keeping the first panic it raises for later.
pub(crate) fn drop_catching(f: impl FnOnce(), first: &mut Option<PanicPayload>) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        first.get_or_insert(payload);
    }
}

/// Queues `deps` on this thread's drop list, or, if no drop loop runs
/// further up the stack, becomes that loop until the list is empty.
pub(crate) fn release_deps(deps: Vec<Dependency>, panic: &mut Option<PanicPayload>) {
    let outermost = DROPPING.with(|q| {
        let mut q = q.borrow_mut();
        match q.as_mut() {
            Some(queue) => {
                queue.extend(deps);
                None
            }
            None => {
                *q = Some(Vec::new());
                Some(deps)
            }
        }
    });
    let Some(first) = outermost else { return };
    drop_catching(|| drop(first), panic);
    while let Some(dep) = DROPPING.with(|q| q.borrow_mut().as_mut().and_then(Vec::pop)) {
        drop_catching(|| drop(dep), panic);
    }
    DROPPING.with(|q| *q.borrow_mut() = None);
}

/// The lineage as data: every dataset once, in the order a walk from the
/// root meets it, with its stage (the result stage is 0, then each shuffle
/// map stage in the order the walk meets it); a dataset shared by two
/// stages is put in the first.
pub(crate) fn graph(root: &dyn AnyRdd) -> LineageGraph {
    let mut graph = LineageGraph::default();
    let mut seen = std::collections::HashSet::new();
    let mut stages = 1usize;
    // (dataset, its stage), walked with an explicit stack.
    let mut stack: Vec<(Arc<dyn AnyRdd>, usize)> = Vec::new();
    let mut visit = |rdd: &dyn AnyRdd, stage: usize, stack: &mut Vec<(Arc<dyn AnyRdd>, usize)>| {
        let b = rdd.base();
        if !seen.insert(b.id) {
            return;
        }
        graph.nodes.push(LineageNode {
            rdd: b.id,
            op: b.op_name.to_string(),
            partitions: b.num_partitions,
            name: b.name.lock().clone(),
            level: *b.storage.lock(),
            checkpointed: b.checkpointed.load(std::sync::atomic::Ordering::Relaxed),
            stage,
        });
        for dep in b.deps.read().iter() {
            let (parent, shuffle) = match dep {
                Dependency::Narrow(parent) => (parent.clone(), false),
                Dependency::Shuffle(s) => (s.parent(), true),
            };
            graph.edges.push(LineageEdge {
                from: parent.base().id,
                to: b.id,
                shuffle,
            });
            if shuffle {
                stack.push((parent, stages));
                stages += 1;
            } else {
                stack.push((parent, stage));
            }
        }
    };
    visit(root, 0, &mut stack);
    while let Some((rdd, stage)) = stack.pop() {
        visit(rdd.as_ref(), stage, &mut stack);
    }
    graph
}

/// The lineage as a Graphviz `digraph`: one cluster per stage of
/// [`graph`] around its fused narrow datasets, solid edges within a stage,
/// dashed `shuffle` edges between stages, persisted datasets filled and
/// labelled with their level, checkpointed ones with a double border.
pub(crate) fn dot_graph(root: &dyn AnyRdd) -> String {
    let graph = graph(root);
    let mut out = String::from("digraph lineage {\n  rankdir=BT;\n  node [shape=box];\n");
    let stages = graph.nodes.iter().map(|n| n.stage + 1).max().unwrap_or(0);
    for stage in 0..stages {
        // A shuffle of a dataset drawn already adds no cluster.
        if !graph.nodes.iter().any(|n| n.stage == stage) {
            continue;
        }
        let label = if stage == 0 {
            "result stage".to_string()
        } else {
            format!("shuffle map stage {stage}")
        };
        let _ = writeln!(out, "  subgraph cluster_{stage} {{\n    label=\"{label}\";");
        for n in graph.nodes.iter().filter(|n| n.stage == stage) {
            let mut label = format!("{} [{}]\\n{} partitions", n.op, n.rdd.0, n.partitions);
            if let Some(name) = &n.name {
                let _ = write!(label, "\\n'{}'", name.replace('"', "\\\""));
            }
            let mut style = String::new();
            if let Some(level) = n.level {
                let _ = write!(label, "\\n{level:?}");
                style.push_str(", style=filled, fillcolor=lightblue");
            }
            if n.checkpointed {
                label.push_str("\\ncheckpointed");
                style.push_str(", peripheries=2");
            }
            let _ = writeln!(out, "    rdd{} [label=\"{label}\"{style}];", n.rdd.0);
        }
        out.push_str("  }\n");
    }
    for e in &graph.edges {
        let style = if e.shuffle {
            " [style=dashed, label=\"shuffle\"]"
        } else {
            ""
        };
        let _ = writeln!(out, "  rdd{} -> rdd{}{style};", e.from.0, e.to.0);
    }
    out.push_str("}\n");
    out
}

pub(crate) fn debug_lines(root: &dyn AnyRdd, out: &mut String) {
    // (dataset, depth, first line after a stage boundary), walked with an
    // explicit stack so deep lineages cannot overflow.
    let mut stack: Vec<(Arc<dyn AnyRdd>, usize, bool)> = Vec::new();
    let mut visit = |rdd: &dyn AnyRdd,
                     depth: usize,
                     first: bool,
                     stack: &mut Vec<(Arc<dyn AnyRdd>, usize, bool)>| {
        let b = rdd.base();
        let indent = "   ".repeat(depth.saturating_sub(1));
        let prefix = if depth == 0 {
            String::new()
        } else if first {
            format!("{indent} +-")
        } else {
            format!("{indent} | ")
        };
        let name = b
            .name
            .lock()
            .clone()
            .map(|n| format!(" '{n}'"))
            .unwrap_or_default();
        let cached = match *b.storage.lock() {
            Some(level) => format!(" [{level:?}]"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{prefix}({}) {}[{}]{name}{cached}",
            b.num_partitions, b.op_name, b.id
        );
        // A checkpoint's data stands where the truncated parents stood.
        if b.checkpointed.load(std::sync::atomic::Ordering::Relaxed)
            && b.op_name != "checkpoint_file"
        {
            let bar = format!("{} | ", "   ".repeat(depth.saturating_sub(1)));
            let _ = match &*b.checkpoint_path.lock() {
                Some(dir) => writeln!(
                    out,
                    "{bar}({}) reliable checkpoint data at {}",
                    b.num_partitions,
                    dir.display()
                ),
                None => writeln!(
                    out,
                    "{bar}({}) local checkpoint data (the blocks of dataset {} only)",
                    b.num_partitions, b.id
                ),
            };
        }
        for dep in b.deps.read().iter().rev() {
            match dep {
                Dependency::Narrow(parent) => stack.push((parent.clone(), depth.max(1), false)),
                Dependency::Shuffle(s) => stack.push((s.parent(), depth + 1, true)),
            }
        }
    };
    visit(root, 0, true, &mut stack);
    while let Some((rdd, depth, first)) = stack.pop() {
        visit(rdd.as_ref(), depth, first, &mut stack);
    }
}
