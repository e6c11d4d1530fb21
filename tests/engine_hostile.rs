//! Hostile pipelines through the binary: no output may destroy the project (its root, `.git`,
//! the cache, pipeline and lock files, a stage's own dependencies — whatever the spelling), no
//! symlink may lead an output, `clean` or `gc` outside, a symlink loop is an error and a file
//! truncated while it is hashed is no crash.
//!
//! Every rejection case runs on a project that has really run once (a cache, a lock file), with a
//! `.git`, a sibling pipeline and its lock file; it checks the exit code, the `file:line:column`
//! and words of the message, that the stage's command never ran, and that every protected file
//! is byte-identical afterwards.

mod engine_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use engine_support::{wait_with_timeout, Project, Run, PIPELINE};

/// The folders whose every byte must survive a rejected pipeline.
const PROTECTED: [&str; 5] = [".git", "pipelines", "conf", "cache", "data"];

/// A project that ran a harmless pipeline once (cache and lock file exist), with a `.git`, a
/// second pipeline beside the first and its lock file.
fn protected_project() -> Project {
    let project = Project::new();
    project
        .file(".git/HEAD", "ref: refs/heads/main\n")
        .file(".git/objects/ab/cdef", "a git object\n")
        .file("data/in.txt", "input\n")
        .file("data/sub/x.txt", "x\n")
        .file("conf/settings.txt", "kept\n")
        .file(
            "pipelines/recommender.yaml",
            "project_dir: ..\nname: other\nstages: {}\n",
        )
        .file("pipelines/recommender.lock", "another pipeline's lock\n")
        .pipeline("name: t\nstages:\n  a:\n    cmd: cp data/in.txt out.txt\n    deps: [data/in.txt]\n    outs: [out.txt]\n");
    project.run(&[]).assert_code(0);
    assert!(project.exists("pipelines/p.lock") && project.exists("cache/objects"));
    project
}

/// Every file (blake3 of its bytes) and symlink (its target) under the protected folders.
fn snapshot(project: &Project) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for dir in PROTECTED {
        for entry in walkdir::WalkDir::new(project.abs(dir)) {
            let entry = entry.unwrap();
            let name = entry.path().strip_prefix(project.path()).unwrap();
            let summary = if entry.path_is_symlink() {
                format!("-> {}", std::fs::read_link(entry.path()).unwrap().display())
            } else if entry.file_type().is_file() {
                blake3::hash(&std::fs::read(entry.path()).unwrap()).to_string()
            } else {
                "folder".to_string()
            };
            files.insert(name.display().to_string(), summary);
        }
    }
    files
}

/// One hostile pipeline: a `cmd` stage (`touch ran`) with these deps and outs, written to
/// `file`, given to `command` with `args` (and `env`), rejected at `place` with all of `words`.
struct Case {
    command: &'static str,
    file: &'static str,
    deps: &'static str,
    outs: &'static str,
    args: &'static [&'static str],
    env: Option<(&'static str, &'static str)>,
    /// Extra preparation (symlinks).
    setup: fn(&Project, &Path),
    place: &'static str,
    words: &'static [&'static str],
}

const fn case(
    file: &'static str,
    outs: &'static str,
    place: &'static str,
    words: &'static [&'static str],
) -> Case {
    Case {
        command: "run",
        file,
        deps: "",
        outs,
        args: &[],
        env: None,
        setup: |_, _| {},
        place,
        words,
    }
}

const P: &str = PIPELINE;
const D: &str = "conf/d.yaml";

