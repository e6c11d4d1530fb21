//! The `ingest` stage kind, driven through `StageKind::run` with a hand-made context: the
//! original data, every kind of bad or unusual input, and the maps' stability under a data tweak.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use warez_pipe::engine::kind::{Params, Progress, StageContext};
use warez_pipe::ml::data::dataset::Ratings;

const ORIGINAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ratings_uuid_small.csv");
const HEADER: &str = "customerId,productId,scaled_purchase_freq";
const C1: &str = "19823025-6551-4edd-ace1-56c2c4e22fc7";
const C2: &str = "e9a87a97-38df-4858-86df-9b02defccd5c";
const P1: &str = "9910eb1b-9d99-4025-badc-13ef455bb49a";
const P2: &str = "053b5372-a630-43b6-b0ad-29770dff6a7e";

/// Progress that keeps the lines a stage prints.
#[derive(Default)]
struct Recorded {
    lines: Mutex<Vec<String>>,
}

impl Progress for Recorded {
    fn start(&self, _total: u64, _unit: &str) {}
    fn set_position(&self, _done: u64) {}
    fn set_message(&self, _message: &str) {}
    fn println(&self, line: &str) {
        self.lines.lock().unwrap().push(line.to_string());
    }
}

/// What one ingest run left behind.
struct Outcome {
    ratings: Ratings,
    customer_map: String,
    product_map: String,
    printed: Vec<String>,
}

/// Runs the `ingest` kind on `input`, writing into a fresh folder under `work`.
fn ingest_file(input: &Path, on_bad_rows: &str, work: &Path) -> anyhow::Result<Outcome> {
    let kind = warez_pipe::ml::registry()
        .find("ingest")
        .expect("ingest is registered");
    let mut params = Params::default();
    params.insert("on_bad_rows", on_bad_rows.into());
    kind.check_params(&params)?;
    let out_dir = tempfile::tempdir_in(work)?.keep();
    let outputs: BTreeMap<String, PathBuf> = kind
        .outputs()
        .iter()
        .map(|output| (output.role.to_string(), out_dir.join(output.default_name)))
        .collect();
    let progress = Recorded::default();
    let ctx = StageContext {
        stage: "ingest",
        project_dir: work,
        params: &params,
        inputs: BTreeMap::from([("ratings".to_string(), input.to_path_buf())]),
        outputs: outputs.clone(),
        tools_dir: work.join("tools"),
        progress: &progress,
    };
    kind.run(&ctx)?;
    Ok(Outcome {
        ratings: Ratings::read(&outputs["ratings"])?,
        customer_map: std::fs::read_to_string(&outputs["customer_map"])?,
        product_map: std::fs::read_to_string(&outputs["product_map"])?,
        printed: progress.lines.into_inner().unwrap(),
    })
}

/// Writes `bytes` as `name` in a fresh folder and ingests it.
fn ingest_bytes(bytes: &[u8], on_bad_rows: &str) -> (tempfile::TempDir, anyhow::Result<Outcome>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ratings.csv");
    std::fs::write(&input, bytes).unwrap();
    let outcome = ingest_file(&input, on_bad_rows, dir.path());
    (dir, outcome)
}

fn ingest_text(text: &str) -> Outcome {
    let (_dir, outcome) = ingest_bytes(text.as_bytes(), "error");
    outcome.unwrap()
}

/// The error message of ingesting `text`, which must fail.
fn ingest_error(text: &str) -> String {
    let (_dir, outcome) = ingest_bytes(text.as_bytes(), "error");
    match outcome {
        Ok(outcome) => panic!("expected an error, got {} rows", outcome.ratings.len()),
        Err(error) => format!("{error:#}"),
    }
}

fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "`{needle}` not in: {text}");
}

/// Two rows, the expected result of every "parsed correctly" variant below.
fn assert_two_rows(outcome: &Outcome) {
    assert_eq!(outcome.customer_map, format!("{C1}\n{C2}\n"));
    assert_eq!(outcome.product_map, format!("{P1}\n"));
    assert_eq!(outcome.ratings.customers, [0, 1]);
    assert_eq!(outcome.ratings.products, [0, 0]);
    assert_eq!(outcome.ratings.ratings, [0.5, 0.25]);
}

#[test]
fn original_data_gives_1999_rows_1895_customers_2_products() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = ingest_file(Path::new(ORIGINAL), "error", dir.path()).unwrap();
    assert_eq!(outcome.ratings.len(), 1999);
    assert_eq!(outcome.ratings.n_customers, 1895);
    assert_eq!(outcome.ratings.n_products, 2);
    assert_eq!(outcome.customer_map.lines().count(), 1895);
    assert_eq!(outcome.product_map, format!("{P1}\n{P2}\n"));
    // The first row: customer 0, product 0, 2/15 (as pandas' float64 narrowed to float32).
    assert_eq!(outcome.customer_map.lines().next(), Some(C1));
    assert_eq!(
        (outcome.ratings.customers[0], outcome.ratings.products[0]),
        (0, 0)
    );
    assert_eq!(outcome.ratings.ratings[0], (2.0f64 / 15.0) as f32);
    assert_contains(
        &outcome.printed.join("\n"),
        "1999 ratings, 1895 customers, 2 products (0.2 MB of CSV read in ",
    );
}

