//! A broken lock file (empty, garbage, git merge-conflict markers, a field without a value, a
//! stage key or an input or output hash that is no hash, or the lock file of another pipeline)
//! costs nothing: `status` warns
//! and reports the stages stale without touching it, `run` restores every stage from the cache
//! without rerunning any and writes the same lock file a clean run wrote; while a stage fails,
//! the broken file is left as it is.

mod engine_support;

use engine_support::{Project, PIPELINE};

const LOCK: &str = "pipelines/p.lock";

/// Two stages; every command appends its name to `ran.log`. `b` fails when its `fail` param
/// is not 0.
const PIPELINE_YAML: &str = r#"
name: locked
stages:
  a:
    cmd: echo a >> ran.log; tr a-z A-Z < data/in.txt > out/a.txt
    deps: [data/in.txt]
    outs: [out/a.txt]
  b:
    cmd: echo b >> ran.log; test ${params.fail} = 0 && cat out/a.txt out/a.txt > out/b.txt
    deps: [out/a.txt]
    outs: [out/b.txt]
    params: { fail: 0 }
"#;

/// A project after one clean run, and the lock file that run wrote.
fn project_after_a_run() -> (Project, String) {
    let project = Project::new();
    project
        .file("data/in.txt", "hello\n")
        .pipeline(PIPELINE_YAML);
    project.run(&[]).assert_code(0);
    let lock = project.read(LOCK);
    std::fs::remove_file(project.abs("ran.log")).unwrap();
    (project, lock)
}

const CONFLICT: &str = "pipeline: locked\nstages:\n<<<<<<< HEAD\n  a:\n    key: 1\n=======\n  a:\n    key: 2\n>>>>>>> feature\n";

const OTHER_PIPELINE: &str = "pipelines/p.lock:2: the lock file records pipeline `other`, not \
                              `locked` (copied from another pipeline, or the pipeline renamed?)";

/// Each broken lock file and what the warning must say about it; `clean` is the lock file a
/// clean run wrote.
fn broken_files(clean: &str) -> Vec<(&'static str, String, String)> {
    // Stage `a`'s output hash taken out by hand: `outputs:` is left without a value.
    let lines: Vec<&str> = clean.lines().collect();
    let outputs = lines
        .iter()
        .position(|line| *line == "    outputs:")
        .unwrap();
    let mut no_outputs = lines.clone();
    no_outputs.remove(outputs + 1);
    assert!(no_outputs[outputs + 1].starts_with("  b:"), "{clean}");
    // Stage `a`'s key edited by hand into something that is no key.
    let key = lines
        .iter()
        .position(|line| line.starts_with("    key: "))
        .unwrap();
    let mut not_a_key = lines.clone();
    not_a_key[key] = "    key: zz";
    // Stage `a`'s input and output hashes edited by hand into something that is no hash.
    let hash_of = |path: &str| {
        let line = lines
            .iter()
            .position(|line| line.starts_with(&format!("      {path}: ")))
            .unwrap();
        let mut edited = lines.clone();
        let entry = format!("      {path}: zz");
        edited[line] = &entry;
        (edited.join("\n") + "\n", line + 1)
    };
    let (input_not_a_hash, input_line) = hash_of("data/in.txt");
    let (output_not_a_hash, output_line) = hash_of("out/a.txt");
    vec![
        (
            "empty",
            String::new(),
            "pipelines/p.lock: the lock file is empty".into(),
        ),
        (
            "garbage",
            "\u{1}garbage: [unclosed\n".into(),
            "pipelines/p.lock: not a valid lock file:".into(),
        ),
        (
            "conflict markers",
            CONFLICT.into(),
            "pipelines/p.lock:3: the lock file holds git merge-conflict markers (resolve the \
             conflict, or delete the file and run)"
                .into(),
        ),
        (
            "a field without a value",
            no_outputs.join("\n") + "\n",
            format!(
                "pipelines/p.lock:{}: not a valid lock file: stage `a`: `outputs:` has no value",
                outputs + 1
            ),
        ),
        (
            "a key that is no key",
            not_a_key.join("\n") + "\n",
            format!(
                "pipelines/p.lock:{}: not a valid lock file: stage `a`: `key: zz` is not a stage \
                 key (64 lowercase hex digits; edited by hand?)",
                key + 1
            ),
        ),
        (
            "an input hash that is no hash",
            input_not_a_hash,
            format!(
                "pipelines/p.lock:{input_line}: not a valid lock file: stage `a`: input \
                 `data/in.txt`: `zz` is not a content hash (64 lowercase hex digits; edited by \
                 hand?)"
            ),
        ),
        (
            "an output hash that is no hash",
            output_not_a_hash,
            format!(
                "pipelines/p.lock:{output_line}: not a valid lock file: stage `a`: output \
                 `out/a.txt`: `zz` is not a content hash (64 lowercase hex digits; edited by \
                 hand?)"
            ),
        ),
        (
            "another pipeline's",
            clean.replace("\npipeline: locked\n", "\npipeline: other\n"),
            OTHER_PIPELINE.into(),
        ),
    ]
}

