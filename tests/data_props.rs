//! Property test of the reader: any CSV spelling of the same ratings (column order, an extra
//! column, quoting, LF or CRLF, a BOM, with or without the final newline) reads to the same
//! indices, maps and ratings, which are computed here independently of the reader.

use proptest::prelude::*;
use warez_pipe::engine::kind::NoProgress;
use warez_pipe::ml::data::reader::{read_ratings, OnBadRows};

const IDS: [&str; 5] = [
    "19823025-6551-4edd-ace1-56c2c4e22fc7",
    "e9a87a97-38df-4858-86df-9b02defccd5c",
    "9910eb1b-9d99-4025-badc-13ef455bb49a",
    "053b5372-a630-43b6-b0ad-29770dff6a7e",
    "{3775a51c-6a1c-48c9-b119-34027e2ca89d}",
];

#[derive(Debug, Clone)]
struct Spelling {
    /// Position of customerId, productId, scaled_purchase_freq and an extra column.
    order: [usize; 4],
    quote_all: bool,
    crlf: bool,
    bom: bool,
    final_newline: bool,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (
        Just([0usize, 1, 2, 3]).prop_shuffle(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(order, quote_all, crlf, bom, final_newline)| Spelling {
            order,
            quote_all,
            crlf,
            bom,
            final_newline,
        })
}

/// (customer id, product id, rating step 0..=15, note) per row.
fn rows() -> impl Strategy<Value = Vec<(usize, usize, u32, String)>> {
    prop::collection::vec((0..5usize, 0..5usize, 0..=15u32, "[a-z ,\"\n]{0,6}"), 1..40)
}

fn write_csv(rows: &[(usize, usize, u32, String)], spelling: &Spelling) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(if spelling.quote_all {
            csv::QuoteStyle::Always
        } else {
            csv::QuoteStyle::Necessary
        })
        .terminator(if spelling.crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(Vec::new());
    let mut record = |fields: [String; 4]| {
        let mut placed = vec![String::new(); 4];
        for (field, &position) in fields.into_iter().zip(&spelling.order) {
            placed[position] = field;
        }
        writer.write_record(&placed).unwrap();
    };
    record([
        "customerId".into(),
        "productId".into(),
        "scaled_purchase_freq".into(),
        "note".into(),
    ]);
    for (customer, product, step, note) in rows {
        record([
            IDS[*customer].into(),
            IDS[*product].into(),
            format!("{:?}", f64::from(*step) / 15.0),
            note.clone(),
        ]);
    }
    let mut bytes = writer.into_inner().unwrap();
    if !spelling.final_newline {
        let terminator = if spelling.crlf { 2 } else { 1 };
        bytes.truncate(bytes.len() - terminator);
    }
    if spelling.bom {
        bytes.splice(0..0, *b"\xEF\xBB\xBF");
    }
    bytes
}

/// First-seen order of the ids in `column`, and each row's index into it.
fn first_seen(column: impl Iterator<Item = usize>) -> (Vec<&'static str>, Vec<u32>) {
    let mut ids: Vec<&'static str> = Vec::new();
    let indices = column
        .map(|id| {
            let position = ids.iter().position(|&seen| seen == IDS[id]);
            position.unwrap_or_else(|| {
                ids.push(IDS[id]);
                ids.len() - 1
            }) as u32
        })
        .collect();
    (ids, indices)
}

proptest! {
    #[test]
    fn every_spelling_of_the_same_ratings_reads_the_same(rows in rows(), spelling in spelling()) {
        let bytes = write_csv(&rows, &spelling);
        let ingested = read_ratings(&bytes[..], "p.csv", None, OnBadRows::Error, &NoProgress)
            .map_err(|error| TestCaseError::fail(format!("{error:#}\n{}", String::from_utf8_lossy(&bytes))))?;

        let (customer_ids, customers) = first_seen(rows.iter().map(|row| row.0));
        let (product_ids, products) = first_seen(rows.iter().map(|row| row.1));
        let ratings: Vec<f32> = rows.iter().map(|row| (f64::from(row.2) / 15.0) as f32).collect();
        prop_assert_eq!(ingested.customers.ids().collect::<Vec<_>>(), customer_ids);
        prop_assert_eq!(ingested.products.ids().collect::<Vec<_>>(), product_ids);
        prop_assert_eq!(&ingested.ratings.customers, &customers);
        prop_assert_eq!(&ingested.ratings.products, &products);
        prop_assert_eq!(&ingested.ratings.ratings, &ratings);
        prop_assert_eq!(ingested.skipped, 0);
    }
}
