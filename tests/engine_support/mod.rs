//! A throwaway project for engine tests: write files and a pipeline into a temp folder, run the
//! real `warez-pipe` binary there, and read what happened.

#![allow(dead_code)] // each test file uses a different part of the helper

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PIPELINE: &str = "pipelines/p.yaml";

pub struct Project {
    dir: tempfile::TempDir,
}

/// The outcome of one invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Stage → outcome of a `run --json`.
    pub fn outcomes(&self) -> BTreeMap<String, String> {
        let report: serde_json::Value =
            serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
                panic!(
                    "not a JSON report ({error}):\n{}\n{}",
                    self.stdout, self.stderr
                )
            });
        report["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|stage| {
                (
                    stage["stage"].as_str().unwrap().to_string(),
                    stage["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The stages with the given outcome.
    pub fn with_outcome(&self, outcome: &str) -> Vec<String> {
        self.outcomes()
            .into_iter()
            .filter(|(_, o)| o == outcome)
            .map(|(stage, _)| stage)
            .collect()
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}:\n{}",
            self.stdout
        );
        self
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("warez-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn abs(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    pub fn file(&self, path: &str, contents: &str) -> &Project {
        let path = self.abs(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    /// Writes `pipelines/p.yaml` (project_dir `..`).
    pub fn pipeline(&self, yaml: &str) -> &Project {
        self.file(PIPELINE, &format!("project_dir: ..\n{yaml}"))
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.abs(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.abs(path).exists()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin!("warez-pipe"));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("WAREZ_CACHE");
        command
    }

    /// `warez-pipe ARGS…` in the project folder.
    pub fn warez(&self, args: &[&str]) -> Run {
        Run::from_output(self.command(args).output().unwrap())
    }

    /// `warez-pipe run --json pipelines/p.yaml EXTRA…`.
    pub fn run(&self, extra: &[&str]) -> Run {
        let mut args = vec!["run", "--json", PIPELINE];
        args.extend_from_slice(extra);
        self.warez(&args)
    }

    /// Every file under `dir`: relative path → blake3 of its bytes (and its size), for
    /// comparing two projects.
    pub fn tree(&self, dir: &str) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        collect(&self.abs(dir), "", &mut files);
        files
    }
}

fn collect(dir: &Path, prefix: &str, files: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            collect(&entry.path(), &format!("{name}/"), files);
        } else {
            let bytes = std::fs::read(entry.path()).unwrap();
            let summary = format!("{} ({} bytes)", blake3::hash(&bytes).to_hex(), bytes.len());
            files.insert(name, summary);
        }
    }
}

/// Sets a file's mtime to now without changing its bytes (`touch`).
pub fn touch(path: &Path) {
    let file = std::fs::File::options().append(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
}

/// Waits for `child` at most `limit`; a child still running then is killed and the test fails.
pub fn wait_with_timeout(mut child: Child, limit: Duration, label: &str) -> Run {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{label}: still running after {limit:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from_output(child.wait_with_output().unwrap())
}
