//! Pipelines of 10,000 generated `cmd` stages (issue 12): the graph the engine plans from them
//! — a chain and a fan-out/fan-in — has exactly the declared edges, `status` plans them all, and
//! a chain runs, stays up to date, reruns exactly what is below a changed input and records every
//! stage in the lock file, in pipeline order. Timings belong to bench/engine_scale.sh, not here.

mod engine_support;

use std::collections::{BTreeMap, BTreeSet};

use engine_support::{Project, PIPELINE};

const STAGES: usize = 10_000;

fn stage(name: &str, dep: &str, out: &str) -> String {
    format!("  {name}:\n    cmd: echo {name} > {out}\n    deps: [{dep}]\n    outs: [{out}]\n")
}

#[test]
fn a_chain_of_ten_thousand_stages_links_each_stage_to_the_one_before() {
    let mut yaml = String::from("stages:\n");
    yaml += &stage("s0", "data/src.txt", "out/0.txt");
    for i in 1..STAGES {
        yaml += &stage(
            &format!("s{i}"),
            &format!("out/{}.txt", i - 1),
            &format!("out/{i}.txt"),
        );
    }
    let project = Project::new();
    project.file("data/src.txt", "1\n").pipeline(&yaml);

    let dag = project
        .warez(&["dag", PIPELINE])
        .assert_code(0)
        .stdout
        .clone();
    let mut expected = String::from("s0\n");
    for i in 1..STAGES {
        expected += &format!("s{i} <- s{}\n", i - 1);
    }
    assert_eq!(dag, expected);

    let status = project.warez(&["status", PIPELINE]).stdout.clone();
    assert!(status.starts_with("stale  s0"), "{}", &status[..200]);
    assert_eq!(
        status
            .lines()
            .filter(|line| line.starts_with("stale  "))
            .count(),
        STAGES
    );
}

#[test]
fn a_fan_out_and_in_of_ten_thousand_stages_joins_them_all_in_the_sink() {
    let mut yaml = String::from("stages:\n");
    yaml += &stage("src", "data/src.txt", "out/src.txt");
    for i in 0..STAGES {
        yaml += &stage(&format!("m{i}"), "out/src.txt", &format!("out/m/{i}.txt"));
    }
    // The sink reads the folder holding every middle output.
    yaml += &stage("sink", "out/m", "out/sink.txt");
    let project = Project::new();
    project.file("data/src.txt", "1\n").pipeline(&yaml);

    let dag = project
        .warez(&["dag", PIPELINE])
        .assert_code(0)
        .stdout
        .clone();
    let mut expected = String::from("src\n");
    for i in 0..STAGES {
        expected += &format!("m{i} <- src\n");
    }
    let middle: Vec<String> = (0..STAGES).map(|i| format!("m{i}")).collect();
    expected += &format!("sink <- {}\n", middle.join(", "));
    assert_eq!(dag, expected);
}

/// Stage `i` of a chain writes the number it reads from stage `i - 1` plus one (shell builtins
/// only: one `sh` per stage); the middle stage also adds the number in `data/mid.txt`, so a
/// change there changes every output below it.
fn counting_chain() -> String {
    let mut yaml = String::from("stages:\n");
    yaml += "  s0:\n    cmd: read n < data/src.txt; echo $((n + 1)) > out/0.txt\n    deps: [data/src.txt]\n    outs: [out/0.txt]\n";
    for i in 1..STAGES {
        let prev = i - 1;
        if i == STAGES / 2 {
            yaml += &format!(
                "  s{i}:\n    cmd: read n < out/{prev}.txt; read k < data/mid.txt; echo $((n + k)) > out/{i}.txt\n    deps: [out/{prev}.txt, data/mid.txt]\n    outs: [out/{i}.txt]\n"
            );
        } else {
            yaml += &format!(
                "  s{i}:\n    cmd: read n < out/{prev}.txt; echo $((n + 1)) > out/{i}.txt\n    deps: [out/{prev}.txt]\n    outs: [out/{i}.txt]\n"
            );
        }
    }
    yaml
}

