//! `metrics` over a sweep's variants, `report` and `dag`'s folded matrix nodes, on real engine
//! runs: `cmd` stages stand in for training (each variant copies a prepared `metrics.json`),
//! selection (a prepared `selection.json` in the select kind's shape) and packaging (a
//! `RecommenderModel` Avro file written with the library), so every expected number is known.
//! One test sweeps the real `train` kind on the seed data set and packages a variant.

mod engine_support;
mod runtime_support;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine_support::{Project, PIPELINE};
use serde_json::Value;
use warez_pipe::ml::model::avro_record::{self, RecommenderModel};
use warez_pipe::ml::model::metrics::{EpochLoss, RegressionScores, TrainingMetrics};

const SIZES: [u32; 3] = [8, 16, 32];
const RATES: [&str; 2] = ["0.1", "0.2"];
/// Per variant in expansion order: the last epoch's validation MSLE and the validation MSE.
const SCORES: [(f64, f64); 6] = [
    (0.05, 0.5),
    (0.03, 0.1),
    (0.04, 0.3),
    (0.01, 0.6),
    (0.06, 0.2),
    (0.02, 0.4),
];
/// A model id a browser must not take for markup.
const MODEL_ID: &str = "m<b>1</b> & \"x\"";

fn variants() -> Vec<(u32, &'static str)> {
    SIZES
        .iter()
        .flat_map(|&size| RATES.iter().map(move |&rate| (size, rate)))
        .collect()
}

fn variant_name(size: u32, rate: &str) -> String {
    format!("train@size={size},rate={rate}")
}

fn metrics_path(size: u32, rate: &str) -> String {
    format!("models/s/v-{size}-{rate}/metrics.json")
}

fn metrics(val_msle: f64, mse: f64) -> TrainingMetrics {
    TrainingMetrics {
        epochs: (1..=3)
            .map(|epoch| EpochLoss {
                epoch,
                train_msle: val_msle * f64::from(5 - epoch),
                val_msle: val_msle * f64::from(4 - epoch),
            })
            .collect(),
        validation: RegressionScores {
            mse,
            mae: mse / 2.0,
            r2: Some(0.5 - mse),
        },
        baseline: RegressionScores {
            mse: 0.7,
            mae: 0.35,
            r2: Some(0.0),
        },
        train_rows: 1499,
        validation_rows: 500,
        n_customers: 40,
        n_products: 7,
    }
}

/// `train` over 3 × 2 variants; with `select`, a `best` stage (metric, mode) that, like the
/// select kind, also writes the winner's metrics.json, and `package`.
fn pipeline(sizes: &str, select: Option<(&str, &str)>) -> String {
    let mut yaml = format!(
        r#"name: s
model_path: models/s
stages:
  train:
    cmd: mkdir -p ${{model_path}}/v-${{item.size}}-${{item.rate}} && cp data/m-${{item.size}}-${{item.rate}}.json ${{model_path}}/v-${{item.size}}-${{item.rate}}/metrics.json
    deps: ["data/m-${{item.size}}-${{item.rate}}.json"]
    outs: ["${{model_path}}/v-${{item.size}}-${{item.rate}}/metrics.json"]
    params: {{ size: 0, rate: 0, epochs: 3 }}
    matrix: {{ size: {sizes}, rate: [0.1, 0.2] }}
"#
    );
    if let Some((metric, mode)) = select {
        let deps: Vec<String> = variants()
            .iter()
            .map(|(size, rate)| format!("\"{}\"", metrics_path(*size, rate)))
            .collect();
        yaml += &format!(
            r#"  best:
    cmd: cp data/selection.json ${{model_path}}/selection.json && cp data/m-8-0.2.json ${{model_path}}/metrics.json
    deps: [{}, data/selection.json]
    outs: ["${{model_path}}/selection.json", "${{model_path}}/metrics.json"]
    params: {{ metric: {metric}, mode: {mode} }}
  package:
    cmd: cp data/model.avro ${{model_path}}/recommender.avro
    deps: ["${{model_path}}/selection.json", data/model.avro]
    outs: ["${{model_path}}/recommender.avro"]
"#,
            deps.join(", ")
        );
    }
    yaml
}

