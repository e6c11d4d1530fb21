//! What a training run will need, checked from `ratings.bin`'s header and the params before
//! anything is allocated, so a run that cannot work stops at once with the numbers instead of
//! aborting (or failing in `export_tf` after hours of training):
//!
//! - **ids**: they reach the model as float32 (`user`, `product` `[N, 1]`, the serving side's
//!   contract), exact for integers only up to 2²⁴, so at most [`MAX_IDS`] per side;
//! - **rows and steps**: the trainer indexes rows and counts steps in u32;
//! - **protobuf messages**: the frozen TensorFlow graph and `eval_model.onnx` carry every weight
//!   as constants; a protobuf message cannot exceed 2 GiB ([`PROTOBUF_LIMIT`]), so a model that would not fit is refused,
//!   naming the largest `n_factors` that fits these customers and products. The checkpoint
//!   (parameters and both Adam moments, three times the weights) has no such limit: its tensors
//!   are ONNX external data in `checkpoint.onnx.data` (see [`checkpoint`](super::super::checkpoint));
//! - **memory**: an estimate of the run's peak (see [`MemoryEstimate::of`]) against what the
//!   machine has available ([`available_memory`]).
//!
//! Every problem found is reported at once.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Result};

use super::dropout::MASKS_IN_FLIGHT;
use super::{TrainConfig, EVAL_CHUNK};
use crate::ml::data::dataset::Header;
use crate::ml::data::idmap::MAX_IDS;

/// The largest protobuf message the C++, Java and Python protobuf libraries parse (2 GiB − 1
/// byte); TensorFlow's GraphDef and every ONNX model are protobuf messages.
pub const PROTOBUF_LIMIT: u64 = (1 << 31) - 1;
/// Room in a graph for everything but its tensors: node names, attributes, shapes.
const GRAPH_OVERHEAD: u64 = 64 << 10;
/// Bytes per step in the trainer's catch-up tables (four f64 sums and two f64 powers, see
/// `optimizer::CatchUp`).
const CATCH_UP_BYTES_PER_STEP: u64 = 48;
/// ONNX Runtime's sessions and the process itself, beyond the tensors counted.
const BASE_MEMORY: f64 = (64u64 << 20) as f64;

/// What one training run is made of: the data's sizes and the params that size buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunShape {
    pub ratings: u64,
    pub train_rows: u64,
    pub n_customers: u64,
    pub n_products: u64,
    pub n_factors: u64,
    pub batch_size: u64,
    pub epochs: u64,
}

impl RunShape {
    pub fn new(header: &Header, train_rows: u64, config: &TrainConfig) -> Self {
        Self {
            ratings: header.rows,
            train_rows,
            n_customers: u64::from(header.n_customers),
            n_products: u64::from(header.n_products),
            n_factors: config.n_factors as u64,
            batch_size: config.batch_size as u64,
            epochs: config.epochs as u64,
        }
    }

    fn steps_per_epoch(&self) -> u64 {
        self.train_rows.div_ceil(self.batch_size.max(1))
    }

    /// Every step of the run; `None` past u64.
    fn total_steps(&self) -> Option<u64> {
        self.steps_per_epoch().checked_mul(self.epochs)
    }

    /// Bytes of the float32 weights with `n_factors` = `k`: both embedding tables and the dense
    /// layers (`dense_1` kernel 2k × k and bias k, `dense_2` kernel k × 1 and bias 1).
    /// In f64: `k` is a param, and 8k² passes even u128 from k = 2⁶²; the sums near the 2 GiB
    /// protobuf limit stay far below 2⁵³, where f64 counts exactly.
    fn weight_bytes(&self, k: u64) -> f64 {
        let (k, ids) = (k as f64, self.n_customers as f64 + self.n_products as f64);
        4.0 * (ids * k + 2.0 * k * k + 2.0 * k + 1.0)
    }

