//! A seeded generator of synthetic ratings in the layout of the original data.
//!
//! The output is a CSV with `customerId,productId,scaled_purchase_freq`, UUIDv4 ids and ratings
//! in steps of 1/15 in [0, 1], shaped like the original's scaled purchase frequencies (most mass
//! at 0–2/15, a long right tail). Behind it sits a hidden model that a recommender can learn:
//!
//! ```text
//! rating = round(15 · BASE · exp(b_c + b_p + u_c · v_p + ε)) / 15, clamped to [0, 1]
//! ```
//!
//! with per-customer and per-product biases `b`, 4-dimensional latent vectors `u`, `v`
//! and row noise `ε`. Which rows exist is drawn too:
//! - every customer has at least one rating; the rest are spread by a log-normal "activity"
//!   weight, so some customers rate many products;
//! - products are drawn Zipf-distributed (exponent 1: with two products a 2:1 split, like the
//!   original), without repeating a (customer, product) pair; every product gets at least one
//!   rating;
//! - rows come out shuffled.
//!
//! Everything is drawn from one ChaCha stream seeded by `seed`, in a fixed order, so the same
//! config gives the same bytes for a given `Cargo.lock` (the rand crates keep their sampling
//! algorithms stable within a version) on a given platform (the samplers call the platform's
//! `exp`/`ln`/`powf`, and another math library could round a rare value the other way).

use std::io::Write;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedAliasIndex;
use rand_distr::{Distribution, LogNormal, Normal, Zipf};

use super::reader::{CUSTOMER_COLUMN, PRODUCT_COLUMN, RATING_COLUMN};
use super::try_vec;
use crate::engine::files::temp_file_for;
use crate::engine::kind::Progress;
use crate::ml::data::idmap::MAX_IDS;

/// Dimensions of the hidden customer and product vectors.
const FACTORS: usize = 4;
/// The median rating before rounding (1.5 steps of 1/15): the score's parts have mean 0.
const BASE: f64 = 0.1;
/// Rating steps per unit: ratings are multiples of 1/15.
const STEPS: f64 = 15.0;
const CUSTOMER_BIAS_SD: f64 = 0.3;
const PRODUCT_BIAS_SD: f64 = 0.5;
/// Per-component standard deviation of the latent vectors: the dot product's variance is
/// `FACTORS · FACTOR_SD⁴` ≈ 0.3, the largest of the score's parts.
const FACTOR_SD: f64 = 0.52;
const NOISE_SD: f64 = 0.25;
/// σ of the log-normal weight that spreads extra ratings over customers.
const ACTIVITY_SIGMA: f64 = 0.75;
/// Exponent of the products' Zipf popularity.
const POPULARITY_EXPONENT: f64 = 1.0;
/// Rows between progress updates.
const PROGRESS_EVERY: usize = 1 << 14;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratorConfig {
    pub rows: u64,
    pub customers: u64,
    pub products: u64,
    pub seed: u64,
}

impl GeneratorConfig {
    /// Checks the sizes are possible: every customer and product rated at least once, no pair
    /// rated twice, and no more ids than a model tells apart ([`MAX_IDS`]: ingest would refuse
    /// the file).
    pub fn check(&self) -> Result<()> {
        ensure!(self.customers >= 1, "customers must be at least 1");
        ensure!(self.products >= 1, "products must be at least 1");
        ensure!(
            self.customers <= MAX_IDS && self.products <= MAX_IDS,
            "customers and products must each be at most {MAX_IDS}: ids reach the model as \
             float32, exact for whole numbers only up to 2^24"
        );
        ensure!(
            self.rows >= self.customers.max(self.products),
            "rows ({}) must be at least customers ({}) and products ({}): each is rated at least once",
            self.rows,
            self.customers,
            self.products
        );
        ensure!(
            u128::from(self.rows) <= u128::from(self.customers) * u128::from(self.products),
            "rows ({}) must be at most customers × products ({} × {}): no pair is rated twice",
            self.rows,
            self.customers,
            self.products
        );
        Ok(())
    }
}

