//! Pipelines of 10,000 generated `cmd` stages (issue 12): the graph the engine plans from them
//! — a chain and a fan-out/fan-in — has exactly the declared edges, and `status` plans them all.
//! Timings belong to bench/engine_scale.sh, not here.

mod engine_support;

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
