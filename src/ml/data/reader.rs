//! The streaming ratings-CSV reader behind the `ingest` stage.
//!
//! One pass over the file, a 1 MiB buffer at a time, so the text is never held whole (let alone
//! twice) and a row costs no allocation. Plain lines (no quote, no CR, not blank: nearly all of
//! a real file) are split at their commas by the reader itself; from the first other line on, the
//! csv crate reads the rest (see `read_ratings_up_to`), with the same results. Rows are handled
//! in batches (see `Rows`); per row the reader
//! - looks each id up (see `IdInterner`); only an id seen for the first time is validated as a
//!   UUID and appended, so the maps come out in first-seen order, exactly what `pandas.unique`
//!   yields;
//! - parses the rating as f64 and narrows it to f32 (what pandas + Keras do), requiring it to be
//!   finite and ≥ 0 (the trainer's MSLE loss needs y > −1); a text parsed before is found in a
//!   small memo instead (see `rating_memo`).
//!
//! A bad row is an error naming `file:line` and the problem, or under [`OnBadRows::Skip`] it is
//! reported through [`Progress::println`] and counted in [`Ingested::skipped`], never dropped
//! silently. The header must name the three columns, in any order; other columns are ignored.
//! Quoted fields, CR and CRLF line ends and blank lines are the csv crate's business (the line
//! a row is named by is counted here: see `LineCounter`), except that a quoted field still open
//! at the end of the file is an error here; a missing final newline is fine; a UTF-8 BOM is
//! stripped here.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use csv::ByteRecord;
use uuid::Uuid;

use super::dataset::Ratings;
use super::idmap::IdMap;
use super::rating_memo::RatingMemo;
use super::shown::shown_field;
use super::try_vec;
use super::uuid_table::{canonical_uuid, UuidTable};
use crate::engine::kind::Progress;
use crate::ml::data::idmap::MAX_IDS;

pub const CUSTOMER_COLUMN: &str = "customerId";
pub const PRODUCT_COLUMN: &str = "productId";
pub const RATING_COLUMN: &str = "scaled_purchase_freq";

const UTF8_BOM: &[u8; 3] = b"\xEF\xBB\xBF";
/// Under [`OnBadRows::Skip`], bad rows past this many are counted but not printed one by one.
pub const BAD_ROWS_SHOWN: u64 = 20;
/// Rows read ahead, whose ids are looked up together (see the read loop).
const BATCH_ROWS: usize = 256;
/// How far a read goes, and its buffer size; tests shrink them.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Distinct ids allowed per column.
    max_ids: u64,
    /// Bytes read from the file at a time by the fast path (a longer line grows the buffer).
    chunk_bytes: usize,
}

const LIMITS: Limits = Limits {
    max_ids: MAX_IDS,
    chunk_bytes: 1 << 20,
};
/// Rows between progress updates.
const PROGRESS_EVERY: u64 = 1 << 16;
/// The shortest plausible row (two hyphenated UUIDs, a one-digit rating, separators and a
/// newline): the file size divided by it bounds the row count, to size the columns once.
const MIN_ROW_BYTES: u64 = 76;

/// What to do with a row that fails to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBadRows {
    /// Stop with an error naming `file:line` and the problem.
    Error,
    /// Report the row, count it and go on.
    Skip,
}

impl FromStr for OnBadRows {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "error" => Ok(Self::Error),
            "skip" => Ok(Self::Skip),
            other => bail!("expected `error` or `skip`, found `{other}`"),
        }
    }
}

/// A ratings file read into dense indices plus the two id maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub ratings: Ratings,
    pub customers: IdMap,
    pub products: IdMap,
    /// Rows left out under [`OnBadRows::Skip`]; the first [`BAD_ROWS_SHOWN`] were also printed
    /// through the progress, each with its line and problem.
    pub skipped: u64,
}

/// Reads the ratings CSV at `path`; errors and reports name it.
pub fn read_ratings_file(
    path: &Path,
    on_bad_rows: OnBadRows,
    progress: &dyn Progress,
) -> Result<Ingested> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata().ok().map(|meta| meta.len());
    read_ratings(
        file,
        &path.display().to_string(),
        size,
        on_bad_rows,
        progress,
    )
}

/// Reads ratings CSV text from `input`. `source` names it in errors (`source:line: …`);
/// `size`, when known, sizes the columns up front and sets the progress total in bytes.
/// More than [`MAX_IDS`] distinct customers or products stop the read, whatever the policy.
pub fn read_ratings(
    input: impl Read,
    source: &str,
    size: Option<u64>,
    on_bad_rows: OnBadRows,
    progress: &dyn Progress,
) -> Result<Ingested> {
    read_ratings_up_to(input, source, size, on_bad_rows, progress, LIMITS)
}