/// Writes the generated CSV to `path`.
pub fn write_csv_file(
    config: &GeneratorConfig,
    path: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    config.check()?;
    // Written beside `path` and renamed into place, so an interrupted run leaves no half file.
    let write = || -> Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, temp_file_for(path)?);
        write_csv(config, &mut out, progress)?;
        out.into_inner()
            .map_err(|error| error.into_error())?
            .persist(path)?;
        Ok(())
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes the generated CSV to `out`, reporting rows written to `progress`.
pub fn write_csv(
    config: &GeneratorConfig,
    out: &mut impl Write,
    progress: &dyn Progress,
) -> Result<()> {
    config.check()?;
    let customers = config.customers as usize;
    let products = config.products as usize;
    let rows = config.rows as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // `rows` is a param: the buffer for every row is allocated first, fallibly.
    let pairs = try_vec(rows).context("holding the generated rows")?;

    let customer_ids = random_ids(&mut rng, customers);
    let product_ids = random_ids(&mut rng, products);
    let model = LatentModel::sample(&mut rng, customers, products);
    let counts = ratings_per_customer(&mut rng, rows, customers, products);
    let mut pairs = rated_pairs(&mut rng, &counts, products, pairs);
    rate_every_product(&mut rng, &mut pairs, products);
    pairs.shuffle(&mut rng);

    // Rust's `{:?}` prints the shortest round-tripping decimal with a `.0` on whole numbers:
    // the same text as Python's repr, so the file reads like one pandas wrote.
    let rating_texts: Vec<String> = (0..=STEPS as u32)
        .map(|step| format!("{:?}", f64::from(step) / STEPS))
        .collect();
    let noise = Normal::new(0.0, NOISE_SD)?;

    progress.start(rows as u64, "rows");
    writeln!(out, "{CUSTOMER_COLUMN},{PRODUCT_COLUMN},{RATING_COLUMN}")?;
    for (row, &(customer, product)) in pairs.iter().enumerate() {
        let step = model.rating_step(customer as usize, product as usize, noise.sample(&mut rng));
        out.write_all(&customer_ids[customer as usize])?;
        out.write_all(b",")?;
        out.write_all(&product_ids[product as usize])?;
        out.write_all(b",")?;
        out.write_all(rating_texts[step].as_bytes())?;
        out.write_all(b"\n")?;
        if (row + 1).is_multiple_of(PROGRESS_EVERY) {
            progress.set_position(row as u64 + 1);
        }
    }
    progress.set_position(rows as u64);
    Ok(())
}

/// `count` UUIDv4s, hyphenated lower-case, as the bytes written to the file.
fn random_ids(rng: &mut ChaCha8Rng, count: usize) -> Vec<[u8; 36]> {
    (0..count)
        .map(|_| {
            let uuid = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
            let mut text = [0u8; 36];
            uuid.hyphenated().encode_lower(&mut text);
            text
        })
        .collect()
}

/// The hidden structure the ratings come from.
struct LatentModel {
    customer_bias: Vec<f64>,
    product_bias: Vec<f64>,
    /// Row-major `[customers, FACTORS]`.
    customer_factors: Vec<f64>,
    /// Row-major `[products, FACTORS]`.
    product_factors: Vec<f64>,
}

impl LatentModel {
    fn sample(rng: &mut ChaCha8Rng, customers: usize, products: usize) -> Self {
        let mut draw = |count: usize, sd: f64| -> Vec<f64> {
            let normal =
                Normal::new(0.0, sd).expect("the standard deviations are positive constants");
            (0..count).map(|_| normal.sample(rng)).collect()
        };
        Self {
            customer_bias: draw(customers, CUSTOMER_BIAS_SD),
            product_bias: draw(products, PRODUCT_BIAS_SD),
            customer_factors: draw(customers * FACTORS, FACTOR_SD),
            product_factors: draw(products * FACTORS, FACTOR_SD),
        }
    }

