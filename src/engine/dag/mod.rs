//! The stage graph: an edge `a → b` when one of `b`'s dependencies is (or is inside, or
//! contains) one of `a`'s outputs. Gives the topological order, `--stage` selection with
//! everything the selected stages need, cycle errors with the whole chain, and the text, dot
//! and mermaid renderings of `warez-pipe dag` (with each matrix stage's variants folded into
//! one node: [`groups`]).

mod groups;

use std::collections::BTreeSet;
use std::fmt::Write;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};
use petgraph::Direction;

use crate::engine::spec::{path, Pipeline, Side, SpecError};

pub use groups::{Group, Grouped};

/// Stages are identified by their index in `Pipeline::stages`; node `i` is stage `i`.
pub struct Dag {
    graph: DiGraph<(), ()>,
    order: Vec<usize>,
}

impl Dag {
    pub fn build(pipeline: &Pipeline) -> Result<Dag, SpecError> {
        let mut graph = DiGraph::new();
        for _ in &pipeline.stages {
            graph.add_node(());
        }
        let producers = OutputIndex::new(pipeline);
        // Deduplicated here: petgraph's `update_edge` scans the producer's edges, which costs
        // n² for one output read by n stages.
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for (consumer, stage) in pipeline.stages.iter().enumerate() {
            for dep in &stage.deps {
                edges.extend(producers.overlapping(&dep.path).map(|p| (p, consumer)));
            }
        }
        edges.sort_unstable();
        edges.dedup();
        for (producer, consumer) in edges {
            graph.add_edge(NodeIndex::new(producer), NodeIndex::new(consumer), ());
        }
        // Ties broken by file order, so runs and printouts are stable. Stages left out of the
        // order are on (or below) a cycle: petgraph's toposort names one.
        let order = stable_topological_order(&graph);
        let order = match order.len() == graph.node_count() {
            true => order,
            false => {
                let cycle = toposort(&graph, None).expect_err("a stage is on a cycle");
                // Start the chain at the cycle's first stage in file order, for a stable message.
                let first = cycle_through(&graph, cycle.node_id())
                    .into_iter()
                    .min()
                    .expect("a cycle has nodes");
                let chain = cycle_through(&graph, first);
                // The edge back to the first stage closes the cycle: point at the dependency of
                // the first stage that reads the last one's output.
                let consumer = &pipeline.stages[first.index()];
                let producer = &pipeline.stages[chain[chain.len() - 2].index()];
                let closing = consumer
                    .deps
                    .iter()
                    .position(|dep| {
                        producer
                            .outs
                            .iter()
                            .any(|out| path::overlaps(&dep.path, &out.path))
                    })
                    .expect("an edge comes from a dependency on an output");
                return Err(SpecError::Cycle {
                    at: pipeline.port_location(first.index(), Side::Deps, closing),
                    cycle: chain
                        .into_iter()
                        .map(|node| pipeline.stages[node.index()].name.clone())
                        .collect(),
                    path: consumer.deps[closing].path.clone(),
                });
            }
        };
        Ok(Dag { graph, order })
    }

    /// Every stage, each after all it depends on.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The `selected` stages in run order.
    pub fn order_of(&self, selected: &BTreeSet<usize>) -> Vec<usize> {
        self.order
            .iter()
            .copied()
            .filter(|stage| selected.contains(stage))
            .collect()
    }

    /// The stages `stage` reads outputs of.
    pub fn upstream(&self, stage: usize) -> Vec<usize> {
        self.neighbours(stage, Direction::Incoming)
    }

    /// The stages that read outputs of `stage`.
    pub fn downstream(&self, stage: usize) -> Vec<usize> {
        self.neighbours(stage, Direction::Outgoing)
    }

