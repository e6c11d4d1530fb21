//! Incremental runs through the real binary: what reruns, what is restored, what is cut off.

mod engine_support;

use engine_support::{touch, Project, PIPELINE};

/// a → b → c → e, and d on its own. Every command also appends its name to `ran.log`.
const CHAIN: &str = r#"
name: chain
stages:
  a:
    cmd: echo a >> ran.log; tr a-z A-Z < data/a.txt > out/a.txt
    deps: [data/a.txt]
    outs: [out/a.txt]
  b:
    cmd: echo b >> ran.log; cat out/a.txt out/a.txt > out/b.txt; echo ${params.n} >> out/b.txt
    deps: [out/a.txt]
    outs: [out/b.txt]
    params: { n: 1 }
  c:
    cmd: echo c >> ran.log; wc -c < out/b.txt | tr -d ' ' > out/c.txt
    deps: [out/b.txt]
    outs: [out/c.txt]
  e:
    cmd: echo e >> ran.log; cat out/c.txt out/c.txt > out/e.txt
    deps: [out/c.txt]
    outs: [out/e.txt]
  d:
    cmd: echo d >> ran.log; cp data/d.txt out/d.txt
    deps: [data/d.txt]
    outs: [out/d.txt]
"#;

fn chain() -> Project {
    let project = Project::new();
    project
        .file("data/a.txt", "hello\n")
        .file("data/d.txt", "dee\n")
        .pipeline(CHAIN);
    project
}

fn ran_log(project: &Project) -> Vec<String> {
    if !project.exists("ran.log") {
        return Vec::new();
    }
    project
        .read("ran.log")
        .lines()
        .map(str::to_string)
        .collect()
}

fn clear_log(project: &Project) {
    let _ = std::fs::remove_file(project.abs("ran.log"));
}

#[test]
fn first_run_runs_all_then_nothing() {
    let project = chain();
    let first = project.run(&[]);
    first.assert_code(0);
    assert_eq!(first.with_outcome("ran"), ["a", "b", "c", "d", "e"]);
    assert_eq!(project.read("out/b.txt"), "HELLO\nHELLO\n1\n");
    assert_eq!(project.read("out/e.txt"), "14\n14\n");
    clear_log(&project);
    let second = project.run(&[]);
    second.assert_code(0);
    assert_eq!(second.with_outcome("up_to_date").len(), 5);
    assert!(ran_log(&project).is_empty());
}

#[test]
fn touching_an_input_reruns_nothing() {
    let project = chain();
    project.run(&[]).assert_code(0);
    clear_log(&project);
    touch(&project.abs("data/a.txt"));
    touch(&project.abs("out/b.txt"));
    let run = project.run(&[]);
    run.assert_code(0);
    assert_eq!(run.with_outcome("up_to_date").len(), 5);
    assert!(ran_log(&project).is_empty());
}

#[test]
fn content_change_reruns_exactly_the_stages_below() {
    let project = chain();
    project.run(&[]).assert_code(0);
    clear_log(&project);
    project.file("data/a.txt", "hello world\n");
    let run = project.run(&[]);
    run.assert_code(0);
    assert_eq!(run.with_outcome("ran"), ["a", "b", "c", "e"]);
    assert_eq!(run.with_outcome("up_to_date"), ["d"]);
    assert_eq!(ran_log(&project), ["a", "b", "c", "e"]);
    assert_eq!(project.read("out/b.txt"), "HELLO WORLD\nHELLO WORLD\n1\n");
}

#[test]
fn param_change_reruns_the_stage_and_early_cutoff_stops_below() {
    let project = chain();
    project.run(&[]).assert_code(0);
    clear_log(&project);
    // n: 1 → 2 changes b's bytes but not its size, so c reproduces its output and e is cut off.
    let run = project.run(&["--set", "b.n=2"]);
    run.assert_code(0);
    let outcomes = run.outcomes();
    assert_eq!(outcomes["a"], "up_to_date");
    assert_eq!(outcomes["b"], "ran");
    assert_eq!(outcomes["c"], "ran_same_outputs");
    assert_eq!(outcomes["e"], "cut_off");
    assert_eq!(ran_log(&project), ["b", "c"]);
    assert_eq!(project.read("out/b.txt"), "HELLO\nHELLO\n2\n");
}