    /// The rating of `customer` for `product`, in steps of 1/15 (0..=15).
    fn rating_step(&self, customer: usize, product: usize, noise: f64) -> usize {
        let u = &self.customer_factors[customer * FACTORS..(customer + 1) * FACTORS];
        let v = &self.product_factors[product * FACTORS..(product + 1) * FACTORS];
        let affinity: f64 = u.iter().zip(v).map(|(a, b)| a * b).sum();
        let score = self.customer_bias[customer] + self.product_bias[product] + affinity + noise;
        (STEPS * BASE * score.exp()).round().clamp(0.0, STEPS) as usize
    }
}

/// How many products each customer rates: one each, then the remaining rows by log-normal
/// activity weight, never more than `products` (a customer who is full passes the row on to
/// the next customer, so this ends whenever `rows ≤ customers × products`).
fn ratings_per_customer(
    rng: &mut ChaCha8Rng,
    rows: usize,
    customers: usize,
    products: usize,
) -> Vec<usize> {
    let activity = LogNormal::new(0.0, ACTIVITY_SIGMA).expect("σ is a positive constant");
    let weights: Vec<f64> = (0..customers).map(|_| activity.sample(rng)).collect();
    let pick =
        WeightedAliasIndex::new(weights).expect("log-normal weights are positive and finite");
    let mut counts = vec![1usize; customers];
    for _ in customers..rows {
        let mut customer = pick.sample(rng);
        while counts[customer] == products {
            customer = (customer + 1) % customers;
        }
        counts[customer] += 1;
    }
    counts
}

/// `(customer, product)` pairs, grouped by customer: `counts[c]` distinct Zipf-drawn products
/// for customer `c` (a product already taken passes the draw on to the next free one).
/// They are appended to `pairs`, which has room for them.
fn rated_pairs(
    rng: &mut ChaCha8Rng,
    counts: &[usize],
    products: usize,
    mut pairs: Vec<(u32, u32)>,
) -> Vec<(u32, u32)> {
    let popularity = Zipf::new(products as f64, POPULARITY_EXPONENT).expect("n ≥ 1 and s ≥ 0");
    let mut unrated = NextFree::new(products);
    for (customer, &count) in counts.iter().enumerate() {
        let first = pairs.len();
        for _ in 0..count {
            // Zipf yields 1..=n as a float.
            let drawn = (popularity.sample(rng) as usize - 1).min(products - 1);
            pairs.push((customer as u32, unrated.take(drawn) as u32));
        }
        unrated.free(pairs[first..].iter().map(|&(_, product)| product as usize));
    }
    pairs
}

/// The indices (products) one customer has not taken yet, answering "the first free one at or
/// after `i`, wrapping around" in near-constant time: taken indices point to a later one to
/// look at, shortened on every lookup (a union-find with path compression). Walking the taken
/// ones one by one instead costs O(n²) for a customer who rates nearly every product.
struct NextFree {
    /// `next[i] == i`: `i` is free; otherwise the next index (cyclically) to look at.
    next: Vec<u32>,
}

impl NextFree {
    fn new(len: usize) -> Self {
        Self {
            next: (0..len as u32).collect(),
        }
    }

    /// Takes the first free index at or after `start`, wrapping around; one must be free.
    fn take(&mut self, start: usize) -> usize {
        let mut free = start;
        while self.next[free] as usize != free {
            free = self.next[free] as usize;
        }
        let mut at = start;
        while at != free {
            let following = self.next[at] as usize;
            self.next[at] = free as u32;
            at = following;
        }
        self.next[free] = ((free + 1) % self.next.len()) as u32;
        free
    }