#[test]
fn a_chain_of_ten_thousand_stages_runs_then_stays_up_to_date_then_reruns_below_a_change() {
    let project = Project::new();
    project
        .file("data/src.txt", "0\n")
        .file("data/mid.txt", "1\n")
        .pipeline(&counting_chain());
    let names: Vec<String> = (0..STAGES).map(|i| format!("s{i}")).collect();
    let all: BTreeSet<String> = names.iter().cloned().collect();

    let first = project.run(&[]);
    first.assert_code(0);
    assert_eq!(
        first
            .with_outcome("ran")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        all
    );
    let last = format!("out/{}.txt", STAGES - 1);
    assert_eq!(project.read(&last), format!("{STAGES}\n"));

    let second = project.run(&[]);
    second.assert_code(0);
    assert_eq!(
        second
            .with_outcome("up_to_date")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        all,
        "a second run does nothing"
    );
    project.warez(&["status", PIPELINE]).assert_code(0);

    // The lock file records every stage, in pipeline order, with its output's hash.
    let lock: serde_yaml::Value = serde_yaml::from_str(&project.read("pipelines/p.lock")).unwrap();
    let stages = lock["stages"].as_mapping().expect("stages");
    let recorded: Vec<&str> = stages.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        recorded,
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for (i, entry) in stages.values().enumerate() {
        let output = format!("out/{i}.txt");
        let hash = entry["outputs"][output.as_str()]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            hash,
            blake3::hash(project.read(&output).as_bytes())
                .to_hex()
                .as_str(),
            "s{i}'s recorded output hash"
        );
        assert_eq!(entry["key"].as_str().map(str::len), Some(64), "s{i}'s key");
    }

    project.file("data/mid.txt", "2\n");
    let third = project.run(&[]);
    third.assert_code(0);
    let below: BTreeSet<String> = names[STAGES / 2..].iter().cloned().collect();
    let above: BTreeSet<String> = names[..STAGES / 2].iter().cloned().collect();
    assert_eq!(
        third
            .with_outcome("ran")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        below
    );
    assert_eq!(
        third
            .with_outcome("up_to_date")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        above
    );
    assert_eq!(project.read(&last), format!("{}\n", STAGES + 1));
}

/// Every file of the project but the run lock (which holds the running process's id): its
/// bytes and modification time.
fn snapshot(project: &Project) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    walkdir::WalkDir::new(project.path())
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.file_type().is_file() && entry.file_name() != "run.lock")
        .map(|entry| {
            let path = entry.path();
            let relative = path.strip_prefix(project.path()).unwrap();
            let modified = entry.metadata().unwrap().modified().unwrap();
            (
                relative.display().to_string(),
                (std::fs::read(path).unwrap(), modified),
            )
        })
        .collect()
}

#[test]
fn a_no_op_run_of_a_fan_out_and_in_writes_nothing() {
    let middle = STAGES / 10;
    let mut yaml = String::from("stages:\n");
    yaml += &stage("src", "data/src.txt", "out/src.txt");
    for i in 0..middle {
        yaml += &stage(&format!("m{i}"), "out/src.txt", &format!("out/m/{i}.txt"));
    }
    let outputs: Vec<String> = (0..middle).map(|i| format!("out/m/{i}.txt")).collect();
    yaml += &format!(
        "  sink:\n    cmd: cat out/m/* > out/sink.txt\n    deps: [{}]\n    outs: [out/sink.txt]\n",
        outputs.join(", ")
    );
    let project = Project::new();
    project.file("data/src.txt", "1\n").pipeline(&yaml);
    project.run(&[]).assert_code(0);
    // Past the stat cache's racy window, so the next run can remember every output's hash;
    // that run records the stages as up to date.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let second = project.run(&[]);
    second.assert_code(0);
    assert_eq!(second.with_outcome("up_to_date").len(), middle + 2);
    let before = snapshot(&project);
    for name in [
        "pipelines/p.lock",
        "cache/history.json",
        "cache/stat-cache.json",
    ] {
        assert!(before.contains_key(name), "{name} exists");
    }

    let third = project.run(&[]);
    third.assert_code(0);
    assert_eq!(third.with_outcome("up_to_date").len(), middle + 2);
    project.warez(&["status", PIPELINE]).assert_code(0);
    let after = snapshot(&project);
    let changed: Vec<&String> = after
        .keys()
        .chain(before.keys())
        .filter(|name| before.get(*name) != after.get(*name))
        .collect();
    assert!(changed.is_empty(), "written by a no-op run: {changed:?}");

    // What the run did is still on record for `report`: the stages ran, then were up to date.
    let history: serde_json::Value =
        serde_json::from_str(&project.read("cache/history.json")).unwrap();
    let sink = &history["pipelines"]["p"]["sink"];
    assert_eq!(sink["outcome"], "up_to_date", "{sink}");
    assert_eq!(sink["last_work"]["outcome"], "ran", "{sink}");
}

