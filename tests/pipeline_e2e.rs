//! The shipped recommender pipeline end to end, through the real binary on a copy of the project:
//! every artifact lands in `model_path`, and each kind of edit a user makes reruns exactly the
//! stages it should (issue 6: incremental rebuilds after data tweaks).

#[path = "engine_support/mod.rs"]
mod engine_support;

use std::path::Path;

use engine_support::{Project, Run};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PIPELINE: &str = "pipelines/recommender.yaml";
const MODEL_PATH: &str = "models/recommender";
const STAGES: [&str; 4] = ["ingest", "train", "export_tf", "write_avro"];

/// A copy of the project's pipeline, schema and small data set in a temporary folder.
fn recommender_project() -> Project {
    let project = Project::new();
    for file in [
        PIPELINE,
        "avro/RecommenderModel.avsc",
        "data/ratings_small.csv",
    ] {
        let text = std::fs::read_to_string(Path::new(REPO).join(file)).unwrap();
        project.file(file, &text);
    }
    project
}

fn run(project: &Project, extra: &[&str]) -> Run {
    let mut args = vec!["run", PIPELINE, "--json"];
    args.extend_from_slice(extra);
    let outcome = project.warez(&args);
    outcome.assert_code(0);
    outcome
}

fn edit(project: &Project, file: &str, change: impl FnOnce(String) -> String) {
    let text = project.read(file);
    project.file(file, &change(text));
}

/// Stage names of a run report whose outcome is one of `outcomes`.
fn stages_with(run: &Run, outcomes: &[&str]) -> Vec<String> {
    let mut stages: Vec<String> = outcomes
        .iter()
        .flat_map(|outcome| run.with_outcome(outcome))
        .collect();
    stages.sort_by_key(|stage| STAGES.iter().position(|known| known == stage));
    stages
}

#[test]
fn a_fresh_checkout_builds_every_artifact_and_a_second_run_does_nothing() {
    let project = recommender_project();
    let first = run(&project, &[]);
    assert_eq!(stages_with(&first, &["ran"]), STAGES);
    for artifact in [
        "ratings.bin",
        "customer_map.txt",
        "product_map.txt",
        "training_model.onnx",
        "optimizer_model.onnx",
        "eval_model.onnx",
        "checkpoint.onnx",
        "metrics.json",
        "optimized_ProductRecommender.pb",
        "saved_model/saved_model.pb",
        "recommender.avro",
        "recommender-no-schema.avro",
    ] {
        assert!(
            project.exists(&format!("{MODEL_PATH}/{artifact}")),
            "{artifact} missing"
        );
    }
    assert!(project.exists("pipelines/recommender.lock"));

    let second = run(&project, &[]);
    assert_eq!(stages_with(&second, &["up_to_date"]), STAGES);
}