#[test]
fn changing_one_rating_changes_the_ratings_but_not_the_maps() {
    let original = std::fs::read_to_string(ORIGINAL).unwrap();
    let first_row = original.lines().nth(1).unwrap();
    assert!(first_row.ends_with(",0.13333333333333333"));
    let tweaked = original.replacen(
        first_row,
        &first_row.replace(",0.13333333333333333", ",0.2"),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let tweaked_path = dir.path().join("tweaked.csv");
    std::fs::write(&tweaked_path, tweaked).unwrap();

    let before = ingest_file(Path::new(ORIGINAL), "error", dir.path()).unwrap();
    let after = ingest_file(&tweaked_path, "error", dir.path()).unwrap();
    assert_ne!(before.ratings, after.ratings);
    assert_eq!(after.ratings.ratings[0], 0.2);
    assert_eq!(before.customer_map, after.customer_map);
    assert_eq!(before.product_map, after.product_map);
}

#[test]
fn columns_in_any_order_with_extra_columns_are_parsed() {
    let outcome = ingest_text(&format!(
        "note,scaled_purchase_freq,productId,customerId\n\
         a,0.5,{P1},{C1}\nb,0.25,{P1},{C2}\n"
    ));
    assert_two_rows(&outcome);
}

#[test]
fn quoted_fields_are_parsed() {
    let outcome = ingest_text(&format!(
        "\"customerId\",\"productId\",\"scaled_purchase_freq\",\"note\"\n\
         \"{C1}\",\"{P1}\",\"0.5\",\"a, \"\"quoted\"\"\nnote\"\n\
         \"{C2}\",{P1},0.25,\n"
    ));
    assert_two_rows(&outcome);
}

#[test]
fn crlf_line_ends_are_parsed() {
    let outcome = ingest_text(&format!("{HEADER}\r\n{C1},{P1},0.5\r\n{C2},{P1},0.25\r\n"));
    assert_two_rows(&outcome);
}

#[test]
fn utf8_bom_is_parsed() {
    let outcome = ingest_text(&format!(
        "\u{feff}{HEADER}\n{C1},{P1},0.5\n{C2},{P1},0.25\n"
    ));
    assert_two_rows(&outcome);
}

#[test]
fn no_trailing_newline_is_parsed() {
    let outcome = ingest_text(&format!("{HEADER}\n{C1},{P1},0.5\n{C2},{P1},0.25"));
    assert_two_rows(&outcome);
}

#[test]
fn blank_lines_are_ignored() {
    let outcome = ingest_text(&format!("{HEADER}\n\n{C1},{P1},0.5\n\n{C2},{P1},0.25\n\n"));
    assert_two_rows(&outcome);
}

#[test]
fn spaces_around_a_rating_are_parsed() {
    let outcome = ingest_text(&format!("{HEADER}\n{C1},{P1}, 0.5\n{C2},{P1},0.25 \n"));
    assert_two_rows(&outcome);
}

#[test]
fn missing_column_is_an_error() {
    let error = ingest_error(&format!("customerId,scaled_purchase_freq\n{C1},0.5\n"));
    assert_contains(&error, "ratings.csv:1: the header lacks column `productId`");
    assert_contains(&error, "`customerId`, `scaled_purchase_freq`");
}

#[test]
fn malformed_uuid_is_an_error_naming_file_and_line() {
    let error = ingest_error(&format!(
        "{HEADER}\n{C1},{P1},0.5\n{C2},9910eb1b-9d99-4025-badc-13ef455bb49,0.25\n"
    ));
    assert_contains(
        &error,
        "ratings.csv:3: productId `9910eb1b-9d99-4025-badc-13ef455bb49` is not a UUID",
    );
    assert_contains(&error, "on_bad_rows: skip");
}

#[test]
fn padded_uuid_is_an_error() {
    let error = ingest_error(&format!("{HEADER}\n {C1},{P1},0.5\n"));
    assert_contains(
        &error,
        &format!("ratings.csv:2: customerId ` {C1}` is not a UUID"),
    );
}

#[test]
fn empty_file_is_an_error() {
    let error = ingest_error("");
    assert_contains(&error, "ratings.csv:1: the file is empty");
}

#[test]
fn header_only_is_an_error() {
    let error = ingest_error(&format!("{HEADER}\n"));
    assert_contains(&error, "ratings.csv: no data rows");
}

#[test]
fn nan_rating_is_an_error() {
    let error = ingest_error(&format!("{HEADER}\n{C1},{P1},NaN\n"));
    assert_contains(
        &error,
        "ratings.csv:2: scaled_purchase_freq `NaN` is not a finite number",
    );
}

#[test]
fn infinite_rating_is_an_error() {
    let error = ingest_error(&format!("{HEADER}\n{C1},{P1},inf\n"));
    assert_contains(
        &error,
        "ratings.csv:2: scaled_purchase_freq `inf` is not a finite number",
    );
}

#[test]
fn negative_rating_is_an_error() {
    let error = ingest_error(&format!("{HEADER}\n{C1},{P1},0.5\n{C2},{P1},-0.25\n"));
    assert_contains(
        &error,
        "ratings.csv:3: scaled_purchase_freq -0.25 is negative",
    );
}

#[test]
fn text_rating_is_an_error() {
    let error = ingest_error(&format!("{HEADER}\n{C1},{P1},often\n"));
    assert_contains(
        &error,
        "ratings.csv:2: scaled_purchase_freq `often` is not a number",
    );
}

#[test]
fn empty_rating_is_an_error() {
    let error = ingest_error(&format!("{HEADER}\n{C1},{P1},\n"));
    assert_contains(&error, "ratings.csv:2: scaled_purchase_freq is empty");
}

#[test]
fn extra_field_in_a_row_is_an_error() {
    let error = ingest_error(&format!("{HEADER}\n{C1},{P1},0.5,extra\n"));
    assert_contains(&error, "ratings.csv:2: 4 fields, but the header has 3");
}

#[test]
fn error_after_a_multi_line_quoted_field_names_the_row_start_line() {
    let error = ingest_error(&format!(
        "{HEADER},note\n{C1},{P1},0.5,\"two\nlines\"\n{C2},{P1},bad,x\n"
    ));
    assert_contains(&error, "ratings.csv:4: scaled_purchase_freq `bad`");
}

#[test]
fn skip_mode_counts_and_reports_bad_rows() {
    let text =
        format!("{HEADER}\n{C1},{P1},0.5\n{C1},not-a-uuid,0.1\n{C2},{P1},NaN\n{C2},{P1},0.25\n");
    let (_dir, outcome) = ingest_bytes(text.as_bytes(), "skip");
    let outcome = outcome.unwrap();
    assert_two_rows(&outcome);
    let printed = outcome.printed.join("\n");
    assert_contains(
        &printed,
        "ratings.csv:3: productId `not-a-uuid` is not a UUID",
    );
    assert_contains(&printed, "ratings.csv:4: scaled_purchase_freq `NaN`");
    assert_contains(&printed, "skipped 2 bad rows of");
}

#[test]
fn skip_mode_with_only_bad_rows_is_an_error() {
    let text = format!("{HEADER}\n{C1},{P1},-1\n");
    let (_dir, outcome) = ingest_bytes(text.as_bytes(), "skip");
    let error = format!("{:#}", outcome.err().expect("no valid rows must fail"));
    assert_contains(&error, "no valid data rows (all 1 rows were bad)");
}

#[test]
fn unknown_bad_rows_policy_is_an_error_naming_the_param() {
    let (_dir, outcome) = ingest_bytes(b"", "ignore");
    let error = format!("{:#}", outcome.err().expect("bad param must fail"));
    assert_contains(
        &error,
        "param `on_bad_rows`: expected `error` or `skip`, found `ignore`",
    );
}

#[test]
fn missing_input_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.csv");
    let error = format!(
        "{:#}",
        ingest_file(&missing, "error", dir.path()).err().unwrap()
    );
    assert_contains(&error, "nowhere.csv");
}

#[test]
fn skip_mode_shows_the_first_bad_rows_and_counts_them_all() {
    let mut text = format!("{HEADER}\n{C1},{P1},0.5\n");
    for _ in 0..25 {
        text.push_str(&format!("{C2},{P1},-1\n"));
    }
    let (_dir, outcome) = ingest_bytes(text.as_bytes(), "skip");
    let outcome = outcome.unwrap();
    assert_eq!(outcome.ratings.len(), 1);
    let shown: Vec<&String> = outcome
        .printed
        .iter()
        .filter(|line| line.starts_with("skipping ") && line.contains("is negative"))
        .collect();
    assert_eq!(shown.len(), 20);
    assert!(shown[19].contains("ratings.csv:22:"), "{}", shown[19]);
    let printed = outcome.printed.join("\n");
    assert_contains(&printed, "skipping further bad rows of");
    assert_contains(&printed, "skipped 25 bad rows of");
}
