//! The shared remote cache (issue 11) through the real binary against real remotes: a folder,
//! an S3 server (moto) and a WebDAV server (wsgidav), all on 127.0.0.1 and started here.

#[path = "engine_support/mod.rs"]
mod engine_support;
#[path = "remote_support/mod.rs"]
mod remote_support;

use std::path::Path;
use std::process::Command;

use engine_support::{Project, Run, PIPELINE};
use remote_support::{Kind, Remote};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const RECOMMENDER: &str = "pipelines/recommender.yaml";
const RECOMMENDER_LOCK: &str = "pipelines/recommender.lock";
const STAGES: [&str; 4] = ["ingest", "train", "export_tf", "write_avro"];

/// A cheap pipeline: a folder output of many small files plus one large file, a small file,
/// and a stage reading the folder. Its outputs come from /dev/urandom, so a restore is told
/// apart from a rerun by the bytes.
const SMALL: &str = r#"name: p
stages:
  gen:
    cmd: mkdir -p out/tree/sub && for i in $(seq 1 300); do echo "file $i" > out/tree/sub/f$i; done && head -c 3000000 /dev/urandom > out/tree/large && head -c 64 /dev/urandom > out/note
    outs: [out/tree, out/note]
  count:
    cmd: ls out/tree/sub | wc -l > out/count
    deps: [out/tree]
    outs: [out/count]
"#;

fn warez(project: &Project, remote: &Remote, args: &[&str]) -> Run {
    let mut command = project.command(args);
    remote.apply(&mut command);
    Run::from_output(command.output().unwrap())
}

/// `warez` with no ONNX Runtime to be found: `ORT_DYLIB_PATH` names a missing file (an
/// explicit choice that is never second-guessed, so nothing gets provisioned) and
/// `WAREZ_PYTHON` a missing interpreter.
fn warez_without_onnxruntime(project: &Project, remote: &Remote, args: &[&str]) -> Run {
    let mut command = project.command(args);
    remote.apply(&mut command);
    command
        .env(
            "ORT_DYLIB_PATH",
            project.abs("no-onnxruntime/libonnxruntime.so.1.31.1"),
        )
        .env("WAREZ_PYTHON", project.abs("no-python/python3"));
    Run::from_output(command.output().unwrap())
}

/// A fresh clone of the recommender project (pipeline, schema, small data set), with the
/// lock file of `built` if given (as a clone of a commit made after CI ran).
fn recommender_clone(built: Option<&Project>) -> Project {
    let project = Project::new();
    for file in [
        RECOMMENDER,
        "avro/RecommenderModel.avsc",
        "data/ratings_small.csv",
    ] {
        let text = std::fs::read_to_string(Path::new(REPO).join(file)).unwrap();
        project.file(file, &text);
    }
    if let Some(built) = built {
        project.file(RECOMMENDER_LOCK, &built.read(RECOMMENDER_LOCK));
    }
    project
}

fn small_project() -> Project {
    let project = Project::new();
    project.pipeline(SMALL);
    project
}

/// A fresh clone of a small project: the pipeline and the lock file, nothing else.
fn small_clone(built: &Project) -> Project {
    let project = small_project();
    project.file("pipelines/p.lock", &built.read("pipelines/p.lock"));
    project
}

/// Every object file in a local cache hashes to its name (nothing unverified got in).
fn assert_cache_verified(project: &Project) {
    let objects = project.abs("cache/objects");
    for shard in std::fs::read_dir(&objects).unwrap().flatten() {
        for object in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let name = format!(
                "{}{}",
                shard.file_name().to_string_lossy(),
                object.file_name().to_string_lossy()
            );
            let bytes = std::fs::read(object.path()).unwrap();
            assert_eq!(
                blake3::hash(&bytes).to_hex().as_str(),
                name,
                "cache object with other bytes than its name"
            );
        }
    }
}

// ---- A fills the remote; B restores everything without ONNX Runtime; C pulls ----