fn cases() -> Vec<Case> {
    let is_git = &["output", "is the project's git repository `.git`"];
    let root = &["is the project folder"];
    let in_pipelines = &["contains the pipeline file `pipelines/p.yaml`"];
    let cache = &["is the cache folder in use `cache`"];
    let mut cases = vec![
        // The project's git repository, as the issue found it: a pipeline in conf/.
        case(D, ".git", "conf/d.yaml:6:12", is_git),
        case(D, "./.git", "conf/d.yaml:6:12", is_git),
        case(D, ".git/", "conf/d.yaml:6:12", is_git),
        case(D, "data/../.git", "conf/d.yaml:6:12", is_git),
        case(
            D,
            ".git/objects/ab",
            "conf/d.yaml:6:12",
            &["lies inside the project's git repository `.git`"],
        ),
        case(
            P,
            "vendor/lib/.git",
            "pipelines/p.yaml:6:12",
            &["lies inside a `.git` folder"],
        ),
        // The project folder itself.
        case(P, ".", "pipelines/p.yaml:6:12", root),
        case(P, "./", "pipelines/p.yaml:6:12", root),
        case(P, "data/..", "pipelines/p.yaml:6:12", root),
        // Pipeline and lock files.
        case(P, "pipelines", "pipelines/p.yaml:6:12", in_pipelines),
        case(P, "./pipelines/", "pipelines/p.yaml:6:12", in_pipelines),
        case(
            P,
            "data/../pipelines",
            "pipelines/p.yaml:6:12",
            in_pipelines,
        ),
        case(
            P,
            "pipelines/./p.yaml",
            "pipelines/p.yaml:6:12",
            &["is the pipeline file `pipelines/p.yaml`"],
        ),
        case(
            P,
            "pipelines/p.lock",
            "pipelines/p.yaml:6:12",
            &["is the pipeline's lock file `pipelines/p.lock`"],
        ),
        case(
            P,
            "pipelines/recommender.yaml",
            "pipelines/p.yaml:6:12",
            &["is a pipeline or lock file `pipelines/recommender.yaml`"],
        ),
        case(
            P,
            "pipelines/recommender.lock",
            "pipelines/p.yaml:6:12",
            &["is a pipeline or lock file `pipelines/recommender.lock`"],
        ),
        case(
            P,
            "pipelines/new.yml",
            "pipelines/p.yaml:6:12",
            &["would be a pipeline or lock file in `pipelines`"],
        ),
        case(
            D,
            "pipelines",
            "conf/d.yaml:6:12",
            &["contains a pipeline or lock file `pipelines/"],
        ),
        case(
            D,
            "conf",
            "conf/d.yaml:6:12",
            &["contains the pipeline file `conf/d.yaml`"],
        ),
        // The cache in use, and the project's default one.
        case(P, "cache", "pipelines/p.yaml:6:12", cache),
        case(P, "cache/", "pipelines/p.yaml:6:12", cache),
        case(P, "./data/../cache", "pipelines/p.yaml:6:12", cache),
        case(
            P,
            "cache/objects",
            "pipelines/p.yaml:6:12",
            &["lies inside the cache folder in use `cache`"],
        ),
        Case {
            args: &["--cache", "store"],
            ..case(
                P,
                "./store/x",
                "pipelines/p.yaml:6:12",
                &["lies inside the cache folder in use `store`"],
            )
        },
        Case {
            env: Some(("WAREZ_CACHE", "store/")),
            ..case(
                P,
                "store",
                "pipelines/p.yaml:6:12",
                &["is the cache folder in use `store`"],
            )
        },
        Case {
            args: &["--cache", "store"],
            ..case(
                P,
                "cache",
                "pipelines/p.yaml:6:12",
                &["is the project's default cache folder `cache`"],
            )
        },
        // A dependency of the same stage.
        Case {
            deps: "data/in.txt",
            ..case(
                P,
                "data/./in.txt",
                "pipelines/p.yaml:7:12",
                &["is its own dependency `data/in.txt`"],
            )
        },
        Case {
            deps: "data/sub",
            ..case(
                P,
                "data",
                "pipelines/p.yaml:7:12",
                &["contains its own dependency `data/sub`"],
            )
        },
        Case {
            deps: "data/",
            ..case(
                P,
                "data/sub/y",
                "pipelines/p.yaml:7:12",
                &["lies inside its own dependency `data`"],
            )
        },
        // Symlinked folders on the output's path.
        Case {
            setup: |project, outside| symlink(outside, &project.abs("models")),
            ..case(
                P,
                "models/m/x",
                "pipelines/p.yaml:6:12",
                &[
                    "output `models/m/x` leads outside the project",
                    "`models` is a symlink to `",
                ],
            )
        },
        Case {
            setup: |project, outside| symlink(outside, &project.abs("data/sub/out")),
            ..case(
                P,
                "data/sub/out/x",
                "pipelines/p.yaml:6:12",
                &["`data/sub/out` is a symlink to `"],
            )
        },
        Case {
            setup: |project, _| symlink(Path::new("/nonexistent-warez"), &project.abs("gone")),
            ..case(
                P,
                "gone/x",
                "pipelines/p.yaml:6:12",
                &["`gone` is a symlink to `/nonexistent-warez`"],
            )
        },
        Case {
            setup: |project, _| symlink(Path::new(".git"), &project.abs("models")),
            ..case(
                P,
                "models/x",
                "pipelines/p.yaml:6:12",
                &[
                    "lies inside the project's git repository `.git`",
                    "its real location is `.git/x`",
                ],
            )
        },
        Case {
            setup: |project, _| symlink(&project.abs("cache"), &project.abs("models")),
            ..case(
                P,
                "models",
                "pipelines/p.yaml:6:12",
                &[
                    "is the cache folder in use `cache`",
                    "real location is `cache`",
                ],
            )
        },
    ];
    // Every command loads the pipeline the same way: one case each for the others.
    for command in ["status", "clean", "gc", "dag", "explain"] {
        cases.push(Case {
            command,
            ..case(P, "pipelines", "pipelines/p.yaml:6:12", in_pipelines)
        });
    }
    cases
}

