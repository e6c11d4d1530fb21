//! A new output's bytes are read once per run (issue 12): hashed while they go into the cache,
//! the hash reused for the stages that read it and for their re-check. The cache keeps its own
//! copy: editing the output in place afterwards leaves the cached object, and the run record's
//! hash of it, intact.

mod engine_support;

use engine_support::{Project, PIPELINE};

/// `make` writes about 2 MB: more than the store reads into memory at once, so it is copied
/// (or cloned) while hashed.
const PIPELINE_YAML: &str = r#"
name: read_once
stages:
  make:
    cmd: read n < data/n.txt; seq 1 $n > out/big.txt
    deps: [data/n.txt]
    outs: [out/big.txt]
  count:
    cmd: wc -l < out/big.txt > out/count.txt
    deps: [out/big.txt]
    outs: [out/count.txt]
  tail:
    cmd: tail -n 1 out/big.txt > out/tail.txt
    deps: [out/big.txt]
    outs: [out/tail.txt]
"#;

fn project() -> Project {
    let project = Project::new();
    project
        .file("data/n.txt", "300000\n")
        .pipeline(PIPELINE_YAML);
    project
}

/// How often each run read `out/big.txt` whole, from the `WAREZ_DEBUG_READS` log.
fn reads_of_big(project: &Project, log: &str) -> usize {
    std::fs::read_to_string(project.abs(log))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.ends_with("/out/big.txt"))
        .count()
}

#[test]
fn a_new_output_is_read_once_though_two_stages_read_it() {
    let project = project();
    let log = project.abs("reads.log");
    let run = project
        .command(&["run", "--json", PIPELINE])
        .env("WAREZ_DEBUG_READS", &log)
        .output()
        .unwrap();
    let run = engine_support::Run::from_output(run);
    run.assert_code(0);
    assert_eq!(run.with_outcome("ran").len(), 3, "{}", run.stderr);
    assert_eq!(project.read("out/count.txt").trim(), "300000");
    assert_eq!(
        reads_of_big(&project, "reads.log"),
        1,
        "out/big.txt was read more than once:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn editing_an_output_in_place_leaves_its_cache_object_intact() {
    let project = project();
    project.run(&[]).assert_code(0);
    let original = project.read("out/big.txt");
    let lock: serde_yaml::Value = serde_yaml::from_str(&project.read("pipelines/p.lock")).unwrap();
    let hash = lock["stages"]["make"]["outputs"]["out/big.txt"]
        .as_str()
        .expect("recorded hash")
        .to_string();
    assert_eq!(hash, blake3::hash(original.as_bytes()).to_hex().as_str());

    // Overwrite the first bytes of the workspace file in place (same inode, no truncation).
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(project.abs("out/big.txt"))
            .unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(b"edited").unwrap();
    }
    assert_ne!(project.read("out/big.txt"), original);

    let object = project.abs(&format!("cache/objects/{}/{}", &hash[..2], &hash[2..]));
    let cached = std::fs::read(&object).unwrap();
    assert_eq!(
        blake3::hash(&cached).to_hex().as_str(),
        hash,
        "the cache object changed with the workspace file"
    );

    // The run record still restores the original bytes.
    let rerun = project.run(&[]);
    rerun.assert_code(0);
    assert_eq!(rerun.outcomes()["make"], "restored", "{}", rerun.stderr);
    assert_eq!(project.read("out/big.txt"), original);
}
