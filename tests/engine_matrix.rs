//! `matrix:` stages through the binary: expansion into named variants, `${item.KEY}` in cmd,
//! paths and params, per-variant default outputs, incremental add/remove, per-variant
//! downstream stages, `--set`, and every bad matrix rejected at its place with exit 2.

mod engine_support;

use engine_support::{Project, PIPELINE};

/// A cmd matrix (`n` × `d`) whose `epochs` param is used through `${params.epochs}`, and a
/// downstream stage with the same matrix reading each variant's output.
fn sweep(n_values: &str) -> String {
    format!(
        r#"
name: m
stages:
  train:
    cmd: echo n=${{item.n}} d=${{item.d}} epochs=${{params.epochs}} tag=${{params.tag}} > out/t-${{item.n}}-${{item.d}}.txt
    outs: [out/t-${{item.n}}-${{item.d}}.txt]
    params: {{ epochs: 1, tag: "run-${{item.n}}" }}
    matrix:
      n: {n_values}
      d: [0.1, 0.2]
  pack:
    cmd: cat out/t-${{item.n}}-${{item.d}}.txt > out/p-${{item.n}}-${{item.d}}.txt
    deps: [out/t-${{item.n}}-${{item.d}}.txt]
    outs: [out/p-${{item.n}}-${{item.d}}.txt]
    matrix:
      n: {n_values}
      d: [0.1, 0.2]
"#
    )
}

#[test]
fn variants_are_named_in_order_and_substitute_item_values() {
    let project = Project::new();
    project.pipeline(&sweep("[16, 32]"));
    let status = project.warez(&["status", PIPELINE]);
    status.assert_code(1); // stale: never run
    let names = [
        "train@n=16,d=0.1",
        "train@n=16,d=0.2",
        "train@n=32,d=0.1",
        "train@n=32,d=0.2",
    ];
    let mut last = 0;
    for name in names {
        let at = status
            .stdout
            .find(name)
            .unwrap_or_else(|| panic!("status lacks {name}:\n{}", status.stdout));
        assert!(at >= last, "first key outermost:\n{}", status.stdout);
        last = at;
    }
    let run = project.run(&[]);
    run.assert_code(0);
    let ran = run.with_outcome("ran");
    assert_eq!(ran.len(), 8, "{ran:?}");
    for name in names {
        assert!(ran.contains(&name.to_string()), "{ran:?}");
    }
    assert_eq!(
        project.read("out/t-32-0.2.txt").trim(),
        "n=32 d=0.2 epochs=1 tag=run-32"
    );
    assert_eq!(
        project.read("out/p-16-0.1.txt"),
        project.read("out/t-16-0.1.txt")
    );
    let lock = project.read("pipelines/p.lock");
    assert!(lock.contains("train@n=16,d=0.1:"), "{lock}");
}