/// [`read_ratings`] within `limits`.
///
/// Two tokenizers, one result. Lines of the usual shape (not empty, no `"`, no `\r`, which is
/// nearly every line of a real file) are split at their commas here, straight from a large read
/// buffer. From the first line of any other shape (a quoted field, which may span lines; a CR or
/// CRLF line end; a blank line) to the end of the file the csv crate reads instead, so quoting and
/// line ends keep its exact rules and its line numbers; a file whose header is not of the usual
/// shape is read by the csv crate from the start. The two give the same fields, and the same
/// `file:line`, for every line of the usual shape: such a line is its own record (a field is the
/// text between commas), and the csv crate counts lines by their `\n`.
fn read_ratings_up_to(
    input: impl Read,
    source: &str,
    size: Option<u64>,
    on_bad_rows: OnBadRows,
    progress: &dyn Progress,
    limits: Limits,
) -> Result<Ingested> {
    let reading = || format!("reading {source}");
    let mut chunks = Chunks::new(skip_bom(input).with_context(reading)?, limits.chunk_bytes);
    let max_ids = limits.max_ids;
    while memchr::memchr(b'\n', chunks.unread()).is_none()
        && chunks.refill().with_context(reading)?
    {}
    let data = chunks.unread();
    let header_end = memchr::memchr(b'\n', data).unwrap_or(data.len());
    let header = &data[..header_end];
    if header.is_empty() || !is_plain(header) || header.starts_with(UTF8_BOM) {
        // Also a header after a second BOM: csv-core strips one at the start of its input.
        let input = chunks.into_unread();
        return read_with_csv_crate(input, source, size, on_bad_rows, progress, max_ids);
    }
    let header = ByteRecord::from(header.split(|&byte| byte == b',').collect::<Vec<_>>());
    let mut rows = Rows::new(&header, source, size, on_bad_rows, progress, max_ids)?;
    chunks.consume((header_end + 1).min(data.len()), 1);

    loop {
        let data = chunks.unread();
        let plain = memchr::memchr2(b'"', b'\r', data).unwrap_or(data.len());
        // Whole lines before the first unusual byte; at the end of the input, the last line
        // even without its `\n`.
        let usable = if plain == data.len() && chunks.at_end {
            data.len()
        } else {
            memchr::memrchr(b'\n', &data[..plain]).map_or(0, |newline| newline + 1)
        };
        let (consumed, lines) =
            rows.add_plain_lines(&data[..usable], chunks.line, chunks.offset)?;
        let unusual_line = consumed < usable || plain < data.len();
        chunks.consume(consumed, lines);
        if unusual_line || chunks.at_end {
            break;
        }
        chunks.refill().with_context(reading)?;
    }
    if !chunks.unread().is_empty() {
        // The csv crate goes on from this line to the end. It would strip a byte-order mark at
        // the start of its input, which this line's place in the file does not allow: it first
        // reads a one-field line put before it, and its line and byte counts start after that.
        const LEAD: &[u8] = b"-\n";
        let (line, offset) = (chunks.line, chunks.offset);
        let mut reader = csv_reader(
            LineCounter::new(Cursor::new(LEAD).chain(chunks.into_unread())),
            false,
        );
        reader
            .read_byte_record(&mut ByteRecord::new())
            .with_context(reading)?;
        rows.add_csv_records(reader, line - 2, offset - LEAD.len() as u64)?;
    }
    rows.finish()
}

/// [`read_ratings_up_to`] with the csv crate reading every line: for files whose header is not
/// plain (see [`is_plain`]).
fn read_with_csv_crate(
    input: impl Read,
    source: &str,
    size: Option<u64>,
    on_bad_rows: OnBadRows,
    progress: &dyn Progress,
    max_ids: u64,
) -> Result<Ingested> {
    let mut reader = csv_reader(LineCounter::new(input), true);
    let header = reader
        .byte_headers()
        .with_context(|| format!("reading {source}"))?
        .clone();
    let mut rows = Rows::new(&header, source, size, on_bad_rows, progress, max_ids)?;
    rows.add_csv_records(reader, 0, 0)?;
    rows.finish()
}

/// Whether `line` is plain text as far as CSV goes: no quote and no carriage return.
fn is_plain(line: &[u8]) -> bool {
    memchr::memchr2(b'"', b'\r', line).is_none()
}

fn csv_reader<R: Read>(input: R, has_headers: bool) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        // Rows whose field count differs from the header's are reported by `parse_row`, with
        // the line, instead of as csv's generic error.
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(input)
}

/// The csv crate's input, kept from the start of the last record found on, to tell each
/// record's line.
///
/// The csv crate gives a record the position where reading it began: before the blank lines it
/// skips and, after a `\r\n` line end, before the `\n`, so its line can name a line before the
/// record's. The record really begins at the first byte from there on that is not a line end;
/// its line is counted here from the bytes themselves.
struct LineCounter<R> {
    input: R,
    /// Bytes read; `kept[start..]` are those not counted yet, from input byte `start_offset` on.
    kept: Vec<u8>,
    start: usize,
    start_offset: u64,
    /// `\n` bytes before `start_offset`.
    newlines: u64,
}

impl<R: Read> LineCounter<R> {
    fn new(input: R) -> Self {
        LineCounter {
            input,
            kept: Vec::new(),
            start: 0,
            start_offset: 0,
            newlines: 0,
        }
    }

    /// The 1-based line of the record the csv crate says began at input byte `offset`; offsets
    /// asked for never decrease.
    fn record_line(&mut self, offset: u64) -> u64 {
        let kept = &self.kept[self.start..];
        let from = usize::try_from(offset.saturating_sub(self.start_offset))
            .map_or(kept.len(), |from| from.min(kept.len()));
        let record_start = kept[from..]
            .iter()
            .position(|&byte| byte != b'\r' && byte != b'\n')
            .map_or(kept.len(), |skipped| from + skipped);
        self.newlines += memchr::memchr_iter(b'\n', &kept[..record_start]).count() as u64;
        self.start += record_start;
        self.start_offset += record_start as u64;
        // Dropping the counted bytes only once they are most of the buffer keeps each byte's
        // share of the moving constant.
        if self.start > (1 << 16) && self.start * 2 > self.kept.len() {
            self.kept.drain(..self.start);
            self.start = 0;
        }
        self.newlines + 1
    }
}

