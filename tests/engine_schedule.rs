//! The scheduler settles stages the stat cache shows up to date on its own thread and hands a
//! worker only the stages that restore or run (issue 12). That must not change what a run
//! does: a run of a pipeline where some stages are up to date, some cut off, restored, rerun,
//! failed or skipped gives the same report, lock file and outputs whether those decisions are
//! made from the stat cache (kept) or by the workers hashing every file (stat cache deleted),
//! at `-j 1` and at `-j 4`.

mod engine_support;

use std::collections::BTreeMap;

use engine_support::{touch, Project};

/// How many up-to-date stages fan out of `a` and into `sink`.
const FAN: usize = 40;

fn pipeline() -> String {
    let mut yaml = String::from("stages:\n");
    let mut stage = |name: &str, cmd: &str, deps: &str, outs: &str| {
        yaml += &format!("  {name}:\n    cmd: {cmd}\n    deps: [{deps}]\n    outs: [{outs}]\n");
    };
    stage("a", "cat data/a.txt > out/a.txt", "data/a.txt", "out/a.txt");
    stage("b", "cat out/a.txt > out/b.txt", "out/a.txt", "out/b.txt");
    // c ignores one of its inputs: changing it reruns c with the same output, cutting d off.
    stage(
        "c",
        "cat data/c.txt > out/c.txt",
        "data/c.txt, data/ignored.txt",
        "out/c.txt",
    );
    stage("d", "cat out/c.txt > out/d.txt", "out/c.txt", "out/d.txt");
    stage("e", "cat data/e.txt > out/e.txt", "data/e.txt", "out/e.txt");
    stage("f", "cat out/e.txt > out/f.txt", "out/e.txt", "out/f.txt");
    stage("h", "cat data/h.txt > out/h.txt", "data/h.txt", "out/h.txt");
    stage("i", "cat data/i.txt > out/i.txt", "data/i.txt", "out/i.txt");
    stage(
        "j",
        "read x < data/j.txt; [ \"$x\" = ok ] || exit 1; echo $x > out/j.txt",
        "data/j.txt",
        "out/j.txt",
    );
    stage("k", "cat out/j.txt > out/k.txt", "out/j.txt", "out/k.txt");
    stage("r", "cat data/r.txt > out/r.txt", "data/r.txt", "out/r.txt");
    stage(
        "s",
        "wc -c < out/r.txt > out/s.txt",
        "out/r.txt",
        "out/s.txt",
    );
    let fan: Vec<String> = (0..FAN).map(|m| format!("out/m/{m}.txt")).collect();
    for (m, out) in fan.iter().enumerate() {
        stage(
            &format!("m{m}"),
            &format!("cat out/a.txt > {out}; echo {m} >> {out}"),
            "out/a.txt",
            out,
        );
    }
    stage(
        "sink",
        "cat out/m/* > out/sink.txt",
        &fan.join(", "),
        "out/sink.txt",
    );
    yaml
}

/// A stage's line of the report: outcome, why, error (its time left out).
type Line = (String, Vec<String>, Option<String>);

/// What a run left: its exit code and report, the lock file, every output.
#[derive(Debug, PartialEq)]
struct Result {
    code: i32,
    report: BTreeMap<String, Line>,
    lock: String,
    outputs: BTreeMap<String, String>,
}

/// Runs the pipeline, lets its outputs settle and runs it again (so the stat cache knows every
/// file), changes a few things, then runs it at `-j jobs`, first deleting the stat cache unless
/// `keep_stat_cache` (every decision then hashes the files it reads).
fn scenario(jobs: usize, keep_stat_cache: bool) -> Result {
    let project = Project::new();
    for name in ["a", "c", "ignored", "e", "h", "i", "r"] {
        project.file(&format!("data/{name}.txt"), &format!("{name} 1\n"));
    }
    project
        .file("data/j.txt", "ok\n")
        .file("out/m/.keep", "")
        .pipeline(&pipeline());
    std::fs::remove_file(project.abs("out/m/.keep")).unwrap();
    project.run(&[]).assert_code(0);
    // Past the stat cache's racy window: the next run remembers every file's hash.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let settled = project.run(&[]);
    settled.assert_code(0);
    assert_eq!(settled.with_outcome("up_to_date").len(), 13 + FAN);
    assert!(project.exists("cache/stat-cache.json"));

    project.file("data/ignored.txt", "changed\n");
    std::fs::remove_file(project.abs("out/e.txt")).unwrap();
    project.file("out/h.txt", "edited by hand\n");
    touch(&project.abs("out/i.txt"));
    project.file("data/j.txt", "bad\n");
    project.file("data/r.txt", "r 2, longer\n");
    if !keep_stat_cache {
        std::fs::remove_file(project.abs("cache/stat-cache.json")).unwrap();
    }

    let jobs = jobs.to_string();
    let run = project.run(&["-j", &jobs]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let report = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stage| {
            let reasons = stage["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|reason| reason.as_str().unwrap().to_string())
                .collect();
            let line = (
                stage["outcome"].as_str().unwrap().to_string(),
                reasons,
                stage["error"].as_str().map(str::to_string),
            );
            (stage["stage"].as_str().unwrap().to_string(), line)
        })
        .collect();
    Result {
        code: run.code,
        report,
        lock: project.read("pipelines/p.lock"),
        outputs: project.tree("out"),
    }
}

#[test]
fn up_to_date_stages_settled_by_the_scheduler_give_the_same_run_as_the_workers_at_any_jobs() {
    let runs: Vec<((usize, bool), Result)> = std::thread::scope(|scope| {
        let handles: Vec<_> = [(1, true), (4, true), (1, false), (4, false)]
            .into_iter()
            .map(|(jobs, keep)| scope.spawn(move || ((jobs, keep), scenario(jobs, keep))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (_, first) = &runs[0];
    assert_eq!(first.code, 1, "j fails");
    let outcome = |stage: &str| first.report[stage].0.as_str();
    let mut expected = BTreeMap::from([
        ("a", "up_to_date"),
        ("b", "up_to_date"),
        ("c", "ran_same_outputs"),
        ("d", "cut_off"),
        ("e", "restored"),
        ("f", "up_to_date"),
        ("h", "restored"),
        ("i", "up_to_date"),
        ("j", "failed"),
        ("k", "skipped"),
        ("r", "ran"),
        ("s", "ran"),
        ("sink", "up_to_date"),
    ]);
    let fan: Vec<String> = (0..FAN).map(|m| format!("m{m}")).collect();
    for m in &fan {
        expected.insert(m, "up_to_date");
    }
    let outcomes: BTreeMap<&str, &str> = first
        .report
        .keys()
        .map(|stage| (stage.as_str(), outcome(stage)))
        .collect();
    assert_eq!(outcomes, expected);
    assert_eq!(
        first.report["d"].1,
        ["`c` reran; what this stage reads is unchanged"]
    );
    assert_eq!(first.outputs["e.txt"], first.outputs["f.txt"]);
    for ((jobs, keep), run) in &runs[1..] {
        assert_eq!(
            run,
            first,
            "-j {jobs}, stat cache {}: differs from -j 1 with the stat cache",
            if *keep { "kept" } else { "deleted" }
        );
    }
}