#[test]
fn switching_a_param_back_restores_the_older_run_without_running() {
    let project = chain();
    project.run(&[]).assert_code(0);
    project.run(&["--set", "b.n=2"]).assert_code(0);
    clear_log(&project);
    let dry = project.run(&["--dry-run"]);
    dry.assert_code(1);
    assert_eq!(dry.outcomes()["b"], "would_restore");
    let back = project.run(&[]);
    back.assert_code(0);
    assert_eq!(back.outcomes()["b"], "restored");
    assert!(
        ran_log(&project).is_empty(),
        "nothing reran: {:?}",
        ran_log(&project)
    );
    assert_eq!(project.read("out/b.txt"), "HELLO\nHELLO\n1\n");
}

#[test]
fn deleted_or_edited_outputs_are_restored_from_the_cache() {
    let project = chain();
    project.run(&[]).assert_code(0);
    clear_log(&project);
    std::fs::remove_file(project.abs("out/a.txt")).unwrap();
    project.file("out/d.txt", "tampered\n");
    let run = project.run(&[]);
    run.assert_code(0);
    assert_eq!(run.with_outcome("restored"), ["a", "d"]);
    assert!(ran_log(&project).is_empty());
    assert_eq!(project.read("out/a.txt"), "HELLO\n");
    assert_eq!(project.read("out/d.txt"), "dee\n");
}

#[test]
fn a_corrupted_cache_object_is_detected_and_the_stage_rebuilt() {
    let project = chain();
    project.run(&[]).assert_code(0);
    clear_log(&project);
    // Corrupt every object, then make `d` need a restore.
    for shard in std::fs::read_dir(project.abs("cache/objects")).unwrap() {
        for object in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = object.unwrap().path();
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, "garbage").unwrap();
        }
    }
    std::fs::remove_file(project.abs("out/d.txt")).unwrap();
    let run = project.run(&[]);
    run.assert_code(0).assert_stderr_contains("corrupted");
    // It ran again (reproducing the bytes the lock file records).
    assert_eq!(run.outcomes()["d"], "ran_same_outputs");
    assert_eq!(ran_log(&project), ["d"]);
    assert_eq!(project.read("out/d.txt"), "dee\n");
}

#[test]
fn folder_outputs_are_cached_and_restored() {
    let project = Project::new();
    project.file("data/x", "x\n").pipeline(
        r#"
name: folders
stages:
  make:
    cmd: mkdir -p out/saved/sub && cp data/x out/saved/sub/x && echo v > out/saved/version && echo make >> ran.log
    deps: [data/x]
    outs: [out/saved]
  use:
    cmd: cat out/saved/sub/x out/saved/version > out/used.txt
    deps: [out/saved]
    outs: [out/used.txt]
"#,
    );
    project.run(&[]).assert_code(0);
    std::fs::remove_dir_all(project.abs("out/saved")).unwrap();
    let run = project.run(&[]);
    run.assert_code(0);
    assert_eq!(run.outcomes()["make"], "restored");
    assert_eq!(run.outcomes()["use"], "up_to_date");
    assert_eq!(project.read("out/saved/sub/x"), "x\n");
    assert_eq!(project.read("ran.log"), "make\n");
}

#[test]
fn a_failed_stage_stops_its_dependents_lets_others_finish_and_leaves_no_output() {
    let project = Project::new();
    project.pipeline(
        r#"
name: failing
stages:
  broken:
    cmd: echo partial > out/broken.txt; echo "something went wrong here" >&2; exit 3
    outs: [out/broken.txt]
  after:
    cmd: cp out/broken.txt out/after.txt
    deps: [out/broken.txt]
    outs: [out/after.txt]
  fine:
    cmd: echo ok > out/fine.txt
    outs: [out/fine.txt]
"#,
    );
    let run = project.warez(&["run", PIPELINE]);
    run.assert_code(1)
        .assert_stderr_contains("stage `broken`: command failed")
        .assert_stderr_contains("something went wrong here");
    assert!(
        !run.stderr.contains('\x1b'),
        "NO_COLOR and no terminal: plain text"
    );
    assert!(
        run.stderr.contains("[fine] running"),
        "plain log lines off a terminal"
    );
    assert!(!project.exists("out/broken.txt"), "partial output removed");
    assert!(!project.exists("out/after.txt"));
    assert_eq!(project.read("out/fine.txt"), "ok\n");
    let json = project.run(&[]);
    assert_eq!(json.outcomes()["broken"], "failed");
    assert_eq!(json.outcomes()["after"], "skipped");
    assert_eq!(json.outcomes()["fine"], "up_to_date");
    assert!(!project.read("pipelines/p.lock").contains("broken:"));
}