    /// Frees every index in `taken` (only taken indices ever point elsewhere).
    fn free(&mut self, taken: impl Iterator<Item = usize>) {
        for index in taken {
            self.next[index] = index as u32;
        }
    }
}

/// Gives each product nobody drew one rating, taken from a random row whose product is rated
/// more than once. The unrated product is new to that row's customer, so pairs stay distinct,
/// and as `rows ≥ products` such a row exists while any product is unrated.
fn rate_every_product(rng: &mut ChaCha8Rng, pairs: &mut [(u32, u32)], products: usize) {
    let mut uses = vec![0usize; products];
    for &(_, product) in pairs.iter() {
        uses[product as usize] += 1;
    }
    for unrated in 0..products {
        if uses[unrated] > 0 {
            continue;
        }
        let row = loop {
            let row = rng.random_range(0..pairs.len());
            if uses[pairs[row].1 as usize] > 1 {
                break row;
            }
        };
        uses[pairs[row].1 as usize] -= 1;
        pairs[row].1 = unrated as u32;
        uses[unrated] = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kind::NoProgress;
    use uuid::Uuid;

    fn generate(config: GeneratorConfig) -> Vec<u8> {
        let mut out = Vec::new();
        write_csv(&config, &mut out, &NoProgress).unwrap();
        out
    }

    #[test]
    fn rates_every_customer_and_product_once_per_pair() {
        let config = GeneratorConfig {
            rows: 300,
            customers: 100,
            products: 40,
            seed: 7,
        };
        let text = String::from_utf8(generate(config)).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("customerId,productId,scaled_purchase_freq")
        );
        let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
        assert_eq!(rows.len(), 300);
        let distinct = |column: usize| {
            rows.iter()
                .map(|row| row[column])
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(distinct(0), 100);
        assert_eq!(distinct(1), 40);
        let pairs: std::collections::HashSet<_> = rows.iter().map(|row| (row[0], row[1])).collect();
        assert_eq!(pairs.len(), 300);
        for row in &rows {
            assert_eq!(Uuid::parse_str(row[0]).unwrap().get_version_num(), 4);
            let rating: f64 = row[2].parse().unwrap();
            let steps = rating * STEPS;
            assert!(
                (0.0..=1.0).contains(&rating) && (steps - steps.round()).abs() < 1e-9,
                "{rating}"
            );
        }
    }

    /// The distinct (customer, product) pairs of a generated file.
    fn distinct_pairs(config: GeneratorConfig) -> std::collections::HashSet<String> {
        let text = String::from_utf8(generate(config)).unwrap();
        text.lines()
            .skip(1)
            .map(|line| line.rsplit_once(',').unwrap().0.to_string())
            .collect()
    }

    #[test]
    fn fills_every_pair_when_rows_reach_the_limit() {
        let config = GeneratorConfig {
            rows: 12,
            customers: 4,
            products: 3,
            seed: 1,
        };
        let pairs = distinct_pairs(config);
        assert_eq!(pairs.len(), 12);
    }

    #[test]
    fn heavy_customers_rating_every_product_stay_fast() {
        let config = GeneratorConfig {
            rows: 20 * 1_000,
            customers: 20,
            products: 1_000,
            seed: 3,
        };
        let pairs = distinct_pairs(config);
        assert_eq!(pairs.len(), 20_000);
    }

    #[test]
    fn rejects_impossible_sizes() {
        let config = |rows, customers, products| GeneratorConfig {
            rows,
            customers,
            products,
            seed: 0,
        };
        assert!(
            config(5, 10, 2).check().is_err(),
            "fewer rows than customers"
        );
        assert!(
            config(5, 2, 10).check().is_err(),
            "fewer rows than products"
        );
        assert!(config(7, 2, 3).check().is_err(), "more rows than pairs");
        assert!(config(0, 0, 1).check().is_err(), "no customers");
        assert!(config(6, 2, 3).check().is_ok());
    }
}
