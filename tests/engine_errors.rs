//! Every invalid pipeline is rejected before anything runs, with file:line:column (or the
//! cycle's chain) and exit code 2.

mod engine_support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use engine_support::{wait_with_timeout, Project, Run, PIPELINE};

/// Writes `yaml` (the `project_dir: ..` line is line 1) and expects rejection with `message`.
#[track_caller]
fn rejected(yaml: &str, message: &str) {
    let project = Project::new();
    project.file("data/in.txt", "x\n").pipeline(yaml);
    let run = project.warez(&["run", PIPELINE]);
    run.assert_code(2).assert_stderr_contains(message);
    assert!(!project.exists("out"), "nothing ran");
    assert!(!project.exists("pipelines/p.lock"));
}

#[test]
fn unknown_key() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    depz: [data/in.txt]\n",
        "pipelines/p.yaml:6:5: stages.a: unknown field `depz`, expected one of `kind`, `cmd`, `deps`, `outs`, `params`",
    );
}

#[test]
fn unknown_top_level_key() {
    rejected(
        "name: t\nstagez: {}\n",
        "pipelines/p.yaml:3:1: unknown field `stagez`",
    );
}

#[test]
fn wrong_type() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    outs: { x: [1, 2] }\n",
        "pipelines/p.yaml:6:16: stages.a.outs.x: invalid type: sequence, expected a string",
    );
}

#[test]
fn yaml_syntax_error() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    outs: [out/x\n",
        "pipelines/p.yaml:7:1: did not find expected ',' or ']'",
    );
}

/// A pipeline file whose path is not UTF-8 (lock files and run records hold paths as text) is
/// refused by every command before anything runs, the bad byte shown escaped.
#[test]
fn a_pipeline_path_that_is_not_utf8_is_refused_before_anything_runs() {
    let project = Project::new();
    project.pipeline("name: t\nstages:\n  a:\n    cmd: echo a > out\n    outs: [out]\n");
    let file = OsStr::from_bytes(b"pipelines/p\xff.yaml");
    std::fs::rename(project.abs(PIPELINE), project.path().join(file)).unwrap();
    let commands: [&[&str]; 6] = [
        &["run"],
        &["status"],
        &["dag"],
        &["explain", "a"],
        &["clean"],
        &["gc"],
    ];
    for args in commands {
        let mut command = project.command(args);
        command.arg(file);
        let rejected = Run::from_output(command.output().unwrap());
        rejected.assert_code(2).assert_stderr_contains(
            "error: pipelines/p\\xff.yaml: the path of the pipeline file is not valid UTF-8 \
             (lock files and run records hold paths as text): rename it",
        );
        assert!(!rejected.stderr.contains("panicked"), "{args:?}");
    }
    assert!(!project.exists("out"), "nothing ran");
    assert!(!project.exists("cache"), "nothing was recorded");
}

/// A project folder whose path is not UTF-8 (here the folder run from) is refused the same way.
#[test]
fn a_project_folder_that_is_not_utf8_is_refused_before_anything_runs() {
    let project = Project::new();
    let dir = project.path().join(OsStr::from_bytes(b"d\xff"));
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::fs::write(
        dir.join(PIPELINE),
        "project_dir: ..\nstages:\n  a:\n    cmd: echo a > out\n    outs: [out]\n",
    )
    .unwrap();
    let mut command = project.command(&["run", PIPELINE]);
    command.current_dir(&dir);
    Run::from_output(command.output().unwrap())
        .assert_code(2)
        .assert_stderr_contains("/d\\xff: the path of the project folder is not valid UTF-8");
    assert!(!dir.join("out").exists(), "nothing ran");
}

#[test]
fn variables_work_unquoted_inside_flow_lists() {
    let project = Project::new();
    project.pipeline(
        "name: t\nmodel_path: models/m\nstages:\n  a:\n    cmd: echo ${params.x} > ${model_path}/a\n    outs: [${model_path}/a]\n    params: { x: 3 }\n",
    );
    project.warez(&["run", PIPELINE]).assert_code(0);
    assert_eq!(project.read("models/m/a"), "3\n");
}

