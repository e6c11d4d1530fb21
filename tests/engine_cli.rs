//! The other commands: status, explain, dag, gc, clean, run --check, -j.

mod engine_support;

use engine_support::{Project, PIPELINE};

const PAIR: &str = r#"
name: pair
stages:
  first:
    cmd: tr a-z A-Z < data/in.txt > out/first.txt
    deps: [data/in.txt]
    outs: [out/first.txt]
  second:
    cmd: cat out/first.txt > out/second.txt; echo ${params.k} >> out/second.txt
    deps: [out/first.txt]
    outs: [out/second.txt]
    params: { k: 1 }
"#;

fn pair() -> Project {
    let project = Project::new();
    project.file("data/in.txt", "abc\n").pipeline(PAIR);
    project
}

#[test]
fn status_says_fresh_or_stale_and_why() {
    let project = pair();
    project
        .warez(&["status", PIPELINE])
        .assert_code(1)
        .assert_stdout_contains("stale  first")
        .assert_stdout_contains("never run");
    project.run(&[]).assert_code(0);
    project
        .warez(&["status", PIPELINE])
        .assert_code(0)
        .assert_stdout_contains("fresh  first")
        .assert_stdout_contains("fresh  second");
    project.file("data/in.txt", "xyz\n");
    let status = project.warez(&["status", PIPELINE]);
    status
        .assert_code(1)
        .assert_stdout_contains("input `data/in.txt` changed")
        .assert_stdout_contains("upstream stage `first` is stale");
    let json = project.warez(&["status", "--json", PIPELINE]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["up_to_date"], false);
    assert_eq!(value["stages"][0]["reasons"][0]["reason"], "input_changed");
    assert_eq!(value["stages"][0]["reasons"][0]["path"], "data/in.txt");
}

