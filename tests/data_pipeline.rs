//! The `generate` and `ingest` kinds inside a pipeline run by the real binary (`warez-pipe run`):
//! caching, early cutoff below the id maps, and bad rows reported through the runner.

#[path = "engine_support/mod.rs"]
mod engine_support;

use engine_support::{Project, PIPELINE};
use warez_pipe::data::dataset::Ratings;

const ORIGINAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/ratings_uuid_small.csv"
);

/// Ingest of `data/ratings.csv`, and a command stage that reads only the two maps.
const INGEST_AND_MAPS_REPORT: &str = r#"
name: data
model_path: models/data
stages:
  ingest:
    kind: ingest
    deps: { ratings: data/ratings.csv }
  maps_report:
    cmd: cat ${model_path}/customer_map.txt ${model_path}/product_map.txt | wc -l > out/ids.txt
    deps: [ "${model_path}/customer_map.txt", "${model_path}/product_map.txt" ]
    outs: [ out/ids.txt ]
"#;

fn original_data_project() -> Project {
    let project = Project::new();
    project
        .file(
            "data/ratings.csv",
            &std::fs::read_to_string(ORIGINAL).unwrap(),
        )
        .pipeline(INGEST_AND_MAPS_REPORT);
    project
}

#[test]
fn generate_then_ingest_runs_once_and_is_then_up_to_date() {
    let project = Project::new();
    project.pipeline(
        r#"
name: data
model_path: models/data
stages:
  generate:
    kind: generate
    outs: { ratings: data/generated.csv }
    params: { rows: 3000, customers: 500, products: 20, seed: 3 }
  ingest:
    kind: ingest
    deps: { ratings: data/generated.csv }
"#,
    );
    let first = project.run(&[]);
    first.assert_code(0);
    assert_eq!(first.with_outcome("ran"), ["generate", "ingest"]);
    let ratings = Ratings::read(&project.abs("models/data/ratings.bin")).unwrap();
    assert_eq!(
        (ratings.len(), ratings.n_customers, ratings.n_products),
        (3000, 500, 20)
    );
    assert_eq!(
        project.read("models/data/customer_map.txt").lines().count(),
        500
    );

    let second = project.run(&[]);
    second.assert_code(0);
    assert_eq!(second.with_outcome("up_to_date"), ["generate", "ingest"]);
}

#[test]
fn a_changed_rating_reruns_ingest_and_cuts_off_what_reads_only_the_maps() {
    let project = original_data_project();
    project.run(&[]).assert_code(0);
    assert_eq!(project.read("out/ids.txt").trim(), "1897");
    let maps_before = (
        project.read("models/data/customer_map.txt"),
        project.read("models/data/product_map.txt"),
    );
    let ratings_before = Ratings::read(&project.abs("models/data/ratings.bin")).unwrap();

    let text = project.read("data/ratings.csv");
    let tweaked = text.replacen(",0.13333333333333333\n", ",0.2\n", 1);
    assert_ne!(tweaked, text);
    project.file("data/ratings.csv", &tweaked);

    let run = project.run(&[]);
    run.assert_code(0);
    assert_eq!(run.outcomes()["ingest"], "ran");
    assert_eq!(run.outcomes()["maps_report"], "cut_off");
    let ratings_after = Ratings::read(&project.abs("models/data/ratings.bin")).unwrap();
    assert_ne!(ratings_before.ratings, ratings_after.ratings);
    assert_eq!(
        maps_before,
        (
            project.read("models/data/customer_map.txt"),
            project.read("models/data/product_map.txt"),
        )
    );
}

#[test]
fn a_bad_row_fails_the_run_naming_file_and_line_and_skip_reports_it() {
    let project = original_data_project();
    let text = project.read("data/ratings.csv");
    let broken = text.replacen(",0.13333333333333333\n", ",NaN\n", 1);
    project.file("data/ratings.csv", &broken);

    let failed = project.warez(&["run", PIPELINE]);
    assert_ne!(failed.code, 0);
    failed
        .assert_stderr_contains("stage `ingest`: ")
        .assert_stderr_contains(
            "/data/ratings.csv:2: scaled_purchase_freq `NaN` is not a finite number",
        );
    assert!(!project.exists("models/data/ratings.bin"));

    let skipped = project.warez(&["run", PIPELINE, "--set", "ingest.on_bad_rows=skip"]);
    skipped.assert_code(0);
    let all_output = format!("{}{}", skipped.stdout, skipped.stderr);
    assert!(
        all_output.contains("data/ratings.csv:2: scaled_purchase_freq `NaN`")
            && all_output.contains("skipped 1 bad row of"),
        "the skipped row is not reported:\n{all_output}"
    );
    let ratings = Ratings::read(&project.abs("models/data/ratings.bin")).unwrap();
    assert_eq!(ratings.len(), 1998);
}

#[test]
fn an_unknown_bad_rows_policy_is_rejected_before_running() {
    let project = original_data_project();
    let run = project.run(&["--set", "ingest.on_bad_rows=ignore"]);
    assert_ne!(run.code, 0);
    run.assert_stderr_contains("on_bad_rows");
    run.assert_stderr_contains("expected `error` or `skip`, found `ignore`");
    assert!(!project.exists("models/data/ratings.bin"));
}