#[test]
fn status_warns_reports_stale_and_leaves_the_file_alone() {
    let (_, clean_lock) = project_after_a_run();
    for (name, broken, warning) in broken_files(&clean_lock) {
        let (project, _) = project_after_a_run();
        project.file(LOCK, &broken);
        let status = project.warez(&["status", PIPELINE]);
        status
            .assert_code(1)
            .assert_stderr_contains(&format!("warning: {warning}"))
            .assert_stderr_contains("treating it as absent");
        assert!(
            !status.stderr.contains("missing field"),
            "{name}: {}",
            status.stderr
        );
        assert!(
            status.stdout.contains("stale  a"),
            "{name}: {}",
            status.stdout
        );
        assert!(
            status.stdout.contains("(cached: `run` restores it)"),
            "{name}: {}",
            status.stdout
        );
        let json = project.warez(&["status", "--json", PIPELINE]);
        json.assert_code(1);
        let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(report["up_to_date"], false, "{name}");
        assert_eq!(
            project.read(LOCK),
            broken,
            "{name}: status changed the lock file"
        );
        let explain = project.warez(&["explain", "a", PIPELINE]);
        explain.assert_code(1).assert_stderr_contains(&warning);
        assert_eq!(
            project.read(LOCK),
            broken,
            "{name}: explain changed the lock file"
        );
    }
}

#[test]
fn run_restores_every_stage_from_the_cache_and_rewrites_the_file() {
    let (_, clean_lock) = project_after_a_run();
    for (name, broken, warning) in broken_files(&clean_lock) {
        let (project, clean_lock) = project_after_a_run();
        project.file(LOCK, &broken);
        let run = project.run(&[]);
        run.assert_code(0)
            .assert_stderr_contains(&format!("warning: {warning}"))
            .assert_stderr_contains("rewrote pipelines/p.lock");
        assert_eq!(
            run.with_outcome("restored"),
            ["a", "b"],
            "{name}: {}",
            run.stderr
        );
        assert!(!project.exists("ran.log"), "{name}: a stage reran");
        assert_eq!(project.read(LOCK), clean_lock, "{name}");
        // The plain summary says so too, and everything is up to date afterwards.
        project.file(LOCK, &broken);
        let plain = project.warez(&["run", PIPELINE]);
        plain.assert_code(0);
        assert!(
            plain
                .stderr
                .lines()
                .any(|line| line.starts_with("a ") && line.contains("restored")),
            "{name}: {}",
            plain.stderr
        );
        project.warez(&["status", PIPELINE]).assert_code(0);
        assert!(!project.exists("ran.log"), "{name}: a stage reran");
    }
}

#[test]
fn a_failing_run_keeps_the_broken_file_until_a_whole_one_can_replace_it() {
    let (project, clean_lock) = project_after_a_run();
    project.file(LOCK, CONFLICT);
    let failed = project.run(&["--set", "b.fail=1"]);
    failed
        .assert_code(1)
        .assert_stderr_contains("left pipelines/p.lock as it was");
    assert_eq!(failed.with_outcome("restored"), ["a"]);
    assert_eq!(
        project.read(LOCK),
        CONFLICT,
        "the conflict markers were overwritten"
    );
    let run = project.run(&[]);
    run.assert_code(0);
    assert_eq!(run.with_outcome("restored"), ["a", "b"]);
    assert_eq!(project.read(LOCK), clean_lock);
}

#[test]
fn commands_that_need_the_recorded_runs_refuse_a_broken_file_saying_why() {
    let (project, clean_lock) = project_after_a_run();
    let other = clean_lock.replace("\npipeline: locked\n", "\npipeline: other\n");
    let (_, no_hash, no_hash_message) = (broken_files(&clean_lock).into_iter())
        .find(|(name, ..)| *name == "an output hash that is no hash")
        .unwrap();
    let cases = [
        (
            CONFLICT,
            "pipelines/p.lock:3: the lock file holds git merge-conflict markers",
        ),
        (other.as_str(), OTHER_PIPELINE),
        (no_hash.as_str(), no_hash_message.as_str()),
    ];
    for (broken, message) in cases {
        project.file(LOCK, broken);
        for command in [&["gc", PIPELINE][..], &["run", "--check", PIPELINE]] {
            project
                .warez(command)
                .assert_code(1)
                .assert_stderr_contains(&format!("error: {message}"));
            assert_eq!(project.read(LOCK), broken, "{command:?}");
        }
    }
    assert!(!project.exists("ran.log"), "nothing ran");
}

/// A lock file entry edited so that it no longer names an output that is on disk: `status` and
/// `explain` say the output is not recorded, not that it is missing; `run` restores the stage
/// from the cache without rerunning it and records the output again.
#[test]
fn an_output_the_entry_does_not_name_is_reported_as_not_recorded() {
    let (project, lock) = project_after_a_run();
    let out_a = lock
        .lines()
        .find(|line| line.trim_start().starts_with("out/a.txt: "))
        .expect("the lock file records out/a.txt")
        .to_string();
    let outputs_of_a = format!("    outputs:\n{out_a}\n");
    assert!(lock.contains(&outputs_of_a), "{lock}");
    project.file(LOCK, &lock.replace(&outputs_of_a, "    outputs: {}\n"));
    let status = project.warez(&["status", PIPELINE]);
    status
        .assert_code(1)
        .assert_stdout_contains("output `out/a.txt` is not recorded in the lock file");
    assert!(!status.stdout.contains("is missing"), "{}", status.stdout);
    project
        .warez(&["explain", "a", PIPELINE])
        .assert_code(1)
        .assert_stdout_contains("- output `out/a.txt` is not recorded in the lock file");
    project.run(&[]).assert_code(0);
    assert!(!project.exists("ran.log"), "nothing reran");
    assert_eq!(project.read(LOCK), lock);
}
