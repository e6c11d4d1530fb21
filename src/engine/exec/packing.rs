//! Which stage starts next: every selected stage waits for a count of unfinished upstream
//! stages; at zero it joins a ready queue. Stages start in run order, each when the cores it
//! declares ([`crate::engine::kind::StageKind::cores`]) fit beside those in use within `-j`;
//! a stage declaring more than `-j` counts as `-j` (it runs alone). A later ready stage that
//! fits may start before an earlier one that waits for cores, so no core idles while work is
//! ready. Each completion costs the finished stage's downstream edges plus a lookup per
//! distinct core count: planning n stages is linear in the stages and edges, however wide.
//!
//! When a stage does not succeed, everything below it that was selected is skipped at once,
//! each skipped stage naming the upstream stage it waited for.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::dag::Dag;

enum Slot {
    /// Not selected for this run.
    Unselected,
    /// Waits for this many selected upstream stages.
    Waiting(usize),
    /// In the ready queue of its core count.
    Ready,
    /// Started, holding this many cores.
    Running(usize),
    Done,
}

pub(super) struct Packing<'a> {
    dag: &'a Dag,
    jobs: usize,
    /// Per stage (pipeline index).
    slots: Vec<Slot>,
    /// Per stage: its place in run order (ready stages start in that order).
    position: Vec<usize>,
    order: &'a [usize],
    /// Cores a stage holds (declared, capped at `jobs`) → positions of the ready stages.
    ready: BTreeMap<usize, BTreeSet<usize>>,
    cores: Vec<usize>,
    cores_in_use: usize,
}

impl<'a> Packing<'a> {
    /// `order`: the selected stages in run order; `cores(stage)`: what the stage declares.
    pub(super) fn new(
        dag: &'a Dag,
        stage_count: usize,
        order: &'a [usize],
        jobs: usize,
        cores: impl Fn(usize) -> usize,
    ) -> Self {
        let jobs = jobs.max(1);
        let mut packing = Packing {
            dag,
            jobs,
            slots: (0..stage_count).map(|_| Slot::Unselected).collect(),
            position: vec![usize::MAX; stage_count],
            order,
            ready: BTreeMap::new(),
            cores: vec![0; stage_count],
            cores_in_use: 0,
        };
        for (position, &stage) in order.iter().enumerate() {
            packing.position[stage] = position;
            packing.cores[stage] = cores(stage).clamp(1, jobs);
            packing.slots[stage] = Slot::Waiting(0);
        }
        for &stage in order {
            let waiting = dag
                .upstream_unordered(stage)
                .filter(|&up| !matches!(packing.slots[up], Slot::Unselected))
                .count();
            packing.slots[stage] = Slot::Waiting(waiting);
            if waiting == 0 {
                packing.make_ready(stage);
            }
        }
        packing
    }

    fn make_ready(&mut self, stage: usize) {
        self.slots[stage] = Slot::Ready;
        self.ready
            .entry(self.cores[stage])
            .or_default()
            .insert(self.position[stage]);
    }

    /// The first ready stage in run order whose cores fit now; it counts as started.
    pub(super) fn next_to_start(&mut self) -> Option<usize> {
        let free = self.jobs - self.cores_in_use;
        let (cores, position) = self
            .ready
            .range(..=free)
            .filter_map(|(&cores, positions)| Some((cores, *positions.first()?)))
            .min_by_key(|&(_, position)| position)?;
        let queue = self.ready.get_mut(&cores).expect("the queue just read");
        queue.remove(&position);
        if queue.is_empty() {
            self.ready.remove(&cores);
        }
        let stage = self.order[position];
        self.slots[stage] = Slot::Running(cores);
        self.cores_in_use += cores;
        Some(stage)
    }

    /// Records that a started stage ended; when it did not succeed, returns every selected
    /// stage below it that can no longer run, each with the upstream stage it waited for.
    pub(super) fn finished(&mut self, stage: usize, succeeded: bool) -> Vec<(usize, usize)> {
        if let Slot::Running(cores) = self.slots[stage] {
            self.cores_in_use -= cores;
        }
        self.slots[stage] = Slot::Done;
        let mut skipped = Vec::new();
        if succeeded {
            for down in self.dag.downstream(stage) {
                if let Slot::Waiting(waiting) = &mut self.slots[down] {
                    *waiting -= 1;
                    if *waiting == 0 {
                        self.make_ready(down);
                    }
                }
            }
            return skipped;
        }
        let mut blamed = vec![stage];
        while let Some(up) = blamed.pop() {
            for down in self.dag.downstream(up) {
                if matches!(self.slots[down], Slot::Waiting(_)) {
                    self.slots[down] = Slot::Done;
                    skipped.push((down, up));
                    blamed.push(down);
                }
            }
        }
        skipped
    }
}