    /// The largest `n_factors` whose weights fit one protobuf message (0 when none does).
    fn largest_fitting_factors(&self) -> u64 {
        let fits = |k: u64| self.weight_bytes(k) + GRAPH_OVERHEAD as f64 <= PROTOBUF_LIMIT as f64;
        // The dense_1 kernel alone (8k² bytes) passes the limit from k = 2¹⁴.
        let (mut low, mut high) = (0u64, 1 << 15);
        while low < high {
            let middle = (low + high).div_ceil(2);
            if fits(middle) {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        low
    }

    fn describe(&self) -> String {
        format!(
            "{} ratings ({} training), {} customers, {} products; n_factors {}, batch_size {}, \
             epochs {}",
            grouped(self.ratings),
            grouped(self.train_rows),
            grouped(self.n_customers),
            grouped(self.n_products),
            self.n_factors,
            self.batch_size,
            self.epochs
        )
    }
}

/// The peak memory of a run, by what holds it, in bytes (f64: the products of hostile params
/// overflow u64, and an estimate needs no exact digits).
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    pub parts: Vec<(&'static str, f64)>,
}

impl MemoryEstimate {
    /// What the trainer holds at its peak, the end of the last epoch (see `fit`):
    /// - the ratings file and its decoded columns while it is read, then the shuffled training
    ///   order, the batches and the validation predictions;
    /// - the embedding tables with both Adam moments (side by side in each row), each row's last
    ///   step and slot;
    /// - the dense parameters, their moments, their gradients and the optimizer's outputs;
    /// - one step's rows (the batch's distinct rows: their values and gradients, counted twice
    ///   over), plus the training graph's activations;
    /// - the dropout masks drawn ahead;
    /// - the optimizer's catch-up table;
    /// - at the end of an epoch: the validation rows scored in chunks, each chunk's rows gathered
    ///   from the tables for the scorer graph (which holds only the dense layers: ONNX Runtime
    ///   never gets a copy of the tables). Writing the eval graph and the checkpoint copies
    ///   nothing: both are streamed from the tables;
    /// - ONNX Runtime and the process itself.
    ///
    /// Measured (`/usr/bin/time`, whole `run` of ingest + train, 1 epoch, k = 50): 10M ratings,
    /// 1M customers, 20k products peaked at 0.90 GB (839 MiB) for an estimate of 1.13 GB.
    pub fn of(shape: &RunShape) -> Self {
        let f = |value: u64| value as f64;
        let (c, p, k) = (
            f(shape.n_customers),
            f(shape.n_products),
            f(shape.n_factors),
        );
        let batch = shape.batch_size.min(shape.train_rows);
        // Not `total_steps`: past u64 the estimate still needs a number.
        let steps = f(shape.steps_per_epoch()) * f(shape.epochs);
        let weights = shape.weight_bytes(shape.n_factors);
        let tables = 4.0 * (c + p) * k;
        let dense = weights - tables;
        let min = |a: u64, b: u64| f(a.min(b));
        let step_rows = 2.0 * (min(batch, shape.n_customers) + min(batch, shape.n_products));
        let validation_rows = shape.ratings - shape.train_rows;
        Self {
            parts: vec![
                (
                    "ratings, training order and predictions",
                    32.0 * f(shape.ratings) + 16.0 * f(shape.steps_per_epoch()),
                ),
                (
                    "embedding tables with their Adam moments",
                    3.0 * tables + 8.0 * (c + p),
                ),
                ("dense layers with moments and gradients", 8.0 * dense),
                (
                    "one step's rows and activations",
                    4.0 * k * (8.0 * step_rows + 16.0 * f(batch)),
                ),
                (
                    "dropout masks drawn ahead",
                    12.0 * k * f(batch) * steps.min(MASKS_IN_FLIGHT as f64),
                ),
                (
                    "the optimizer's catch-up table",
                    f(CATCH_UP_BYTES_PER_STEP) * (steps + 1.0),
                ),
                (
                    "scoring the validation rows",
                    32.0 * k * min(EVAL_CHUNK as u64, validation_rows) + dense,
                ),
                ("ONNX Runtime and the process", BASE_MEMORY),
            ],
        }
    }

    pub fn total(&self) -> f64 {
        self.parts.iter().map(|(_, bytes)| bytes).sum()
    }
}

/// Memory the run may use, and where the figure comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Available {
    pub bytes: u64,
    pub source: String,
}

/// What this machine (or the cgroup this process runs in) has available now: the smaller of
/// `MemAvailable` in /proc/meminfo and the cgroup's limit minus its working set. `None` where
/// neither can be read (not Linux): then only the fallible allocations guard the run.
///
/// Hand-written: it is a few lines of procfs, and the crates that wrap it (sysinfo, procfs)
/// would be a large dependency for two numbers.
pub fn available_memory() -> Option<Available> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| field(&text, "MemAvailable:"))
        .map(|kib| Available {
            bytes: kib.saturating_mul(1024),
            source: "MemAvailable in /proc/meminfo".to_string(),
        });
    let cgroup = [
        // cgroup v2, then v1, as mounted inside a container (the process's own group).
        (
            "/sys/fs/cgroup",
            "memory.max",
            "memory.current",
            "inactive_file",
        ),
        (
            "/sys/fs/cgroup/memory",
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_inactive_file",
        ),
    ]
    .into_iter()
    .find_map(|(dir, limit, usage, inactive)| {
        cgroup_headroom(Path::new(dir), limit, usage, inactive)
    });
    [meminfo, cgroup]
        .into_iter()
        .flatten()
        .min_by_key(|available| available.bytes)
}