/// A project with the prepared files; `winner` is the variant `selection.json` names.
fn project(sizes: &str, select: Option<(&str, &str)>, winner: usize) -> Project {
    let project = Project::new();
    let mut selected = Vec::new();
    for (index, (size, rate)) in variants().into_iter().enumerate() {
        let (val_msle, mse) = SCORES[index];
        let path = project.abs(&format!("data/m-{size}-{rate}.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        metrics(val_msle, mse).write_json(&path).unwrap();
        selected.push(serde_json::json!({
            "stage": variant_name(size, rate),
            "matrix": {"size": size, "rate": rate.parse::<f64>().unwrap()},
            "params": {"size": size, "rate": rate.parse::<f64>().unwrap(), "epochs": 3},
            "metric": mse,
            "outputs": {"metrics": metrics_path(size, rate)},
        }));
    }
    let (size, rate) = variants()[winner];
    let selection = serde_json::json!({
        "from": "train", "metric": "validation.mse", "mode": "min",
        "winner": variant_name(size, rate), "variants": selected,
    });
    project.file("data/selection.json", &selection.to_string());
    let schema = avro_record::read_schema(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("avro/RecommenderModel.avsc"),
    )
    .unwrap();
    let record = RecommenderModel {
        model_id: MODEL_ID.into(),
        tensor_flow_model: vec![1, 2, 3],
        product_ids: (0..7).map(|i| format!("p{i}")).collect(),
        customer_ids: (0..40).map(|i| format!("c{i}")).collect(),
    };
    std::fs::write(
        project.abs("data/model.avro"),
        record
            .to_container(&schema, apache_avro::Codec::Null)
            .unwrap(),
    )
    .unwrap();
    project.pipeline(&pipeline(sizes, select));
    project
}

fn metrics_json(project: &Project) -> Value {
    let run = project.warez(&["metrics", PIPELINE, "--json"]);
    run.assert_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn stages_of(sweep: &Value) -> Vec<String> {
    sweep["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["stage"].as_str().unwrap().to_string())
        .collect()
}

/// The variants' names ranked by a score, best first.
fn ranked(score: impl Fn(usize) -> f64, descending: bool) -> Vec<String> {
    let mut order: Vec<usize> = (0..6).collect();
    order.sort_by(|a, b| score(*a).total_cmp(&score(*b)));
    if descending {
        order.reverse();
    }
    order
        .into_iter()
        .map(|i| variant_name(variants()[i].0, variants()[i].1))
        .collect()
}

#[test]
fn metrics_ranks_every_variant_with_the_params_that_differ() {
    let project = project("[8, 16, 32]", None, 0);
    project.run(&[]).assert_code(0);
    let report = metrics_json(&project);
    let sweep = &report["sweeps"][0];
    assert_eq!(sweep["stage"], "train");
    assert_eq!(sweep["metric"], "val_msle");
    assert_eq!(sweep["mode"], "min");
    assert_eq!(
        sweep["columns"],
        serde_json::json!(["size", "rate"]),
        "epochs is the same"
    );
    assert_eq!(stages_of(sweep), ranked(|i| SCORES[i].0, false));
    for variant in sweep["variants"].as_array().unwrap() {
        let file = project.abs(variant["file"].as_str().unwrap());
        let on_disk = TrainingMetrics::read_json(&file).unwrap();
        assert_eq!(
            variant["metric"].as_f64().unwrap(),
            on_disk.epochs.last().unwrap().val_msle
        );
        let current: TrainingMetrics = serde_json::from_value(variant["metrics"].clone()).unwrap();
        assert_eq!(current, on_disk);
        assert!(variant["previous"].is_null(), "first run: {variant}");
    }
    let text = project.warez(&["metrics", PIPELINE]);
    text.assert_code(0)
        .assert_stdout_contains("train: 6 variants (6 trained), by val_msle (lowest first)")
        .assert_stdout_contains("size  rate  val_msle  since previous");
    let first_row = text.stdout.lines().nth(3).unwrap();
    assert!(
        first_row.contains("1    16   0.2  0.010000")
            && first_row.ends_with(&ranked(|i| SCORES[i].0, false)[0]),
        "{}",
        text.stdout
    );

    // A variant trained again with other results: the change since its own previous run.
    metrics(0.07, 0.9)
        .write_json(&project.abs("data/m-8-0.1.json"))
        .unwrap();
    project.run(&[]).assert_code(0);
    // A value added and not run yet: its variants are listed, untrained, last.
    for rate in RATES {
        metrics(0.001, 0.01)
            .write_json(&project.abs(&format!("data/m-64-{rate}.json")))
            .unwrap();
    }
    project.pipeline(&pipeline("[8, 16, 32, 64]", None));
    let report = metrics_json(&project);
    let variants = report["sweeps"][0]["variants"].as_array().unwrap().clone();
    assert_eq!(variants.len(), 8);
    let changed = variants
        .iter()
        .find(|v| v["stage"] == variant_name(8, "0.1"))
        .unwrap();
    assert_eq!(changed["metric"].as_f64().unwrap(), 0.07);
    let previous: TrainingMetrics =
        serde_json::from_value(changed["previous"]["metrics"].clone()).unwrap();
    assert_eq!(previous, metrics(0.05, 0.5));
    assert!((changed["metric_change"].as_f64().unwrap() - 0.02).abs() < 1e-12);
    let untrained: Vec<&str> = variants[6..]
        .iter()
        .map(|v| {
            assert!(v["metrics"].is_null() && v["metric"].is_null(), "{v}");
            v["stage"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        untrained,
        ["train@size=64,rate=0.1", "train@size=64,rate=0.2"]
    );
    assert_eq!(
        variants[5]["stage"],
        variant_name(8, "0.1"),
        "now the worst"
    );
    project
        .warez(&["metrics", PIPELINE])
        .assert_code(0)
        .assert_stdout_contains("not trained")
        .assert_stdout_contains("+0.020000");
}

#[test]
fn metrics_ranks_by_the_select_stage_and_marks_its_winner() {
    let project = project("[8, 16, 32]", Some(("validation.mse", "max")), 4);
    project.run(&[]).assert_code(0);
    let report = metrics_json(&project);
    let sweep = &report["sweeps"][0];
    assert_eq!(sweep["metric"], "validation.mse");
    assert_eq!(sweep["mode"], "max");
    assert_eq!(stages_of(sweep), ranked(|i| SCORES[i].1, true));
    let selected: Vec<&Value> = sweep["variants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["selected"] == true)
        .collect();
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0]["stage"], variant_name(32, "0.1"));
    assert_eq!(sweep["selector"]["stage"], "best");
    project
        .warez(&["metrics", PIPELINE])
        .assert_code(0)
        .assert_stdout_contains("selected by `best`: train@size=32,rate=0.1");
}

/// Every `name="value"` attribute value of the elements that have `marker` in their tag.
fn attributes<'a>(html: &'a str, marker: &str, name: &str) -> Vec<&'a str> {
    html.split('<')
        .filter(|tag| tag.contains(marker))
        .filter_map(|tag| {
            let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            let end = start + tag[start..].find('"')?;
            Some(&tag[start..end])
        })
        .collect()
}

fn report(project: &Project) -> String {
    std::fs::create_dir_all(project.abs("out")).unwrap();
    project
        .warez(&["report", PIPELINE, "--out", "out/report.html"])
        .assert_code(0);
    project.read("out/report.html")
}

#[test]
fn the_report_is_self_contained_and_draws_the_metrics_files() {
    let project = project("[8, 16, 32]", Some(("validation.mse", "min")), 1);
    project.run(&[]).assert_code(0);
    let html = report(&project);

    // Nothing from elsewhere: no script, no URL to load, no external style sheet.
    let lower = html.to_lowercase();
    for forbidden in [
        "<script", "http://", "https://", "<link", "<img", "@import", "url(http",
    ] {
        assert!(!lower.contains(forbidden), "`{forbidden}` in the report");
    }
    assert!(attributes(&html, "", "src").is_empty());
    assert!(attributes(&html, "", "href").is_empty());

    // Every epoch drawn is the metrics file's.
    for (size, rate) in variants() {
        let stage = variant_name(size, rate);
        let on_disk = TrainingMetrics::read_json(&project.abs(&metrics_path(size, rate))).unwrap();
        let chart_start = html
            .find(&format!("aria-label=\"loss per epoch of {stage}\""))
            .unwrap_or_else(|| panic!("no chart of {stage}"));
        let chart = &html[chart_start..chart_start + html[chart_start..].find("</svg>").unwrap()];
        let drawn = |name: &str| -> Vec<f64> {
            attributes(chart, "circle", name)
                .iter()
                .map(|v| v.parse().unwrap())
                .collect()
        };
        let expected =
            |value: fn(&EpochLoss) -> f64| on_disk.epochs.iter().map(value).collect::<Vec<_>>();
        assert_eq!(drawn("data-val-msle"), expected(|e| e.val_msle), "{stage}");
        assert_eq!(
            drawn("data-train-msle"),
            expected(|e| e.train_msle),
            "{stage}"
        );
    }
    // The bars are the selection metric, in rank order, the winner marked.
    let bars = attributes(&html, "g class=\"bar", "data-value");
    let values: Vec<f64> = bars.iter().map(|v| v.parse().unwrap()).collect();
    let mut expected: Vec<f64> = SCORES.iter().map(|s| s.1).collect();
    expected.sort_by(f64::total_cmp);
    assert_eq!(values, expected);
    assert_eq!(
        attributes(&html, "g class=\"bar selected", "data-variant"),
        [variant_name(8, "0.2")]
    );
    // The stage graph folds the variants and says how each stage last ended.
    assert!(
        html.contains("data-stage=\"train ×6 variants\" data-result=\"6 ran\""),
        "{html}"
    );
    assert!(html.contains("data-stage=\"best\" data-result=\"ran\""));
    assert!(
        !html.contains("Model <code>best</code>"),
        "the select stage's copy of the winner's metrics is no model of its own"
    );
    // The model selected and packaged, its id escaped.
    assert!(html.contains("data-winner=\"train@size=8,rate=0.2\""));
    assert!(!html.contains(MODEL_ID));
    assert!(
        html.contains("m&lt;b&gt;1&lt;/b&gt; &amp; &quot;x&quot;"),
        "{html}"
    );
    assert_eq!(attributes(&html, "td", "data-customers"), ["40"]);
    assert_eq!(attributes(&html, "td", "data-products"), ["7"]);

    // A second run finds everything up to date, and says when it last ran.
    project.run(&[]).assert_code(0);
    let html = report(&project);
    assert!(html.contains("data-result=\"6 up to date\""));
    assert!(html.contains("last ran "));
}

#[test]
fn the_report_defaults_to_model_path_and_never_overwrites_a_stage_file() {
    let project = project("[8, 16, 32]", Some(("validation.mse", "min")), 1);
    project.run(&[]).assert_code(0);
    let run = project.warez(&["report", PIPELINE]);
    run.assert_code(0)
        .assert_stdout_contains("models/s/report.html");
    assert!(project.read("models/s/report.html").contains("<svg"));

    let before = project.read("models/s/selection.json");
    project
        .warez(&["report", PIPELINE, "--out", "models/s/selection.json"])
        .assert_code(1)
        .assert_stderr_contains(
            "would overwrite `models/s/selection.json`, an output of stage `best`",
        );
    assert_eq!(project.read("models/s/selection.json"), before);
    project
        .warez(&["report", PIPELINE, "--out", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains("is the pipeline's file");

    // A folder that does not exist is not created: the flag and the folder are named.
    project
        .warez(&["report", PIPELINE, "--out", "pages/new/report.html"])
        .assert_code(1)
        .assert_stderr_contains(
            "error: --out pages/new/report.html: folder pages/new does not exist (create it first)",
        );
    assert!(!project.exists("pages"));

    // A named pipe stays one: the page is renamed into place, which would swap it for a file.
    let made = Command::new("mkfifo")
        .arg(project.abs("page.pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    project
        .warez(&["report", PIPELINE, "--out", "page.pipe"])
        .assert_code(1)
        .assert_stderr_contains("page.pipe is a named pipe, not a regular file");
    assert!(std::fs::symlink_metadata(project.abs("page.pipe"))
        .unwrap()
        .file_type()
        .is_fifo());

    // A garbled history (only informative) is said, not hidden behind "no run recorded".
    std::fs::write(project.abs("cache/history.json"), "{").unwrap();
    project
        .warez(&["report", PIPELINE])
        .assert_code(0)
        .assert_stderr_contains("cache/history.json does not read (");
    assert!(project
        .read("models/s/report.html")
        .contains("no run recorded"));
}

#[test]
fn a_pipeline_without_a_matrix_reports_its_one_model() {
    let project = Project::new();
    std::fs::create_dir_all(project.abs("data")).unwrap();
    metrics(0.02, 0.3)
        .write_json(&project.abs("data/m.json"))
        .unwrap();
    project.pipeline(
        "name: one\nmodel_path: models/one\nstages:\n  train:\n    cmd: cp data/m.json ${model_path}/metrics.json\n    deps: [data/m.json]\n    outs: [\"${model_path}/metrics.json\"]\n",
    );
    project.run(&[]).assert_code(0);
    let html = report(&project);
    assert!(html.contains("Model <code>train</code>"), "{html}");
    let drawn: Vec<f64> = attributes(&html, "circle", "data-val-msle")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(drawn, [0.06, 0.04, 0.02]);
    assert!(
        !html.contains("class=\"chart bars"),
        "no bar chart for one model"
    );
    // metrics keeps its single-model form.
    project
        .warez(&["metrics", PIPELINE, "--json"])
        .assert_code(0)
        .assert_stdout_contains("\"current\"");
}

#[test]
fn the_report_opens_in_headless_chromium() {
    let project = project("[8, 16, 32]", Some(("validation.mse", "min")), 1);
    project.run(&[]).assert_code(0);
    report(&project);
    let screenshot = project.abs("out/screenshot.png");
    let mut chromium = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!(
            "--user-data-dir={}",
            project.abs("out/profile").display()
        ))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1200,2000")
        .arg(format!(
            "file://{}",
            project.abs("out/report.html").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium is installed (scripts/test installs Debian's chromium)");
    let started = Instant::now();
    while chromium.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = chromium.kill();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&screenshot).expect("chromium wrote the screenshot"),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (1200, 2000));
    let channels = frame.color_type.samples();
    let mut colours = std::collections::BTreeSet::new();
    let mut not_white = 0usize;
    for pixel in pixels[..frame.buffer_size()].chunks(channels) {
        let rgb = (pixel[0], pixel[1], pixel[2]);
        colours.insert(rgb);
        if rgb != (255, 255, 255) {
            not_white += 1;
        }
    }
    let total = (frame.width * frame.height) as usize;
    assert!(colours.len() > 50, "{} distinct colours", colours.len());
    assert!(
        not_white * 50 > total,
        "{not_white} of {total} pixels are not white"
    );
}

#[test]
fn dag_folds_a_matrix_into_one_node_unless_asked_for_variants() {
    let project = project("[8, 16, 32]", Some(("validation.mse", "min")), 1);
    let folded = project.warez(&["dag", PIPELINE]);
    folded.assert_code(0);
    assert_eq!(
        folded.stdout,
        "train ×6 variants\nbest <- train ×6 variants\npackage <- best\n"
    );
    project
        .warez(&["dag", PIPELINE, "--format", "dot"])
        .assert_code(0)
        .assert_stdout_contains("\"train\" [label=\"train ×6 variants\", shape=box3d];")
        .assert_stdout_contains("\"train\" -> \"best\";");
    project
        .warez(&["dag", PIPELINE, "--format", "mermaid"])
        .assert_code(0)
        .assert_stdout_contains("s0[\"train ×6 variants\"]")
        .assert_stdout_contains("s0 --> s6");
    let every = project.warez(&["dag", PIPELINE, "--variants"]);
    every.assert_code(0);
    assert_eq!(every.stdout.matches("best <- ").count(), 1);
    for (size, rate) in variants() {
        assert!(every
            .stdout
            .contains(&format!("{}\n", variant_name(size, rate))));
    }
}

const SMALL_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ratings_uuid_small.csv");

/// The real kinds: ingest, a 2 × 2 sweep of `train`, one variant exported and packaged.
const REAL_SWEEP: &str = r#"name: rec
model_path: models/rec
stages:
  ingest:
    kind: ingest
    deps: { ratings: data/ratings.csv }
  train:
    kind: train
    deps: { ratings: "${model_path}/ratings.bin" }
    matrix: { n_factors: [4, 8], epochs: [1, 2] }
  export_tf:
    kind: export_tf
    deps: { checkpoint: "${model_path}/train@n_factors=8,epochs=2/checkpoint.onnx" }
  write_avro:
    kind: write_avro
    deps:
      graph: ${model_path}/optimized_ProductRecommender.pb
      customer_map: ${model_path}/customer_map.txt
      product_map: ${model_path}/product_map.txt
      schema: avro/RecommenderModel.avsc
    params: { model_id: sweep-model }
"#;

#[test]
fn a_real_sweep_is_ranked_and_reported_from_what_train_wrote() {
    runtime_support::ort_dylib();
    let project = Project::new();
    let ratings = std::fs::read_to_string(SMALL_DATA).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro/RecommenderModel.avsc");
    project
        .file("data/ratings.csv", &ratings)
        .file(
            "avro/RecommenderModel.avsc",
            &std::fs::read_to_string(schema).unwrap(),
        )
        .pipeline(REAL_SWEEP);
    project.run(&[]).assert_code(0);

    let shown = metrics_json(&project);
    let sweep = &shown["sweeps"][0];
    assert_eq!(sweep["columns"], serde_json::json!(["n_factors", "epochs"]));
    let variants = sweep["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 4);
    let mut last = f64::NEG_INFINITY;
    for variant in variants {
        let on_disk =
            TrainingMetrics::read_json(&project.abs(variant["file"].as_str().unwrap())).unwrap();
        let metric = variant["metric"].as_f64().unwrap();
        assert_eq!(metric, on_disk.epochs.last().unwrap().val_msle);
        assert!(metric >= last, "ranked lowest first: {sweep}");
        last = metric;
        assert_eq!(
            variant["params"]["epochs"].as_u64().unwrap() as usize,
            on_disk.epochs.len()
        );
    }

    let html = report(&project);
    for variant in variants {
        let stage = variant["stage"].as_str().unwrap();
        let on_disk =
            TrainingMetrics::read_json(&project.abs(variant["file"].as_str().unwrap())).unwrap();
        let start = html
            .find(&format!("aria-label=\"loss per epoch of {stage}\""))
            .unwrap();
        let chart = &html[start..start + html[start..].find("</svg>").unwrap()];
        let drawn: Vec<f64> = attributes(chart, "circle", "data-val-msle")
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        let expected: Vec<f64> = on_disk.epochs.iter().map(|e| e.val_msle).collect();
        assert_eq!(drawn, expected, "{stage}");
    }
    assert!(html.contains("data-stage=\"train ×4 variants\" data-result=\"4 ran\""));
    // The packaged record: its id and maps, the rows the packaged variant was trained on.
    let lines = |path: &str| project.read(path).lines().count().to_string();
    assert_eq!(attributes(&html, "td", "data-model-id"), ["sweep-model"]);
    assert_eq!(
        attributes(&html, "td", "data-customers"),
        [lines("models/rec/customer_map.txt")]
    );
    assert_eq!(
        attributes(&html, "td", "data-products"),
        [lines("models/rec/product_map.txt")]
    );
}

/// The stages' results are only informative: failing to record them warns, the run succeeds.
#[test]
fn a_history_that_cannot_be_written_is_a_warning_not_a_failed_run() {
    let project = project("[8, 16, 32]", None, 0);
    std::fs::create_dir_all(project.abs("cache/history.json/blocked")).unwrap();
    let run = project.run(&[]);
    run.assert_code(0)
        .assert_stderr_contains("warning: could not record the stages' results in ");
    assert_eq!(run.with_outcome("ran").len(), 6);
    assert!(project.exists("pipelines/p.lock"));
    // The report still works, without results.
    let html = report(&project);
    assert!(html.contains("data-result=\"6 no run recorded\""), "{html}");
}
