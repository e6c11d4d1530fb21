//! The generator through the real binary (`gen-data`) and the `generate` stage kind:
//! determinism, the committed small file, sizes, and a learnable hidden structure.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::str::contains;
use warez_pipe::engine::kind::{NoProgress, Params, StageContext};
use warez_pipe::ml::data::dataset::Ratings;
use warez_pipe::ml::data::reader::{read_ratings_file, OnBadRows};

/// The command that made `data/ratings_small.csv` (also in the README).
const SMALL_FILE_ARGS: [&str; 8] = [
    "--rows",
    "2000",
    "--customers",
    "1500",
    "--products",
    "5",
    "--seed",
    "42",
];

/// Runs `warez-pipe gen-data ARGS --out <dir>/NAME` and returns the written bytes.
fn gen_data(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    Command::cargo_bin("warez-pipe")
        .unwrap()
        .arg("gen-data")
        .args(args)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(contains("wrote"));
    std::fs::read(out).unwrap()
}

fn args(rows: u64, customers: u64, products: u64, seed: u64) -> Vec<String> {
    [
        ("--rows", rows),
        ("--customers", customers),
        ("--products", products),
        ("--seed", seed),
    ]
    .iter()
    .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
    .collect()
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn gen_data_same_args_give_same_bytes_and_another_seed_differs() {
    let dir = tempfile::tempdir().unwrap();
    let seed_1 = args(3000, 400, 30, 1);
    let first = gen_data(dir.path(), "a.csv", &as_strs(&seed_1));
    let again = gen_data(dir.path(), "b.csv", &as_strs(&seed_1));
    let seed_2 = gen_data(dir.path(), "c.csv", &as_strs(&args(3000, 400, 30, 2)));
    assert_eq!(first.len(), again.len());
    assert!(first == again, "same arguments wrote different bytes");
    assert!(first != seed_2, "another seed wrote the same bytes");
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["a.csv", "b.csv", "c.csv"],
        "no temporary file is left"
    );
}

#[test]
fn committed_small_file_is_the_generators_output() {
    let dir = tempfile::tempdir().unwrap();
    let generated = gen_data(dir.path(), "small.csv", &SMALL_FILE_ARGS);
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/ratings_small.csv"
    ))
    .unwrap();
    assert!(
        generated == committed,
        "data/ratings_small.csv differs from `gen-data {}`",
        SMALL_FILE_ARGS.join(" ")
    );
}

#[test]
fn generated_file_ingests_with_exactly_the_requested_sizes() {
    let dir = tempfile::tempdir().unwrap();
    gen_data(dir.path(), "g.csv", &as_strs(&args(5000, 1200, 300, 9)));
    let ingested =
        read_ratings_file(&dir.path().join("g.csv"), OnBadRows::Error, &NoProgress).unwrap();
    assert_eq!(ingested.ratings.len(), 5000);
    assert_eq!(ingested.customers.len(), 1200);
    assert_eq!(ingested.products.len(), 300);
    assert!(ingested
        .ratings
        .ratings
        .iter()
        .all(|&r| (0.0..=1.0).contains(&r)));
}

#[test]
fn generate_stage_writes_what_gen_data_writes() {
    let dir = tempfile::tempdir().unwrap();
    let expected = gen_data(dir.path(), "cli.csv", &as_strs(&args(800, 100, 20, 5)));

    let kind = warez_pipe::ml::registry()
        .find("generate")
        .expect("generate is registered");
    let mut params = Params::default();
    for (name, value) in [
        ("rows", 800),
        ("customers", 100),
        ("products", 20),
        ("seed", 5),
    ] {
        params.insert(name, serde_yaml::Value::from(value));
    }
    kind.check_params(&params).unwrap();
    let out = dir.path().join(kind.outputs()[0].default_name);
    let ctx = StageContext {
        stage: "generate",
        project_dir: dir.path(),
        params: &params,
        inputs: BTreeMap::new(),
        outputs: BTreeMap::from([("ratings".to_string(), out.clone())]),
        tools_dir: dir.path().join("tools"),
        progress: &NoProgress,
    };
    kind.run(&ctx).unwrap();
    assert!(std::fs::read(out).unwrap() == expected);
}