/// The cgroup's limit minus its working set (usage less the reclaimable inactive file cache),
/// when it has a limit.
fn cgroup_headroom(dir: &Path, limit: &str, usage: &str, inactive: &str) -> Option<Available> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let limit_bytes: u64 = read(limit)?.trim().parse().ok()?; // "max": no limit
    let usage_bytes: u64 = read(usage)?.trim().parse().ok()?;
    let reclaimable = read("memory.stat")
        .and_then(|text| field(&text, &format!("{inactive} ")))
        .unwrap_or(0);
    Some(Available {
        bytes: limit_bytes.saturating_sub(usage_bytes.saturating_sub(reclaimable)),
        source: format!("the limit in {}", dir.join(limit).display()),
    })
}

/// The number after `key` at the start of a line of `text`.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// Checks that the run `shape` describes can work, `available` bytes of memory given (`None`:
/// unknown, not checked); the error lists every problem with its numbers.
pub fn check(shape: &RunShape, available: Option<&Available>) -> Result<()> {
    let mut problems = Vec::new();
    for (count, what) in [
        (shape.n_customers, "customers"),
        (shape.n_products, "products"),
    ] {
        if count > MAX_IDS {
            problems.push(format!(
                "{} {what} are more than {}: ids reach the model as float32, which holds whole \
                 numbers exactly only up to 2^24",
                grouped(count),
                grouped(MAX_IDS)
            ));
        }
    }
    if shape.ratings > u64::from(u32::MAX) {
        problems.push(format!(
            "{} ratings are more than {}, the most the trainer indexes",
            grouped(shape.ratings),
            grouped(u64::from(u32::MAX))
        ));
    }
    let weights = shape.weight_bytes(shape.n_factors) + GRAPH_OVERHEAD as f64;
    if weights > PROTOBUF_LIMIT as f64 {
        let largest = shape.largest_fitting_factors();
        problems.push(format!(
            "the frozen TensorFlow graph (and eval_model.onnx) would hold the weights in one \
             protobuf message of about {}, more than the 2 GiB a protobuf message can hold: \
             (customers + products) × n_factors × 4 bytes for the embeddings plus \
             (2·n_factors² + 2·n_factors + 1) × 4 bytes for the dense layers; for these {} \
             customers and {} products n_factors ≤ {} fits",
            human(weights),
            grouped(shape.n_customers),
            grouped(shape.n_products),
            grouped(largest)
        ));
    }
    let steps_fit = u64::from(u32::MAX);
    match shape.total_steps() {
        Some(steps) if steps <= steps_fit => {}
        steps => problems.push(format!(
            "{} training steps ({} per epoch × {} epochs) are too many: the trainer counts \
             steps in 32 bits (at most {} steps); use fewer epochs (at most {} with this \
             batch_size) or a larger batch_size",
            steps.map_or_else(|| "more than 2^64".to_string(), grouped),
            grouped(shape.steps_per_epoch()),
            grouped(shape.epochs),
            grouped(steps_fit),
            grouped(steps_fit / shape.steps_per_epoch().max(1))
        )),
    }
    if let Some(available) = available {
        let estimate = MemoryEstimate::of(shape);
        if estimate.total() > available.bytes as f64 {
            let mut problem = format!(
                "training needs about {} of memory, but {} is available ({}):",
                human(estimate.total()),
                human(available.bytes as f64),
                available.source
            );
            for (part, bytes) in &estimate.parts {
                let _ = write!(problem, "\n      {:>10}  {part}", human(*bytes));
            }
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "this training run cannot work ({}):\n  - {}",
        shape.describe(),
        problems.join("\n  - ")
    )
}

/// `1234567` → `1,234,567`.
fn grouped(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Bytes in binary units: `1.5 GiB`.
fn human(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} bytes")
    } else if value >= 10_000.0 {
        format!("{value:.2e} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's small data set with the notebook's params.
    fn small() -> RunShape {
        RunShape {
            ratings: 1999,
            train_rows: 1499,
            n_customers: 1895,
            n_products: 2,
            n_factors: 50,
            batch_size: 64,
            epochs: 1,
        }
    }

    fn plenty() -> Available {
        Available {
            bytes: 16 << 30,
            source: "test".into(),
        }
    }

    #[test]
    fn the_notebook_run_fits_in_a_few_megabytes() {
        let total = MemoryEstimate::of(&small()).total();
        assert!(total < 80e6, "{total}");
        check(&small(), Some(&plenty())).unwrap();
    }

    #[test]
    fn a_run_larger_than_memory_is_refused_with_the_estimate_and_the_params() {
        let shape = RunShape {
            ratings: 400_000_000,
            train_rows: 300_000_000,
            n_customers: 1_000_000,
            n_factors: 400,
            ..small()
        };
        let total = MemoryEstimate::of(&shape).total();
        // 1M × 400 floats are 1.5 GiB: with both moments, 3 of them; the 400M ratings'
        // columns, order and predictions 12 GiB.
        assert!((18e9..19e9).contains(&total), "{total}");
        let error = check(&shape, Some(&plenty())).unwrap_err().to_string();
        assert!(error.contains("training needs about 17."), "{error}");
        assert!(
            error.contains("but 16.0 GiB is available (test)"),
            "{error}"
        );
        assert!(
            error.contains("embedding tables with their Adam moments"),
            "{error}"
        );
        assert!(error.contains("1,000,000 customers"), "{error}");
        assert!(error.contains("n_factors 400, batch_size 64"), "{error}");
        assert!(!error.contains("protobuf"), "{error}");
        check(&shape, None).unwrap();
    }

    #[test]
    fn the_largest_fitting_n_factors_is_exact() {
        for shape in [
            small(),
            RunShape {
                n_customers: 3_000_000,
                ..small()
            },
        ] {
            let largest = shape.largest_fitting_factors();
            let with = |k| RunShape {
                n_factors: k,
                ..shape
            };
            assert!(check(&with(largest), None).is_ok());
            let error = check(&with(largest + 1), None).unwrap_err().to_string();
            assert!(
                error.contains(&format!("n_factors ≤ {} fits", grouped(largest))),
                "{error}"
            );
        }
        // The dense_1 kernel bounds small data sets; 3M ids × k × 4 bytes bound large ones.
        // 8k² + 4·1,899·k + 4 + 64 KiB ≤ 2³¹ − 1 up to k = 15,915.
        assert_eq!(small().largest_fitting_factors(), 15_915);
        assert!(
            RunShape {
                n_customers: 3_000_000,
                ..small()
            }
            .largest_fitting_factors()
                < 180
        );
    }

    #[test]
    fn absurd_params_are_refused_without_overflow() {
        let shape = RunShape {
            n_factors: 1_000_000_000,
            batch_size: u64::MAX,
            epochs: u64::MAX,
            ..small()
        };
        let error = check(&shape, Some(&plenty())).unwrap_err().to_string();
        for part in [
            "protobuf message of about",
            "training steps",
            "training needs about",
        ] {
            assert!(error.contains(part), "{part}: {error}");
        }
    }

    #[test]
    fn more_ids_than_float32_holds_exactly_are_refused() {
        let shape = RunShape {
            n_products: MAX_IDS + 1,
            n_factors: 1,
            ..small()
        };
        let error = check(&shape, None).unwrap_err().to_string();
        assert!(
            error.contains("16,777,217 products are more than 16,777,216"),
            "{error}"
        );
        check(
            &RunShape {
                n_products: MAX_IDS,
                ..shape
            },
            None,
        )
        .unwrap();
    }

    #[test]
    fn reads_the_fields_of_meminfo_and_cgroup_files() {
        let meminfo = "MemTotal:       24684092 kB\nMemAvailable:   23491296 kB\n";
        assert_eq!(field(meminfo, "MemAvailable:"), Some(23_491_296));
        assert_eq!(
            field("anon 5\ninactive_file 7\n", "inactive_file "),
            Some(7)
        );
        assert_eq!(field("total_inactive_file 9\n", "inactive_file "), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        std::fs::write(dir.path().join("memory.current"), "100\n").unwrap();
        assert_eq!(
            cgroup_headroom(dir.path(), "memory.max", "memory.current", "inactive_file"),
            None
        );
        std::fs::write(dir.path().join("memory.max"), "1000\n").unwrap();
        std::fs::write(dir.path().join("memory.stat"), "inactive_file 40\n").unwrap();
        assert_eq!(
            cgroup_headroom(dir.path(), "memory.max", "memory.current", "inactive_file")
                .map(|available| available.bytes),
            Some(940)
        );
    }

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1895), "1,895");
        assert_eq!(grouped(16_777_216), "16,777,216");
        assert_eq!(human(512.0), "512 bytes");
        assert_eq!(human(1.5 * 1024.0 * 1024.0 * 1024.0), "1.5 GiB");
    }
}