#[test]
fn each_kind_of_edit_reruns_exactly_the_stages_below_it() {
    let project = recommender_project();
    run(&project, &[]);
    let maps_before = (
        project.read(&format!("{MODEL_PATH}/customer_map.txt")),
        project.read(&format!("{MODEL_PATH}/product_map.txt")),
    );

    // One rating changed: ingest reruns, the maps keep their bytes, training and below rerun.
    edit(&project, "data/ratings_small.csv", |text| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let row = &mut lines[1];
        let comma = row.rfind(',').unwrap();
        let new_rating = if &row[comma + 1..] == "0.4" {
            "0.6"
        } else {
            "0.4"
        };
        row.replace_range(comma + 1.., new_rating);
        lines.join("\n") + "\n"
    });
    let rating_changed = run(&project, &[]);
    assert_eq!(stages_with(&rating_changed, &["ran"]), STAGES);
    let maps_after = (
        project.read(&format!("{MODEL_PATH}/customer_map.txt")),
        project.read(&format!("{MODEL_PATH}/product_map.txt")),
    );
    assert_eq!(
        maps_before, maps_after,
        "a changed rating must keep the id maps"
    );
    let report: serde_json::Value = serde_json::from_str(&rating_changed.stdout).unwrap();
    let ingest = &report["stages"][0];
    assert_eq!(ingest["stage"], "ingest");
    assert_eq!(
        ingest["unchanged_outputs"],
        serde_json::json!([
            format!("{MODEL_PATH}/customer_map.txt"),
            format!("{MODEL_PATH}/product_map.txt")
        ]),
        "the run report should say the maps kept their bytes"
    );

    // Rows appended (a new customer): everything from ingest down reruns and the map grows.
    edit(&project, "data/ratings_small.csv", |text| {
        let product = text
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .nth(1)
            .unwrap()
            .to_string();
        text + &format!("0b6a2f44-5c1e-4f6e-9d0a-3f1c2b7e8a90,{product},0.2\n")
    });
    let appended = run(&project, &[]);
    assert_eq!(stages_with(&appended, &["ran"]), STAGES);
    assert!(project
        .read(&format!("{MODEL_PATH}/customer_map.txt"))
        .ends_with("0b6a2f44-5c1e-4f6e-9d0a-3f1c2b7e8a90\n"));

    // Only the schema's `doc` edited: only the Avro stage reruns.
    edit(&project, "avro/RecommenderModel.avsc", |text| {
        text.replacen(
            "\"type\": \"record\",",
            "\"type\": \"record\",\n  \"doc\": \"edited\",",
            1,
        )
    });
    let doc_edited = run(&project, &[]);
    assert_eq!(stages_with(&doc_edited, &["ran"]), ["write_avro"]);
    assert_eq!(
        stages_with(&doc_edited, &["up_to_date"]),
        ["ingest", "train", "export_tf"]
    );

    // `epochs` changed: train and below rerun; switched back: restored from the cache, no training.
    let checkpoint = format!("{MODEL_PATH}/checkpoint.onnx");
    let one_epoch = std::fs::read(project.abs(&checkpoint)).unwrap();
    let two_epochs = run(&project, &["--set", "train.epochs=2"]);
    assert_eq!(
        stages_with(&two_epochs, &["ran"]),
        ["train", "export_tf", "write_avro"]
    );
    assert_ne!(std::fs::read(project.abs(&checkpoint)).unwrap(), one_epoch);
    let back = run(&project, &[]);
    assert_eq!(
        stages_with(&back, &["restored"]),
        ["train", "export_tf", "write_avro"]
    );
    assert_eq!(std::fs::read(project.abs(&checkpoint)).unwrap(), one_epoch);
}

#[test]
fn two_builds_from_scratch_are_bit_identical_and_check_confirms_it() {
    // The model id comes from the packaging time: pin it, as CI does, with SOURCE_DATE_EPOCH.
    let pinned_run = |project: &Project, extra: &[&str]| {
        let mut args = vec!["run", PIPELINE];
        args.extend_from_slice(extra);
        let output = project
            .command(&args)
            .env("SOURCE_DATE_EPOCH", "1764115200")
            .output()
            .unwrap();
        Run::from_output(output)
    };
    let first = recommender_project();
    let second = recommender_project();
    for project in [&first, &second] {
        pinned_run(project, &[]).assert_code(0);
    }
    let lock = |project: &Project| project.read("pipelines/recommender.lock");
    assert_eq!(
        lock(&first),
        lock(&second),
        "two clean builds must record the same hashes"
    );
    for artifact in [
        "recommender.avro",
        "recommender-no-schema.avro",
        "checkpoint.onnx",
    ] {
        let path = format!("{MODEL_PATH}/{artifact}");
        assert_eq!(
            std::fs::read(first.abs(&path)).unwrap(),
            std::fs::read(second.abs(&path)).unwrap()
        );
    }
    pinned_run(&first, &["--check"]).assert_code(0);

    // A lock file recording other bytes than a rebuild makes: --check names the artifact.
    let lock_text = lock(&first);
    let recorded = lock_text
        .lines()
        .find(|line| line.contains("product_map.txt:"))
        .expect("the lock records the product map");
    let hash = recorded.rsplit(' ').next().unwrap();
    first.file(
        "pipelines/recommender.lock",
        &lock_text.replace(hash, &"0".repeat(hash.len())),
    );
    let check = pinned_run(&first, &["--check"]);
    assert_ne!(check.code, 0);
    assert!(
        check.stderr.contains("product_map.txt") || check.stdout.contains("product_map.txt"),
        "--check should name the differing artifact:\n{}\n{}",
        check.stdout,
        check.stderr
    );
}