#[test]
fn generate_stage_rejects_impossible_params() {
    let kind = warez_pipe::ml::registry().find("generate").unwrap();
    let mut params = Params::default();
    for (name, value) in [
        ("rows", 10),
        ("customers", 20),
        ("products", 2),
        ("seed", 1),
    ] {
        params.insert(name, serde_yaml::Value::from(value));
    }
    let error = kind.check_params(&params).unwrap_err().to_string();
    assert!(
        error.contains("rows (10) must be at least customers (20)"),
        "{error}"
    );
}

#[test]
fn gen_data_rejects_more_rows_than_pairs() {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("warez-pipe")
        .unwrap()
        .arg("gen-data")
        .args(as_strs(&args(7, 2, 3, 1)))
        .arg("--out")
        .arg(dir.path().join("x.csv"))
        .assert()
        .failure()
        .stderr(contains(
            "error: rows (7) must be at most customers × products (2 × 3)",
        ));
    assert!(!dir.path().join("x.csv").exists());
}

/// One customer rating (nearly) every product takes linear time: a product already taken passes
/// the draw on to the next free one without walking every taken one (300,000 products took
/// ~35 s that way, 16 million would take a day; now well under a second).
#[test]
fn a_customer_rating_every_product_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let bytes = gen_data(
        dir.path(),
        "dense.csv",
        &as_strs(&args(300_000, 1, 300_000, 3)),
    );
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
    let text = String::from_utf8(bytes).unwrap();
    let products: std::collections::HashSet<&str> = text
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(products.len(), 300_000);
}

/// `--out` naming a named pipe (or a folder) is refused: the file is written beside it and
/// renamed, and a rename would swap the pipe (or `/dev/null`) for a plain file.
#[test]
fn gen_data_refuses_to_replace_what_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for (out, what) in [
        (&fifo, "a named pipe"),
        (&dir.path().to_path_buf(), "a folder"),
    ] {
        Command::cargo_bin("warez-pipe")
            .unwrap()
            .arg("gen-data")
            .args(as_strs(&args(10, 5, 2, 1)))
            .arg("--out")
            .arg(out)
            .assert()
            .failure()
            .stderr(contains(format!(
                "{} is {what}, not a regular file: refusing to replace it",
                out.display()
            )));
    }
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["pipe"]);
}

/// A failed move into place says its system error once (tempfile's error repeats it).
#[test]
fn gen_data_names_a_path_it_cannot_write_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("{}/no-folder/", dir.path().display());
    let failed = Command::cargo_bin("warez-pipe")
        .unwrap()
        .arg("gen-data")
        .args(as_strs(&args(10, 5, 2, 1)))
        .args(["--out", &out])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("writing {out}: ")) && stderr.matches("(os error").count() == 1,
        "{stderr}"
    );
}

/// Mean squared error of predicting each held-out rating with `predict`.
fn held_out_mse(ratings: &Ratings, predict: impl Fn(usize, usize) -> f64) -> f64 {
    let held_out: Vec<usize> = (0..ratings.len()).filter(|row| row % 4 == 0).collect();
    held_out
        .iter()
        .map(|&row| {
            let error = predict(
                ratings.customers[row] as usize,
                ratings.products[row] as usize,
            ) - f64::from(ratings.ratings[row]);
            error * error
        })
        .sum::<f64>()
        / held_out.len() as f64
}

/// Regularised mean of `residual` per group over the training rows (row % 4 != 0).
fn group_offsets(groups: &[u32], n_groups: usize, residual: impl Fn(usize) -> f64) -> Vec<f64> {
    const SHRINK: f64 = 3.0;
    let mut sums = vec![0.0; n_groups];
    let mut counts = vec![0.0; n_groups];
    for row in (0..groups.len()).filter(|row| row % 4 != 0) {
        sums[groups[row] as usize] += residual(row);
        counts[groups[row] as usize] += 1.0;
    }
    sums.iter()
        .zip(&counts)
        .map(|(sum, count)| sum / (count + SHRINK))
        .collect()
}

#[test]
fn hidden_structure_lets_per_customer_and_product_offsets_beat_the_mean() {
    let dir = tempfile::tempdir().unwrap();
    gen_data(dir.path(), "h.csv", &as_strs(&args(40_000, 1_000, 200, 3)));
    let ratings = read_ratings_file(&dir.path().join("h.csv"), OnBadRows::Error, &NoProgress)
        .unwrap()
        .ratings;
    let rating = |row: usize| f64::from(ratings.ratings[row]);
    let training: Vec<usize> = (0..ratings.len()).filter(|row| row % 4 != 0).collect();
    let mean = training.iter().map(|&row| rating(row)).sum::<f64>() / training.len() as f64;
    let product = group_offsets(&ratings.products, ratings.n_products as usize, |row| {
        rating(row) - mean
    });
    let customer = group_offsets(&ratings.customers, ratings.n_customers as usize, |row| {
        rating(row) - mean - product[ratings.products[row] as usize]
    });

    let baseline = held_out_mse(&ratings, |_, _| mean);
    let offsets = held_out_mse(&ratings, |c, p| mean + product[p] + customer[c]);
    assert!(
        offsets < 0.8 * baseline,
        "offsets MSE {offsets:.5} vs mean MSE {baseline:.5}: no learnable structure"
    );
}

