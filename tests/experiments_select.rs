//! `select` stages through the binary: the best variant of a matrix stage by a metric (min or
//! max, ties to the first variant), its outputs copied to the unswept paths for the stages
//! below, `selection.json`, what reruns after an edit (a losing variant, a new winner, a new
//! value), every bad select rejected at its place, run-time metric errors that write nothing,
//! and the shipped recommender sweep, whose parallel run gives the bytes of a sequential one.
//!
//! The fast tests sweep a `cmd` stage: `train.sh` writes `metrics.json` with the loss it reads
//! from `conf/<lr>.txt` (so a test sets each variant's metric by editing one file) plus the
//! param `penalty` × (lr − 2)² (a param that changes every variant but lr=2's bytes), and a
//! model file and a folder naming the variant.

mod engine_support;

use std::path::Path;

use engine_support::{Project, Run, PIPELINE};
use serde_json::json;

const TRAIN_SH: &str = r#"loss=$(awk -v base="$(cat conf/$1.txt)" -v p="$3" -v lr="$1" 'BEGIN { print base + p * (lr - 2) ^ 2 }')
mkdir -p out/$1
printf '{"loss": %s, "nested": {"scores": [%s, 7]}, "text": "x"}\n' "$loss" "$loss" > out/$1/metrics.json
echo "model lr=$1 seed=$2" > out/$1/model.txt
mkdir -p out/$1/weights/layer && echo "w$1" > out/$1/weights/layer/w.txt
"#;

/// The toy sweep over `lr: LR_VALUES`, `best` with `SELECT` as its body, and `use` reading
/// the winner's model.
fn sweep(lr_values: &str, select: &str) -> String {
    format!(
        r#"name: s
stages:
  train:
    cmd: sh train.sh ${{item.lr}} ${{params.seed}} ${{params.penalty}}
    deps: [train.sh, conf/${{item.lr}}.txt]
    outs: [out/${{item.lr}}/metrics.json, out/${{item.lr}}/model.txt, out/${{item.lr}}/weights]
    params: {{seed: 7, penalty: 0}}
    matrix:
      lr: {lr_values}
  best:
{select}
  use:
    cmd: cp models/s/model.txt used.txt
    deps: [models/s/model.txt]
    outs: [used.txt]
"#
    )
}

const MIN_LOSS: &str = "    kind: select\n    from: train\n    params: {metric: loss, mode: min}";

/// A project with the toy sweep and a loss per `lr`.
fn toy(losses: &[(u32, &str)], select: &str) -> Project {
    let project = Project::new();
    project.file("train.sh", TRAIN_SH);
    for (lr, loss) in losses {
        project.file(&format!("conf/{lr}.txt"), loss);
    }
    let values: Vec<String> = losses.iter().map(|(lr, _)| lr.to_string()).collect();
    project.pipeline(&sweep(&format!("[{}]", values.join(", ")), select));
    project
}

fn run_ok(project: &Project) -> Run {
    let run = project.run(&[]);
    run.assert_code(0);
    run
}

