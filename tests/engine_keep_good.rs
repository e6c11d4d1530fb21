//! A failed, interrupted (SIGINT, SIGTERM) or killed (`kill -9`) run keeps the last good
//! outputs, byte for byte, with the lock file entry that records them.

mod engine_support;

use std::process::Child;
use std::time::{Duration, Instant};

use engine_support::{Project, Run, PIPELINE};
use rand::{Rng, SeedableRng};

/// Every output file recorded in the lock file has the recorded hash on disk (folders, whose
/// hash is that of a manifest, are checked through their files by the tests that use them).
#[track_caller]
fn assert_lock_matches_disk(project: &Project) {
    let lock: serde_yaml::Value = serde_yaml::from_str(&project.read("pipelines/p.lock")).unwrap();
    let stages = lock["stages"].as_mapping().expect("stages");
    assert!(!stages.is_empty());
    for (stage, entry) in stages {
        for (path, hash) in entry["outputs"].as_mapping().expect("outputs") {
            let path = path.as_str().unwrap();
            if project.abs(path).is_dir() {
                continue;
            }
            let bytes = std::fs::read(project.abs(path))
                .unwrap_or_else(|error| panic!("{stage:?}: {path}: {error}"));
            assert_eq!(
                blake3::hash(&bytes).to_hex().as_str(),
                hash.as_str().unwrap(),
                "{stage:?}: {path} is not what the lock file records"
            );
        }
    }
}

/// Nothing the engine puts beside outputs or in the cache while it replaces them is left.
#[track_caller]
fn assert_no_leftovers(project: &Project, dirs: &[&str]) {
    for dir in dirs {
        for name in project.tree(dir).keys() {
            assert!(
                !name.contains(".warez-"),
                "leftover {dir}/{name} after the run"
            );
        }
    }
    assert!(
        project.tree("cache/tmp").is_empty(),
        "staging left in cache/tmp"
    );
    assert!(project.tree("cache/swaps").is_empty(), "swap journal left");
}

/// The kinds of reason (`action_changed`, …) `status --json` gives for `stage`.
fn stale_reasons(status: &Run, stage: &str) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let state = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|state| state["stage"] == stage)
        .unwrap_or_else(|| panic!("no stage {stage} in {}", status.stdout));
    state["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reason| reason["reason"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_failed_command_puts_the_previous_outputs_back() {
    let project = Project::new();
    let pipeline = |command: &str| {
        format!(
            r#"
name: keep
stages:
  make:
    cmd: {command}
    outs: [out/x.txt, out/dir]
  fine:
    cmd: echo fine > out/fine.txt
    outs: [out/fine.txt]
"#
        )
    };
    project.pipeline(&pipeline(
        "echo good > out/x.txt; mkdir -p out/dir/sub; echo a > out/dir/sub/a",
    ));
    project.run(&[]).assert_code(0);
    let outputs = project.tree("out");
    let lock = project.read("pipelines/p.lock");
    project.pipeline(&pipeline(
        "echo partial > out/x.txt; mkdir out/dir; echo b > out/dir/b; echo broke >&2; exit 3",
    ));
    let failed = project.warez(&["run", PIPELINE]);
    failed
        .assert_code(1)
        .assert_stderr_contains("stage `make`: command failed")
        .assert_stderr_contains("broke");
    assert_eq!(
        project.tree("out"),
        outputs,
        "previous outputs back, byte for byte"
    );
    assert_eq!(
        project.read("pipelines/p.lock"),
        lock,
        "lock file untouched"
    );
    assert_no_leftovers(&project, &["out"]);
    assert_lock_matches_disk(&project);

    let status = project.warez(&["status", "--json", PIPELINE]);
    status.assert_code(1);
    assert_eq!(
        stale_reasons(&status, "make"),
        ["action_changed"],
        "outputs are the recorded ones"
    );
    project
        .warez(&["status", PIPELINE])
        .assert_code(1)
        .assert_stdout_contains("stale  make  command changed");
}

const HEADER: &str = "customerId,productId,scaled_purchase_freq\n";
const C1: &str = "19823025-6551-4edd-ace1-56c2c4e22fc7";
const C2: &str = "e9a87a97-38df-4858-86df-9b02defccd5c";
const P1: &str = "9910eb1b-9d99-4025-badc-13ef455bb49a";
const P2: &str = "5bb0e9a1-9b0c-4e43-9b4e-2b5d5a0e7f10";