#[test]
fn off_a_terminal_long_work_prints_plain_progress_lines() {
    // Off a terminal (here a pipe) gen-data and the run's stages used to print nothing until
    // they were done, however long that took. WAREZ_PROGRESS_SECONDS=0 prints a line at every
    // update instead of every 5 s, so a short run shows them.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    let generated = Command::cargo_bin("warez-pipe")
        .unwrap()
        .args(["gen-data", "--rows", "100000", "--customers", "5000"])
        .args(["--products", "100", "--out"])
        .arg(&csv)
        .env("WAREZ_PROGRESS_SECONDS", "0")
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&generated.get_output().stderr).into_owned();
    assert!(
        stderr.contains("[gen-data] 16% (16384/100000 rows)"),
        "{stderr}"
    );

    let pipeline = dir.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        "name: p\nstages:\n  ingest:\n    kind: ingest\n    deps: { ratings: r.csv }\n",
    )
    .unwrap();
    let ingested = Command::cargo_bin("warez-pipe")
        .unwrap()
        .arg("run")
        .arg(&pipeline)
        .env("WAREZ_PROGRESS_SECONDS", "0")
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&ingested.get_output().stderr).into_owned();
    assert!(
        stderr.lines().any(|line| line.starts_with("[ingest] ")
            && line.ends_with(" bytes)")
            && line.contains("% (")),
        "{stderr}"
    );

    let unreadable = Command::cargo_bin("warez-pipe")
        .unwrap()
        .args([
            "gen-data",
            "--rows",
            "10",
            "--customers",
            "5",
            "--products",
            "2",
        ])
        .arg("--out")
        .arg(dir.path().join("s.csv"))
        .env("WAREZ_PROGRESS_SECONDS", "soon")
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&unreadable.get_output().stderr).into_owned();
    assert!(
        stderr.contains("WAREZ_PROGRESS_SECONDS=\"soon\" is not a number of seconds"),
        "{stderr}"
    );
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// SIGTERM or SIGINT while gen-data writes: it exits 143 or 130 saying so, its temp file is
/// removed and the file that was at `--out` keeps its bytes.
#[test]
fn an_interrupted_gen_data_removes_its_temp_file_and_keeps_the_previous_file() {
    for (signal, code, name) in [
        (libc::SIGTERM, 143, "SIGTERM"),
        (libc::SIGINT, 130, "SIGINT"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("g.csv");
        std::fs::write(&out, "previous\n").unwrap();
        // A few seconds of work: it is still writing when the signal comes.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warez-pipe"))
            .args(["gen-data", "--rows", "16000000", "--customers", "100000"])
            .args(["--products", "2000", "--out"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while names_in(dir.path()).len() < 2 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "{name}: gen-data ended early"
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{name}: no temp file"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("interrupted by {name}")),
            "{stderr}"
        );
        assert_eq!(names_in(dir.path()), ["g.csv"], "{name}");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "previous\n",
            "{name}"
        );
    }
}

/// `--out` in a folder that does not exist (or is a file) is refused naming the flag and the
/// folder: gen-data creates no folder and writes nothing.
#[test]
fn gen_data_refuses_an_out_whose_folder_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    for (out, problem) in [
        (
            dir.path().join("a/b/g.csv"),
            format!("folder {} does not exist", dir.path().join("a/b").display()),
        ),
        (
            dir.path().join("file/g.csv"),
            format!("{} is not a folder", dir.path().join("file").display()),
        ),
    ] {
        Command::cargo_bin("warez-pipe")
            .unwrap()
            .arg("gen-data")
            .args(as_strs(&args(10, 5, 2, 1)))
            .arg("--out")
            .arg(&out)
            .assert()
            .code(1)
            .stderr(contains(format!(
                "error: --out {}: {problem}",
                out.display()
            )));
    }
    assert_eq!(names_in(dir.path()), ["file"]);
}