impl<R> LineCounter<R> {
    /// Whether the last record found (the bytes from its start to the end of the input, once
    /// the csv crate has read them all) leaves a quoted field open. The csv crate takes such a
    /// field to the end of the file as it is, which would let a cut-off or mis-quoted file
    /// through; it does not say so, so its quoting rules are followed here: a `"` at the start
    /// of a field opens quotes, `""` inside them is a quote, any other `"` closes them.
    fn last_record_ends_in_quotes(&self) -> bool {
        let (mut in_quotes, mut at_field_start, mut after_quote) = (false, true, false);
        for &byte in &self.kept[self.start..] {
            if in_quotes {
                if byte == b'"' {
                    in_quotes = false;
                    after_quote = true;
                }
                continue;
            }
            if after_quote && byte == b'"' {
                // `""` inside quotes: a quote, and the field is still quoted.
                in_quotes = true;
            } else if byte == b'"' && at_field_start {
                in_quotes = true;
            }
            after_quote = false;
            at_field_start = matches!(byte, b',' | b'\n' | b'\r');
        }
        in_quotes
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.input.read(buffer)?;
        self.kept.extend_from_slice(&buffer[..read]);
        Ok(read)
    }
}

/// The input a large buffer at a time, for the fast path.
struct Chunks<R> {
    input: R,
    buffer: Vec<u8>,
    /// `buffer[start..end]` is read from the input and not yet consumed.
    start: usize,
    end: usize,
    at_end: bool,
    /// The line number (1-based) and input offset of `buffer[start]`.
    line: u64,
    offset: u64,
}

impl<R: Read> Chunks<R> {
    fn new(input: R, bytes: usize) -> Self {
        Self {
            input,
            buffer: vec![0; bytes],
            start: 0,
            end: 0,
            at_end: false,
            line: 1,
            offset: 0,
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// Marks the next `bytes`, holding `lines` line ends, as read.
    fn consume(&mut self, bytes: usize, lines: u64) {
        self.start += bytes;
        self.line += lines;
        self.offset += bytes as u64;
    }

    /// Reads more after the unread bytes (moved to the front; the buffer doubles when they fill
    /// it, for a line longer than the buffer). False, and `at_end` set, at the end of the input.
    fn refill(&mut self) -> std::io::Result<bool> {
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buffer.len() {
            // Fallibly: a file of one endless line is an error, not an abort.
            let more = self.buffer.len();
            self.buffer.try_reserve_exact(more).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    format!("out of memory holding a line of over {more} bytes"),
                )
            })?;
            self.buffer.resize(self.end + more, 0);
        }
        loop {
            match self.input.read(&mut self.buffer[self.end..]) {
                Ok(0) => {
                    self.at_end = true;
                    return Ok(false);
                }
                Ok(read) => {
                    self.end += read;
                    return Ok(true);
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// The unread bytes and then the rest of the input.
    fn into_unread(mut self) -> impl Read {
        self.buffer.truncate(self.end);
        self.buffer.drain(..self.start);
        Cursor::new(self.buffer).chain(self.input)
    }
}

/// The fields of one row that the reader looks at, whichever tokenizer split it.
#[derive(Clone, Copy, Default)]
struct Row<'a> {
    /// The line the row starts on.
    line: u64,
    /// How many fields the row has.
    fields: usize,
    /// The needed fields (empty when the row is too short to have them).
    customer: &'a [u8],
    product: &'a [u8],
    rating: &'a [u8],
}

/// The ratings and id maps being built, row batch by row batch, and the bad rows seen.
struct Rows<'a> {
    source: &'a str,
    columns: Columns,
    on_bad_rows: OnBadRows,
    progress: &'a dyn Progress,
    size: Option<u64>,
    max_ids: u64,
    ratings: Ratings,
    customers: IdInterner,
    products: IdInterner,
    rating_memo: RatingMemo,
    skipped: u64,
    rows_read: u64,
    /// A batch's ids in their [`canonical_uuid`] form and their indices when already known.
    keys: Vec<[Option<u128>; 2]>,
    known: Vec<KnownIds>,
}

impl<'a> Rows<'a> {
    fn new(
        header: &ByteRecord,
        source: &'a str,
        size: Option<u64>,
        on_bad_rows: OnBadRows,
        progress: &'a dyn Progress,
        max_ids: u64,
    ) -> Result<Self> {
        let columns = Columns::find(header).with_context(|| format!("{source}:1"))?;
        if let Some(size) = size {
            progress.start(size, "bytes");
        }
        let capacity = size.map_or(0, |size| (size / MIN_ROW_BYTES) as usize);
        let column = || try_vec(capacity).with_context(|| format!("reading {source}"));
        let ratings = Ratings {
            customers: column()?,
            products: column()?,
            ratings: try_vec(capacity).with_context(|| format!("reading {source}"))?,
            ..Ratings::default()
        };
        Ok(Self {
            source,
            columns,
            on_bad_rows,
            progress,
            size,
            max_ids,
            ratings,
            customers: IdInterner::new(CUSTOMER_COLUMN),
            products: IdInterner::new(PRODUCT_COLUMN),
            rating_memo: RatingMemo::default(),
            skipped: 0,
            rows_read: 0,
            keys: Vec::with_capacity(BATCH_ROWS),
            known: Vec::with_capacity(BATCH_ROWS),
        })
    }

