//! Crash safety: `kill -9` at random moments (inside a slow stage, while outputs are cached),
//! then a rerun succeeds and matches a clean run. Two concurrent runs on one cache: no corruption.

mod engine_support;

use std::time::Duration;

use engine_support::{Project, PIPELINE};
use rand::{Rng, SeedableRng};

/// A quick stage, a slow one writing its output in pieces, a 24 MB output (slow to cache),
/// and a stage reading both.
const SLOW: &str = r#"
name: slow
stages:
  seed:
    cmd: cat data/in.txt data/in.txt > out/seed.txt
    deps: [data/in.txt]
    outs: [out/seed.txt]
  slow:
    cmd: for i in 1 2 3 4 5; do cat out/seed.txt >> out/slow.txt; sleep 0.05; done
    deps: [out/seed.txt]
    outs: [out/slow.txt]
  big:
    cmd: yes warez-pipe-crash-test | head -c 24000000 > out/big.bin
    outs: [out/big.bin]
  join:
    cmd: cat out/slow.txt > out/join.txt; wc -c < out/big.bin >> out/join.txt
    deps: [out/slow.txt, out/big.bin]
    outs: [out/join.txt]
"#;

fn slow_project(input: &str) -> Project {
    let project = Project::new();
    project.file("data/in.txt", input).pipeline(SLOW);
    project
}

fn clean_outputs(input: &str) -> std::collections::BTreeMap<String, String> {
    let clean = slow_project(input);
    clean.run(&[]).assert_code(0);
    clean.tree("out")
}

#[test]
fn kill_9_at_random_moments_then_rerun_matches_a_clean_run() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let project = slow_project("one\n");
    for round in 0..6 {
        // Alternate inputs so that every round has real work (and cache writes) to interrupt.
        let input = if round % 2 == 0 { "two\n" } else { "one\n" };
        project.file("data/in.txt", input);
        if round == 3 {
            project.file("out/big.bin", "edited by hand\n");
        }
        let mut child = project.command(&["run", PIPELINE]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..450)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let rerun = project.run(&[]);
        rerun.assert_code(0);
        assert_eq!(project.tree("out"), clean_outputs(input), "round {round}");
        let again = project.run(&[]);
        assert_eq!(again.with_outcome("up_to_date").len(), 4, "round {round}");
    }
}

#[test]
fn concurrent_runs_on_one_cache_do_not_corrupt_it() {
    let project = slow_project("one\n");
    let first = project.command(&["run", PIPELINE]).spawn().unwrap();
    let second = project.command(&["run", PIPELINE]).output().unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let stderr = String::from_utf8_lossy(&second.stderr).into_owned()
        + &String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("waiting for another run"),
        "one run waited:\n{stderr}"
    );
    assert_eq!(project.tree("out"), clean_outputs("one\n"));
    assert_eq!(project.run(&[]).with_outcome("up_to_date").len(), 4);
    // Every object still matches its name.
    for (name, summary) in project.tree("cache/objects") {
        assert!(
            summary.starts_with(&name.replace('/', "")),
            "object {name}: {summary}"
        );
    }
    project
        .warez(&["run", "--no-wait", PIPELINE])
        .assert_code(0);
}

#[test]
fn a_second_run_with_no_wait_stops_with_a_clear_message() {
    let project = slow_project("one\n");
    let mut first = project.command(&["run", PIPELINE]).spawn().unwrap();
    // Wait until the first run holds the lock (it writes its pid into run.lock).
    let lock = project.abs("cache/run.lock");
    for _ in 0..200 {
        if std::fs::read_to_string(&lock).is_ok_and(|pid| !pid.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = project.warez(&["run", "--no-wait", PIPELINE]);
    let _ = first.wait();
    second
        .assert_code(1)
        .assert_stderr_contains("another run (pid")
        .assert_stderr_contains("holds");
}

#[test]
fn the_lock_of_a_killed_run_is_taken_over() {
    let project = slow_project("one\n");
    let mut first = project.command(&["run", PIPELINE]).spawn().unwrap();
    let lock = project.abs("cache/run.lock");
    for _ in 0..400 {
        if std::fs::read_to_string(&lock).is_ok_and(|pid| !pid.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let pid = first.id().to_string();
    project
        .warez(&["run", "--no-wait", PIPELINE])
        .assert_code(0)
        .assert_stderr_contains(&format!(
            "a previous run (pid {pid}) ended without releasing the cache; taking over"
        ));
    assert_eq!(project.tree("out"), clean_outputs("one\n"));
}

#[test]
fn killing_a_run_also_stops_what_its_command_started() {
    let project = Project::new();
    // The subshell is a process of its own: it must die with the run, or it would keep
    // appending to the output the next run writes.
    project.pipeline(
        r#"
name: orphans
stages:
  count:
    cmd: (for i in 1 2 3 4 5 6; do echo $i >> out/n.txt; sleep 0.1; done)
    outs: [out/n.txt]
"#,
    );
    let mut first = project.command(&["run", PIPELINE]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(250));
    first.kill().unwrap();
    first.wait().unwrap();
    project.run(&[]).assert_code(0);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(project.read("out/n.txt"), "1\n2\n3\n4\n5\n6\n");
}