fn symlink(target: &Path, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn hostile_outputs_are_rejected_before_anything_runs() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), "outside\n").unwrap();
    for case in cases() {
        let project = protected_project();
        (case.setup)(&project, outside.path());
        let project_dir = if case.file == D {
            "project_dir: ..\n"
        } else {
            ""
        };
        let deps = if case.deps.is_empty() {
            String::new()
        } else {
            format!("    deps: [{}]\n", case.deps)
        };
        let yaml = format!(
            "name: t\n{project_dir}stages:\n  a:\n    cmd: touch ran\n{deps}    outs: [{}]\n",
            case.outs
        );
        if case.file == P {
            project.pipeline(&yaml);
        } else {
            project.file(case.file, &yaml);
        }
        let before = snapshot(&project);
        let command = case.command;
        let mut invocation = match command {
            "explain" => project.command(&[command, "a", case.file]),
            _ => project.command(&[command, case.file]),
        };
        invocation.args(case.args);
        if let Some((name, value)) = case.env {
            invocation.env(name, value);
        }
        let run = Run::from_output(invocation.output().unwrap());
        let label = format!("{command} {} with outs [{}]", case.file, case.outs);
        assert_eq!(run.code, 2, "{label}: exit code\n{}", run.stderr);
        let place = format!("error: {}: stage `a`: ", case.place);
        assert!(
            run.stderr.contains(&place),
            "{label}: lacks {place:?}:\n{}",
            run.stderr
        );
        for words in case.words {
            assert!(
                run.stderr.contains(words),
                "{label}: lacks {words:?}:\n{}",
                run.stderr
            );
        }
        assert!(!project.exists("ran"), "{label}: the stage ran");
        assert_eq!(
            snapshot(&project),
            before,
            "{label}: a protected file changed"
        );
        assert_eq!(
            std::fs::read_to_string(outside.path().join("keep")).unwrap(),
            "outside\n"
        );
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            1,
            "{label}: something was written outside"
        );
    }
}

#[test]
fn write_avro_may_not_overwrite_its_pipeline() {
    let project = protected_project();
    project.pipeline(
        "name: t\nstages:\n  avro:\n    kind: write_avro\n    deps: { graph: data/in.txt, customer_map: data/in.txt, product_map: data/in.txt, schema: data/in.txt }\n    outs: { container: pipelines/p.yaml }\n",
    );
    let before = snapshot(&project);
    project
        .warez(&["run", PIPELINE])
        .assert_code(2)
        .assert_stderr_contains(
            "pipelines/p.yaml:7:24: stage `avro`: output `pipelines/p.yaml` is the pipeline file `pipelines/p.yaml`",
        );
    assert_eq!(snapshot(&project), before);
}

#[test]
fn clean_refuses_an_output_folder_that_became_a_symlink_outside() {
    let project = Project::new();
    project.pipeline("name: t\nstages:\n  a:\n    cmd: mkdir -p models/m && echo new > models/m/out\n    outs: [models/m/out]\n");
    project.run(&[]).assert_code(0);
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("m")).unwrap();
    std::fs::write(outside.path().join("m/out"), "must survive\n").unwrap();
    std::fs::remove_dir_all(project.abs("models")).unwrap();
    symlink(outside.path(), &project.abs("models"));
    for command in ["clean", "run", "status"] {
        project
            .warez(&[command, PIPELINE])
            .assert_code(2)
            .assert_stderr_contains("pipelines/p.yaml:6:12: stage `a`: output `models/m/out` leads outside the project: `models` is a symlink to");
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("m/out")).unwrap(),
        "must survive\n"
    );
}