    /// Adds the plain lines (see [`is_plain`]) of `text`, which starts at line `line` and input
    /// offset `offset` and ends after a `\n` or at the end of the input. Stops before an empty
    /// line, the csv crate's to skip. Returns the bytes and lines read.
    fn add_plain_lines(&mut self, text: &[u8], line: u64, offset: u64) -> Result<(usize, u64)> {
        let columns = (
            self.columns.customer,
            self.columns.product,
            self.columns.rating,
        );
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut row = Row {
            line,
            ..Row::default()
        };
        let (mut line_start, mut field_start) = (0, 0);
        let last_line_end = (!text.ends_with(b"\n")).then_some(text.len());
        for end in memchr::memchr2_iter(b',', b'\n', text).chain(last_line_end) {
            let at_line_end = end == text.len() || text[end] == b'\n';
            if at_line_end && end == line_start {
                break;
            }
            let field = &text[field_start..end];
            match row.fields {
                index if index == columns.0 => row.customer = field,
                index if index == columns.1 => row.product = field,
                index if index == columns.2 => row.rating = field,
                _ => {}
            }
            row.fields += 1;
            field_start = end + 1;
            if at_line_end {
                batch.push(row);
                if batch.len() == BATCH_ROWS {
                    self.add_batch(&batch, offset + end as u64)?;
                    batch.clear();
                }
                line_start = field_start;
                row = Row {
                    line: row.line + 1,
                    ..Row::default()
                };
            }
        }
        if !batch.is_empty() {
            self.add_batch(&batch, offset + line_start as u64)?;
        }
        Ok((line_start.min(text.len()), row.line - line))
    }

    /// Adds every record `reader` has left. Its line and byte counts start after `lines_before`
    /// lines and `bytes_before` bytes of the input.
    fn add_csv_records(
        &mut self,
        mut reader: csv::Reader<LineCounter<impl Read>>,
        lines_before: u64,
        bytes_before: u64,
    ) -> Result<()> {
        let mut batch = vec![ByteRecord::new(); BATCH_ROWS];
        loop {
            let mut filled = 0;
            while filled < BATCH_ROWS
                && reader
                    .read_byte_record(&mut batch[filled])
                    .with_context(|| format!("reading {}", self.source))?
            {
                filled += 1;
            }
            let at_end = filled < BATCH_ROWS;
            if filled == 0 {
                // The end came right after a full batch, whose last record is the last one.
                let lines = reader.get_ref();
                if lines.last_record_ends_in_quotes() {
                    return Err(self.open_quote_error(lines_before + lines.newlines + 1));
                }
                return Ok(());
            }
            fn field(record: &ByteRecord, column: usize) -> &[u8] {
                record.get(column).unwrap_or_default()
            }
            let lines = reader.get_mut();
            let rows: Vec<Row> = batch[..filled]
                .iter()
                .map(|record| Row {
                    line: lines_before
                        + lines
                            .record_line(record.position().map_or(0, |position| position.byte())),
                    fields: record.len(),
                    customer: field(record, self.columns.customer),
                    product: field(record, self.columns.product),
                    rating: field(record, self.columns.rating),
                })
                .collect();
            let end = batch[filled - 1]
                .position()
                .map_or(0, |position| position.byte());
            if at_end && reader.get_ref().last_record_ends_in_quotes() {
                // The rows before it first, as the fast path would have; then the open field,
                // not what it swallowed, is the problem.
                let (open, before) = rows.split_last().expect("a batch holds a record");
                self.add_batch(before, bytes_before + end)?;
                return Err(self.open_quote_error(open.line));
            }
            self.add_batch(&rows, bytes_before + end)?;
        }
    }

    /// The error for a last record that leaves a quoted field open (see
    /// [`LineCounter::last_record_ends_in_quotes`]), under either bad-rows policy.
    fn open_quote_error(&self, line: u64) -> anyhow::Error {
        anyhow::anyhow!(
            "{}:{line}: a quoted field opened in this row is not closed before the end of the \
             file (cut off, or a `\"` inside a field not written as `\"\"`)",
            self.source
        )
    }

    /// Adds a batch of rows; `end` is the input offset reached, for the progress.
    fn add_batch(&mut self, rows: &[Row], end: u64) -> Result<()> {
        // The batch's ids are parsed, their slots prefetched, and only then looked up: the
        // cache misses of a whole batch overlap, where one lookup per row between parsing the
        // rows would wait out the full memory latency each time.
        self.keys.clear();
        self.keys.extend(
            rows.iter()
                .map(|row| [canonical_uuid(row.customer), canonical_uuid(row.product)]),
        );
        for keys in &self.keys {
            self.customers.prefetch(keys[0]);
            self.products.prefetch(keys[1]);
        }
        let mut known = std::mem::take(&mut self.known);
        known.clear();
        known.extend(self.keys.iter().map(|keys| KnownIds {
            customer: self.customers.known(keys[0]),
            product: self.products.known(keys[1]),
        }));
        for (row, known) in rows.iter().zip(&known) {
            self.add_row(row, known)?;
        }
        self.known = known;
        let before = self.rows_read;
        self.rows_read += rows.len() as u64;
        if before / PROGRESS_EVERY != self.rows_read / PROGRESS_EVERY {
            self.progress.set_position(end);
        }
        Ok(())
    }

