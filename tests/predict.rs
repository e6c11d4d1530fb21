//! `warez-pipe predict` through the binary, against real ONNX Runtime and a small eval-like
//! graph whose expected scores come from `ModelParams::predict`.

mod runtime_support;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use warez_pipe::ml::model::params::ModelParams;

const N_CUSTOMERS: usize = 6;
const N_PRODUCTS: usize = 4;

fn customer(index: usize) -> String {
    format!("c0000000-0000-4000-8000-{index:012}")
}

fn product(index: usize) -> String {
    format!("p0000000-0000-4000-8000-{index:012}")
}

/// A model folder: eval graph plus id maps (ids in index order).
fn model_dir(dir: &Path) -> ModelParams {
    runtime_support::ort_dylib();
    let params = runtime_support::make_eval_model(dir, N_CUSTOMERS, N_PRODUCTS, 4, 11);
    let lines =
        |id: fn(usize) -> String, n: usize| (0..n).map(|i| id(i) + "\n").collect::<String>();
    std::fs::write(dir.join("customer_map.txt"), lines(customer, N_CUSTOMERS)).unwrap();
    std::fs::write(dir.join("product_map.txt"), lines(product, N_PRODUCTS)).unwrap();
    params
}

fn predict(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warez-pipe"));
    command.arg("predict").arg("--model-dir").arg(dir);
    command
}

fn assert_close(actual: f32, expected: f32, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-5 * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

/// The score a successful single-pair `predict` printed.
fn printed_score(command: &mut Command) -> f32 {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a score: {stdout:?}"))
}

/// `predict --input INPUT --output OUTPUT` on the model in `dir`.
fn score_csv(dir: &Path, input: &Path, output: &Path) -> std::process::Output {
    predict(dir)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

#[test]
fn one_pair_prints_its_score() {
    let dir = tempfile::tempdir().unwrap();
    let params = model_dir(dir.path());
    let score = printed_score(predict(dir.path()).args([
        "--customer",
        &customer(2),
        "--product",
        &product(3),
    ]));
    assert_close(score, params.predict(2, 3), "score of (2, 3)");
}

#[test]
fn an_unknown_id_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let output = predict(dir.path())
        .args(["--customer", "nobody", "--product", &product(0)])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("unknown customer `nobody`"), "{stderr}");
    assert!(stderr.contains("customer_map.txt"), "{stderr}");
    assert!(!stderr.contains("unknown product"), "{stderr}");
}

/// More rows than one batch, so order across batch boundaries is checked too.
#[test]
fn a_csv_of_pairs_gets_a_score_column_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let params = model_dir(dir.path());
    let pairs: Vec<(usize, usize)> = (0..20_000)
        .map(|i| ((i * 7) % N_CUSTOMERS, (i * 3 + i / 5) % N_PRODUCTS))
        .collect();
    let mut input = String::from("productId,note,customerId\n");
    for (row, &(c, p)) in pairs.iter().enumerate() {
        input += &format!("{},row {row},{}\n", product(p), customer(c));
    }
    let input_path = dir.path().join("pairs.csv");
    std::fs::write(&input_path, input).unwrap();
    let output_path = dir.path().join("scores.csv");

    let output = score_csv(dir.path(), &input_path, &output_path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut reader = csv::Reader::from_path(&output_path).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["productId", "note", "customerId", "score"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), pairs.len());
    for (row, (record, &(c, p))) in rows.iter().zip(&pairs).enumerate() {
        assert_eq!(&record[1], format!("row {row}"));
        assert_eq!(record[2], customer(c));
        let score: f32 = record[3].parse().unwrap();
        assert_close(score, params.predict(c, p), &format!("row {row}"));
    }
}