#[test]
fn a_command_that_does_not_write_a_declared_output_fails() {
    let project = Project::new();
    project.pipeline(
        r#"
name: lazy
stages:
  lazy:
    cmd: "true"
    outs: [out/never.txt]
"#,
    );
    project
        .warez(&["run", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains("did not write declared output `out/never.txt`");
}

#[test]
fn an_input_changed_while_the_stage_ran_is_reported_and_nothing_recorded() {
    let project = Project::new();
    project.file("data/in.txt", "1\n").pipeline(
        r#"
name: racy
stages:
  racy:
    cmd: cp data/in.txt out/copy.txt; echo more >> data/in.txt
    deps: [data/in.txt]
    outs: [out/copy.txt]
"#,
    );
    let run = project.warez(&["run", PIPELINE]);
    run.assert_code(1)
        .assert_stderr_contains("input `data/in.txt` changed")
        .assert_stderr_contains("nothing recorded");
    assert!(
        !project.exists("pipelines/p.lock") || !project.read("pipelines/p.lock").contains("racy:")
    );
}

#[test]
fn params_reach_commands_as_text_and_environment() {
    let project = Project::new();
    project.pipeline(
        r#"
name: params
stages:
  show:
    cmd: echo "${params.learning_rate} $WAREZ_PARAM_LEARNING_RATE ${params.label}" > out/p.txt
    outs: [out/p.txt]
    params: { learning_rate: 0.5, label: hi there }
"#,
    );
    project.run(&[]).assert_code(0);
    assert_eq!(project.read("out/p.txt"), "0.5 0.5 hi there\n");
}

#[test]
fn stage_selection_runs_the_stage_and_what_it_needs() {
    let project = chain();
    let run = project.run(&["--stage", "b"]);
    run.assert_code(0);
    assert_eq!(run.with_outcome("ran"), ["a", "b"]);
    assert!(!project.exists("out/d.txt"));
    project
        .warez(&["run", PIPELINE, "--stage", "bb"])
        .assert_code(2)
        .assert_stderr_contains("no stage `bb` in the pipeline (did you mean `b`?)");
}

#[test]
fn dry_run_changes_nothing_and_exits_non_zero_when_stale() {
    let project = chain();
    let dry = project.run(&["--dry-run"]);
    dry.assert_code(1);
    assert_eq!(dry.with_outcome("would_run").len(), 5);
    assert!(!project.exists("out/a.txt"));
    project.run(&[]).assert_code(0);
    project.run(&["--dry-run"]).assert_code(0);
    let forced = project.run(&["--force", "--stage", "a"]);
    assert_eq!(forced.with_outcome("ran_same_outputs"), ["a"]);
}

#[test]
fn the_lock_file_is_deterministic_and_relative() {
    let one = chain();
    let two = chain();
    one.run(&[]).assert_code(0);
    two.run(&["-j", "1"]).assert_code(0);
    let lock = one.read("pipelines/p.lock");
    assert_eq!(lock, two.read("pipelines/p.lock"));
    assert!(
        !lock.contains(one.path().to_str().unwrap()),
        "no absolute paths:\n{lock}"
    );
    for stage in ["a:", "b:", "c:", "e:", "d:"] {
        assert!(lock.contains(stage), "{stage} in\n{lock}");
    }
}

#[test]
fn a_moved_project_keeps_its_cache() {
    let project = chain();
    project.run(&[]).assert_code(0);
    let moved = Project::new();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", project.path().display()))
        .arg(moved.path())
        .status()
        .unwrap();
    assert!(status.success());
    let run = moved.run(&[]);
    run.assert_code(0);
    assert_eq!(run.with_outcome("up_to_date").len(), 5);
}

#[test]
fn built_in_kinds_write_through_staging_to_their_default_outputs() {
    let project = Project::new();
    project.pipeline(
        r#"
name: gen
params: { seed: 5 }
stages:
  gen:
    kind: generate
    params: { rows: 30, customers: 6, products: 5 }
  count:
    cmd: wc -l < ${model_path}/ratings.csv > out/lines.txt
    deps: [${model_path}/ratings.csv]
    outs: [out/lines.txt]
"#,
    );
    let first = project.run(&[]);
    first.assert_code(0);
    assert_eq!(first.with_outcome("ran"), ["count", "gen"]);
    let csv = project.read("models/gen/ratings.csv");
    assert_eq!(
        project.read("out/lines.txt").trim(),
        csv.lines().count().to_string()
    );
    assert_eq!(project.run(&[]).with_outcome("up_to_date").len(), 2);
    let reseeded = project.run(&["--set", "gen.seed=6"]);
    assert_eq!(reseeded.outcomes()["gen"], "ran");
    assert_ne!(project.read("models/gen/ratings.csv"), csv);
    assert!(
        std::fs::read_dir(project.abs("cache/tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no staging folder left behind"
    );
}