fn selection(project: &Project) -> serde_json::Value {
    serde_json::from_str(&project.read("models/s/selection.json")).unwrap()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[test]
fn select_copies_the_minimum_variant_and_records_every_variant() {
    let project = toy(&[(1, "0.5"), (2, "0.25"), (3, "0.75")], MIN_LOSS);
    let run = run_ok(&project);
    assert_eq!(run.with_outcome("ran").len(), 5, "{}", run.stdout);
    for file in ["model.txt", "metrics.json", "weights/layer/w.txt"] {
        assert_eq!(
            std::fs::read(project.abs(&format!("models/s/{file}"))).unwrap(),
            std::fs::read(project.abs(&format!("out/2/{file}"))).unwrap(),
            "{file}: the winner's bytes"
        );
    }
    assert_eq!(project.read("used.txt"), "model lr=2 seed=7\n");
    let variant = |lr: u32, loss: f64| {
        json!({
            "stage": format!("train@lr={lr}"),
            "matrix": {"lr": lr},
            "params": {"penalty": 0, "seed": 7},
            "metric": loss,
            "outputs": {
                "metrics": format!("out/{lr}/metrics.json"),
                "model": format!("out/{lr}/model.txt"),
                "weights": format!("out/{lr}/weights"),
            },
        })
    };
    assert_eq!(
        selection(&project),
        json!({
            "from": "train",
            "metric": "loss",
            "mode": "min",
            "winner": "train@lr=2",
            "variants": [variant(1, 0.5), variant(2, 0.25), variant(3, 0.75)],
        })
    );
    let text = project.read("models/s/selection.json");
    let order: Vec<usize> = [
        "\"from\"",
        "\"metric\"",
        "\"mode\"",
        "\"winner\"",
        "\"variants\"",
    ]
    .iter()
    .map(|key| text.find(key).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "key order:\n{text}");
    assert!(
        text.starts_with("{\n  \"from\"") && text.ends_with("}\n"),
        "{text}"
    );
    let again = run_ok(&project);
    assert_eq!(
        again.with_outcome("up_to_date").len(),
        5,
        "{}",
        again.stdout
    );
}

#[test]
fn max_mode_and_dotted_paths_pick_the_largest_and_ties_go_to_the_first_variant() {
    let losses = [(1, "0.5"), (2, "0.9"), (3, "0.9")];
    let max = "    kind: select\n    from: train\n    params: {metric: loss, mode: max}";
    let project = toy(&losses, max);
    run_ok(&project);
    assert_eq!(
        selection(&project)["winner"],
        "train@lr=2",
        "tie: first wins"
    );
    assert_eq!(project.read("used.txt"), "model lr=2 seed=7\n");
    // The same through a path into a list, from the front and from the back.
    for metric in ["nested.scores.0", "nested.scores.-2"] {
        let select = format!(
            "    kind: select\n    from: train\n    params: {{metric: {metric}, mode: max}}"
        );
        let project = toy(&losses, &select);
        run_ok(&project);
        let chosen = selection(&project);
        assert_eq!(chosen["winner"], "train@lr=2", "{metric}");
        assert_eq!(chosen["variants"][1]["metric"], json!(0.9), "{metric}");
    }
    // Min mode with a tie for the minimum.
    let project = toy(&[(1, "0.5"), (2, "0.25"), (3, "0.25")], MIN_LOSS);
    run_ok(&project);
    assert_eq!(selection(&project)["winner"], "train@lr=2");
}

#[test]
fn a_losing_variant_that_changes_reruns_with_select_and_the_stages_below_are_cut_off() {
    let project = toy(&[(1, "0.5"), (2, "0.25"), (3, "0.75")], MIN_LOSS);
    run_ok(&project);
    project.file("conf/3.txt", "0.8");
    let run = run_ok(&project);
    assert_eq!(
        sorted(run.with_outcome("ran")),
        ["best", "train@lr=3"],
        "{}",
        run.stdout
    );
    assert_eq!(run.with_outcome("cut_off"), ["use"], "{}", run.stdout);
    let chosen = selection(&project);
    assert_eq!(chosen["winner"], "train@lr=2");
    assert_eq!(chosen["variants"][2]["metric"], json!(0.8));
}

#[test]
fn a_param_change_that_keeps_the_winners_bytes_reruns_select_and_cuts_off_the_stages_below() {
    let project = toy(&[(1, "0.5"), (2, "0.25"), (3, "0.75")], MIN_LOSS);
    run_ok(&project);
    let winner = project.tree("models/s");
    let run = project.run(&["--set", "train.penalty=1"]);
    run.assert_code(0);
    assert_eq!(
        sorted(run.with_outcome("ran")),
        ["best", "train@lr=1", "train@lr=3"],
        "{}",
        run.stdout
    );
    assert_eq!(
        run.with_outcome("ran_same_outputs"),
        ["train@lr=2"],
        "{}",
        run.stdout
    );
    assert_eq!(run.with_outcome("cut_off"), ["use"], "{}", run.stdout);
    let chosen = selection(&project);
    assert_eq!(chosen["variants"][0]["metric"], json!(1.5));
    assert_eq!(chosen["variants"][0]["params"]["penalty"], json!(1));
    assert_eq!(project.tree("models/s")["model.txt"], winner["model.txt"]);
}

#[test]
fn a_new_winner_flows_downstream() {
    let project = toy(&[(1, "0.5"), (2, "0.25"), (3, "0.75")], MIN_LOSS);
    run_ok(&project);
    project.file("conf/3.txt", "0.125");
    let run = run_ok(&project);
    assert_eq!(
        sorted(run.with_outcome("ran")),
        ["best", "train@lr=3", "use"],
        "{}",
        run.stdout
    );
    assert_eq!(selection(&project)["winner"], "train@lr=3");
    assert_eq!(project.read("used.txt"), "model lr=3 seed=7\n");
}

#[test]
fn adding_a_value_runs_only_the_new_variant_and_select_and_removing_it_runs_no_variant() {
    let project = toy(&[(1, "0.5"), (2, "0.25"), (3, "0.75")], MIN_LOSS);
    run_ok(&project);
    let before = project.read("models/s/selection.json");
    project.file("conf/4.txt", "0.9");
    project.pipeline(&sweep("[1, 2, 3, 4]", MIN_LOSS));
    let run = run_ok(&project);
    assert_eq!(
        sorted(run.with_outcome("ran")),
        ["best", "train@lr=4"],
        "{}",
        run.stdout
    );
    assert_eq!(run.with_outcome("cut_off"), ["use"], "{}", run.stdout);
    let chosen = selection(&project);
    assert_eq!(chosen["variants"].as_array().unwrap().len(), 4);
    assert_eq!(chosen["variants"][3]["stage"], "train@lr=4");
    project.pipeline(&sweep("[1, 2, 3]", MIN_LOSS));
    let back = run_ok(&project);
    assert!(
        back.outcomes()
            .iter()
            .all(|(stage, outcome)| !stage.starts_with("train@") || outcome == "up_to_date"),
        "{}",
        back.stdout
    );
    assert_eq!(project.read("models/s/selection.json"), before);
}

/// `pipelines/p.yaml:LINE:COLUMN` of the first `token` on the first line holding `line`.
fn place(project: &Project, line: &str, token: &str) -> String {
    let text = project.read(PIPELINE);
    let (number, found) = text
        .lines()
        .enumerate()
        .find(|(_, text)| text.contains(line))
        .unwrap_or_else(|| panic!("no line with {line:?}:\n{text}"));
    let column = found.find(token).unwrap() + 1;
    format!("{PIPELINE}:{}:{column}", number + 1)
}

#[track_caller]
fn rejected(select: &str, line: &str, token: &str, message: &str) {
    let project = toy(&[(1, "0.5"), (2, "0.25")], select);
    let run = project.run(&[]);
    run.assert_code(2);
    let expected = format!("{}: stage `", place(&project, line, token));
    run.assert_stderr_contains(&expected)
        .assert_stderr_contains(message);
    assert!(!project.exists("out"), "nothing ran");
    assert!(!project.exists("models"), "nothing ran");
}

#[test]
fn bad_select_stages_are_rejected_at_their_place() {
    rejected(
        "    kind: select\n    params: {metric: loss}",
        "  best:",
        "best",
        "a select stage needs `from: STAGE`",
    );
    rejected(
        "    kind: select\n    from: trian\n    params: {metric: loss}",
        "from: trian",
        "trian",
        "no stage `trian` (did you mean `train`?)",
    );
    rejected(
        "    kind: select\n    from: use\n    params: {metric: loss}",
        "from: use",
        "use",
        "stage `use` is not a matrix stage",
    );
    rejected(
        "    kind: select\n    from: train\n    params: {metric: loss, mode: avg}",
        "mode: avg",
        "avg",
        "param `mode`: expected `min` or `max`, found `avg`",
    );
    rejected(
        "    kind: select\n    from: train\n    params: {metric: loss, metrics_role: scores}",
        "metrics_role: scores",
        "scores",
        "stage `train` has no output `scores` holding the metrics (its outputs: metrics, model, weights)",
    );
    rejected(
        "    kind: select\n    from: train\n    params: {metric: \"loss..x\"}",
        "loss..x",
        "\"loss..x\"",
        "param `metric`: `loss..x` is not a name or a dotted path",
    );
    rejected(
        "    kind: select\n    from: train",
        "kind: select",
        "select",
        "param `metric` is required",
    );
    rejected(
        "    kind: select\n    from: train\n    params: {metric: loss}\n    deps: {x: train.sh}",
        "deps: {x: train.sh}",
        "{x",
        "a select stage takes no `deps:`",
    );
    rejected(
        "    kind: select\n    from: train\n    params: {metric: loss, variants: []}",
        "variants: []",
        "variants",
        "kind `select` has no param `variants`",
    );
    rejected(
        "    kind: select\n    from: train\n    params: {metric: \"${item.m}\"}\n    matrix: {m: [loss, text]}",
        "matrix: {m:",
        "{m",
        "a select stage has no `matrix:`",
    );
    rejected(
        "    cmd: echo\n    from: train",
        "from: train",
        "train",
        "`from:` belongs to a stage of kind `select`",
    );
}

#[test]
fn a_matrix_without_values_leaves_select_nothing_and_is_rejected() {
    let project = toy(&[(1, "0.5")], MIN_LOSS);
    project.pipeline(&sweep("[]", MIN_LOSS));
    let run = project.run(&[]);
    run.assert_code(2);
    let expected = format!("{}: stage `train`", place(&project, "lr: []", "[]"));
    run.assert_stderr_contains(&expected)
        .assert_stderr_contains("matrix key `lr` has an empty list");
}

#[test]
fn a_metric_missing_or_not_a_number_fails_the_run_and_writes_nothing() {
    let project = toy(&[(1, "0.5"), (2, "0.25")], MIN_LOSS);
    let select = "    kind: select\n    from: train\n    params: {metric: nested.score, mode: min}";
    project.pipeline(&sweep("[1, 2]", select));
    let run = project.warez(&["run", PIPELINE]);
    assert_ne!(run.code, 0);
    run.assert_stderr_contains(
        "stage `best`: metric `nested.score` in `out/1/metrics.json` (the `metrics` output of \
         `train@lr=1`) is missing: no `score` (keys there: scores)",
    );
    assert!(
        !project.exists("models/s"),
        "nothing written on a failed first run"
    );
    assert!(!project.exists("used.txt"));

    // After a good run, a failing one leaves the selected files as they were.
    project.pipeline(&sweep("[1, 2]", MIN_LOSS));
    run_ok(&project);
    let kept = project.tree("models/s");
    for (metric, problem) in [
        ("text", "is \"x\", not a number"),
        ("nested", "is {\"scores\":[0.5,7]}, not a number"),
        ("nested.scores.2", "is missing: no `2` (a list of 2 items)"),
    ] {
        let select = format!("    kind: select\n    from: train\n    params: {{metric: {metric}}}");
        project.pipeline(&sweep("[1, 2]", &select));
        let run = project.warez(&["run", PIPELINE]);
        assert_ne!(run.code, 0, "{metric}");
        run.assert_stderr_contains(&format!(
            "metric `{metric}` in `out/1/metrics.json` (the `metrics` output of `train@lr=1`) {problem}"
        ));
        assert_eq!(
            project.tree("models/s"),
            kept,
            "{metric}: selected files kept"
        );
        assert_eq!(project.read("used.txt"), "model lr=2 seed=7\n");
    }
}

// The shipped sweep on the small data set: real trainings, export and Avro packaging.

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SWEEP: &str = "pipelines/recommender-sweep.yaml";
const SWEEP_MODELS: &str = "models/recommender-sweep";

fn sweep_project() -> Project {
    let project = Project::new();
    for file in [
        SWEEP,
        "avro/RecommenderModel.avsc",
        "data/ratings_small.csv",
    ] {
        let text = std::fs::read_to_string(Path::new(REPO).join(file)).unwrap();
        project.file(file, &text);
    }
    project
}

fn run_sweep(project: &Project, jobs: &str) -> Run {
    let output = project
        .command(&["run", "--json", SWEEP, "-j", jobs])
        .env("SOURCE_DATE_EPOCH", "1795671374")
        .output()
        .unwrap();
    let run = Run::from_output(output);
    run.assert_code(0);
    run
}

#[test]
fn the_recommender_sweep_selects_the_lowest_validation_msle_and_parallel_equals_sequential() {
    let parallel = sweep_project();
    let sequential = sweep_project();
    let run = run_sweep(&parallel, "4");
    run_sweep(&sequential, "1");
    let ran = run.with_outcome("ran");
    assert_eq!(
        ran.len(),
        10,
        "ingest, 6 trainings, best, export_tf, write_avro: {ran:?}"
    );
    assert_eq!(
        parallel.tree(SWEEP_MODELS),
        sequential.tree(SWEEP_MODELS),
        "-j 4 and -j 1 write the same bytes"
    );

    let chosen: serde_json::Value =
        serde_json::from_str(&parallel.read(&format!("{SWEEP_MODELS}/selection.json"))).unwrap();
    let variants = chosen["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 6);
    let mut lowest: Option<(f64, String)> = None;
    for variant in variants {
        let stage = variant["stage"].as_str().unwrap().to_string();
        let metrics: serde_json::Value =
            serde_json::from_str(&parallel.read(variant["outputs"]["metrics"].as_str().unwrap()))
                .unwrap();
        let val_msle = metrics["epochs"].as_array().unwrap().last().unwrap()["val_msle"]
            .as_f64()
            .unwrap();
        assert_eq!(variant["metric"].as_f64().unwrap(), val_msle, "{stage}");
        assert_eq!(
            variant["params"]["n_factors"], variant["matrix"]["n_factors"],
            "{stage}"
        );
        if lowest.as_ref().is_none_or(|(best, _)| val_msle < *best) {
            lowest = Some((val_msle, stage));
        }
    }
    let (_, winner) = lowest.unwrap();
    assert_eq!(chosen["winner"].as_str().unwrap(), winner);
    assert_eq!(
        std::fs::read(parallel.abs(&format!("{SWEEP_MODELS}/checkpoint.onnx"))).unwrap(),
        std::fs::read(parallel.abs(&format!("{SWEEP_MODELS}/{winner}/checkpoint.onnx"))).unwrap(),
        "the winner's checkpoint is what export_tf reads"
    );
    assert!(parallel.exists(&format!("{SWEEP_MODELS}/recommender.avro")));

    // One more dropout value: three new trainings, the rest up to date.
    let text = parallel.read(SWEEP);
    parallel.file(
        SWEEP,
        &text.replace("dropout: [0.1, 0.2]", "dropout: [0.1, 0.2, 0.3]"),
    );
    let again = run_sweep(&parallel, "4");
    let trained: Vec<String> = (again.with_outcome("ran").into_iter())
        .filter(|stage| stage.starts_with("train@"))
        .collect();
    assert_eq!(
        sorted(trained),
        [
            "train@n_factors=16,dropout=0.3",
            "train@n_factors=32,dropout=0.3",
            "train@n_factors=64,dropout=0.3"
        ],
        "{}",
        again.stdout
    );
}