#[test]
fn duplicate_stage_names() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo a\n  a:\n    cmd: echo b\n",
        "pipelines/p.yaml:6:3: duplicate stage name `a` (first defined on line 4)",
    );
}

/// serde would keep the last of two equal keys: a repeat is refused at every level, with both
/// places (line 1 is `project_dir: ..`).
#[test]
fn repeated_keys_at_every_level() {
    let cases = [
        ("name: t\nname: u\nstages:\n  a:\n    cmd: echo\n", "3:1: duplicate key `name` (first on line 2)"),
        ("name: t\nparams: { s: 1, s: 2 }\nstages:\n  a:\n    cmd: echo\n", "3:17: duplicate key `s` (first on line 3)"),
        ("name: t\nstages:\n  a:\n    cmd: echo\n    cmd: again\n", "6:5: duplicate key `cmd` (first on line 5)"),
        ("name: t\nstages:\n  a:\n    cmd: echo\n    params: { p: 1, p: 2 }\n", "6:21: duplicate key `p` (first on line 6)"),
        ("name: t\nstages:\n  a:\n    cmd: echo\n    params: { p: { x: 1, x: 2 } }\n", "6:26: duplicate key `x` (first on line 6)"),
        ("name: t\nstages:\n  a:\n    cmd: echo ${item.k}\n    matrix: { k: [1, 2], k: [3] }\n", "6:26: duplicate key `k` (first on line 6)"),
        ("name: t\nstages:\n  a:\n    kind: ingest\n    deps: { ratings: data/in.txt, ratings: data/in.txt }\n", "6:35: duplicate key `ratings` (first on line 6)"),
    ];
    for (yaml, message) in cases {
        rejected(yaml, &format!("pipelines/p.yaml:{message}"));
    }
}

#[test]
fn unknown_kind_suggests_the_closest() {
    rejected(
        "name: t\nstages:\n  ing:\n    kind: ingset\n",
        "pipelines/p.yaml:5:11: stage `ing`: unknown kind `ingset` (did you mean `ingest`?)",
    );
}

#[test]
fn unknown_param_of_a_kind() {
    rejected(
        "name: t\nstages:\n  gen:\n    kind: generate\n    params: { definitely_not_a_param: 1 }\n",
        "pipelines/p.yaml:6:15: stage `gen`: kind `generate` has no param `definitely_not_a_param`",
    );
}

#[test]
fn unknown_role_of_a_kind() {
    rejected(
        "name: t\nstages:\n  gen:\n    kind: generate\n    outs: { nope: out/x }\n",
        "pipelines/p.yaml:6:13: stage `gen`: unknown outs role `nope`",
    );
}

#[test]
fn dependency_nothing_provides() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: cat data/missing.txt\n    deps: [data/in.txt, data/missing.txt]\n",
        "pipelines/p.yaml:6:25: stage `a`: dependency `data/missing.txt` is produced by no stage and no such file exists",
    );
}

#[test]
fn two_stages_writing_one_output() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    outs: [out/x]\n  b:\n    cmd: echo\n    outs: [out/./x]\n",
        "pipelines/p.yaml:9:12: stage `b` writes `out/x`, which stage `a` (as `out/x`) also writes",
    );
}

#[test]
fn one_stage_writing_nested_outputs() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    outs: [out/x, out/x/y]\n",
        "pipelines/p.yaml:6:19: stage `a` writes `out/x/y`, which stage `a` (as `out/x`) also writes",
    );
}

#[test]
fn outputs_must_stay_inside_the_project() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    outs: [/tmp/x]\n",
        "pipelines/p.yaml:6:12: stage `a`: output `/tmp/x` is outside the project folder",
    );
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    outs: [out/../../x]\n",
        "stage `a`: output `../x` is outside the project folder",
    );
}