    fn add_row(&mut self, row: &Row, known: &KnownIds) -> Result<()> {
        let source = self.source;
        let line = row.line;
        match parse_row(
            row,
            self.columns.width,
            known,
            &mut self.customers,
            &mut self.products,
            &mut self.rating_memo,
        ) {
            Ok((customer, product, rating)) => {
                // Indices are dense in first-seen order: index `max_ids` is one id too many.
                let max_ids = self.max_ids;
                for (index, column) in [(customer, CUSTOMER_COLUMN), (product, PRODUCT_COLUMN)] {
                    if u64::from(index) >= max_ids {
                        bail!(
                            "{source}:{line}: more than {max_ids} distinct {column} values: ids \
                             reach the model as float32, which holds whole numbers exactly only \
                             up to 2^24, so a model tells at most {max_ids} apart"
                        );
                    }
                }
                self.ratings.customers.push(customer);
                self.ratings.products.push(product);
                self.ratings.ratings.push(rating);
            }
            Err(problem) => match self.on_bad_rows {
                OnBadRows::Error => bail!(
                    "{source}:{line}: {problem} (set `on_bad_rows: skip` to leave such rows out)"
                ),
                OnBadRows::Skip => {
                    self.skipped += 1;
                    if self.skipped <= BAD_ROWS_SHOWN {
                        self.progress
                            .println(&format!("skipping {source}:{line}: {problem}"));
                    } else if self.skipped == BAD_ROWS_SHOWN + 1 {
                        self.progress.println(&format!(
                            "skipping further bad rows of {source} without showing them"
                        ));
                    }
                }
            },
        }
        Ok(())
    }

