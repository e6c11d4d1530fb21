//! Real remotes for the remote-cache tests: a folder (`file://`), an S3 server (`moto_server`)
//! and a WebDAV server (`wsgidav`), each started on 127.0.0.1 on a free port by the test that
//! needs it and stopped when the value is dropped. The servers come from the test venv
//! (`WAREZ_TEST_PYTHON`'s bin/, installed from requirements-test.txt by scripts/test).

#![allow(dead_code)] // each test uses a different part of the helper

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "warez";
const ACCESS_KEY: &str = "warez-test-key";
const SECRET_KEY: &str = "warez-test-secret";
const DAV_USER: &str = "ci";
const DAV_PASSWORD: &str = "dav-secret";

pub fn python() -> PathBuf {
    PathBuf::from(
        std::env::var("WAREZ_TEST_PYTHON")
            .expect("WAREZ_TEST_PYTHON names the test venv's python (scripts/test sets it up)"),
    )
}

fn venv_bin(name: &str) -> PathBuf {
    python().parent().unwrap().join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    fn start(mut command: Command, port: u16) -> Server {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {command:?}: {error}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{command:?} exited ({status}):\n{}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{command:?} did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Server { child, port }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    S3,
    Http,
}

/// A remote cache for one test.
pub struct Remote {
    pub kind: Kind,
    pub url: String,
    env: Vec<(String, String)>,
    /// The folder of a file remote or the WebDAV server's root.
    folder: Option<tempfile::TempDir>,
    pub server: Option<Server>,
}

impl Remote {
    pub fn new(kind: Kind) -> Remote {
        match kind {
            Kind::File => Remote::file(),
            Kind::S3 => Remote::s3(false),
            Kind::Http => Remote::http(),
        }
    }

    pub fn file() -> Remote {
        let folder = tempfile::tempdir().unwrap();
        Remote {
            kind: Kind::File,
            url: format!("file://{}/cache", folder.path().display()),
            env: Vec::new(),
            folder: Some(folder),
            server: None,
        }
    }

    /// moto's S3 server with bucket `warez`; remote `s3://warez/team` (a prefix). With
    /// `enforce_auth`, moto checks credentials from the first request on (and knows none).
    pub fn s3(enforce_auth: bool) -> Remote {
        let port = free_port();
        let mut command = Command::new(venv_bin("moto_server"));
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if enforce_auth {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let server = Server::start(command, port);
        let endpoint = format!("http://127.0.0.1:{port}");
        if !enforce_auth {
            s3_python(&endpoint, "s3.create_bucket(Bucket=bucket)", &[], None);
        }
        Remote {
            kind: Kind::S3,
            url: format!("s3://{BUCKET}/team"),
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
                ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
                ("AWS_ENDPOINT_URL".into(), endpoint),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
            ],
            folder: None,
            server: Some(server),
        }
    }

    /// wsgidav serving a temp folder, basic auth `ci` / `dav-secret`.
    pub fn http() -> Remote {
        let folder = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = folder.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let config = folder.path().join("wsgidav.yaml");
        std::fs::write(
            &config,
            format!(
                "host: 127.0.0.1\nport: {port}\nprovider_mapping:\n  \"/\": \"{}\"\n\
                 http_authenticator:\n  accept_basic: true\n  accept_digest: false\n  default_to_digest: false\n\
                 simple_dc:\n  user_mapping:\n    \"*\":\n      {DAV_USER}:\n        password: {DAV_PASSWORD}\n\
                 verbose: 0\nlogging:\n  enable: false\n",
                root.display()
            ),
        )
        .unwrap();
        let mut command = Command::new(venv_bin("wsgidav"));
        command.arg("--config").arg(&config);
        let server = Server::start(command, port);
        Remote {
            kind: Kind::Http,
            url: format!("http://127.0.0.1:{port}/warez"),
            env: vec![
                ("WAREZ_REMOTE_USER".into(), DAV_USER.into()),
                ("WAREZ_REMOTE_PASSWORD".into(), DAV_PASSWORD.into()),
            ],
            folder: Some(folder),
            server: Some(server),
        }
    }

    /// Replaces one environment variable the remote's clients get (e.g. a wrong secret).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
    }

    /// Puts the remote's URL and credentials in a command's environment.
    pub fn apply(&self, command: &mut Command) {
        command.env("WAREZ_REMOTE", &self.url);
        for name in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "WAREZ_REMOTE_TOKEN",
            "WAREZ_REMOTE_READ_ONLY",
        ] {
            command.env_remove(name);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
    }

    fn local_root(&self) -> PathBuf {
        let folder = self.folder.as_ref().unwrap().path();
        match self.kind {
            Kind::File => folder.join("cache"),
            Kind::Http => folder.join("root/warez"),
            Kind::S3 => unreachable!(),
        }
    }

    fn endpoint(&self) -> String {
        self.env
            .iter()
            .find(|(name, _)| name == "AWS_ENDPOINT_URL")
            .unwrap()
            .1
            .clone()
    }

    /// Every object name in the remote (relative to its prefix), sorted.
    pub fn list(&self) -> Vec<String> {
        let mut names = match self.kind {
            Kind::S3 => {
                let out = s3_python(
                    &self.endpoint(),
                    "print('\\n'.join(o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket) for o in p.get('Contents', [])))",
                    &[],
                    None,
                );
                String::from_utf8(out)
                    .unwrap()
                    .lines()
                    .filter_map(|key| key.strip_prefix("team/").map(str::to_string))
                    .collect()
            }
            _ => {
                let mut names = Vec::new();
                collect(&self.local_root(), "", &mut names);
                names
            }
        };
        names.sort();
        names
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        match self.kind {
            Kind::S3 => s3_python(
                &self.endpoint(),
                "sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key='team/' + sys.argv[2])['Body'].read())",
                &[name],
                None,
            ),
            _ => std::fs::read(self.local_root().join(name)).unwrap(),
        }
    }

    /// Overwrites an object behind warez-pipe's back.
    pub fn write(&self, name: &str, bytes: &[u8]) {
        match self.kind {
            Kind::S3 => {
                s3_python(
                    &self.endpoint(),
                    "s3.put_object(Bucket=bucket, Key='team/' + sys.argv[2], Body=sys.stdin.buffer.read())",
                    &[name],
                    Some(bytes),
                );
            }
            _ => {
                let path = self.local_root().join(name);
                let _ = std::fs::remove_file(&path);
                std::fs::write(path, bytes).unwrap();
            }
        }
    }
}

fn collect(dir: &Path, prefix: &str, names: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            collect(&entry.path(), &format!("{name}/"), names);
        } else {
            names.push(name);
        }
    }
}

/// Runs a boto3 snippet (`s3` and `bucket` defined; argv[2..] = `args`) against moto.
fn s3_python(endpoint: &str, code: &str, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let script = format!(
        "import sys, boto3\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='{ACCESS_KEY}', \
         aws_secret_access_key='{SECRET_KEY}', region_name='us-east-1')\nbucket = '{BUCKET}'\n{code}\n"
    );
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(endpoint)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or_default())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
