//! The other commands: status, explain, dag, gc, clean, run --check, -j.

mod engine_support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use engine_support::{wait_with_timeout, Project, PIPELINE};

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
fn zero_jobs_is_refused_naming_the_flag() {
    let project = Project::new();
    project.pipeline("name: par\nstages:\n  x:\n    cmd: echo x > x.txt\n    outs: [x.txt]\n");
    for command in ["run", "push", "pull"] {
        project
            .warez(&[command, "-j", "0", PIPELINE])
            .assert_code(2)
            .assert_stderr_contains("invalid value '0' for '--jobs <N>'");
    }
    assert!(!project.path().join("x.txt").exists(), "nothing ran");
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

/// A cache folder whose path is not UTF-8 is a folder like any other: nothing writes its path
/// as text (run records and swap journals name project paths, which must be UTF-8), so every
/// command works with it, given by the flag or the environment.
#[test]
fn a_cache_whose_path_is_not_utf8_works_like_any_other() {
    let project = pair();
    let cache = project.path().join(OsStr::from_bytes(b"c\xff"));
    let remote = project.abs("remote");
    std::fs::create_dir(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    let with_cache = |cache: &Path, args: &[&str]| {
        let run = engine_support::Run::from_output(
            project
                .command(args)
                .arg("--cache")
                .arg(cache)
                .output()
                .unwrap(),
        );
        assert!(!run.stderr.contains("UTF-8"), "{args:?}: {}", run.stderr);
        run
    };
    let ran = with_cache(&cache, &["run", "--json", PIPELINE]);
    ran.assert_code(0);
    assert_eq!(ran.with_outcome("ran"), ["first", "second"]);
    assert!(cache.join("runs").is_dir() && !project.exists("cache"));
    with_cache(&cache, &["status", PIPELINE]).assert_code(0);
    std::fs::remove_file(project.abs("out/first.txt")).unwrap();
    let restored = with_cache(&cache, &["run", "--json", PIPELINE]);
    restored.assert_code(0);
    assert_eq!(restored.with_outcome("restored"), ["first"]);
    with_cache(&cache, &["gc", PIPELINE]).assert_code(0);
    with_cache(&cache, &["run", "--check", PIPELINE]).assert_code(0);
    with_cache(&cache, &["push", "--remote", &url, PIPELINE])
        .assert_code(0)
        .assert_stderr_contains("pushed to");

    // Another such cache, empty, given by WAREZ_CACHE: `pull` fills it from the remote.
    let other = project.path().join(OsStr::from_bytes(b"d\xff"));
    for out in ["out/first.txt", "out/second.txt"] {
        std::fs::remove_file(project.abs(out)).unwrap();
    }
    let pulled = engine_support::Run::from_output(
        project
            .command(&["pull", "--remote", &url, PIPELINE])
            .env("WAREZ_CACHE", &other)
            .output()
            .unwrap(),
    );
    pulled
        .assert_code(0)
        .assert_stderr_contains("pulled 2 outputs");
    assert_eq!(project.read("out/first.txt"), "ABC\n");
    assert!(other.join("objects").is_dir());
    with_cache(&other, &["status", PIPELINE]).assert_code(0);
}

#[test]
fn an_empty_warez_cache_counts_as_unset() {
    let project = pair();
    let with_empty_cache = |args: &[&str]| {
        engine_support::Run::from_output(
            project
                .command(args)
                .env("WAREZ_CACHE", "")
                .output()
                .unwrap(),
        )
    };
    with_empty_cache(&["run", PIPELINE]).assert_code(0);
    assert!(project.exists("cache/runs"), "the default cache is used");
    with_empty_cache(&["status", PIPELINE]).assert_code(0);
    with_empty_cache(&["gc", PIPELINE, "--dry-run"]).assert_code(0);
    with_empty_cache(&["clean", PIPELINE, "--dry-run"]).assert_code(0);
    // metrics has no model here: it fails for that reason, not for the empty variable.
    let metrics = with_empty_cache(&["metrics", PIPELINE]);
    metrics.assert_stderr_contains("metrics.json does not exist");
    assert!(!metrics.stderr.contains("--cache"), "{}", metrics.stderr);
}

/// The run names the failed stage once (the engine adds it; the stage's own errors do not).
#[test]
fn a_stage_error_names_the_stage_once() {
    let project = Project::new();
    project.pipeline(
        "name: t\nstages:\n  make:\n    cmd: mkdir -p out/dir\n    outs: [out/dir]\n  read:\n    cmd: cat out/dir/x > out/read.txt\n    deps: [out/dir/x]\n    outs: [out/read.txt]\n",
    );
    let run = project.warez(&["run", PIPELINE]);
    run.assert_code(1)
        .assert_stderr_contains("error: stage `read`: input `out/dir/x`:");
    assert_eq!(
        run.stderr.matches("stage `read`").count(),
        1,
        "{}",
        run.stderr
    );
    let status = project.warez(&["status", PIPELINE]);
    status
        .assert_code(1)
        .assert_stdout_contains("input `out/dir/x`:");
    assert!(!status.stdout.contains("stage `read`"), "{}", status.stdout);
}

/// Runs `warez-pipe ARGS…` in the project under `umask 027`.
fn run_with_umask_027(project: &Project, args: &[&str]) -> engine_support::Run {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 027 && exec \"$@\"")
        .arg("sh")
        .arg(assert_cmd::cargo::cargo_bin!("warez-pipe"))
        .args(args)
        .current_dir(project.path())
        .env("NO_COLOR", "1")
        .env_remove("WAREZ_CACHE")
        .output()
        .unwrap();
    engine_support::Run::from_output(output)
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Files warez-pipe writes atomically are created as any program would create them (0666 less
/// the umask: 0640 under umask 027, not tempfile's 0600), and a lock file keeps the mode it had.
#[test]
fn written_files_follow_the_umask_and_the_lock_file_keeps_its_mode() {
    let project = pair();
    run_with_umask_027(&project, &["run", PIPELINE]).assert_code(0);
    let lock = project.abs("pipelines/p.lock");
    assert_eq!(mode(&lock), 0o640, "{:o}", mode(&lock));
    assert_eq!(mode(&project.abs("cache/stat-cache.json")), 0o640);
    let records: Vec<String> = project.tree("cache/runs").into_keys().collect();
    assert!(!records.is_empty());
    for record in &records {
        let path = project.abs(&format!("cache/runs/{record}"));
        assert_eq!(mode(&path), 0o640, "{record}: {:o}", mode(&path));
    }
    // The user opens the lock file to the group; a run that rewrites it keeps that.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o664)).unwrap();
    let before = project.read("pipelines/p.lock");
    run_with_umask_027(&project, &["run", PIPELINE, "--set", "second.k=5"]).assert_code(0);
    assert_ne!(project.read("pipelines/p.lock"), before, "rewritten");
    assert_eq!(mode(&lock), 0o664, "{:o}", mode(&lock));
}

#[test]
fn check_with_stage_rebuilds_and_compares_only_those_stages() {
    let project = Project::new();
    project.file("data/in.txt", "abc\n").pipeline(&format!(
        "{PAIR}  stamp:\n    cmd: date +%s%N > out/stamp.txt\n    outs: [out/stamp.txt]\n"
    ));
    project.run(&[]).assert_code(0);
    // The whole pipeline is not reproducible (stamp) …
    project
        .warez(&["run", "--check", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains("`out/stamp.txt` (made by stage `stamp`");
    // … but `second` and what it needs are; stamp is neither rebuilt nor compared.
    let check = project.warez(&["run", "--check", "--json", "--stage", "second", PIPELINE]);
    check.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    let rebuilt: Vec<&str> = report["rebuild"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stage| stage["stage"].as_str().unwrap())
        .collect();
    assert_eq!(rebuilt, ["first", "second"]);
    assert_eq!(report["mismatches"], serde_json::json!([]));
    project
        .warez(&["run", "--check", "--stage", "stamp", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains("(stages stamp)");
    project
        .warez(&["run", "--check", "--stage", "secnod", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains("no stage `secnod` in the pipeline (did you mean `second`?)");
}

/// A dry run changes no byte of the cache, even with a corrupt tree object in it, and lists
/// exactly what the real gc then removes (the corrupt tree among it).
#[test]
fn gc_dry_run_changes_nothing_and_lists_what_gc_removes() {
    let project = Project::new();
    project.file("data/in.txt", "abc\n").pipeline(
        "name: t\nstages:\n  folder:\n    cmd: mkdir -p out/d && cp data/in.txt out/d/a && echo b > out/d/b\n    deps: [data/in.txt]\n    outs: [out/d]\n",
    );
    project.run(&[]).assert_code(0);
    let trees: Vec<String> = project.tree("cache/trees").into_keys().collect();
    assert_eq!(trees.len(), 1, "{trees:?}");
    let tree = project.abs(&format!("cache/trees/{}", trees[0]));
    std::fs::write(&tree, "not a manifest\n").unwrap();
    let before = project.tree("cache");

    let dry = project.warez(&["gc", PIPELINE, "--dry-run"]);
    dry.assert_code(0);
    assert_eq!(
        project.tree("cache"),
        before,
        "the dry run changed the cache"
    );
    let would: Vec<&str> = dry
        .stdout
        .lines()
        .map(|line| line.strip_prefix("would remove ").unwrap())
        .collect();
    assert!(
        would.iter().any(|path| path.ends_with(&trees[0])),
        "the corrupt tree is listed: {would:?}"
    );

    let real = project.warez(&["gc", PIPELINE]);
    real.assert_code(0);
    let removed: Vec<&str> = real
        .stdout
        .lines()
        .map(|line| line.strip_prefix("removed ").unwrap())
        .collect();
    assert_eq!(removed, would);
    assert!(!tree.exists());
    // The output is rebuilt rather than restored from the broken tree.
    std::fs::remove_dir_all(project.abs("out/d")).unwrap();
    assert_eq!(project.run(&[]).outcomes()["folder"], "ran_same_outputs");
}

/// A pipe whose reader is gone before the command starts: every write to it fails (EPIPE).
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

#[test]
fn a_reader_that_goes_away_neither_hangs_nor_panics_a_command() {
    let project = pair();
    // The run's log reader went away (`run 2>&1 | head -1`, a CI collector that stopped): the
    // run still does its work and records it. Printing the log used to panic the stage's worker
    // thread and leave the scheduler waiting for its report forever.
    let child = project
        .command(&["run", PIPELINE])
        .stderr(closed_pipe())
        .spawn()
        .unwrap();
    let run = wait_with_timeout(child, Duration::from_secs(60), "`run` with a closed stderr");
    run.assert_code(0);
    assert_eq!(project.read("out/second.txt"), "ABC\n1\n");
    project.warez(&["status", PIPELINE]).assert_code(0);

    // A stdout reader that stops early (`status | head -1`): a quiet end with the status a
    // shell gives a program a closed pipe stopped (128 + SIGPIPE), not a panic (101).
    for args in [
        &["status", PIPELINE][..],
        &["dag", PIPELINE],
        &["explain", "second", PIPELINE],
    ] {
        let output = project
            .command(args)
            .stdout(closed_pipe())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn a_cache_that_cannot_be_opened_is_named() {
    // `status`, `explain`, `gc` and `clean` said only "Not a directory (os error 20)".
    let project = pair();
    for args in [
        &["status", PIPELINE][..],
        &["explain", "first", PIPELINE],
        &["gc", PIPELINE],
        &["clean", PIPELINE],
    ] {
        let mut args = args.to_vec();
        args.extend(["--cache", "data/in.txt"]);
        project
            .warez(&args)
            .assert_code(1)
            .assert_stderr_contains("error: opening the cache data/in.txt: Not a directory");
    }
    assert_eq!(project.read("data/in.txt"), "abc\n");
}