#[test]
fn cycles_print_their_chain_at_the_dependency_that_closes_it() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    deps: [out/b]\n    outs: [out/a]\n  b:\n    cmd: echo\n    deps: [out/a]\n    outs: [out/b]\n",
        "pipelines/p.yaml:6:12: dependency cycle: a -> b -> a (stage `a` reads `out/b`, an output of `b`)",
    );
    // Three stages, the closing dependency in block style, after an unrelated one.
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo\n    deps:\n      - data/in.txt\n      - out/c/x\n    outs: [out/a]\n  b:\n    cmd: echo\n    deps: [out/a]\n    outs: [out/b]\n  c:\n    cmd: echo\n    deps: [out/b]\n    outs: [out/c]\n",
        "pipelines/p.yaml:8:9: dependency cycle: a -> b -> c -> a (stage `a` reads `out/c/x`, an output of `c`)",
    );
    // A stage reading its own output is caught earlier, at the output's place.
    rejected(
        "name: t\nstages:\n  self:\n    cmd: echo\n    deps: [out/s/in]\n    outs: [out/s]\n",
        "pipelines/p.yaml:7:12: stage `self`: output `out/s` contains its own dependency `out/s/in`",
    );
}

#[test]
fn a_bad_set_value_names_the_set_flag_not_a_line_of_the_file() {
    let project = Project::new();
    project.pipeline(
        "name: t\nparams: { rows: 10 }\nstages:\n  gen:\n    kind: generate\n    params: { customers: 5 }\n",
    );
    // The value comes from --set: the flag is named, not the `kind:` line or the params.
    for (assignment, param) in [("gen.rows=-3", "rows"), ("gen.customers=oops", "customers")] {
        let run = project.warez(&["run", PIPELINE, "--set", assignment]);
        run.assert_code(2).assert_stderr_contains(&format!(
            "error: --set {assignment}: stage `gen`: param `{param}`"
        ));
        assert!(!run.stderr.contains("p.yaml"), "{}", run.stderr);
    }
    // The last --set of a param is the one in force, and the one blamed.
    project
        .warez(&[
            "run",
            PIPELINE,
            "--set",
            "gen.rows=-1",
            "--set",
            "gen.rows=-2",
        ])
        .assert_code(2)
        .assert_stderr_contains("--set gen.rows=-2: stage `gen`: param `rows`");
    // Without --set, the file's own value is blamed where it is: the stage's params …
    project.pipeline(
        "name: t\nparams: { rows: 10 }\nstages:\n  gen:\n    kind: generate\n    params: { customers: -5 }\n",
    );
    project
        .warez(&["run", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains("pipelines/p.yaml:7:26: stage `gen`: param `customers`");
    // … or the global params.
    project.pipeline("name: t\nparams: { rows: -10 }\nstages:\n  gen:\n    kind: generate\n");
    project
        .warez(&["run", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains("pipelines/p.yaml:3:17: stage `gen`: param `rows`")
        .assert_stderr_contains("(from the global `params:`)");
}

/// A --set value gets the checks a param in the file gets: what two different values would
/// share in the stage key, tags, merge keys, deep nesting and numbers beyond 64 bits are
/// refused, naming the flag (abridged when huge), and nothing runs.
#[test]
fn set_values_are_refused_as_the_file_refuses_them() {
    let project = Project::new();
    project.pipeline(
        "name: t\nstages:\n  a:\n    cmd: echo ${params.p} > out/a.txt\n    outs: [out/a.txt]\n    params: { p: 1 }\n",
    );
    let deep = format!("a.p={}", "[".repeat(100_000));
    let cases = [
        ("a.p=.nan", "value: `.nan` is not a finite number"),
        (
            "a.p=[1, .inf]",
            "value at `1`: `.inf` is not a finite number",
        ),
        ("a.p=!foo x", "value: YAML tag `!foo` is not supported"),
        (
            "a.p=!!binary aGk=",
            "value: YAML tag `!!binary` is not supported",
        ),
        (
            "a.p={<<: {b: 1}}",
            "value at `<<`: YAML merge keys (`<<`) are not supported",
        ),
        (
            "a.p={1: x, \"1\": y}",
            "value at `1`: keys `1` and `\"1\"` are both the name `1`",
        ),
        (
            "a.p=99999999999999999999",
            "value: the whole number `99999999999999999999` is out of range",
        ),
        (
            deep.as_str(),
            "(100004 characters): value: lists and maps (`[`, `{`) nested too deeply",
        ),
    ];
    for (assignment, message) in cases {
        let run = project.warez(&["run", PIPELINE, "--set", assignment]);
        run.assert_code(2).assert_stderr_contains(message);
        let shown: String = assignment.chars().take(80).collect();
        run.assert_stderr_contains(&format!("error: --set {shown}"));
        assert!(run.stderr.len() < 1_000, "abridged: {}", run.stderr.len());
        assert!(
            !project.abs("out/a.txt").exists(),
            "{assignment}: nothing ran"
        );
    }
    // What the file accepts, --set accepts.
    project
        .warez(&["run", PIPELINE, "--set", "a.p=!!str 2.5"])
        .assert_code(0);
    assert_eq!(project.read("out/a.txt"), "2.5\n");
}

#[test]
fn unknown_variable_in_a_command() {
    rejected(
        "name: t\nstages:\n  a:\n    cmd: echo ${params.nope}\n",
        "pipelines/p.yaml:5:10: stage `a`: unknown variable `${params.nope}`",
    );
}

#[test]
fn kind_and_cmd_together_or_neither() {
    rejected(
        "name: t\nstages:\n  a:\n    kind: generate\n    cmd: echo\n",
        "stage `a`: a stage has either `kind:` or `cmd:`, not both",
    );
    rejected(
        "name: t\nstages:\n  a:\n    deps: [data/in.txt]\n",
        "pipelines/p.yaml:4:3: stage `a`: needs `kind:`",
    );
}

#[test]
fn overrides_name_a_real_stage() {
    let project = Project::new();
    project
        .pipeline("name: t\nstages:\n  train:\n    cmd: echo ${params.x}\n    params: { x: 1 }\n");
    project
        .warez(&["run", PIPELINE, "--set", "trian.x=2"])
        .assert_code(2)
        .assert_stderr_contains("--set trian.x=2: no stage `trian` (did you mean `train`?)");
    project
        .warez(&["run", PIPELINE, "--set", "train.y=2"])
        .assert_code(2)
        .assert_stderr_contains("--set train.y=2: stage `train` has no param `y`");
    project
        .warez(&["run", PIPELINE, "--set", "train"])
        .assert_code(2)
        .assert_stderr_contains("--set train: expected stage.param=value");
}

#[test]
fn missing_pipeline_file() {
    let project = Project::new();
    project
        .warez(&["status", "pipelines/none.yaml"])
        .assert_code(2)
        .assert_stderr_contains("pipelines/none.yaml: cannot read the pipeline");
}

/// Reading a named pipe would wait for a writer, `/dev/zero` would never end.
#[test]
fn a_pipeline_path_that_is_no_file_is_refused_without_reading_it() {
    let project = Project::new();
    project.pipeline("name: t\nstages:\n  a:\n    cmd: echo\n");
    let made = std::process::Command::new("mkfifo")
        .arg(project.abs("pipe.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    for (path, said) in [
        (
            "pipe.yaml",
            "it is a named pipe, socket or device, not a file",
        ),
        (
            "/dev/zero",
            "it is a named pipe, socket or device, not a file",
        ),
        ("pipelines", "it is a folder, not a file"),
    ] {
        let child = project.command(&["run", path]).spawn().unwrap();
        wait_with_timeout(child, std::time::Duration::from_secs(30), path)
            .assert_code(2)
            .assert_stderr_contains(&format!("{path}: cannot read the pipeline: {said}"));
    }
}

#[test]
fn stage_names_are_plain_words() {
    rejected(
        "name: t\nstages:\n  a/b:\n    cmd: echo\n",
        "pipelines/p.yaml:4:3: stage `a/b`: a stage name is letters, digits, `_` and `-`",
    );
    // It names files in the cache: one too long for a file name ran, then failed to record.
    rejected(
        &format!("name: t\nstages:\n  {}:\n    cmd: echo\n", "s".repeat(300)),
        "pipelines/p.yaml:4:3: stage `ssssssssssssssssssssssssssssssssssssssss…`: the stage name is 300 bytes long, more than 200",
    );
}

#[test]
fn a_file_that_is_no_pipeline_is_quoted_by_its_start_only() {
    // A CSV given as the pipeline reads as one long text: the message used to quote all of it
    // (200 kB for the committed data set).
    let project = Project::new();
    let row = "db38e9a4-004c-4d8a-bea1-36cdb31502d3,13ce5db6-190f-48ab-9d26-0542a8be0604,0.5\n";
    project.file(
        PIPELINE,
        &format!(
            "customerId,productId,scaled_purchase_freq\n{}",
            row.repeat(2000)
        ),
    );
    let run = project.warez(&["run", PIPELINE]);
    run.assert_code(2).assert_stderr_contains(
        "pipelines/p.yaml:1:1: invalid type: string \"customerId,productId,scaled_purchase_freq db38e9a4-004c-4d8a…\", expected a pipeline",
    );
    assert!(run.stderr.len() < 400, "{} bytes", run.stderr.len());
}

#[test]
fn a_pipeline_name_is_one_folder_name() {
    // `name: ""` wrote into `models/` itself; `name: "a\nb"` put a line break in the lock file;
    // `name: ../../x` was reported as a model_path the file does not hold.
    for (name, shown) in [
        ("\"\"", "\"\""),
        ("\"a/b\"", "\"a/b\""),
        ("../../x", "\"../../x\""),
        ("\"a\\nb\"", "\"a\\nb\""),
    ] {
        rejected(
            &format!("name: {name}\nstages:\n  a:\n    cmd: echo\n"),
            &format!("pipelines/p.yaml:2:7: name {shown}: a pipeline's name is one folder name"),
        );
    }
}

#[test]
fn a_list_or_map_where_a_number_belongs_is_shown_on_one_line() {
    // It was shown in YAML's block style, one line per item: "found - 1\n- 2".
    let project = Project::new();
    project.pipeline("name: t\nstages:\n  gen:\n    kind: generate\n");
    for (value, shown) in [("[1, 2]", "[1,2]"), ("{a: [1, b]}", "{\"a\":[1,\"b\"]}")] {
        project
            .warez(&["run", PIPELINE, "--set", &format!("gen.rows={value}")])
            .assert_code(2)
            .assert_stderr_contains(&format!(
                "stage `gen`: param `rows`: expected a whole number ≥ 0, found {shown}\n"
            ));
    }
}

#[test]
fn a_set_flag_is_shown_with_its_control_characters_escaped() {
    // A line break or an escape sequence in a --set value reached the terminal as it was.
    let project = Project::new();
    project.pipeline("name: t\nstages:\n  gen:\n    kind: generate\n");
    project
        .warez(&["run", PIPELINE, "--set", "gen.rows=a\nb"])
        .assert_code(2)
        .assert_stderr_contains("error: --set gen.rows=a\\nb: stage `gen`: param `rows`");
    project
        .warez(&["run", PIPELINE, "--set", "gen.rows=x\u{1b}[2J"])
        .assert_code(2)
        .assert_stderr_contains("error: --set gen.rows=x\\u{1b}[2J: ");
}
