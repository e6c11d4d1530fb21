//! Ingest against the notebook's own reading (pandas `read_csv` + `unique` + `map`, ratings cast
//! to float32 as Keras does): the same maps, byte for byte, and the same index and rating columns.
//! Needs `WAREZ_TEST_PYTHON`, a Python with pandas and numpy (scripts/test's venv).

#[path = "reference/mod.rs"]
mod reference;

use std::path::Path;
use std::process::Command;

use warez_pipe::engine::kind::NoProgress;
use warez_pipe::ml::data::reader::{read_ratings_file, OnBadRows};

const PANDAS_READER: &str = r#"
import sys
import numpy as np
import pandas as pd

csv_path, out_dir = sys.argv[1:3]
ratings = pd.read_csv(csv_path)
columns = {}
for column, name in (("customerId", "customer"), ("productId", "product")):
    ids = pd.unique(ratings[column])
    with open(f"{out_dir}/{name}_map.txt", "w", newline="\n") as out:
        out.writelines(f"{id}\n" for id in ids)
    index = {id: i for i, id in enumerate(ids)}
    columns[name] = ratings[column].map(index).astype("uint32").to_numpy()
with open(f"{out_dir}/columns.bin", "wb") as out:
    out.write(columns["customer"].astype("<u4").tobytes())
    out.write(columns["product"].astype("<u4").tobytes())
    out.write(ratings["scaled_purchase_freq"].astype("float32").to_numpy().astype("<f4").tobytes())
"#;

fn assert_matches_pandas(csv: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(reference::test_python())
        .arg("-c")
        .arg(PANDAS_READER)
        .arg(csv)
        .arg(dir.path())
        .status()
        .expect("running WAREZ_TEST_PYTHON");
    assert!(
        status.success(),
        "the pandas reader failed on {}",
        csv.display()
    );

    let ingested = read_ratings_file(csv, OnBadRows::Error, &NoProgress).unwrap();
    for (name, map) in [
        ("customer_map.txt", &ingested.customers),
        ("product_map.txt", &ingested.products),
    ] {
        let ours = dir.path().join(format!("ours_{name}"));
        map.write(&ours).unwrap();
        assert!(
            std::fs::read(&ours).unwrap() == std::fs::read(dir.path().join(name)).unwrap(),
            "{name} of {} differs from pandas.unique",
            csv.display()
        );
    }
    let ratings = &ingested.ratings;
    let mut ours = Vec::new();
    for column in [&ratings.customers, &ratings.products] {
        ours.extend(column.iter().flat_map(|value| value.to_le_bytes()));
    }
    ours.extend(ratings.ratings.iter().flat_map(|value| value.to_le_bytes()));
    assert!(
        ours == std::fs::read(dir.path().join("columns.bin")).unwrap(),
        "index or rating columns of {} differ from pandas",
        csv.display()
    );
}

#[test]
fn original_data_matches_pandas() {
    assert_matches_pandas(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/ratings_uuid_small.csv"
    )));
}

#[test]
fn committed_small_data_matches_pandas() {
    assert_matches_pandas(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/ratings_small.csv"
    )));
}