#[test]
fn bad_csv_rows_are_each_reported_and_the_good_ones_still_scored() {
    let dir = tempfile::tempdir().unwrap();
    let params = model_dir(dir.path());
    let input = format!(
        "customerId,productId\n{},{}\nghost,{}\n{},{}\nghost,phantom\n{},{},extra\n",
        customer(0),
        product(1),
        product(0),
        customer(5),
        product(3),
        customer(1),
        product(1),
    );
    let input_path = dir.path().join("pairs.csv");
    std::fs::write(&input_path, input).unwrap();
    let output_path = dir.path().join("scores.csv");

    let output = score_csv(dir.path(), &input_path, &output_path);
    assert!(!output.status.success(), "bad rows must fail the command");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let at = |line: usize| format!("pairs.csv:{line}: ");
    assert!(
        stderr.contains(&(at(3) + "unknown customer `ghost`")),
        "{stderr}"
    );
    let line_3 = stderr.lines().find(|line| line.contains(&at(3))).unwrap();
    assert!(
        !line_3.contains("product"),
        "only the customer is unknown: {line_3}"
    );
    assert!(
        stderr.contains(&(at(5) + "unknown customer `ghost`")),
        "{stderr}"
    );
    assert!(stderr.contains("unknown product `phantom`"), "{stderr}");
    assert!(
        stderr.contains(&(at(6) + "3 fields where the header has 2")),
        "{stderr}"
    );
    assert!(stderr.contains("3 of 5 pairs"), "{stderr}");

    let mut reader = csv::Reader::from_path(&output_path).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_close(rows[0][2].parse().unwrap(), params.predict(0, 1), "line 2");
    assert_close(rows[1][2].parse().unwrap(), params.predict(5, 3), "line 4");
}

#[test]
fn a_csv_without_the_id_columns_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let input_path = dir.path().join("pairs.csv");
    std::fs::write(&input_path, "customer,productId\nx,y\n").unwrap();
    let output = score_csv(dir.path(), &input_path, &dir.path().join("scores.csv"));
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("pairs.csv:1: no `customerId` column"),
        "{stderr}"
    );
    assert!(!dir.path().join("scores.csv").exists());
}

#[test]
fn the_model_dir_defaults_to_the_pipelines_model_path() {
    let project = tempfile::tempdir().unwrap();
    let models = project.path().join("models/rec");
    std::fs::create_dir_all(&models).unwrap();
    let params = model_dir(&models);
    std::fs::create_dir_all(project.path().join("pipelines")).unwrap();
    let pipeline = project.path().join("pipelines/rec.yaml");
    std::fs::write(
        &pipeline,
        "name: rec\nproject_dir: ..\nmodel_path: models/rec\nstages: {}\n",
    )
    .unwrap();
    let score = printed_score(
        Command::new(env!("CARGO_BIN_EXE_warez-pipe"))
            .args(["predict", "--pipeline"])
            .arg(&pipeline)
            .args(["--customer", &customer(4), "--product", &product(0)]),
    );
    assert_close(score, params.predict(4, 0), "score of (4, 0)");
}

/// `--output` naming the input file — as written, spelled another way, through a symlink or a
/// hard link — is refused (exit 2, both flags named) before anything is written; the input
/// keeps its bytes.
#[test]
fn an_output_that_is_the_input_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let input = dir.path().join("pairs.csv");
    let pairs = format!("customerId,productId\n{},{}\n", customer(1), product(2));
    std::fs::write(&input, &pairs).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let symlink = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&input, &symlink).unwrap();
    let hard_link = dir.path().join("hard.csv");
    std::fs::hard_link(&input, &hard_link).unwrap();
    for output in [
        input.clone(),
        dir.path().join("sub/../pairs.csv"),
        dir.path().join("./pairs.csv"),
        symlink,
        hard_link,
    ] {
        let result = score_csv(dir.path(), &input, &output);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(
            result.status.code(),
            Some(2),
            "{}: {stderr}",
            output.display()
        );
        assert!(
            stderr.contains(&format!("--output {}", output.display()))
                && stderr.contains(&format!("--input {}", input.display())),
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&input).unwrap(), pairs);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Another file is fine, and an existing output keeps its mode when replaced.
    let scores = dir.path().join("scores.csv");
    std::fs::write(&scores, "old\n").unwrap();
    std::fs::set_permissions(&scores, PermissionsExt::from_mode(0o664)).unwrap();
    let result = score_csv(dir.path(), &input, &scores);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(std::fs::read_to_string(&scores).unwrap().contains("score"));
    let mode = std::fs::metadata(&scores).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o664, "{mode:o}");
}

/// Maps holding more ids than the model has embedding rows (maps of another run): the error
/// names the model and both maps, not only ONNX Runtime's node.
#[test]
fn maps_larger_than_the_model_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let maps = dir.path().join("customer_map.txt");
    let mut ids = std::fs::read_to_string(&maps).unwrap();
    ids.push_str(&(customer(N_CUSTOMERS) + "\n"));
    std::fs::write(&maps, ids).unwrap();
    let output = predict(dir.path())
        .args([
            "--customer",
            &customer(N_CUSTOMERS),
            "--product",
            &product(0),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: scoring with {} ({} customers in {}, {N_PRODUCTS} products in {}: do they \
             come from the run that made the model?)",
            dir.path().join("eval_model.onnx").display(),
            N_CUSTOMERS + 1,
            maps.display(),
            dir.path().join("product_map.txt").display()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("onnxruntime:"),
        "ONNX Runtime's own log line: {stderr}"
    );
}

