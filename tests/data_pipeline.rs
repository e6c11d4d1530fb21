//! The `generate` and `ingest` kinds inside a pipeline run by the real binary (`warez-pipe run`):
//! caching, early cutoff below the id maps, and bad rows reported through the runner.

#[path = "engine_support/mod.rs"]
mod engine_support;

use engine_support::{Project, PIPELINE};
use warez_pipe::ml::data::dataset::Ratings;

const ORIGINAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ratings_uuid_small.csv");

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

/// Ids with control characters (an escape sequence, a bell, a carriage return) reach the
/// messages escaped, whether the row stops the run or is skipped; the stage is named once.
#[test]
fn control_characters_from_the_csv_are_escaped_in_messages() {
    let project = original_data_project();
    let text = project.read("data/ratings.csv");
    let first_row_start = text.find('\n').unwrap() + 1;
    let evil = "\"\u{1b}[2J\u{7}evil\r\"";
    let customer_end = first_row_start + text[first_row_start..].find(',').unwrap();
    let broken = format!(
        "{}{evil}{}",
        &text[..first_row_start],
        &text[customer_end..]
    );
    project.file("data/ratings.csv", &broken);
    let shown = "customerId `\\u{1b}[2J\\u{7}evil\\r` is not a UUID";

    let failed = project.warez(&["run", PIPELINE]);
    failed.assert_code(1).assert_stderr_contains(shown);
    assert_eq!(
        failed.stderr.matches("stage `ingest`").count(),
        1,
        "{}",
        failed.stderr
    );
    let skipped = project.warez(&["run", PIPELINE, "--set", "ingest.on_bad_rows=skip"]);
    skipped.assert_code(0);
    let all_output = format!("{}{}{}", failed.stderr, skipped.stdout, skipped.stderr);
    assert!(all_output.contains(shown), "{all_output}");
    for raw in ['\u{1b}', '\u{7}', '\r'] {
        assert!(!all_output.contains(raw), "raw {raw:?} in:\n{all_output:?}");
    }
}

/// A file of over a megabyte (the fast path's read buffer): bad rows in its first and second
/// buffer and after a quoted row (from where the csv crate reads) are each named by their line,
/// and the rows kept read exactly as the same rows written plainly.
#[test]
fn bad_rows_on_both_sides_of_a_buffer_and_a_quoted_row_are_named_by_line() {
    let id = |kind: u32, n: u32| format!("{n:08x}-{kind:04x}-4000-8000-{n:012x}");
    let row = |n: u32| format!("{},{},{}", id(1, n % 3000), id(2, n % 50), n % 16);
    let (bad_rating, bad_id, quoted, negative) = (3, 12_000, 13_000, 14_000);
    let mut messy = String::from("customerId,productId,scaled_purchase_freq\n");
    let mut plain = messy.clone();
    for line in 2..=15_000 {
        let n = line - 2;
        match line {
            _ if line == bad_rating => messy.push_str(&format!("{},{},x", id(1, 0), id(2, 0))),
            _ if line == bad_id => messy.push_str(&format!("{}x,{},1", &id(1, 0)[..35], id(2, 0))),
            _ if line == negative => messy.push_str(&format!("{},{},-1", id(1, 0), id(2, 0))),
            _ if line == quoted => {
                messy.push_str(&format!(
                    "\"{}\",{},{}",
                    id(1, n % 3000),
                    id(2, n % 50),
                    n % 16
                ));
                plain.push_str(&row(n));
                plain.push('\n');
            }
            _ => {
                messy.push_str(&row(n));
                plain.push_str(&row(n));
                plain.push('\n');
            }
        }
        messy.push('\n');
    }
    assert!(messy.len() > 1 << 20, "{} bytes", messy.len());

    let project = Project::new();
    project
        .file("data/ratings.csv", &messy)
        .pipeline(INGEST_AND_MAPS_REPORT);
    let failed = project.warez(&["run", PIPELINE]);
    failed
        .assert_code(1)
        .assert_stderr_contains("/data/ratings.csv:3: scaled_purchase_freq `x` is not a number");
    let skipped = project.warez(&["run", PIPELINE, "--set", "ingest.on_bad_rows=skip"]);
    skipped.assert_code(0);
    let all_output = format!("{}{}", skipped.stdout, skipped.stderr);
    for needle in [
        "data/ratings.csv:3: scaled_purchase_freq `x`".to_string(),
        format!(
            "data/ratings.csv:{bad_id}: customerId `{}x` is not a UUID",
            &id(1, 0)[..35]
        ),
        format!("data/ratings.csv:{negative}: scaled_purchase_freq -1 is negative"),
        "skipped 3 bad rows of".to_string(),
    ] {
        assert!(
            all_output.contains(&needle),
            "`{needle}` not in:\n{all_output}"
        );
    }

    let reference = Project::new();
    reference
        .file("data/ratings.csv", &plain)
        .pipeline(INGEST_AND_MAPS_REPORT);
    reference.warez(&["run", PIPELINE]).assert_code(0);
    for output in ["ratings.bin", "customer_map.txt", "product_map.txt"] {
        let path = format!("models/data/{output}");
        assert!(
            std::fs::read(project.abs(&path)).unwrap()
                == std::fs::read(reference.abs(&path)).unwrap(),
            "{output} differs from the plainly written rows'"
        );
    }
}