#[test]
fn a_failed_built_in_kind_keeps_its_previous_artifacts() {
    let project = Project::new();
    project
        .file(
            "data/r.csv",
            &format!("{HEADER}{C1},{P1},0.5\n{C2},{P1},0.25\n{C2},{P2},1.0\n"),
        )
        .pipeline(
            r#"
name: keep
stages:
  ingest:
    kind: ingest
    deps: { ratings: data/r.csv }
"#,
        );
    project.run(&[]).assert_code(0);
    let artifacts = project.tree("models/keep");
    assert_eq!(artifacts.len(), 3, "{artifacts:?}");
    let lock = project.read("pipelines/p.lock");
    project.file(
        "data/r.csv",
        &format!("{HEADER}{C1},{P1},0.5\n{C2},{P2},lots\n"),
    );
    project
        .warez(&["run", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains("data/r.csv:3");
    assert_eq!(project.tree("models/keep"), artifacts);
    assert_eq!(project.read("pipelines/p.lock"), lock);
    assert_no_leftovers(&project, &["models"]);
    let status = project.warez(&["status", "--json", PIPELINE]);
    status.assert_code(1);
    assert_eq!(stale_reasons(&status, "ingest"), ["input_changed"]);
}

/// `slow` writes its new output, then (if `hold` exists) starts a grandchild `sleep`, writes
/// its pid to `grandchild.pid` and waits until `hold` is removed. `gen` is a built-in kind that takes a second
/// or two, running in a thread of warez-pipe.
const INTERRUPTIBLE: &str = r#"
name: interrupt
stages:
  slow:
    cmd: echo ${params.v} > out/slow.txt; if [ -e hold ]; then echo partial >> out/slow.txt; sleep 30 & echo $! > grandchild.pid; while [ -e hold ]; do sleep 0.05; done; kill $!; fi
    outs: [out/slow.txt]
    params: { v: 1 }
  gen:
    kind: generate
    params: { rows: 1000000, customers: 100000, products: 2000, seed: 1 }
  other:
    cmd: echo other > out/other.txt
    outs: [out/other.txt]
"#;

/// Starts `run` with `slow` at v=2 and `hold` present; returns once `slow`'s grandchild runs
/// (and, with `staging`, once a staging folder of that name prefix is in `cache/tmp`).
fn start_held_run(project: &Project, extra: &[&str], staging: Option<&str>) -> (Child, i32) {
    project.file("hold", "");
    let _ = std::fs::remove_file(project.abs("grandchild.pid"));
    let mut args = vec!["run", PIPELINE, "-j", "3", "--set", "slow.v=2"];
    args.extend_from_slice(extra);
    let mut child = project.command(&args).spawn().unwrap();
    let started = Instant::now();
    loop {
        let staged = staging.is_none_or(|prefix| {
            std::fs::read_dir(project.abs("cache/tmp")).is_ok_and(|mut entries| {
                entries.any(|entry| {
                    entry.is_ok_and(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
                })
            })
        });
        if let Some(pid) = std::fs::read_to_string(project.abs("grandchild.pid"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .filter(|_| staged)
        {
            return (child, pid);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended early ({status})");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "slow never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_for_exit(child: Child) -> Run {
    let started = Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the run did not stop");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Run::from_output(child.wait_with_output().unwrap())
}

/// A process that is gone (or a zombie nobody reaped: it runs no more).
fn assert_gone(pid: i32) {
    let started = Instant::now();
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        let alive = state.is_some_and(|stat| {
            let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        });
        if !alive {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "process {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn interrupted_run_keeps_the_previous_outputs(signal: i32, code: i32, name: &str) {
    let project = Project::new();
    project.pipeline(INTERRUPTIBLE);
    project.run(&[]).assert_code(0);
    let outputs = (project.tree("out"), project.tree("models"));
    let lock = project.read("pipelines/p.lock");

    // gen reruns too (another seed): it is in its staging folder when the signal comes.
    let (child, grandchild) =
        start_held_run(&project, &["--set", "gen.seed=2"], Some("stage-gen-"));
    assert!(project.read("out/slow.txt").contains("partial"));
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let run = wait_for_exit(child);
    run.assert_code(code)
        .assert_stderr_contains(&format!("interrupted by {name}"))
        .assert_stderr_contains("`slow`")
        .assert_stderr_contains("`gen`");
    assert_gone(grandchild);
    assert_eq!((project.tree("out"), project.tree("models")), outputs);
    assert_eq!(project.read("pipelines/p.lock"), lock);
    assert_no_leftovers(&project, &["out", "models"]);
    assert_eq!(project.read("cache/run.lock"), "", "run lock released");

    std::fs::remove_file(project.abs("hold")).unwrap();
    let rerun = project.warez(&["run", "--no-wait", PIPELINE, "--set", "slow.v=2"]);
    rerun.assert_code(0);
    assert!(
        !rerun.stderr.contains("taking over") && !rerun.stderr.contains("put the previous"),
        "nothing to take over or recover:\n{}",
        rerun.stderr
    );
    assert_eq!(project.read("out/slow.txt"), "2\n");
    assert_lock_matches_disk(&project);
}

#[test]
fn sigint_stops_the_run_and_keeps_the_previous_outputs() {
    interrupted_run_keeps_the_previous_outputs(libc::SIGINT, 130, "SIGINT");
}

#[test]
fn sigterm_stops_the_run_and_keeps_the_previous_outputs() {
    interrupted_run_keeps_the_previous_outputs(libc::SIGTERM, 143, "SIGTERM");
}

#[test]
fn after_kill_9_the_next_command_under_the_run_lock_puts_the_previous_outputs_back() {
    let project = Project::new();
    project.pipeline(INTERRUPTIBLE);
    project.run(&[]).assert_code(0);
    let slow_before = project.read("out/slow.txt");
    let lock = project.read("pipelines/p.lock");

    let (mut child, grandchild) = start_held_run(&project, &[], None);
    child.kill().unwrap(); // SIGKILL: no cleanup at all
    child.wait().unwrap();
    assert_gone(grandchild);
    assert!(
        project.read("out/slow.txt").starts_with("2\n"),
        "partial output in place"
    );

    // Another stage only: taking the run lock is what puts `slow`'s previous output back.
    let other = project.warez(&["run", PIPELINE, "--stage", "other"]);
    other
        .assert_code(0)
        .assert_stderr_contains("[slow] a previous run was cut short");
    assert_eq!(project.read("out/slow.txt"), slow_before);
    assert_eq!(project.read("pipelines/p.lock"), lock);
    assert_no_leftovers(&project, &["out"]);
    assert_lock_matches_disk(&project);
    let status = project.warez(&["status", "--json", PIPELINE, "--set", "slow.v=2"]);
    status.assert_code(1);
    assert_eq!(
        stale_reasons(&status, "slow"),
        ["param_changed", "action_changed"]
    );

    std::fs::remove_file(project.abs("hold")).unwrap();
    let rerun = project.run(&["--set", "slow.v=2"]);
    rerun.assert_code(0);
    assert_eq!(rerun.outcomes()["slow"], "ran");
    assert_eq!(project.read("out/slow.txt"), "2\n");
    assert_lock_matches_disk(&project);
}

/// Stages whose outputs are replaced in every round: commands (one slow to write, one large),
/// a built-in kind, and a stage that reads them. Alternating inputs make the even rounds after
/// the first restore from the cache: kills land in runs, restores and swaps alike.
const BUSY: &str = r#"
name: busy
stages:
  seed:
    cmd: cat data/in.txt data/in.txt > out/seed.txt
    deps: [data/in.txt]
    outs: [out/seed.txt]
  slow:
    cmd: for i in 1 2 3 4; do cat out/seed.txt >> out/slow.txt; sleep 0.04; done
    deps: [out/seed.txt]
    outs: [out/slow.txt]
  big:
    cmd: (cat data/in.txt; yes warez-pipe | head -c 16000000) > out/big.bin
    deps: [data/in.txt]
    outs: [out/big.bin]
  gen:
    kind: generate
    params: { rows: 200000, customers: 10000, products: 100 }
  join:
    cmd: cat out/slow.txt > out/join.txt; wc -c < out/big.bin >> out/join.txt; wc -l < ${model_path}/ratings.csv >> out/join.txt
    deps: [out/slow.txt, out/big.bin, "${model_path}/ratings.csv"]
    outs: [out/join.txt]
"#;

#[test]
fn kill_9_at_random_moments_never_leaves_outputs_the_lock_file_does_not_record() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let project = Project::new();
    project.file("data/in.txt", "one\n").pipeline(BUSY);
    project.run(&[]).assert_code(0);
    for round in 0..8 {
        let (input, seed) = if round % 2 == 0 {
            ("two\n", "2")
        } else {
            ("one\n", "1")
        };
        project.file("data/in.txt", input);
        let set = format!("gen.seed={seed}");
        let mut child = project
            .command(&["run", PIPELINE, "--set", &set])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
        let _ = child.kill();
        let _ = child.wait();
        // The next run first recovers, then decides: no stage may find its outputs other than
        // the lock file records them (a cut swap is rolled back, or forward if recorded).
        let rerun = project.run(&["--set", &set]);
        rerun.assert_code(0);
        let report: serde_json::Value = serde_json::from_str(&rerun.stdout).unwrap();
        for stage in report["stages"].as_array().unwrap() {
            for reason in stage["reasons"].as_array().unwrap() {
                let reason = reason.as_str().unwrap();
                assert!(
                    !reason.starts_with("output `"),
                    "round {round}: {}: {reason}\n{}",
                    stage["stage"],
                    rerun.stderr
                );
            }
        }
        assert_lock_matches_disk(&project);
        assert_no_leftovers(&project, &["out", "models"]);
    }
}

/// A killed run whose lock file entry was written but whose previous outputs were not yet
/// dropped (removing a folder of 20,000 files takes long enough to be caught in the act): the
/// next run keeps the new outputs the lock file records, and only drops the backup.
#[test]
fn kill_9_after_the_lock_file_entry_keeps_the_new_outputs() {
    let project = Project::new();
    project.pipeline(
        r#"
name: window
stages:
  many:
    cmd: mkdir -p out/many && cd out/many && seq 1 20000 | xargs touch && echo ${params.v} > v
    outs: [out/many]
    params: { v: 0 }
"#,
    );
    project.run(&[]).assert_code(0);
    let mut caught = 0;
    for v in 1..=3 {
        let set = format!("many.v={v}");
        let before = project.read("pipelines/p.lock");
        let mut child = project
            .command(&["run", PIPELINE, "--set", &set])
            .spawn()
            .unwrap();
        while project.read("pipelines/p.lock") == before {
            assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if project.exists("out/.warez-backup-many") {
            caught += 1;
        }
        let rerun = project.run(&["--set", &set]);
        rerun.assert_code(0);
        assert_eq!(rerun.outcomes()["many"], "up_to_date", "{}", rerun.stderr);
        assert!(!rerun.stderr.contains("put the previous ones back"));
        assert_eq!(project.read("out/many/v"), format!("{v}\n"));
        assert_no_leftovers(&project, &["out"]);
    }
    assert!(
        caught > 0,
        "no kill landed between the lock file entry and the cleanup"
    );
}

/// A run interrupted while it waits for the run lock leaves the holder's work alone.
#[test]
fn sigint_while_waiting_for_the_run_lock_touches_nothing_of_the_holder() {
    let project = Project::new();
    project.pipeline(INTERRUPTIBLE);
    project.run(&[]).assert_code(0);
    let (holder, _) = start_held_run(&project, &["--set", "gen.seed=2"], Some("stage-gen-"));
    let waiting = project.command(&["run", PIPELINE]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(waiting.id() as i32, libc::SIGINT) }, 0);
    wait_for_exit(waiting)
        .assert_code(130)
        .assert_stderr_contains("waiting for another run")
        .assert_stderr_contains("interrupted by SIGINT\n");
    std::fs::remove_file(project.abs("hold")).unwrap();
    let holder = wait_for_exit(holder);
    holder.assert_code(0);
    assert_eq!(project.read("out/slow.txt"), "2\npartial\n");
    assert_lock_matches_disk(&project);
}