fn recommender_round_trip(kind: Kind) {
    let remote = Remote::new(kind);
    let a = recommender_clone(None);
    let built = warez(&a, &remote, &["run", "--json", RECOMMENDER]);
    built.assert_code(0);
    assert_eq!(
        built.with_outcome("ran").len(),
        STAGES.len(),
        "{}",
        built.stderr
    );
    let names = remote.list();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("ac/")).count(),
        STAGES.len(),
        "one run record per stage: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("packs/v1/")),
        "saved_model/'s small files travel packed: {names:?}"
    );

    let b = recommender_clone(Some(&a));
    let restored = warez_without_onnxruntime(&b, &remote, &["run", "--json", RECOMMENDER]);
    restored.assert_code(0);
    let mut outcomes: Vec<String> = restored.outcomes().into_values().collect();
    outcomes.dedup();
    assert_eq!(outcomes, ["restored_remote"], "{}", restored.stderr);
    let table = warez_without_onnxruntime(&b, &remote, &["run", RECOMMENDER]);
    table.assert_code(0);
    assert_eq!(b.tree("models"), a.tree("models"));
    assert_eq!(b.read(RECOMMENDER_LOCK), a.read(RECOMMENDER_LOCK));

    let c = recommender_clone(Some(&a));
    warez_without_onnxruntime(&c, &remote, &["pull", RECOMMENDER])
        .assert_code(0)
        .assert_stderr_contains("restored  models/recommender/saved_model");
    assert_eq!(c.tree("models"), a.tree("models"));
    let status = warez_without_onnxruntime(&c, &remote, &["status", RECOMMENDER]);
    status.assert_code(0);
    assert_eq!(
        status.stdout.matches("fresh").count(),
        STAGES.len(),
        "{}",
        status.stdout
    );
    assert_cache_verified(&c);
}

#[test]
fn file_remote_round_trip() {
    recommender_round_trip(Kind::File);
}

#[test]
fn s3_remote_round_trip() {
    recommender_round_trip(Kind::S3);
}

#[test]
fn http_remote_round_trip() {
    recommender_round_trip(Kind::Http);
}

// ---- A server that is down ----