#[test]
fn explain_names_the_param_with_old_and_new_values() {
    let project = pair();
    project.run(&[]).assert_code(0);
    project
        .warez(&["explain", "second", PIPELINE, "--set", "second.k=7"])
        .assert_code(1)
        .assert_stdout_contains("param `k` changed: 1 → 7");
    project
        .warez(&["explain", "second", PIPELINE])
        .assert_code(0)
        .assert_stdout_contains("up to date");
    project
        .warez(&["explain", "secnd", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains("no stage `secnd` in the pipeline (did you mean `second`?)");
    project.run(&["--set", "second.k=7"]).assert_code(0);
    project
        .warez(&["explain", "second", PIPELINE])
        .assert_code(1)
        .assert_stdout_contains("param `k` changed: 7 → 1")
        .assert_stdout_contains("`run` restores it without running");
}

#[test]
fn dag_in_three_formats() {
    let project = pair();
    project
        .warez(&["dag", PIPELINE])
        .assert_code(0)
        .assert_stdout_contains("first\nsecond <- first\n");
    project
        .warez(&["dag", PIPELINE, "--format", "dot"])
        .assert_stdout_contains("\"first\" -> \"second\";");
    project
        .warez(&["dag", PIPELINE, "--format", "mermaid"])
        .assert_stdout_contains("flowchart LR")
        .assert_stdout_contains("s0 --> s1");
}

#[test]
fn gc_keeps_what_the_lock_file_references_and_dry_run_changes_nothing() {
    let project = pair();
    project.run(&["--set", "second.k=2"]).assert_code(0);
    project.run(&[]).assert_code(0);
    let objects = || project.tree("cache/objects").len();
    let before = objects();
    // Every record is kept by default: nothing to collect.
    project.warez(&["gc", PIPELINE]).assert_code(0);
    assert_eq!(objects(), before);
    let dry = project.warez(&["gc", PIPELINE, "--dry-run", "--max-age-days", "0"]);
    dry.assert_code(0).assert_stdout_contains("would remove");
    assert_eq!(objects(), before);
    // Age 0 drops every record the lock file does not name: the k=2 output goes.
    project
        .warez(&["gc", PIPELINE, "--max-age-days", "0"])
        .assert_code(0);
    assert_eq!(objects(), before - 1);
    let run = project.run(&[]);
    assert_eq!(run.with_outcome("up_to_date").len(), 2);
    std::fs::remove_file(project.abs("out/second.txt")).unwrap();
    assert_eq!(project.run(&[]).outcomes()["second"], "restored");
}

#[test]
fn clean_removes_declared_outputs_and_nothing_else() {
    let project = pair();
    project.file("out/mine.txt", "keep me\n");
    project.run(&[]).assert_code(0);
    project.warez(&["clean", PIPELINE]).assert_code(0);
    assert!(!project.exists("out/first.txt"));
    assert!(!project.exists("out/second.txt"));
    assert_eq!(project.read("out/mine.txt"), "keep me\n");
    assert_eq!(project.read("data/in.txt"), "abc\n");
    // The cache still restores everything.
    assert_eq!(project.run(&[]).with_outcome("restored").len(), 2);
    project.file("cache/notes.txt", "mine\n");
    project
        .warez(&["clean", PIPELINE, "--cache-too"])
        .assert_code(0);
    assert!(!project.exists("cache/objects"));
    assert_eq!(project.read("cache/notes.txt"), "mine\n");
    // Nothing left to restore: both run again, reproducing the recorded bytes.
    assert_eq!(project.run(&[]).with_outcome("ran_same_outputs").len(), 2);
}

#[test]
fn check_passes_when_reproducible_and_names_the_first_differing_artifact() {
    let project = pair();
    project
        .warez(&["run", "--check", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains("no recorded run to check against");
    project.run(&[]).assert_code(0);
    project
        .warez(&["run", "--check", PIPELINE])
        .assert_code(0)
        .assert_stderr_contains("every output rebuilt from scratch matches the lock file");
    project.file("data/in.txt", "changed\n");
    project
        .warez(&["run", "--check", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains(
            "the lock file is out of date for stage `first` (input `data/in.txt` changed",
        );
    let flaky = Project::new();
    flaky.file("data/in.txt", "abc\n").pipeline(
        r#"
name: flaky
stages:
  stamp:
    cmd: date +%s%N > out/stamp.txt
    outs: [out/stamp.txt]
  copy:
    cmd: cp out/stamp.txt out/copy.txt
    deps: [out/stamp.txt]
    outs: [out/copy.txt]
"#,
    );
    flaky.run(&[]).assert_code(0);
    flaky
        .warez(&["run", "--check", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains(
            "`out/stamp.txt` (made by stage `stamp`, a data-only artifact) differs",
        )
        .assert_stderr_contains("also `out/copy.txt`");
}

#[test]
fn jobs_limit_how_many_stages_run_at_once() {
    // Each stage writes when it started and ended (nanoseconds).
    let stage = |name: &str| {
        format!(
            "  {name}:\n    cmd: s=$(date +%s%N); sleep 0.3; echo $s $(date +%s%N) > out/{name}.txt\n    outs: [out/{name}.txt]\n"
        )
    };
    let yaml = format!("name: par\nstages:\n{}{}", stage("x"), stage("y"));
    let overlapped = |jobs: &str| {
        let project = Project::new();
        project.pipeline(&yaml);
        project.run(&["-j", jobs]).assert_code(0);
        let span = |name: &str| -> (u128, u128) {
            let text = project.read(&format!("out/{name}.txt"));
            let mut parts = text.split_whitespace().map(|n| n.parse().unwrap());
            (parts.next().unwrap(), parts.next().unwrap())
        };
        let (x, y) = (span("x"), span("y"));
        x.0 < y.1 && y.0 < x.1
    };
    assert!(!overlapped("1"), "-j 1 runs one stage at a time");
    assert!(overlapped("2"), "-j 2 runs both at once");
}

#[test]
fn a_cache_elsewhere_via_flag_or_environment() {
    let project = pair();
    let cache = tempfile::tempdir().unwrap();
    let cache_path = cache.path().to_str().unwrap();
    project.run(&["--cache", cache_path]).assert_code(0);
    assert!(!project.exists("cache"));
    std::fs::remove_file(project.abs("out/first.txt")).unwrap();
    let run = engine_support::Run::from_output(
        project
            .command(&["run", "--json", PIPELINE])
            .env("WAREZ_CACHE", cache_path)
            .output()
            .unwrap(),
    );
    assert_eq!(run.outcomes()["first"], "restored");
}
