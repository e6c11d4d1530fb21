//! The stage graph with each matrix stage's variants (`train@n=16`, `train@n=32`, …) folded into
//! one node (`train`), and a layered layout of it: what `warez-pipe dag` prints by default and
//! what the report draws, so that a sweep of sixty variants reads as one box, not sixty.
//!
//! A group's edges are the union of its members' edges (drawn once); its layer is the length
//! of the longest path to it from a group nothing feeds (layer 0), so every edge points to a
//! later layer. Within a layer, groups keep the order of their first member in the run order.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::Dag;
use crate::engine::spec::{matrix_stage_of, Pipeline};

/// One node of the folded graph: a stage, or every variant of a matrix stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The stage's name, or the matrix stage's (the variants' names before `@`).
    pub name: String,
    /// Stage indexes, in run order.
    pub members: Vec<usize>,
    /// Whether it stands for the variants of a matrix stage.
    pub matrix: bool,
    /// Column of the layered layout (see the module doc).
    pub layer: usize,
}

impl Group {
    /// `train` or `train ×6 variants`.
    pub fn label(&self) -> String {
        match (self.matrix, self.members.len()) {
            (false, _) => self.name.clone(),
            (true, 1) => format!("{} ×1 variant", self.name),
            (true, n) => format!("{} ×{n} variants", self.name),
        }
    }
}

/// The folded graph, groups in run order.
#[derive(Debug)]
pub struct Grouped {
    pub groups: Vec<Group>,
    /// (from, to) group indexes, sorted.
    pub edges: Vec<(usize, usize)>,
}

impl Dag {
    /// The graph with the variants of each matrix stage folded into one group.
    pub fn grouped(&self, pipeline: &Pipeline) -> Grouped {
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of = vec![0; pipeline.stages.len()];
        for &stage in &self.order {
            let name = &pipeline.stages[stage].name;
            let matrix = matrix_stage_of(name);
            let existing = matrix.and_then(|matrix| {
                groups
                    .iter()
                    .position(|group| group.matrix && group.name == matrix)
            });
            group_of[stage] = match existing {
                Some(index) => {
                    groups[index].members.push(stage);
                    index
                }
                None => {
                    groups.push(Group {
                        name: matrix.unwrap_or(name).to_string(),
                        members: vec![stage],
                        matrix: matrix.is_some(),
                        layer: 0,
                    });
                    groups.len() - 1
                }
            };
        }
        let edges: BTreeSet<(usize, usize)> = self
            .edges()
            .into_iter()
            .map(|(from, to)| (group_of[from], group_of[to]))
            .filter(|(from, to)| from != to)
            .collect();
        // Groups are in run order (each after every group it needs), so one pass settles the
        // layers.
        for index in 0..groups.len() {
            let layer = edges
                .iter()
                .filter(|(_, to)| *to == index)
                .map(|(from, _)| groups[*from].layer + 1)
                .max()
                .unwrap_or(0);
            groups[index].layer = layer;
        }
        Grouped {
            groups,
            edges: edges.into_iter().collect(),
        }
    }
}

impl Grouped {
    /// The groups that feed `group`.
    fn upstream(&self, group: usize) -> impl Iterator<Item = usize> + '_ {
        self.edges
            .iter()
            .filter(move |(_, to)| *to == group)
            .map(|(from, _)| *from)
    }

    /// One line per group in run order: `export ×6 variants <- train ×6 variants`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (index, group) in self.groups.iter().enumerate() {
            let upstream: Vec<String> = self
                .upstream(index)
                .map(|up| self.groups[up].label())
                .collect();
            if upstream.is_empty() {
                let _ = writeln!(out, "{}", group.label());
            } else {
                let _ = writeln!(out, "{} <- {}", group.label(), upstream.join(", "));
            }
        }
        out
    }

    /// Without a matrix stage, the same as [`Dag::to_dot`].
    pub fn to_dot(&self, pipeline: &Pipeline) -> String {
        let mut out = format!("digraph {:?} {{\n  rankdir=LR;\n", pipeline.name);
        for group in &self.groups {
            if group.matrix {
                let _ = writeln!(
                    out,
                    "  {:?} [label={:?}, shape=box3d];",
                    group.name,
                    group.label()
                );
            } else {
                let _ = writeln!(out, "  {:?};", group.name);
            }
        }
        for (from, to) in &self.edges {
            let _ = writeln!(
                out,
                "  {:?} -> {:?};",
                self.groups[*from].name, self.groups[*to].name
            );
        }
        out.push_str("}\n");
        out
    }

    /// Nodes named `s<index of the group's first stage>`: without a matrix stage, the same
    /// graph as [`Dag::to_mermaid`].
    pub fn to_mermaid(&self) -> String {
        let id = |group: usize| self.groups[group].members[0];
        let mut out = String::from("flowchart LR\n");
        for (index, group) in self.groups.iter().enumerate() {
            let _ = writeln!(out, "  s{}[\"{}\"]", id(index), group.label());
        }
        for (from, to) in &self.edges {
            let _ = writeln!(out, "  s{} --> s{}", id(*from), id(*to));
        }
        out
    }
}