/// A chain of 10,000 stages (`stage`) as `Project::pipeline` writes it: line 1 is `project_dir:`,
/// line 2 `stages:`, stage `i` starts on line `3 + 4i` with `cmd`, `deps`, `outs` on the next
/// three; `edit` may change stage `i`'s text.
fn chain_with(edit: impl Fn(usize, String) -> String) -> String {
    let mut yaml = String::from("stages:\n");
    for i in 0..STAGES {
        let dep = match i {
            0 => "data/src.txt".to_string(),
            _ => format!("out/{}.txt", i - 1),
        };
        yaml += &edit(i, stage(&format!("s{i}"), &dep, &format!("out/{i}.txt")));
    }
    yaml
}

fn stage_line(i: usize) -> usize {
    3 + 4 * i
}

/// Loading `yaml` is refused (exit 2, nothing run) with exactly `message` on stderr.
#[track_caller]
fn refused(yaml: &str, message: &str) {
    let project = Project::new();
    project.file("data/src.txt", "1\n").pipeline(yaml);
    let run = project.warez(&["run", PIPELINE]);
    run.assert_code(2);
    assert_eq!(run.stderr.trim_end(), format!("error: {message}"));
    assert!(!project.exists("out"), "nothing ran");
}

/// Places are found only when an error needs one (positions are indexed lazily): deep in a
/// 10,000-stage pipeline each error still names its exact line and column.
#[test]
fn errors_deep_in_ten_thousand_stages_name_their_exact_place() {
    let deep = 9_500;
    refused(
        &chain_with(|i, text| match i == deep {
            true => text.replace("deps: [out/9499.txt]", "deps: [out/9499.txt, data/none.txt]"),
            false => text,
        }),
        &format!(
            "pipelines/p.yaml:{}:26: stage `s{deep}`: dependency `data/none.txt` is produced by no stage and no such file exists",
            stage_line(deep) + 2
        ),
    );
    refused(
        &(chain_with(|_, text| text) + "  s9000:\n    cmd: echo again\n"),
        &format!(
            "pipelines/p.yaml:{}:3: duplicate stage name `s9000` (first defined on line {})",
            stage_line(STAGES),
            stage_line(9_000)
        ),
    );
    refused(
        &chain_with(|i, text| match i == deep {
            true => text.replace("    cmd:", "    params: { a: 1, b: 2, a: 3 }\n    cmd:"),
            false => text,
        }),
        &format!(
            "pipelines/p.yaml:{}:27: duplicate key `a` (first on line {})",
            stage_line(deep) + 1,
            stage_line(deep) + 1
        ),
    );
    // s9000 reads the last output: s9000 -> … -> s9999 -> s9000, closed at s9000's dependency.
    let first = 9_000;
    let cycle: Vec<String> = (first..STAGES)
        .chain([first])
        .map(|i| format!("s{i}"))
        .collect();
    refused(
        &chain_with(|i, text| match i == first {
            true => text.replace("deps: [out/8999.txt]", "deps: [out/9999.txt]"),
            false => text,
        }),
        &format!(
            "pipelines/p.yaml:{}:12: dependency cycle: {} (stage `s{first}` reads `out/9999.txt`, an output of `s9999`)",
            stage_line(first) + 2,
            cycle.join(" -> ")
        ),
    );
    refused(
        &chain_with(|i, text| match i == 9_700 {
            true => text.replace("outs: [out/9700.txt]", "outs: [out/9700.txt, out/12.txt]"),
            false => text,
        }),
        &format!(
            "pipelines/p.yaml:{}:26: stage `s9700` writes `out/12.txt`, which stage `s12` (as `out/12.txt`) also writes",
            stage_line(9_700) + 3
        ),
    );
    refused(
        &chain_with(|i, text| match i == deep {
            true => text.replace("cmd: echo", "cmd: echo ${params.missing}"),
            false => text,
        }),
        &format!(
            "pipelines/p.yaml:{}:10: stage `s{deep}`: unknown variable `${{params.missing}}`",
            stage_line(deep) + 1
        ),
    );
}
