//! Property: after any sequence of edits (input contents, params, stages added or removed), an
//! incremental run leaves every declared output byte-identical to a clean run in a fresh folder.

mod engine_support;

use std::collections::BTreeMap;

use engine_support::Project;
use proptest::prelude::*;

const FILES: usize = 3;
const STAGES: usize = 4;

#[derive(Debug, Clone)]
enum Edit {
    Write { file: usize, contents: &'static str },
    SetParam { stage: usize, value: u8 },
    Toggle { stage: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            0..FILES,
            prop::sample::select(vec!["a\n", "b\n", "a\nb\n", "b\na\n", ""])
        )
            .prop_map(|(file, contents)| Edit::Write { file, contents }),
        (0..STAGES, 0u8..3).prop_map(|(stage, value)| Edit::SetParam { stage, value }),
        (0..STAGES).prop_map(|stage| Edit::Toggle { stage }),
    ]
}

#[derive(Debug, Clone)]
struct Model {
    files: [&'static str; FILES],
    params: [u8; STAGES],
    enabled: [bool; STAGES],
}

impl Model {
    fn apply(&mut self, edit: &Edit) {
        match *edit {
            Edit::Write { file, contents } => self.files[file] = contents,
            Edit::SetParam { stage, value } => self.params[stage] = value,
            Edit::Toggle { stage } => self.enabled[stage] = !self.enabled[stage],
        }
    }

    /// Stage j reads `data/f{j % FILES}` and the output of the nearest enabled stage before it.
    /// Even stages copy and append their param; odd ones count lines (often reproducing their
    /// output: early cutoff).
    fn pipeline(&self) -> String {
        let mut yaml = String::from("name: prop\nstages:\n");
        let mut previous: Option<usize> = None;
        for stage in (0..STAGES).filter(|&s| self.enabled[s]) {
            let mut deps = vec![format!("data/f{}", stage % FILES)];
            if let Some(previous) = previous {
                deps.push(format!("out/s{previous}.txt"));
            }
            let cmd = if stage % 2 == 0 {
                format!(
                    "cat {} > out/s{stage}.txt; echo ${{params.p}} >> out/s{stage}.txt",
                    deps.join(" ")
                )
            } else {
                format!(
                    "cat {} | wc -l | tr -d ' ' > out/s{stage}.txt",
                    deps.join(" ")
                )
            };
            yaml.push_str(&format!(
                "  s{stage}:\n    cmd: {cmd}\n    deps: [{}]\n    outs: [out/s{stage}.txt]\n    params: {{ p: {} }}\n",
                deps.join(", "),
                self.params[stage]
            ));
            previous = Some(stage);
        }
        yaml
    }

    fn write_into(&self, project: &Project) {
        for (index, contents) in self.files.iter().enumerate() {
            project.file(&format!("data/f{index}"), contents);
        }
        project.pipeline(&self.pipeline());
    }

    fn declared_outputs(&self, project: &Project) -> BTreeMap<String, String> {
        (0..STAGES)
            .filter(|&s| self.enabled[s])
            .map(|s| {
                let path = format!("out/s{s}.txt");
                let contents = project.read(&path);
                (path, contents)
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn incremental_runs_match_clean_runs(edits in prop::collection::vec(edit(), 1..6)) {
        let mut model = Model { files: ["a\n", "b\n", ""], params: [0; STAGES], enabled: [true; STAGES] };
        let project = Project::new();
        model.write_into(&project);
        project.run(&[]).assert_code(0);
        for edit in &edits {
            model.apply(edit);
            model.write_into(&project);
            project.run(&[]).assert_code(0);
            let clean = Project::new();
            model.write_into(&clean);
            clean.run(&[]).assert_code(0);
            prop_assert_eq!(model.declared_outputs(&project), model.declared_outputs(&clean), "after {:?}", edit);
            // And the incremental project now counts as up to date.
            let again = project.run(&[]);
            prop_assert!(again.outcomes().values().all(|o| o == "up_to_date"), "{:?}", again.outcomes());
        }
    }
}