    /// [`Self::upstream`] in no particular order, without collecting them.
    pub fn upstream_unordered(&self, stage: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(stage), Direction::Incoming)
            .map(NodeIndex::index)
    }

    /// `stage`'s neighbours in `direction`, in pipeline order.
    fn neighbours(&self, stage: usize, direction: Direction) -> Vec<usize> {
        let mut stages: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(stage), direction)
            .map(NodeIndex::index)
            .collect();
        stages.sort_unstable();
        stages
    }

    /// The named stages and everything they need; every stage when `names` is empty.
    pub fn select(
        &self,
        pipeline: &Pipeline,
        names: &[String],
    ) -> Result<BTreeSet<usize>, SpecError> {
        if names.is_empty() {
            return Ok((0..pipeline.stages.len()).collect());
        }
        let mut selected = BTreeSet::new();
        let reversed = Reversed(&self.graph);
        for name in names {
            let indexes = pipeline.stages_named(name);
            if indexes.is_empty() {
                return Err(pipeline.unknown_stage(name));
            }
            for index in indexes {
                let mut dfs = Dfs::new(reversed, NodeIndex::new(index));
                while let Some(node) = dfs.next(reversed) {
                    selected.insert(node.index());
                }
            }
        }
        Ok(selected)
    }

    /// One line per stage in run order: `train <- ingest`.
    pub fn to_text(&self, pipeline: &Pipeline) -> String {
        let mut out = String::new();
        for &stage in &self.order {
            let upstream: Vec<&str> = self
                .upstream(stage)
                .into_iter()
                .map(|up| pipeline.stages[up].name.as_str())
                .collect();
            let name = &pipeline.stages[stage].name;
            if upstream.is_empty() {
                let _ = writeln!(out, "{name}");
            } else {
                let _ = writeln!(out, "{name} <- {}", upstream.join(", "));
            }
        }
        out
    }

    pub fn to_dot(&self, pipeline: &Pipeline) -> String {
        let mut out = format!("digraph {:?} {{\n  rankdir=LR;\n", pipeline.name);
        for &stage in &self.order {
            let _ = writeln!(out, "  {:?};", pipeline.stages[stage].name);
        }
        for edge in self.edges() {
            let _ = writeln!(
                out,
                "  {:?} -> {:?};",
                pipeline.stages[edge.0].name, pipeline.stages[edge.1].name
            );
        }
        out.push_str("}\n");
        out
    }

    pub fn to_mermaid(&self, pipeline: &Pipeline) -> String {
        let mut out = String::from("flowchart LR\n");
        for &stage in &self.order {
            let _ = writeln!(out, "  s{stage}[\"{}\"]", pipeline.stages[stage].name);
        }
        for (from, to) in self.edges() {
            let _ = writeln!(out, "  s{from} --> s{to}");
        }
        out
    }

    fn edges(&self) -> Vec<(usize, usize)> {
        let mut edges: Vec<(usize, usize)> = self
            .graph
            .edge_indices()
            .filter_map(|edge| self.graph.edge_endpoints(edge))
            .map(|(a, b)| (a.index(), b.index()))
            .collect();
        edges.sort_unstable();
        edges
    }
}

/// Every declared output with the stages that declare it, so the producers a dependency
/// overlaps are found by a few lookups instead of a scan of every output (a pipeline of n
/// stages would otherwise cost n² comparisons to plan).
struct OutputIndex<'a> {
    producers: path::PathIndex<'a>,
}

impl<'a> OutputIndex<'a> {
    fn new(pipeline: &'a Pipeline) -> Self {
        let outputs = pipeline.stages.iter().map(|stage| stage.outs.len()).sum();
        let mut producers = path::PathIndex::with_capacity(outputs);
        for (index, stage) in pipeline.stages.iter().enumerate() {
            for out in &stage.outs {
                producers.insert(&out.path, index);
            }
        }
        OutputIndex { producers }
    }

    /// The stages with an output that `path` is, lies inside, or contains
    /// (`path::overlaps`), possibly repeated.
    fn overlapping<'s>(&'s self, path: &'s str) -> impl Iterator<Item = usize> + 's {
        self.producers.overlapping(path)
    }
}

/// Kahn's algorithm taking the lowest ready index first (petgraph's toposort order depends on
/// insertion details; this one follows the file).
fn stable_topological_order(graph: &DiGraph<(), ()>) -> Vec<usize> {
    let mut remaining: Vec<usize> = graph
        .node_indices()
        .map(|node| graph.neighbors_directed(node, Direction::Incoming).count())
        .collect();
    let mut ready: BTreeSet<usize> = (0..remaining.len())
        .filter(|&i| remaining[i] == 0)
        .collect();
    let mut order = Vec::with_capacity(remaining.len());
    while let Some(next) = ready.pop_first() {
        order.push(next);
        for child in graph.neighbors_directed(NodeIndex::new(next), Direction::Outgoing) {
            remaining[child.index()] -= 1;
            if remaining[child.index()] == 0 {
                ready.insert(child.index());
            }
        }
    }
    order
}

/// A shortest cycle through `start`, as `start, …, start`.
fn cycle_through(graph: &DiGraph<(), ()>, start: NodeIndex) -> Vec<NodeIndex> {
    let mut previous = vec![None; graph.node_count()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.neighbors_directed(node, Direction::Outgoing) {
            if next == start {
                let mut chain = vec![node];
                let mut at = node;
                while at != start {
                    at = previous[at.index()].expect("visited nodes have a predecessor");
                    chain.push(at);
                }
                chain.reverse();
                chain.push(start);
                return chain;
            }
            if previous[next.index()].is_none() {
                previous[next.index()] = Some(node);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}