#[test]
fn clean_removes_symlinks_never_what_they_point_to() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), "must survive\n").unwrap();
    let project = Project::new();
    // The stage's output folder holds a link to the outside folder.
    project.pipeline(&format!(
        "name: t\nstages:\n  a:\n    cmd: mkdir -p out/d && echo 1 > out/d/f && ln -s {} out/d/link\n    outs: [out/d]\n",
        outside.path().display()
    ));
    project.run(&[]).assert_code(0);
    // And the cache's objects folder is replaced by a link to it too.
    let objects = project.abs("cache/objects");
    std::fs::rename(&objects, project.abs("cache/objects-real")).unwrap();
    symlink(outside.path(), &objects);
    project
        .warez(&["clean", "--cache-too", PIPELINE])
        .assert_code(0)
        .assert_stdout_contains("removed")
        .assert_stdout_contains("out/d");
    assert!(!project.exists("out/d"));
    assert!(
        std::fs::symlink_metadata(&objects).is_err(),
        "the link itself is removed"
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "nothing outside was removed or added"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep")).unwrap(),
        "must survive\n"
    );
}

#[test]
fn gc_never_deletes_through_a_symlink_out_of_the_cache() {
    let project = Project::new();
    project.pipeline("name: t\nstages:\n  a:\n    cmd: echo 1 > out.txt\n    outs: [out.txt]\n");
    project.run(&[]).assert_code(0);
    let outside = tempfile::tempdir().unwrap();
    // An unreadable "run record" and a "tmp leftover" gc would remove, both really outside.
    let record = format!("{}.json", "c".repeat(62));
    std::fs::create_dir_all(outside.path().join("shard")).unwrap();
    std::fs::write(outside.path().join("shard").join(&record), "not a record").unwrap();
    std::fs::write(outside.path().join("leftover"), "must survive\n").unwrap();
    symlink(&outside.path().join("shard"), &project.abs("cache/runs/cc"));
    std::fs::remove_dir_all(project.abs("cache/tmp")).unwrap();
    symlink(outside.path(), &project.abs("cache/tmp"));
    let run = project.warez(&["gc", PIPELINE]);
    run.assert_code(1)
        .assert_stderr_contains("refusing to remove");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("shard").join(&record)).unwrap(),
        "not a record"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("leftover")).unwrap(),
        "must survive\n"
    );
    // Once the record link is gone, the tmp link is still refused.
    std::fs::remove_file(project.abs("cache/runs/cc")).unwrap();
    project
        .warez(&["gc", PIPELINE])
        .assert_code(1)
        .assert_stderr_contains("refusing to remove")
        .assert_stderr_contains("cache/tmp/");
    assert!(outside.path().join("leftover").exists());
}

#[test]
fn a_symlink_loop_in_a_dependency_folder_is_an_error_not_a_hang() {
    let project = Project::new();
    project
        .file("data/d/f", "1\n")
        .pipeline("name: t\nstages:\n  a:\n    cmd: ls data/d > out.txt\n    deps: [data/d]\n    outs: [out.txt]\n");
    symlink(Path::new(".."), &project.abs("data/d/sub/up"));
    for command in ["run", "status"] {
        let child = project.command(&[command, PIPELINE]).spawn().unwrap();
        let run = wait_with_timeout(child, Duration::from_secs(60), command);
        run.assert_code(1);
        // `status` reports it in stage `a`'s line, `run` in the stage's error.
        let said = format!("{}{}", run.stdout, run.stderr);
        let stage_line = said
            .lines()
            .find(|line| line.contains("input `data/d`: File system loop found"))
            .unwrap_or_else(|| panic!("{command}: no line names the loop:\n{said}"));
        assert!(
            stage_line.contains("stale  a  ")
                || stage_line.contains("[a]")
                || said.contains("stage `a`"),
            "{command}: the loop is not put on stage `a`:\n{said}"
        );
        for words in [
            "input `data/d`: File system loop found",
            "data/d/sub/up points to an ancestor",
        ] {
            assert!(said.contains(words), "{command}: lacks {words:?}:\n{said}");
        }
        assert!(!project.exists("out.txt"), "{command}: nothing ran");
    }
}

