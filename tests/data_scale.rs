//! Memory at scale (issue 12), small enough for CI: the shipped recommender pipeline, through
//! the real binary, on `gen-data` ratings of two sizes (200k and 2M rows), each stage in its own
//! `warez-pipe run --stage NAME` so each gets its own peak.
//!
//! Peak memory is the binary's own maximum resident set size as the kernel counts it, read from
//! GNU time (`/usr/bin/time`, which `scripts/test` installs): it covers the whole process, its
//! allocator, ONNX Runtime and the engine's hashing and cache copies, where a figure kept by the
//! program itself would see only what it chose to count. Bounds are proportional to what a stage
//! handles; a stage's fixed cost (ONNX Runtime alone is ~100 MB) is taken out by bounding the
//! *growth* of its peak from the small run to the large one against the growth of its data:
//! - ingest: peak ≤ 0.5 × the CSV's size (the bound, whole peak, no allowance);
//! - train: growth ≤ 1.6 × the growth of the parameters with their two Adam moments (the
//!   checkpoint and its external data file) plus `ratings.bin`: the state it must hold, plus
//!   the training order and the validation scores (measured: about 1.3×; 1.7× while ONNX
//!   Runtime held a copy of the tables to score the validation rows);
//! - export_tf: growth ≤ 1.5 × the growth of the checkpoint it reads (it reads only the
//!   parameters, a third of it, then holds the graph; measured: 0.6×);
//! - write_avro: growth ≤ 1.5 × the growth of the graph plus the id maps (each held once; the
//!   record, the datum and the container are streamed).
//!
//! No times are asserted: growth ratios of times are the benchmark's (`bench/scale.sh`).

#[path = "engine_support/mod.rs"]
mod engine_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use engine_support::{Project, Run};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PIPELINE: &str = "pipelines/recommender.yaml";
const MODEL_PATH: &str = "models/recommender";
const STAGES: [&str; 4] = ["ingest", "train", "export_tf", "write_avro"];
const MIB: f64 = 1024.0 * 1024.0;

/// One size's run: each stage's peak RSS, and the sizes of the files it wrote, in bytes.
struct Measured {
    peak: BTreeMap<&'static str, u64>,
    csv: u64,
    file: BTreeMap<&'static str, u64>,
}

/// The recommender pipeline on `gen-data --rows ROWS --customers … --products …`, stage by stage.
fn measure(rows: u32, customers: u32, products: u32) -> Measured {
    let project = Project::new();
    let pipeline = std::fs::read_to_string(Path::new(REPO).join(PIPELINE))
        .unwrap()
        .replace("data/ratings_small.csv", "data/generated.csv");
    assert!(pipeline.contains("data/generated.csv"), "{pipeline}");
    project.file(PIPELINE, &pipeline);
    project.file(
        "avro/RecommenderModel.avsc",
        &std::fs::read_to_string(Path::new(REPO).join("avro/RecommenderModel.avsc")).unwrap(),
    );
    std::fs::create_dir_all(project.abs("data")).unwrap();
    let (rows, customers, products) = (
        rows.to_string(),
        customers.to_string(),
        products.to_string(),
    );
    project
        .warez(&[
            "gen-data",
            "--rows",
            &rows,
            "--customers",
            &customers,
            "--products",
            &products,
            "--out",
            "data/generated.csv",
        ])
        .assert_code(0);

    let mut peak = BTreeMap::new();
    for stage in STAGES {
        let (run, kib) = peak_rss_kib(&project, &["run", "--stage", stage, "--json", PIPELINE]);
        run.assert_code(0);
        assert_eq!(run.outcomes()[stage], "ran", "{}", run.stdout);
        peak.insert(stage, kib * 1024);
    }
    let size = |path: &str| std::fs::metadata(project.abs(path)).unwrap().len();
    let model = |name: &str| size(&format!("{MODEL_PATH}/{name}"));
    Measured {
        peak,
        csv: size("data/generated.csv"),
        file: BTreeMap::from([
            ("ratings", model("ratings.bin")),
            // The checkpoint's tensors are in its external data file, beside the model.
            (
                "checkpoint",
                model("checkpoint.onnx") + model("checkpoint.onnx.data"),
            ),
            ("graph", model("optimized_ProductRecommender.pb")),
            ("maps", model("customer_map.txt") + model("product_map.txt")),
        ]),
    }
}

/// Peak RSS in KiB of `warez-pipe ARGS` in the project, from `/usr/bin/time -f %M` (its last
/// line of stderr; the run's own messages come before it).
fn peak_rss_kib(project: &Project, args: &[&str]) -> (Run, u64) {
    let output = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg(assert_cmd::cargo::cargo_bin!("warez-pipe"))
        .args(args)
        .current_dir(project.path())
        .env("NO_COLOR", "1")
        .env_remove("WAREZ_CACHE")
        .output()
        .expect("GNU time at /usr/bin/time (scripts/test installs it: apt-get install time)");
    let run = Run::from_output(output);
    let kib = run
        .stderr
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS at the end of:\n{}", run.stderr));
    (run, kib)
}

#[test]
fn peak_memory_grows_with_the_data_by_bounded_factors() {
    let small = measure(200_000, 20_000, 400);
    let large = measure(2_000_000, 200_000, 4_000);
    let growth = |of: &dyn Fn(&Measured) -> u64| of(&large) as f64 - of(&small) as f64;
    let report = |what: &str| {
        let stages = |m: &Measured| {
            STAGES
                .iter()
                .map(|stage| format!("{stage} {:.0} MiB", m.peak[stage] as f64 / MIB))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{what}\n200k rows: {}\n2M rows: {}",
            stages(&small),
            stages(&large)
        )
    };

    println!("{}", report("peak RSS per stage"));
    let ingest = large.peak["ingest"] as f64;
    assert!(
        ingest <= 0.5 * large.csv as f64,
        "{}",
        report(&format!(
            "ingest peaked at {:.0} MiB, more than half the {:.0} MiB CSV",
            ingest / MIB,
            large.csv as f64 / MIB
        ))
    );

    // The trainer's state: the parameters and their two Adam moments are the checkpoint.
    for (stage, data, factor) in [
        (
            "train",
            growth(&|m| m.file["checkpoint"] + m.file["ratings"]),
            1.6,
        ),
        ("export_tf", growth(&|m| m.file["checkpoint"]), 1.5),
        (
            "write_avro",
            growth(&|m| m.file["graph"] + m.file["maps"]),
            1.5,
        ),
    ] {
        let grew = growth(&|m| m.peak[stage]);
        assert!(data > 0.0, "the data did not grow");
        assert!(
            grew <= factor * data,
            "{}",
            report(&format!(
                "{stage}'s peak grew by {:.0} MiB, more than {factor} × its data's growth of {:.0} MiB",
                grew / MIB,
                data / MIB
            ))
        );
    }
}