fn server_down(kind: Kind) {
    let mut remote = Remote::new(kind);
    remote.server.as_mut().unwrap().stop();
    let project = small_project();
    let run = warez(&project, &remote, &["run", "--json", PIPELINE]);
    run.assert_code(0)
        .assert_stderr_contains("warning:")
        .assert_stderr_contains(&format!("remote {}", remote.url));
    assert_eq!(run.with_outcome("ran"), ["count", "gen"]);
    assert_eq!(
        run.stderr.matches("warning:").count(),
        1,
        "warned once:\n{}",
        run.stderr
    );
    warez(&project, &remote, &["push", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains(&format!("remote {}", remote.url));
    warez(&small_clone(&project), &remote, &["status", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains(&format!("warning: remote {}", remote.url))
        .assert_stdout_contains("stale");
}

#[test]
fn s3_server_down_warns_and_runs_locally() {
    server_down(Kind::S3);
}

#[test]
fn http_server_down_warns_and_runs_locally() {
    server_down(Kind::Http);
}

// ---- Corrupted objects in the remote ----

fn corrupted(kind: Kind) {
    let remote = Remote::new(kind);
    let a = small_project();
    warez(&a, &remote, &["run", PIPELINE]).assert_code(0);
    let note = format!(
        "cas/{}",
        blake3::hash(&std::fs::read(a.abs("out/note")).unwrap()).to_hex()
    );
    let pack = remote
        .list()
        .into_iter()
        .find(|name| name.starts_with("packs/v1/") && name.ends_with(".0"))
        .expect("the folder's small files are packed");
    let mut pack_bytes = remote.read(&pack);
    pack_bytes[3] ^= 0x55;
    remote.write(&pack, &pack_bytes);
    remote.write(&note, b"not the note");

    // `run` detects it, says so, and runs the stage instead.
    let b = small_clone(&a);
    let run = warez(&b, &remote, &["run", "--json", PIPELINE]);
    run.assert_code(0).assert_stderr_contains("is corrupted");
    assert_eq!(run.outcomes()["gen"], "ran");
    assert_ne!(std::fs::read(b.abs("out/note")).unwrap(), b"not the note");
    assert_cache_verified(&b);

    // `pull` fails naming it; the bad bytes reach neither the workspace nor the cache.
    let c = small_clone(&a);
    let pull = warez(&c, &remote, &["pull", PIPELINE]);
    pull.assert_code(1).assert_stderr_contains("is corrupted");
    assert!(
        pull.stderr.contains(&pack) || pull.stderr.contains(&note),
        "{}",
        pull.stderr
    );
    assert!(!c.exists("out/note") && !c.exists("out/tree"));
    assert_eq!(
        c.read("out/count"),
        a.read("out/count"),
        "the intact stage is pulled"
    );
    assert_cache_verified(&c);
}

#[test]
fn s3_corrupted_object_is_detected_and_not_used() {
    corrupted(Kind::S3);
}

#[test]
fn http_corrupted_object_is_detected_and_not_used() {
    corrupted(Kind::Http);
}

#[test]
fn file_corrupted_object_is_detected_and_not_used() {
    corrupted(Kind::File);
}

#[test]
fn an_unreadable_run_record_in_the_remote_is_replaced_by_the_next_upload() {
    let remote = Remote::new(Kind::File);
    // Deterministic stages: the next machine computes the same keys.
    let pipeline = "name: p\nstages:\n  first:\n    cmd: mkdir -p out && echo hi > out/a\n    outs: [out/a]\n  second:\n    cmd: cat out/a out/a > out/b\n    deps: [out/a]\n    outs: [out/b]\n";
    let a = Project::new();
    a.pipeline(pipeline);
    warez(&a, &remote, &["run", PIPELINE]).assert_code(0);
    let clone = || {
        let project = Project::new();
        project.pipeline(pipeline);
        project.file("pipelines/p.lock", &a.read("pipelines/p.lock"));
        project
    };
    let records: Vec<String> = (remote.list().into_iter())
        .filter(|name| name.starts_with("ac/"))
        .collect();
    assert!(!records.is_empty());
    for record in &records {
        remote.write(record, b"{\"cut short");
    }

    // The next machine cannot use them: it runs the stages and uploads their records again.
    // (They used to stay: a record that existed was never uploaded again, so every machine
    // rebuilt every stage from then on.)
    let b = clone();
    warez(&b, &remote, &["run", PIPELINE])
        .assert_code(0)
        .assert_stderr_contains("is not a run record; not used");
    for record in &records {
        let bytes = remote.read(record);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "{record} is still unreadable"
        );
    }
    let c = clone();
    warez(&c, &remote, &["pull", PIPELINE]).assert_code(0);
    assert_eq!(c.read("out/b"), "hi\nhi\n");
}

// ---- Two machines pushing the same keys at once ----

fn concurrent_push(kind: Kind) {
    let remote = Remote::new(kind);
    let a = small_project();
    let run = a.warez(&["run", PIPELINE]);
    run.assert_code(0);
    let a2 = Project::new();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", a.path().display()))
        .arg(a2.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let spawn = |project: &Project| {
        let mut command = project.command(&["push", PIPELINE, "-j", "4"]);
        remote.apply(&mut command);
        command.spawn().unwrap()
    };
    let (first, second) = (spawn(&a), spawn(&a2));
    for child in [first, second] {
        let output = Run::from_output(child.wait_with_output().unwrap());
        output.assert_code(0).assert_stderr_contains("pushed to");
    }
    let again = warez(&a, &remote, &["push", PIPELINE]);
    again
        .assert_code(0)
        .assert_stderr_contains("0 run records (2 already there), 0 objects");
    let c = small_clone(&a);
    warez(&c, &remote, &["pull", PIPELINE]).assert_code(0);
    assert_eq!(c.tree("out"), a.tree("out"));
}

#[test]
fn s3_two_pushes_of_the_same_keys_at_once() {
    concurrent_push(Kind::S3);
}

#[test]
fn http_two_pushes_of_the_same_keys_at_once() {
    concurrent_push(Kind::Http);
}

// ---- A 1 GiB output streams both ways in bounded memory ----

/// Peak RSS in KiB of `warez-pipe ARGS` run under `/usr/bin/time -v`.
fn peak_rss_kib(project: &Project, remote: &Remote, args: &[&str]) -> (Run, u64) {
    let mut command = Command::new("/usr/bin/time");
    command
        .arg("-v")
        .arg(assert_cmd::cargo::cargo_bin!("warez-pipe"))
        .args(args)
        .current_dir(project.path())
        .env("NO_COLOR", "1")
        .env_remove("WAREZ_CACHE");
    remote.apply(&mut command);
    let run = Run::from_output(command.output().unwrap());
    let kib = run
        .stderr
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .unwrap_or_else(|| panic!("no RSS in:\n{}", run.stderr))
        .parse()
        .unwrap();
    (run, kib)
}

fn one_gib(kind: Kind) {
    const LIMIT_KIB: u64 = 200 * 1024;
    let remote = Remote::new(kind);
    let a = Project::new();
    a.pipeline("name: p\nstages:\n  big:\n    cmd: mkdir -p out && head -c 1073741824 /dev/urandom > out/big\n    outs: [out/big]\n");
    a.warez(&["run", PIPELINE]).assert_code(0);
    let (push, push_kib) = peak_rss_kib(&a, &remote, &["push", PIPELINE]);
    push.assert_code(0)
        .assert_stderr_contains("1 objects, 1.00 GiB");
    assert!(push_kib < LIMIT_KIB, "push peaked at {push_kib} KiB");
    let c = Project::new();
    c.file(PIPELINE, &a.read(PIPELINE));
    c.file("pipelines/p.lock", &a.read("pipelines/p.lock"));
    let (pull, pull_kib) = peak_rss_kib(&c, &remote, &["pull", PIPELINE]);
    pull.assert_code(0);
    assert!(pull_kib < LIMIT_KIB, "pull peaked at {pull_kib} KiB");
    c.warez(&["status", PIPELINE]).assert_code(0);
}

#[test]
fn s3_one_gib_output_streams_in_bounded_memory() {
    one_gib(Kind::S3);
}

#[test]
fn http_one_gib_output_streams_in_bounded_memory() {
    one_gib(Kind::Http);
}

// ---- Credentials ----

#[test]
fn s3_wrong_credentials_name_the_remote() {
    let remote = Remote::s3(true);
    let project = small_project();
    let push = {
        project.warez(&["run", PIPELINE]).assert_code(0);
        warez(&project, &remote, &["push", PIPELINE])
    };
    push.assert_code(1)
        .assert_stderr_contains("remote s3://warez/team: access denied")
        .assert_stderr_contains("AWS_ACCESS_KEY_ID");
    assert!(
        !push.stderr.contains("warez-test-secret"),
        "{}",
        push.stderr
    );
    let fresh = small_project();
    let run = warez(&fresh, &remote, &["run", PIPELINE]);
    run.assert_code(0)
        .assert_stderr_contains("warning:")
        .assert_stderr_contains("remote s3://warez/team: access denied");
}

#[test]
fn http_wrong_credentials_name_the_remote_and_hide_the_password() {
    let mut remote = Remote::http();
    remote.set_env("WAREZ_REMOTE_PASSWORD", "wrong-password");
    let project = small_project();
    project.warez(&["run", PIPELINE]).assert_code(0);
    warez(&project, &remote, &["push", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains(&format!("remote {}: access denied", remote.url))
        .assert_stderr_contains("WAREZ_REMOTE_PASSWORD");
    // Credentials in the URL: used, never shown.
    let port = remote.server.as_ref().unwrap().port;
    let mut with_user_info = Remote::http();
    with_user_info.url = format!("http://ci:url-secret@127.0.0.1:{port}/warez");
    let push = warez(&project, &with_user_info, &["push", PIPELINE]);
    push.assert_code(1).assert_stderr_contains(&format!(
        "remote http://127.0.0.1:{port}/warez: access denied"
    ));
    assert!(!push.stderr.contains("url-secret"), "{}", push.stderr);
}

// ---- Where the remote comes from, read-only mode, push/pull details (file remote) ----

#[test]
fn read_only_mode_reads_but_never_writes() {
    let remote = Remote::file();
    let project = small_project();
    warez(&project, &remote, &["run", PIPELINE, "--remote-read-only"]).assert_code(0);
    assert_eq!(remote.list(), Vec::<String>::new());
    let mut command = project.command(&["push", PIPELINE]);
    remote.apply(&mut command);
    let push = Run::from_output(command.env("WAREZ_REMOTE_READ_ONLY", "1").output().unwrap());
    push.assert_code(1).assert_stderr_contains("read-only");
    assert_eq!(remote.list(), Vec::<String>::new());

    warez(&project, &remote, &["push", PIPELINE]).assert_code(0);
    let reader = small_clone(&project);
    let restored = warez(
        &reader,
        &remote,
        &["run", "--json", PIPELINE, "--remote-read-only"],
    );
    assert_eq!(restored.with_outcome("restored_remote"), ["count", "gen"]);
}

#[test]
fn remote_key_in_the_pipeline_and_flag_precedence() {
    let remote = Remote::file();
    let project = Project::new();
    project.pipeline(&format!("remote: {}\n{SMALL}", remote.url));
    project.warez(&["run", PIPELINE]).assert_code(0);
    assert_eq!(
        remote
            .list()
            .iter()
            .filter(|n| n.starts_with("ac/"))
            .count(),
        2,
        "the YAML's remote is written through"
    );
    let elsewhere = Remote::file();
    warez(&project, &elsewhere, &["push", PIPELINE])
        .assert_code(0)
        .assert_stderr_contains(&format!("pushed to {}", elsewhere.url));
    assert_eq!(
        elsewhere.list().len(),
        remote.list().len(),
        "WAREZ_REMOTE wins over the YAML"
    );

    let bad = Project::new();
    bad.pipeline(&format!("remote: ftp://host/x\n{SMALL}"));
    bad.warez(&["run", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains("p.yaml:2:9: remote: unsupported scheme `ftp:`");
    bad.pipeline(&format!("remote: https://ci:pw@host/x\n{SMALL}"));
    bad.warez(&["status", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains("a password does not belong in the pipeline file");
    bad.pipeline(&format!("remotes: file:///x\n{SMALL}"));
    bad.warez(&["run", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains("unknown field `remotes`");
    let project2 = small_project();
    project2
        .warez(&["run", PIPELINE, "--remote", "gopher://x/y"])
        .assert_code(1)
        .assert_stderr_contains("--remote / WAREZ_REMOTE: unsupported scheme `gopher:`");
    // `file:cache` is no relative path (a URL parser reads `/cache`), and `http:///x` has no
    // host (it reads host `x`): both are refused before anything is written or contacted.
    project2
        .warez(&["push", PIPELINE, "--remote", "file:cache"])
        .assert_code(1)
        .assert_stderr_contains("a file URL is file:///absolute/path (three slashes)");
    project2
        .warez(&["push", PIPELINE, "--remote", "http:///x"])
        .assert_code(1)
        .assert_stderr_contains("a http URL needs a bucket or host after `//`");
}

#[test]
fn push_all_status_and_pull_of_what_is_nowhere() {
    let remote = Remote::file();
    let project = small_project();
    project.warez(&["run", PIPELINE]).assert_code(0);
    // A second key of `count` that the lock file no longer names.
    project.file(
        PIPELINE,
        &project.read(PIPELINE).replace("wc -l", "wc -l | tr -d ' '"),
    );
    project.warez(&["run", PIPELINE]).assert_code(0);
    warez(&project, &remote, &["push", PIPELINE])
        .assert_code(0)
        .assert_stderr_contains("2 run records (0 already there)");
    warez(&project, &remote, &["push", "--all", PIPELINE])
        .assert_code(0)
        .assert_stderr_contains("1 run records (2 already there)");

    let clone = small_clone(&project);
    let status = warez(&clone, &remote, &["status", PIPELINE]);
    status
        .assert_code(1)
        .assert_stdout_contains("(in the remote: `run` or `pull` restores it)");
    let dry = warez(&clone, &remote, &["run", "--json", "--dry-run", PIPELINE]);
    assert_eq!(dry.with_outcome("would_restore"), ["gen"]);

    let empty = Remote::file();
    let pull = warez(&clone, &empty, &["pull", PIPELINE]);
    pull.assert_code(1)
        .assert_stderr_contains("error: 2 missing:")
        .assert_stderr_contains("stage `gen`: its run record");
    assert!(!clone.exists("out/note"));
}

/// `pull` of a stage whose run record is in the local cache but does not read as one: the
/// message names that file instead of saying the cache lacks the record.
#[test]
fn pull_names_a_local_run_record_that_does_not_read() {
    let project = small_project();
    project.warez(&["run", PIPELINE]).assert_code(0);
    let mut records = Vec::new();
    for shard in std::fs::read_dir(project.abs("cache/runs")).unwrap() {
        for record in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            records.push(record.unwrap().path());
        }
    }
    assert!(!records.is_empty());
    for record in &records {
        std::fs::write(record, "not a record").unwrap();
    }
    let pull = project.warez(&["pull", PIPELINE]);
    pull.assert_code(1);
    for record in &records {
        pull.assert_stderr_contains(&format!(
            "{} does not read as a run record (no remote given)",
            record.display()
        ));
    }
}