#[test]
fn a_linked_file_in_a_dependency_folder_hashes_as_its_target() {
    let project = Project::new();
    project
        .file("data/real", "one\n")
        .file("data/d/f", "1\n")
        .pipeline("name: t\nstages:\n  a:\n    cmd: cat data/d/* > out.txt\n    deps: [data/d]\n    outs: [out.txt]\n");
    symlink(&project.abs("data/real"), &project.abs("data/d/link"));
    project.run(&[]).assert_code(0);
    assert_eq!(project.warez(&["status", PIPELINE]).code, 0);
    std::fs::write(project.abs("data/real"), "two\n").unwrap();
    project
        .warez(&["status", PIPELINE])
        .assert_code(1)
        .assert_stdout_contains("data/d");
}

/// `status` and `run` hash a 64 MiB input while another thread shrinks it to 1 MiB and grows it
/// back (sparse, so each takes microseconds) without pause: every invocation ends with an exit
/// code — a result or a clean error — never a signal (the memory-mapped hash died of SIGBUS).
#[test]
fn truncating_a_file_while_it_is_hashed_is_no_crash() {
    const BIG: u64 = 64 << 20;
    let project = Project::new();
    project.pipeline("name: t\nstages:\n  a:\n    cmd: wc -c data/big > out.txt\n    deps: [data/big]\n    outs: [out.txt]\n");
    let big = project.abs("data/big");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(BIG).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let toggler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                file.set_len(1 << 20).unwrap();
                std::thread::sleep(Duration::from_micros(500));
                file.set_len(BIG).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut clean_errors = 0;
    let commands = [["status", PIPELINE]; 12]
        .into_iter()
        .chain([["run", PIPELINE]; 4]);
    for args in commands {
        let child = project.command(&args).spawn().unwrap();
        let run = wait_with_timeout(child, Duration::from_secs(60), args[0]);
        assert!(
            run.code == 0 || run.code == 1,
            "{} died or failed oddly (code {}; -1 is a signal):\n{}{}",
            args[0],
            run.code,
            run.stdout,
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        if format!("{}{}", run.stdout, run.stderr).contains("changed while it was being hashed") {
            clean_errors += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    toggler.join().unwrap();
    assert!(
        clean_errors > 0,
        "no invocation hashed the file while it changed: the test proves nothing"
    );
}

/// A named pipe would block its reader until a writer comes, a device may never end: neither is
/// hashed, as an input (alone or in a folder) or as an output, and nothing is left behind.
#[test]
fn a_named_pipe_or_a_device_is_an_error_not_a_hang() {
    let project = Project::new();
    project.file("data/d/f", "1\n");
    for fifo in ["data/pipe", "data/d/pipe"] {
        let made = std::process::Command::new("mkfifo")
            .arg(project.abs(fifo))
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {fifo}");
    }
    symlink(Path::new("/dev/zero"), &project.abs("data/zero"));
    let stage = |dep: &str| {
        format!("name: t\nstages:\n  a:\n    cmd: echo > out.txt\n    deps: [{dep}]\n    outs: [out.txt]\n")
    };
    for (dep, said) in [
        (
            "data/pipe",
            "data/pipe is a named pipe (FIFO), not a file or folder",
        ),
        (
            "data/d",
            "data/d/pipe is a named pipe (FIFO), not a file or folder",
        ),
        ("data/zero", "data/zero is a device, not a file or folder"),
    ] {
        project.pipeline(&stage(dep));
        for command in ["run", "status"] {
            let child = project.command(&[command, PIPELINE]).spawn().unwrap();
            let run = wait_with_timeout(child, Duration::from_secs(60), command);
            run.assert_code(1);
            let output = format!("{}{}", run.stdout, run.stderr);
            assert!(
                output.contains(&format!("input `{dep}`")),
                "{command} {dep}:\n{output}"
            );
            assert!(output.contains(said), "{command} {dep}:\n{output}");
            assert!(!project.exists("out.txt"), "{command} {dep}: nothing ran");
        }
    }
    project.pipeline("name: t\nstages:\n  a:\n    cmd: mkfifo out.fifo\n    outs: [out.fifo]\n");
    let child = project.command(&["run", PIPELINE]).spawn().unwrap();
    let run = wait_with_timeout(child, Duration::from_secs(60), "run");
    run.assert_code(1)
        .assert_stderr_contains("out.fifo is a named pipe (FIFO), not a file or folder");
    assert!(
        !project.exists("out.fifo"),
        "the failed stage's output is not kept"
    );
}