#[test]
fn downstream_variant_depends_on_its_own_upstream_variant() {
    let project = Project::new();
    project.pipeline(&sweep("[16, 32]"));
    let dag = project.warez(&["dag", PIPELINE, "--variants"]);
    dag.assert_code(0)
        .assert_stdout_contains("pack@n=16,d=0.1 <- train@n=16,d=0.1\n")
        .assert_stdout_contains("pack@n=32,d=0.2 <- train@n=32,d=0.2\n");
    assert_eq!(dag.stdout.matches(" <- ").count(), 4, "{}", dag.stdout);
    project.run(&[]).assert_code(0);
    // `--stage` takes one variant (and what it needs), or the matrix stage's name: all of them.
    let one = project.run(&["--dry-run", "--stage", "pack@n=32,d=0.1"]);
    one.assert_code(0);
    assert_eq!(one.outcomes().len(), 2, "{:?}", one.outcomes());
    let all = project.run(&["--dry-run", "--stage", "train"]);
    all.assert_code(0);
    let selected: Vec<String> = all.outcomes().into_keys().collect();
    assert_eq!(selected.len(), 4, "{selected:?}");
    assert!(
        selected.iter().all(|name| name.starts_with("train@")),
        "{selected:?}"
    );
    project
        .run(&["--stage", "tra"])
        .assert_code(2)
        .assert_stderr_contains("no stage `tra`");
    // `explain` takes one variant; the matrix stage's name is an error suggesting one.
    project
        .warez(&["explain", "train@n=16,d=0.2", PIPELINE])
        .assert_code(0)
        .assert_stdout_contains("stage `train@n=16,d=0.2`");
    project
        .warez(&["explain", "train", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains("no stage `train` in the pipeline (did you mean `train@");
    // `--set` on the matrix stage reaches every variant; each pack reruns below its own train.
    let again = project.run(&["--set", "train.epochs=3"]);
    again.assert_code(0);
    assert_eq!(again.with_outcome("ran").len(), 8);
    assert_eq!(
        project.read("out/p-16-0.2.txt").trim(),
        "n=16 d=0.2 epochs=3 tag=run-16"
    );
}

#[test]
fn adding_a_value_runs_only_new_variants_and_removing_one_runs_nothing() {
    let project = Project::new();
    project.pipeline(&sweep("[16, 32]"));
    project.run(&[]).assert_code(0);
    project.pipeline(&sweep("[16, 32, 64]"));
    let added = project.run(&[]);
    added.assert_code(0);
    assert_eq!(
        added.with_outcome("ran"),
        [
            "pack@n=64,d=0.1",
            "pack@n=64,d=0.2",
            "train@n=64,d=0.1",
            "train@n=64,d=0.2"
        ]
    );
    assert_eq!(added.with_outcome("up_to_date").len(), 8);
    project.pipeline(&sweep("[16, 64]"));
    let removed = project.run(&[]);
    removed.assert_code(0);
    assert!(
        removed.with_outcome("ran").is_empty(),
        "{:?}",
        removed.outcomes()
    );
    assert_eq!(removed.with_outcome("up_to_date").len(), 8);
    let lock = project.read("pipelines/p.lock");
    assert!(
        !lock.contains("n=32"),
        "the lock file keeps only the current stages:\n{lock}"
    );
    // The old value comes back from the cache, not by running.
    project.pipeline(&sweep("[16, 32, 64]"));
    let back = project.run(&[]);
    assert!(back.with_outcome("ran").is_empty(), "{:?}", back.outcomes());
}

#[test]
fn built_in_kind_matrix_sets_params_and_writes_each_variant_in_its_folder() {
    let project = Project::new();
    project.pipeline(
        r#"
name: g
stages:
  gen:
    kind: generate
    params: { customers: 6, products: 5 }
    matrix: { rows: [20, 30], seed: [1, 2] }
  count:
    cmd: wc -l < ${model_path}/gen@rows=${item.rows},seed=${item.seed}/ratings.csv > out/${item.rows}-${item.seed}.txt
    deps: ["${model_path}/gen@rows=${item.rows},seed=${item.seed}/ratings.csv"]
    outs: [out/${item.rows}-${item.seed}.txt]
    matrix: { rows: [20, 30], seed: [1, 2] }
"#,
    );
    let run = project.run(&[]);
    run.assert_code(0);
    assert_eq!(run.with_outcome("ran").len(), 8);
    for (rows, seed) in [(20, 1), (20, 2), (30, 1), (30, 2)] {
        let csv = project.read(&format!("models/g/gen@rows={rows},seed={seed}/ratings.csv"));
        assert_eq!(csv.lines().count(), rows + 1, "header + rows");
        assert_eq!(
            project.read(&format!("out/{rows}-{seed}.txt")).trim(),
            (rows + 1).to_string()
        );
    }
    assert_ne!(
        project.read("models/g/gen@rows=20,seed=1/ratings.csv"),
        project.read("models/g/gen@rows=20,seed=2/ratings.csv"),
        "the seed reaches the kind"
    );
    assert!(!project.exists("models/g/ratings.csv"));
    project
        .run(&["--set", "gen.seed=3"])
        .assert_code(2)
        .assert_stderr_contains("--set gen.seed=3: `seed` is a matrix key of stage `gen`");
}

#[test]
fn item_value_in_a_param_keeps_its_type() {
    let project = Project::new();
    project.pipeline(
        r#"
name: g
stages:
  gen:
    kind: generate
    params: { customers: 6, products: 5, rows: "${item.size}" }
    outs: { ratings: "out/r-${item.size}.csv" }
    matrix: { size: [10, 12] }
"#,
    );
    project.run(&[]).assert_code(0);
    assert_eq!(project.read("out/r-12.csv").lines().count(), 13);
}

/// Writes `yaml` (line 1 is `project_dir: ..`) and expects exit 2 with `message`, nothing run.
#[track_caller]
fn rejected(yaml: &str, message: &str) {
    let project = Project::new();
    project.pipeline(yaml);
    let run = project.warez(&["run", PIPELINE]);
    run.assert_code(2).assert_stderr_contains(message);
    assert!(!project.exists("out"), "nothing ran");
    assert!(!project.exists("pipelines/p.lock"));
}

const HEAD: &str = "name: t\nstages:\n  a:\n    cmd: mkdir -p out && echo ${item.x} > out/o-${item.x}\n    outs: [out/o-${item.x}]\n";

#[test]
fn empty_list() {
    rejected(
        &format!("{HEAD}    matrix: {{ x: [] }}\n"),
        "pipelines/p.yaml:7:18: stage `a`: matrix key `x` has an empty list",
    );
}

#[test]
fn more_variants_than_a_pipeline_can_hold() {
    // 1000⁴ variants used to be expanded one by one until memory ran out (an abort).
    let values = (0..1000)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let head = "name: t\nstages:\n  a:\n    cmd: echo > out/${item.w}-${item.x}-${item.y}-${item.z}\n    outs: [\"out/${item.w}-${item.x}-${item.y}-${item.z}\"]\n";
    rejected(
        &format!("{head}    matrix: {{ w: [{values}], x: [{values}], y: [{values}], z: [{values}] }}\n"),
        "pipelines/p.yaml:7:13: stage `a`: `matrix:` makes 1000 × 1000 × 1000 × 1000 variants, more than 100000",
    );
}

#[test]
fn a_variant_name_too_long_to_name_a_file() {
    // Ran the command, then failed to record it (`File name too long` in the cache).
    let long = "v".repeat(300);
    rejected(
        &format!("{HEAD}    matrix: {{ x: [1, {long}] }}\n"),
        "pipelines/p.yaml:4:3: stage `a@x=vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv…`: the stage name is 304 bytes long, more than 200",
    );
}

#[test]
fn matrix_not_a_map() {
    rejected(
        &format!("{HEAD}    matrix: [1, 2]\n"),
        "pipelines/p.yaml:7:13: stage `a`: `matrix:` is a map of names to lists",
    );
}

#[test]
fn matrix_value_not_a_list() {
    rejected(
        &format!("{HEAD}    matrix: {{ x: 3 }}\n"),
        "pipelines/p.yaml:7:18: stage `a`: matrix key `x`: expected a list of values",
    );
}

#[test]
fn key_unfit_for_a_name() {
    rejected(
        &format!("{HEAD}    matrix: {{ x: [1], a-b: [2] }}\n"),
        "pipelines/p.yaml:7:23: stage `a`: matrix key `a-b`: a key is letters, digits and `_`",
    );
}

#[test]
fn non_scalar_value() {
    rejected(
        &format!("{HEAD}    matrix: {{ x: [1, [2]] }}\n"),
        "pipelines/p.yaml:7:22: stage `a`: matrix key `x`: a value is a number, a boolean or a word",
    );
}

#[test]
fn value_unfit_for_a_name() {
    rejected(
        &format!("{HEAD}    matrix: {{ x: [1, a/b] }}\n"),
        "pipelines/p.yaml:7:22: stage `a`: matrix key `x`: value `a/b` must be letters",
    );
}

#[test]
fn duplicate_value() {
    rejected(
        &format!("{HEAD}    matrix: {{ x: [1, 2, 1] }}\n"),
        "pipelines/p.yaml:7:25: stage `a`: matrix key `x`: duplicate value `1`",
    );
}

#[test]
fn key_neither_param_nor_item() {
    rejected(
        &format!("{HEAD}    matrix: {{ x: [1, 2], y: [1] }}\n"),
        "pipelines/p.yaml:7:26: stage `a`: matrix key `y` is neither a param of the stage nor used as `${item.y}` in it",
    );
    rejected(
        "name: t\nstages:\n  g:\n    kind: generate\n    matrix: { rowz: [1] }\n",
        "pipelines/p.yaml:6:15: stage `g`: matrix key `rowz` is neither a param",
    );
}

#[test]
fn item_key_the_matrix_lacks() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo ${item.y} > out\n    outs: [out]\n    matrix: { x: [1, 2] }\n",
        "pipelines/p.yaml:5:10: stage `a`: unknown variable `${item.y}`: the matrix has the keys x",
    );
}

#[test]
fn item_outside_a_matrix_stage() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo > out\n    outs: [out/${item.x}]\n",
        "pipelines/p.yaml:6:12: stage `a`: `${item.…}` belongs in a stage with `matrix:`",
    );
}

#[test]
fn variant_name_clash() {
    rejected(
        &format!("{HEAD}    matrix: {{ x: [1, 2] }}\n  a@x=1:\n    cmd: echo\n"),
        "pipelines/p.yaml:7:13: stage `a`: matrix variant `a@x=1` has the name of another stage",
    );
}

#[test]
fn variants_writing_one_output() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo ${item.x} > out\n    outs: [out]\n    matrix: { x: [1, 2] }\n",
        "pipelines/p.yaml:6:12: stage `a@x=2` writes `out`, which stage `a@x=1` (as `out`) also writes",
    );
}

#[test]
fn bad_param_value_from_the_matrix_points_at_the_value() {
    rejected(
        "name: t\nstages:\n  g:\n    kind: write_avro\n    deps: { graph: g, customer_map: c, product_map: p, schema: s }\n    matrix: { codec: [deflate, lz4] }\n",
        "pipelines/p.yaml:7:32: stage `g@codec=lz4`: ",
    );
}