/// `--output` naming a named pipe is refused and the pipe stays: the scores are written beside
/// it and renamed, and a rename would swap the pipe (or `/dev/null`) for a plain file.
#[test]
fn an_output_that_is_not_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let input = dir.path().join("pairs.csv");
    std::fs::write(
        &input,
        format!("customerId,productId\n{},{}\n", customer(1), product(2)),
    )
    .unwrap();
    let fifo = dir.path().join("scores.pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let result = score_csv(dir.path(), &input, &fifo);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is a named pipe, not a regular file: refusing to replace it",
            fifo.display()
        )),
        "{stderr}"
    );
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

/// Control characters in ids (from the CSV or the command line) are escaped in messages.
#[test]
fn control_characters_in_unknown_ids_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let output = predict(dir.path())
        .args(["--customer", "evil\u{1b}[2J\r", "--product", "p\u{7}"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("unknown customer `evil\\u{1b}[2J\\r`")
            && stderr.contains("unknown product `p\\u{7}`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr:?}"
    );

    let input = dir.path().join("pairs.csv");
    std::fs::write(
        &input,
        format!(
            "customerId,productId\n\"x\u{1b}]0;pwned\u{7}\",{}\n",
            product(0)
        ),
    )
    .unwrap();
    let result = score_csv(dir.path(), &input, &dir.path().join("scores.csv"));
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8(result.stderr).unwrap();
    assert!(
        stderr.contains("pairs.csv:2: unknown customer `x\\u{1b}]0;pwned\\u{7}`"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
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

/// Polls `ready` until it gives a value, failing with `what` after 20 s or when `child` has
/// ended first.
fn wait_while_running<T>(
    child: &mut std::process::Child,
    what: &str,
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: predict ended early"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGINT or SIGTERM while predict writes its scores (here: waiting for more rows from a named
/// pipe): it exits 130 or 143 saying so, its temp file is removed and the file that was at
/// `--output` keeps its bytes.
#[test]
fn an_interrupted_predict_removes_its_temp_file_and_keeps_the_previous_output() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let pairs = dir.path().join("pairs.pipe");
    let made = Command::new("mkfifo").arg(&pairs).status().unwrap();
    assert!(made.success());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let scores = out.join("scores.csv");
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        std::fs::write(&scores, "previous\n").unwrap();
        let mut child = predict(dir.path())
            .arg("--input")
            .arg(&pairs)
            .arg("--output")
            .arg(&scores)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Opened once predict has opened its end (a writer alone would wait).
        let mut writer =
            wait_while_running(&mut child, &format!("{name}: input never opened"), || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&pairs)
                    .ok()
            });
        write!(
            writer,
            "customerId,productId\n{},{}\n",
            customer(1),
            product(2)
        )
        .unwrap();
        wait_while_running(&mut child, &format!("{name}: no temp file"), || {
            (names_in(&out).len() == 2).then_some(())
        });
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let output = child.wait_with_output().unwrap();
        drop(writer);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("interrupted by {name}")),
            "{stderr}"
        );
        assert_eq!(names_in(&out), ["scores.csv"], "{name}");
        assert_eq!(
            std::fs::read_to_string(&scores).unwrap(),
            "previous\n",
            "{name}"
        );
    }
}

/// `--output` in a folder that does not exist is refused naming the flag and the folder,
/// before the model is loaded: predict creates no folder.
#[test]
fn an_output_whose_folder_does_not_exist_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path());
    let input = dir.path().join("pairs.csv");
    std::fs::write(
        &input,
        format!("customerId,productId\n{},{}\n", customer(1), product(2)),
    )
    .unwrap();
    let before = names_in(dir.path());
    let output = dir.path().join("a/b/c.csv");
    let result = score_csv(dir.path(), &input, &output);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: --output {}: folder {} does not exist (create it first)",
            output.display(),
            dir.path().join("a/b").display()
        )),
        "{stderr}"
    );
    assert_eq!(names_in(dir.path()), before);
}