    fn finish(self) -> Result<Ingested> {
        let source = self.source;
        if let Some(size) = self.size {
            self.progress.set_position(size);
        }
        let mut ratings = self.ratings;
        if ratings.ratings.is_empty() {
            if self.skipped > 0 {
                bail!(
                    "{source}: no valid data rows (all {} rows were bad)",
                    self.skipped
                );
            }
            bail!("{source}: no data rows (only a header)");
        }
        let (customers, products) = (self.customers.into_map(), self.products.into_map());
        ratings.n_customers = customers.len() as u32;
        ratings.n_products = products.len() as u32;
        Ok(Ingested {
            ratings,
            customers,
            products,
            skipped: self.skipped,
        })
    }
}

/// Drops a leading UTF-8 byte-order mark, which the csv crate would keep in the first header
/// name (Excel and PowerShell write one).
fn skip_bom(mut input: impl Read) -> std::io::Result<impl Read> {
    let mut start = [0u8; 3];
    let mut filled = 0;
    while filled < start.len() {
        match input.read(&mut start[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    let kept = if &start == UTF8_BOM { 0 } else { filled };
    let mut prefix = Vec::with_capacity(kept);
    prefix.extend_from_slice(&start[..kept]);
    Ok(Cursor::new(prefix).chain(input))
}

/// Where the three needed columns sit in each row.
struct Columns {
    customer: usize,
    product: usize,
    rating: usize,
    width: usize,
}

impl Columns {
    fn find(header: &ByteRecord) -> Result<Self> {
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            bail!("the file is empty: expected a header naming {CUSTOMER_COLUMN}, {PRODUCT_COLUMN}, {RATING_COLUMN}");
        }
        let position = |name: &str| -> Result<usize> {
            let mut found = header
                .iter()
                .enumerate()
                .filter(|(_, field)| *field == name.as_bytes());
            match (found.next(), found.next()) {
                (Some((index, _)), None) => Ok(index),
                (Some(_), Some(_)) => bail!("the header names column `{name}` more than once"),
                (None, _) => bail!(
                    "the header lacks column `{name}` (it has: {})",
                    header
                        .iter()
                        .map(|field| format!("`{}`", shown_field(field)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        Ok(Self {
            customer: position(CUSTOMER_COLUMN)?,
            product: position(PRODUCT_COLUMN)?,
            rating: position(RATING_COLUMN)?,
            width: header.len(),
        })
    }
}

/// A row's ids already in the maps when its batch was read, looked up ahead of the row.
#[derive(Clone, Copy, Default)]
struct KnownIds {
    customer: Option<u32>,
    product: Option<u32>,
}

/// One row's customer index, product index and rating, or what is wrong with it.
fn parse_row(
    row: &Row,
    width: usize,
    known: &KnownIds,
    customers: &mut IdInterner,
    products: &mut IdInterner,
    ratings: &mut RatingMemo,
) -> std::result::Result<(u32, u32, f32), String> {
    if row.fields != width {
        return Err(format!("{} fields, but the header has {width}", row.fields));
    }
    let customer = match known.customer {
        Some(index) => index,
        None => customers.intern(row.customer)?,
    };
    let product = match known.product {
        Some(index) => index,
        None => products.intern(row.product)?,
    };
    let rating = ratings.parse(row.rating, parse_rating)?;
    Ok((customer, product, rating))
}

/// One id column's map, built while reading: ids as written → first-seen indices.
///
/// Reading is bound by memory latency on the id lookups (1M customers spread over a 10M-row
/// file miss the cache on nearly every row), so the table consulted per row is kept small: ids in
/// the form every UUID printer writes (36 bytes, hyphenated, lowercase) are keyed by their 16
/// bytes in a [`UuidTable`], whose slots can be prefetched a batch ahead. That text and those bytes map
/// one to one, so ids are still told apart by their exact text: any other spelling (upper case,
/// braces, no hyphens) is looked up by its text in `other`, and stays a different id from its
/// lowercase twin, as in pandas.
struct IdInterner {
    column: &'static str,
    canonical: UuidTable,
    /// Ids of other spellings, by their text.
    other: HashMap<String, u32, foldhash::fast::RandomState>,
    /// Every id in first-seen order, each followed by `\n`: the map file's text, which becomes
    /// an [`IdMap`] (indexed in one pass) at the end.
    text: String,
    count: u32,
}

impl IdInterner {
    fn new(column: &'static str) -> Self {
        Self {
            column,
            canonical: UuidTable::default(),
            other: HashMap::default(),
            text: String::new(),
            count: 0,
        }
    }

    /// The index of an id of the usual form (its [`canonical_uuid`] key) when already seen: the
    /// fast path, which neither validates nor adds anything.
    fn known(&self, key: Option<u128>) -> Option<u32> {
        self.canonical.get(key?)
    }

    /// Starts loading where [`known`](Self::known) will look for `key`.
    fn prefetch(&self, key: Option<u128>) {
        if let Some(key) = key {
            self.canonical.prefetch(key);
        }
    }

    /// The index of the id `field` as written, validating it as a UUID when first seen.
    fn intern(&mut self, field: &[u8]) -> std::result::Result<u32, String> {
        let Some(key) = canonical_uuid(field) else {
            return self.by_text(field);
        };
        if let Some(index) = self.canonical.get(key) {
            return Ok(index);
        }
        let id =
            std::str::from_utf8(field).map_err(|error| not_a_uuid(self.column, field, &error))?;
        let index = self.add(id);
        self.canonical.insert(key, index);
        Ok(index)
    }

    /// The index of `field` by its text; an id not there yet is validated and added.
    fn by_text(&mut self, field: &[u8]) -> std::result::Result<u32, String> {
        let id =
            std::str::from_utf8(field).map_err(|error| not_a_uuid(self.column, field, &error))?;
        if let Some(&index) = self.other.get(id) {
            return Ok(index);
        }
        Uuid::try_parse(id).map_err(|error| not_a_uuid(self.column, field, &error))?;
        let index = self.add(id);
        self.other.insert(id.to_string(), index);
        Ok(index)
    }

    /// Appends a new id; returns its index.
    fn add(&mut self, id: &str) -> u32 {
        self.text.push_str(id);
        self.text.push('\n');
        self.count += 1;
        self.count - 1
    }

    /// The id map: each id was added once, as its column's spelling sorted it to `canonical` or
    /// `other`, never both.
    fn into_map(self) -> IdMap {
        IdMap::from_distinct_text(self.text)
    }
}

fn not_a_uuid(column: &str, field: &[u8], reason: &dyn fmt::Display) -> String {
    format!("{column} `{}` is not a UUID: {reason}", shown_field(field))
}

fn parse_rating(field: &[u8]) -> std::result::Result<f32, String> {
    let text = std::str::from_utf8(field.trim_ascii())
        .map_err(|_| format!("{RATING_COLUMN} `{}` is not a number", shown_field(field)))?;
    if text.is_empty() {
        return Err(format!("{RATING_COLUMN} is empty"));
    }
    // Parsed as f64 and then narrowed, as pandas (float64) + Keras (float32) do, so the values
    // match theirs bit for bit.
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{RATING_COLUMN} `{}` is not a number", shown_field(field)))?;
    if !value.is_finite() {
        return Err(format!("{RATING_COLUMN} `{text}` is not a finite number"));
    }
    if value < 0.0 {
        return Err(format!(
            "{RATING_COLUMN} {text} is negative (ratings must be ≥ 0)"
        ));
    }
    Ok(value as f32)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::engine::kind::NoProgress;

    const C1: &str = "19823025-6551-4edd-ace1-56c2c4e22fc7";
    const C2: &str = "e9a87a97-38df-4858-86df-9b02defccd5c";
    const P1: &str = "9910eb1b-9d99-4025-badc-13ef455bb49a";

    fn read(text: &str) -> Result<Ingested> {
        read_ratings(
            text.as_bytes(),
            "t.csv",
            None,
            OnBadRows::Error,
            &NoProgress,
        )
    }

    /// The check behind [`MAX_IDS`] with a limit of 3, so four ids show it without 16M rows.
    #[test]
    fn one_id_past_the_limit_stops_the_read_even_when_skipping_bad_rows() {
        let id = |n: u32| format!("00000000-0000-4000-8000-{n:012}");
        let rows = |customers: &[u32], products: &[u32]| {
            let mut text = String::from("customerId,productId,scaled_purchase_freq\n");
            for (customer, product) in customers.iter().zip(products) {
                text.push_str(&format!("{},{},0.5\n", id(*customer), id(*product)));
            }
            text
        };
        let read_up_to_3 = |text: &str| {
            read_ratings_up_to(
                text.as_bytes(),
                "t.csv",
                None,
                OnBadRows::Skip,
                &NoProgress,
                Limits {
                    max_ids: 3,
                    ..LIMITS
                },
            )
        };
        let three = rows(&[1, 2, 1, 3, 3], &[9, 9, 8, 7, 9]);
        assert_eq!(read_up_to_3(&three).unwrap().customers.len(), 3);
        let error = read_up_to_3(&rows(&[1, 2, 1, 3, 4, 1], &[9; 6]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "t.csv:6: more than 3 distinct customerId values: ids reach the model as float32"
            ),
            "{error}"
        );
        let error = read_up_to_3(&rows(&[1; 5], &[1, 2, 3, 2, 4]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("t.csv:6: more than 3 distinct productId"),
            "{error}"
        );
    }

    #[test]
    fn maps_ids_in_first_seen_order() {
        let text = format!(
            "customerId,productId,scaled_purchase_freq\n{C2},{P1},0.5\n{C1},{P1},0\n{C2},{P1},1\n"
        );
        let ingested = read(&text).unwrap();
        assert_eq!(ingested.customers.ids().collect::<Vec<_>>(), [C2, C1]);
        assert_eq!(ingested.ratings.customers, [0, 1, 0]);
        assert_eq!(ingested.ratings.products, [0, 0, 0]);
        assert_eq!(ingested.ratings.ratings, [0.5, 0.0, 1.0]);
        assert_eq!(
            (ingested.ratings.n_customers, ingested.ratings.n_products),
            (2, 1)
        );
    }

    #[test]
    fn keeps_ids_as_written() {
        let upper = C1.to_uppercase();
        let text = format!("customerId,productId,scaled_purchase_freq\n{upper},{P1},0.5\n");
        assert_eq!(
            read(&text).unwrap().customers.ids().collect::<Vec<_>>(),
            [&upper]
        );
    }

    #[test]
    fn other_uuid_forms_are_ids_of_their_own() {
        let simple = C1.replace('-', "");
        let braced = format!("{{{C1}}}");
        let upper = C1.to_uppercase();
        let text = format!(
            "customerId,productId,scaled_purchase_freq\n\
             {simple},{P1},1\n{braced},{P1},1\n{C1},{P1},1\n{upper},{P1},1\n\
             {braced},{P1},1\n{simple},{P1},1\n{upper},{P1},1\n"
        );
        let ingested = read(&text).unwrap();
        assert_eq!(
            ingested.customers.ids().collect::<Vec<_>>(),
            [&simple, &braced, C1, &upper]
        );
        assert_eq!(ingested.ratings.customers, [0, 1, 2, 3, 1, 0, 3]);
    }

    #[test]
    fn narrows_ratings_from_f64_like_pandas() {
        let text =
            format!("customerId,productId,scaled_purchase_freq\n{C1},{P1},0.13333333333333333\n");
        let rating = read(&text).unwrap().ratings.ratings[0];
        assert_eq!(rating, (2.0f64 / 15.0) as f32);
    }

    /// The csv crate reads these files; the line named is the bad row's own.
    #[test]
    fn names_the_bad_rows_line_after_crlf_ends_blank_lines_and_quoted_line_breaks() {
        let good = format!("{C1},{P1},0.5");
        let bad = format!("{C2},{P1},abc");
        let header = "customerId,productId,scaled_purchase_freq";
        for (text, line) in [
            (format!("{header}\r\n{good}\r\n{bad}\r\n"), 3),
            (format!("{header}\n{good}\n\n\n{bad}\n"), 5),
            (format!("{header}\r\n\r\n{good}\r\n\r\n{bad}"), 5),
            (format!("{header}\n\"{C1}\",{P1},0.5\n\n{bad}\n"), 4),
            (
                format!("{header},note\n{C1},\"{P1}\",0.5,\"a\nb\nc\"\n{bad},d\n"),
                5,
            ),
            (
                format!("\"customerId\",productId,scaled_purchase_freq\n\n{good}\n{bad}\n"),
                4,
            ),
        ] {
            let error = format!("{:#}", read(&text).unwrap_err());
            assert!(
                error.starts_with(&format!("t.csv:{line}: scaled_purchase_freq `abc`")),
                "{text:?}: {error}"
            );
        }
    }

    /// The csv crate alone would read the open field to the end of the file as it is.
    #[test]
    fn rejects_a_quote_left_open_at_the_end_of_the_file() {
        let header = "customerId,productId,scaled_purchase_freq";
        for (text, line) in [
            (format!("{header}\n{C1},{P1},0.5\n{C2},{P1},\"0.5\n"), 3),
            (format!("{header}\n{C1},\"{P1},0.5\n{C2},{P1},0.5"), 2),
            (format!("{header}\n{C1},{P1},\"0.5\"\"\n\n"), 2),
            (
                format!("{header}\r\n{C1},{P1},0.5\r\n\"{C2}\"\",{P1},1\r\n"),
                3,
            ),
        ] {
            for policy in [OnBadRows::Error, OnBadRows::Skip] {
                let error = read_ratings(text.as_bytes(), "t.csv", None, policy, &NoProgress)
                    .map(|_| ())
                    .map_err(|error| format!("{error:#}"))
                    .unwrap_err();
                assert!(
                    error.starts_with(&format!("t.csv:{line}: a quoted field opened in this row")),
                    "{text:?}: {error}"
                );
            }
        }
        // Closed quotes, `""` inside them, and a `"` inside an unquoted field are no such thing.
        for text in [
            format!("{header}\n{C1},\"{P1}\",\"0.5\"\n"),
            format!("{header}\n{C1},{P1},\"0.5\""),
            format!("{header},note\n{C1},{P1},0.5,\"say \"\"hi\"\"\"\n"),
            format!("{header},note\n{C1},{P1},0.5,a\"b\n"),
        ] {
            assert!(read(&text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn rejects_a_row_with_too_few_fields() {
        let text = format!("customerId,productId,scaled_purchase_freq\n{C1},{P1}\n");
        let error = format!("{:#}", read(&text).unwrap_err());
        assert!(
            error.contains("t.csv:2: 2 fields, but the header has 3"),
            "{error}"
        );
    }

    #[test]
    fn rejects_a_duplicated_column() {
        let text =
            format!("customerId,productId,productId,scaled_purchase_freq\n{C1},{P1},{P1},1\n");
        let error = format!("{:#}", read(&text).unwrap_err());
        assert!(
            error.contains("t.csv:1: the header names column `productId` more than once"),
            "{error}"
        );
    }

    #[test]
    fn canonical_keys_are_the_uuid_crate_bytes_of_the_lowercase_hyphenated_form() {
        let uuid = Uuid::parse_str(C1).unwrap();
        assert_eq!(canonical_uuid(C1.as_bytes()), Some(uuid.as_u128()));
        for other in [
            C1.to_uppercase(),
            C1.replace('-', ""),
            format!("{{{C1}}}"),
            C1.replacen('-', "_", 1),
            C1.replacen('a', "g", 1),
            format!("{}é", &C1[..34]),
        ] {
            assert_eq!(canonical_uuid(other.as_bytes()), None, "{other}");
        }
    }

    proptest::proptest! {
        /// Any 36 bytes of hex digits of both cases, hyphens and a few others: a key exactly
        /// when the uuid crate parses them and they hold no upper case, and then its bytes.
        #[test]
        fn canonical_keys_agree_with_the_uuid_crate(
            field in "[0-9a-fA-F/:`g@-]{36}|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-fG]{12})",
        ) {
            let expected = Uuid::try_parse(&field)
                .ok()
                .filter(|_| !field.bytes().any(|byte| byte.is_ascii_uppercase()))
                .map(|uuid| uuid.as_u128());
            proptest::prop_assert_eq!(canonical_uuid(field.as_bytes()), expected);
        }
    }

    /// Progress that keeps the lines printed.
    #[derive(Default)]
    struct Printed(std::sync::Mutex<Vec<String>>);

    impl Progress for Printed {
        fn start(&self, _total: u64, _unit: &str) {}
        fn set_position(&self, _done: u64) {}
        fn set_message(&self, _message: &str) {}
        fn println(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_string());
        }
    }

    /// What a read gave: the data or the error, and the lines it printed.
    type Outcome = (std::result::Result<Ingested, String>, Vec<String>);

    fn outcome(read: impl FnOnce(&dyn Progress) -> Result<Ingested>) -> Outcome {
        let printed = Printed::default();
        let result = read(&printed).map_err(|error| format!("{error:#}"));
        (result, printed.0.into_inner().unwrap())
    }

    /// A field of a generated file: ids of every accepted and rejected spelling, ratings good
    /// and bad, and the text that sends a line to the csv crate (quotes, a CR, a BOM).
    fn field() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            C1.to_string(),
            C2.to_string(),
            P1.to_string(),
            C1.to_uppercase(),
            format!("{{{C2}}}"),
            P1.replace('-', ""),
            format!("\"{C1}\""),
            format!("\"{P1}\"\"\""),
            format!("\"{C2}\n\""),
            format!("{}x", &C1[..35]),
            format!("\u{feff}{C2}"),
            "0.5".to_string(),
            " 0.25 ".to_string(),
            "\"1\"".to_string(),
            "-1".to_string(),
            "nan".to_string(),
            "inf".to_string(),
            "1e400".to_string(),
            "x".to_string(),
            String::new(),
            "a\rb".to_string(),
        ])
    }

    /// Lines of one, two, three (mostly) or four fields, each followed by an LF, CRLF or CR, or
    /// a blank line; the header with the columns in any order; maybe a BOM; maybe no final line
    /// end.
    fn csv_file() -> impl Strategy<Value = Vec<u8>> {
        let line = (
            prop::sample::select(vec![1usize, 2, 3, 3, 3, 3, 4]),
            [field(), field(), field(), field()],
            prop::sample::select(vec!["\n", "\n", "\n", "\n", "\r\n", "\r", ""]),
        );
        (
            Just([CUSTOMER_COLUMN, PRODUCT_COLUMN, RATING_COLUMN]).prop_shuffle(),
            prop::sample::select(vec!["\n", "\n", "\r\n"]),
            prop::collection::vec(line, 0..24),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(header, header_end, lines, bom, final_line_end)| {
                let mut text = String::new();
                if bom {
                    text.push('\u{feff}');
                }
                text.push_str(&header.join(","));
                text.push_str(header_end);
                for (width, fields, end) in &lines {
                    text.push_str(&fields[..*width].join(","));
                    text.push_str(end);
                }
                if !final_line_end {
                    text.truncate(text.trim_end_matches(['\r', '\n']).len());
                }
                text.into_bytes()
            })
    }

    proptest::proptest! {
        /// The fast path and the csv crate alone read any file, good or bad, to the same
        /// ratings, maps, errors and printed lines, whatever the buffer size.
        #[test]
        fn the_fast_path_reads_like_the_csv_crate(
            file in csv_file(),
            chunk_bytes in 1usize..80,
            skip in proptest::bool::ANY,
        ) {
            let policy = if skip { OnBadRows::Skip } else { OnBadRows::Error };
            let limits = Limits { chunk_bytes, ..LIMITS };
            let fast = outcome(|progress| {
                read_ratings_up_to(&file[..], "p.csv", None, policy, progress, limits)
            });
            let csv_crate = outcome(|progress| {
                let input = skip_bom(&file[..])?;
                read_with_csv_crate(input, "p.csv", None, policy, progress, MAX_IDS)
            });
            proptest::prop_assert_eq!(fast, csv_crate, "{}", String::from_utf8_lossy(&file));
        }
    }

    #[test]
    fn bad_rows_policy_parses() {
        assert_eq!("skip".parse::<OnBadRows>().unwrap(), OnBadRows::Skip);
        assert_eq!("error".parse::<OnBadRows>().unwrap(), OnBadRows::Error);
        assert!("ignore".parse::<OnBadRows>().is_err());
    }
}
