//! Silver cleaning: new bronze rows -> typed silver rows, quarantined rows
//! with a reason, and duplicates counted (not copied: bronze keeps them).
//!
//! Only the bronze files added since the version this model consumed are
//! read. Rows are taken in the declared dedupe order; a key already in
//! silver, or seen earlier in the same run, is a duplicate, so the first
//! copy ingested wins and is never displaced. Silver and quarantine each
//! record the bronze version they consumed in their own commit; after a
//! crash between the two commits, each catches up from its own watermark.

use super::bridge::batch_to_df;
use super::dates::DateRange;
use super::frame::anti_join;
use super::keyset::KeySet;
use super::scope::conform_to;
use super::table::{DataFile, ModelTable};
use super::values::{Cell, Reason, RowChecker, Scratch};
use super::{Catalog, ModelError, ModelReport, Settings};
use crate::spec::{ColumnType, Dedupe, Derived, FieldRule, Model, RecordFormat, Source};
use arrow::array::{
    ArrayRef, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, Schema};
use polars::prelude::*;
use polars::sql::SQLContext;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The bronze columns a cleaning run reads (and a quarantine row keeps).
const BRONZE_READ: [&str; 6] = [
    "topic",
    "partition",
    "offset",
    "value",
    "ingested_at",
    "ingest_date",
];

pub async fn run(
    model: &Model,
    catalog: &Catalog,
    s: &Settings,
) -> Result<ModelReport, ModelError> {
    let Source::Clean {
        format,
        input,
        quarantine,
        fields,
        dedupe,
        derive,
    } = &model.source
    else {
        unreachable!("clean::run on a {} model", model.source.kind_name());
    };
    let bronze = catalog.open_input(input, s).await?;
    let mut silver = catalog.open_output(&model.name, s).await?;
    let mut quar = catalog.open_output(quarantine, s).await?;
    let ranged = match &s.range {
        Some(range) => range.column_of(model)?.map(|c| (range, c)),
        None => None,
    };
    let to = bronze.version();
    let (silver_from, quar_from) = if s.full_refresh {
        (-1, -1)
    } else {
        (
            silver.txn(input).await?.unwrap_or(-1),
            quar.txn(input).await?.unwrap_or(-1),
        )
    };
    let mut report = ModelReport::default();
    if silver_from >= to && quar_from >= to {
        report.note = Some(format!("{input} has no new version since {to}"));
        return Ok(report);
    }
    let txns = BTreeMap::from([(input.clone(), to)]);
    let rule = Rules {
        format: *format,
        fields,
        dedupe,
        derive,
        model,
    };
    // Normally one pass writes both; after a crash between the two commits
    // each table catches up from its own watermark.
    let passes: Vec<(i64, bool, bool)> = if silver_from == quar_from {
        vec![(silver_from, true, true)]
    } else {
        [(silver_from, true, false), (quar_from, false, true)]
            .into_iter()
            .filter(|(from, _, _)| *from < to)
            .collect()
    };
    let mut versions = Vec::new();
    let order: Vec<&str> = dedupe.order.iter().map(String::as_str).collect();
    let mut cols: Vec<&str> = BRONZE_READ.to_vec();
    cols.extend(order.iter().filter(|c| !BRONZE_READ.contains(c)));
    // A CSV row's header line travels in its bronze key.
    if *format == RecordFormat::Csv && !cols.contains(&"key") {
        cols.push("key");
    }
    for (from, to_silver, to_quar) in passes {
        let files = new_files(&bronze, from).await?;
        // Keys that already won: silver's committed ones (none when it is
        // replaced), then each batch's winners in `won`.
        // In a backfill over a range, the rows outside it stay: their keys
        // won already.
        let silver_files = match &ranged {
            Some((range, column)) => range.split(silver.files().await?, column).1,
            None if s.full_refresh => Vec::new(),
            None => silver.files().await?,
        };
        let mut won = KeySet::new(&dedupe.key);
        let (mut silver_adds, mut quar_adds) = (Vec::new(), Vec::new());
        let mut rejudged = Rejudged::default();
        for batch in batches(files, order.first().copied(), s.clean_batch_bytes) {
            let started = std::time::Instant::now();
            let rows = bronze.read(&batch, Some(&cols)).await?;
            tracing::debug!(model = %model.name, rows = rows.height(), files = batch.len(), seconds = started.elapsed().as_secs_f64(), "bronze read");
            let range = ranged.as_ref().map(|(r, c)| (*r, c.as_str()));
            let out = rule
                .clean(&rows, &silver, &silver_files, &mut won, range)
                .await?;
            report.rows_in += rows.height() as u64;
            report.quarantined += out.quarantine.height() as u64;
            report.duplicates += out.duplicates;
            report.rows_out += out.silver.height() as u64;
            if let Some(in_range) = out.in_range {
                rejudged.add(out.quarantine, in_range);
            } else if to_quar {
                quar_adds.extend(quar.write_files(&out.quarantine).await?);
            }
            if to_silver {
                silver_adds.extend(silver.write_files(&out.silver).await?);
            }
            tracing::debug!(model = %model.name, seconds = started.elapsed().as_secs_f64(), "batch written");
        }
        // One commit per table, whatever the number of batches; a full
        // refresh replaces each table in that commit.
        if to_quar && ranged.is_some() {
            let old = quar.files().await?;
            let (rows, note) = rejudged.apply(quar.read(&old, None).await?)?;
            let adds = quar.write_files(&rows).await?;
            quar.commit(adds, &old, &txns, true).await?;
            report.note = Some(note);
        } else if to_quar {
            let old = replaced(&quar, s.full_refresh).await?;
            quar.commit(quar_adds, &old, &txns, s.full_refresh).await?;
        }
        if let (true, Some((range, column))) = (to_silver, &ranged) {
            let (old, _) = range.split(silver.files().await?, column);
            versions.push(silver.commit(silver_adds, &old, &txns, false).await?);
        } else if to_silver {
            let old = replaced(&silver, s.full_refresh).await?;
            versions.push(
                silver
                    .commit(silver_adds, &old, &txns, s.full_refresh)
                    .await?,
            );
        }
    }
    report.version = versions.last().copied();
    Ok(report)
}

/// `files` in batches of about `limit` bytes that can be cleaned one
/// after another: by their statistics, every row of a batch comes before
/// every row of the next on the first dedupe-order column (strictly, so
/// ties never straddle two batches). Without statistics, one batch.
fn batches(mut files: Vec<DataFile>, first_order: Option<&str>, limit: i64) -> Vec<Vec<DataFile>> {
    let Some(column) = first_order else {
        return vec![files];
    };
    let bounds: Option<Vec<(i64, i64)>> = files.iter().map(|f| f.bounds(column)).collect();
    let Some(bounds) = bounds else {
        return vec![files];
    };
    let mut keyed: Vec<((i64, i64), DataFile)> = bounds.into_iter().zip(files.drain(..)).collect();
    keyed.sort_by_key(|(b, _)| *b);
    let mut out: Vec<Vec<DataFile>> = Vec::new();
    let (mut current, mut bytes, mut max) = (Vec::new(), 0i64, i64::MIN);
    for ((lo, hi), f) in keyed {
        // Statistics may truncate timestamps (to ms), never round up: a
        // truncated min above a truncated max is still strictly after it.
        if bytes >= limit && lo > max {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += f.size;
        max = max.max(hi);
        current.push(f);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

/// A backfill over a range re-judges the quarantine: every bronze row is
/// judged again, but only the silver rows in the range are replaced, so
/// only what lands in the range may leave the quarantine.
#[derive(Default)]
struct Rejudged {
    /// The quarantine rows the fixed rules produce (all of bronze).
    quarantined: Vec<DataFrame>,
    /// Coordinates of the bronze rows that now pass into the range.
    in_range: Vec<DataFrame>,
}

impl Rejudged {
    fn add(&mut self, quarantined: DataFrame, in_range: DataFrame) {
        self.quarantined.push(quarantined);
        self.in_range.push(in_range);
    }

    /// The quarantine after the backfill, from the one before it: rows
    /// quarantined again carry the fixed rules' reason; rows that now pass
    /// into the range leave; rows that now pass outside the range stay
    /// (their dates are not being replaced). Also the note saying so.
    fn apply(self, before: DataFrame) -> Result<(DataFrame, String), ModelError> {
        let stack = |frames: Vec<DataFrame>| -> Result<Option<DataFrame>, ModelError> {
            let mut frames = frames.into_iter();
            let Some(mut acc) = frames.next() else {
                return Ok(None);
            };
            for f in frames {
                acc.vstack_mut_owned(f)?;
            }
            Ok(Some(acc))
        };
        let (Some(judged), Some(in_range)) = (stack(self.quarantined)?, stack(self.in_range)?)
        else {
            return Ok((before, "no bronze rows to judge".into()));
        };
        let on: Vec<String> = COORDS.iter().map(|c| c.to_string()).collect();
        let before = super::write::conform(before, &judged)?;
        let released = super::frame::semi_join(before.clone(), in_range.clone(), &on)?.height();
        let added = anti_join(judged.clone(), before.select(COORDS)?, &on)?.height();
        let mut gone = in_range;
        gone.vstack_mut_owned(judged.select(COORDS)?)?;
        let kept = anti_join(before, gone, &on)?;
        let note = format!(
            "quarantine re-judged: {released} row(s) now pass into the range and left it, \
             {added} newly quarantined, {} that now pass outside the range stay until a \
             backfill covers their dates",
            kept.height()
        );
        let mut after = judged;
        after.vstack_mut_owned(kept)?;
        Ok((after, note))
    }
}

async fn replaced(t: &ModelTable, full_refresh: bool) -> Result<Vec<DataFile>, ModelError> {
    Ok(if full_refresh {
        t.files().await?
    } else {
        Vec::new()
    })
}

/// Bronze files with rows after version `from` (every file when nothing
/// was consumed yet). Bronze is append-only: a removal with a data change
/// means someone rewrote history, and cleaning refuses to guess.
async fn new_files(bronze: &ModelTable, from: i64) -> Result<Vec<DataFile>, ModelError> {
    if from < 0 {
        return Ok(bronze.files().await?);
    }
    let changes = bronze.changes(from).await?;
    if let Some(f) = changes.removed.first() {
        return Err(ModelError::Input(format!(
            "bronze table {} had data removed after version {from} ({}): bronze must stay \
             append-only; rebuild silver from scratch",
            bronze.name, f.path
        )));
    }
    Ok(changes.added)
}

/// What one pass produced.
pub struct Cleaned {
    pub silver: DataFrame,
    pub quarantine: DataFrame,
    pub duplicates: u64,
    /// In a backfill over a range: bronze coordinates of the rows that
    /// passed into the range.
    pub in_range: Option<DataFrame>,
}

/// A bronze row's coordinates, and the names they travel under next to a
/// row's parsed fields in a backfill over a range.
const COORDS: [&str; 3] = ["topic", "partition", "offset"];
const HIDDEN: [&str; 3] = ["__dag_topic", "__dag_partition", "__dag_offset"];

/// Columns `from` of `df`, renamed `to` (nothing else).
fn renamed(df: DataFrame, from: &[&str], to: &[&str]) -> Result<DataFrame, ModelError> {
    let columns: Vec<Expr> = from
        .iter()
        .zip(to)
        .map(|(f, t)| col(*f).alias(*t))
        .collect();
    Ok(df.lazy().select(columns).collect()?)
}

struct Rules<'a> {
    format: RecordFormat,
    fields: &'a [FieldRule],
    dedupe: &'a Dedupe,
    derive: &'a [Derived],
    model: &'a Model,
}

impl Rules<'_> {
    /// Checks `rows` (bronze columns) and dedupes them, in the declared
    /// order, against themselves, the keys earlier batches of this run let
    /// through (`won`, given this batch's) and the keys silver's committed
    /// files hold (none when silver is replaced).
    ///
    /// With a `range` (a backfill over dates of `column`), only the silver
    /// rows in the range are returned, and `in_range` holds the bronze
    /// coordinates of every row that passes into it (duplicates included).
    async fn clean(
        &self,
        rows: &DataFrame,
        silver: &ModelTable,
        silver_files: &[DataFile],
        won: &mut KeySet,
        range: Option<(&DateRange, &str)>,
    ) -> Result<Cleaned, ModelError> {
        let started = std::time::Instant::now();
        let order = dedupe_order(rows, &self.dedupe.order)?;
        let sorted = started.elapsed().as_secs_f64();
        let Judged {
            valid,
            accepted,
            quarantine,
        } = check_rows(rows, self.fields, self.format, &order)?;
        tracing::debug!(model = %self.model.name, sorted, checked = started.elapsed().as_secs_f64(), "rows checked");
        let (valid, in_range) = match range {
            None => (valid, None),
            Some((range, column)) => {
                // Derived before the dedupe: the range column may be a
                // derived one, and every passing row's place matters.
                let idx = IdxCa::from_vec("idx".into(), accepted);
                let coords = renamed(rows.select(COORDS)?.take(&idx)?, &COORDS, &HIDDEN)?;
                let valid = self.derive(valid.hstack(coords.columns())?)?;
                let in_range = renamed(
                    valid
                        .clone()
                        .lazy()
                        .filter(range.predicate(column))
                        .collect()?,
                    &HIDDEN,
                    &COORDS,
                )?;
                (valid, Some(in_range))
            }
        };
        let passed = valid.height();
        let key = &self.dedupe.key;
        // A key silver holds stays in `won` too: any later copy of it is a
        // duplicate either way.
        let new = won.insert_new(&valid)?;
        let mut firsts = if new.all() {
            valid
        } else {
            valid.filter(&new)?
        };
        if firsts.height() > 0 && !silver_files.is_empty() {
            let key_cols = firsts.select(key.iter().map(String::as_str))?;
            let held = silver.held(silver_files, &key_cols).await?;
            if held.height() > 0 {
                let held = conform_to(&held, &firsts)?;
                firsts = anti_join(firsts, held, key)?;
            }
        }
        let mut duplicates = (passed - firsts.height()) as u64;
        tracing::debug!(model = %self.model.name, seconds = started.elapsed().as_secs_f64(), "deduplicated");
        let silver_rows = match range {
            None => self.derive(firsts)?,
            Some((range, column)) => {
                let rows = range.rows_in(firsts, column)?;
                // Rows outside the range are neither written nor dropped.
                duplicates = in_range.as_ref().map_or(0, |r| r.height() - rows.height()) as u64;
                let keep: Vec<PlSmallStr> = rows
                    .get_column_names()
                    .into_iter()
                    .filter(|c| !HIDDEN.contains(&c.as_str()))
                    .cloned()
                    .collect();
                rows.select(keep)?
            }
        };
        tracing::debug!(model = %self.model.name, seconds = started.elapsed().as_secs_f64(), "derived");
        Ok(Cleaned {
            silver: silver_rows,
            quarantine,
            duplicates,
            in_range,
        })
    }

    /// Adds the derived columns (SQL expressions over the parsed fields).
    fn derive(&self, df: DataFrame) -> Result<DataFrame, ModelError> {
        if self.derive.is_empty() {
            return Ok(df);
        }
        let ctx = SQLContext::new();
        ctx.register("parsed", df.lazy());
        let mut ctx = ctx;
        let select: Vec<String> = self
            .derive
            .iter()
            .map(|d| format!("{} AS {}", d.sql, d.name))
            .collect();
        let q = format!("SELECT *, {} FROM parsed", select.join(", "));
        ctx.execute(&q)
            .and_then(|lf| lf.collect())
            .map_err(|e| ModelError::Input(format!("model {}: derive: {e}", self.model.name)))
    }
}

/// Row numbers of `rows` in the dedupe order (stable: equal keys keep
/// their read order). Only the order columns are sorted; the raw values
/// are visited in this order, never moved.
fn dedupe_order(rows: &DataFrame, order: &[String]) -> Result<Vec<IdxSize>, ModelError> {
    if let Some(idx) = integer_order(rows, order)? {
        return Ok(idx);
    }
    const ROW: &str = "__row";
    let keys = rows.select(order.iter().map(String::as_str))?;
    let mut keys = keys.with_row_index(ROW.into(), None)?;
    if !order.is_empty() {
        keys = keys.sort(
            order.iter().map(String::as_str),
            SortMultipleOptions::default().with_maintain_order(true),
        )?;
    }
    Ok(keys.column(ROW)?.idx()?.into_no_null_iter().collect())
}

/// The same order, for the usual case of up to three integer-like columns
/// (timestamps, partition, offset) without nulls: a plain tuple sort, a
/// fraction of the cost of a general multi-column sort. `None` otherwise.
fn integer_order(rows: &DataFrame, order: &[String]) -> Result<Option<Vec<IdxSize>>, ModelError> {
    if order.len() > 3 {
        return Ok(None);
    }
    let mut keys: Vec<([i64; 3], IdxSize)> =
        (0..rows.height() as IdxSize).map(|i| ([0; 3], i)).collect();
    for (k, name) in order.iter().enumerate() {
        let column = rows
            .column(name)?
            .as_materialized_series()
            .to_physical_repr();
        if !column.dtype().is_integer()
            || column.null_count() > 0
            || column.dtype() == &DataType::UInt64
        {
            return Ok(None);
        }
        let column = column.cast(&DataType::Int64)?;
        for (key, v) in keys.iter_mut().zip(column.i64()?.into_no_null_iter()) {
            key.0[k] = v;
        }
    }
    // Row numbers break ties, so the unstable sort is the stable order.
    keys.sort_unstable();
    Ok(Some(keys.into_iter().map(|(_, i)| i).collect()))
}

/// Applies the field rules to the rows of `rows` numbered by `order`, in
/// that order: typed columns of the rows that pass, and the quarantine rows
/// (bronze coordinates, raw value, reason). JSON checking is most of a
/// cleaning run, so the rows are split over the machine's cores.
pub fn check_rows(
    rows: &DataFrame,
    fields: &[FieldRule],
    format: RecordFormat,
    order: &[IdxSize],
) -> Result<Judged, ModelError> {
    let values = rows
        .column("value")?
        .as_materialized_series()
        .binary()?
        .rechunk();
    // Offset -1: a file source's file that could not be read (its value is
    // the reason, for the quarantine row).
    let offsets = rows
        .column("offset")?
        .as_materialized_series()
        .cast(&DataType::Int64)?
        .rechunk();
    let offsets = offsets.i64()?.downcast_as_array();
    let keys = match format {
        RecordFormat::Csv => Some(
            rows.column("key")?
                .as_materialized_series()
                .binary()?
                .rechunk(),
        ),
        RecordFormat::Json => None,
    };
    let keys = keys.as_ref().map(|k| k.downcast_as_array());
    let ingested = rows
        .column("ingested_at")?
        .as_materialized_series()
        .cast(&DataType::Int64)?
        .rechunk();
    let values = values.downcast_as_array();
    let ingested = ingested.i64()?.downcast_as_array();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = order.len().div_ceil(threads).max(4096);
    let parts: Vec<Result<Checked, ModelError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = order
            .chunks(per)
            .map(|slice| {
                scope.spawn(move || {
                    let checker = RowChecker::for_format(fields, format);
                    let mut scratch = Scratch::default();
                    // The header of the last CSV row's file: rows of a file
                    // come together, so it is parsed once per file.
                    let mut header: (Vec<u8>, Vec<String>) = (Vec::new(), Vec::new());
                    let mut builders: Vec<CellBuilder> = fields
                        .iter()
                        .map(|f| CellBuilder::new(f.column, slice.len()))
                        .collect();
                    let mut rejected = Vec::new();
                    let mut reasons = Vec::new();
                    let mut accepted = Vec::new();
                    for &i in slice {
                        let at = ingested.get(i as usize).unwrap_or(i64::MAX);
                        let value = values.get(i as usize);
                        let checked = if offsets.get(i as usize) == Some(-1) {
                            Err(Reason::UnreadableFile)
                        } else if let Some(keys) = keys {
                            let raw_header = keys.get(i as usize).unwrap_or_default();
                            if raw_header != header.0.as_slice() {
                                header = (raw_header.to_vec(), csv_header(raw_header));
                            }
                            checker.check_csv_into(&header.1, value, at, &mut scratch)
                        } else {
                            checker.check_into(value, at, &mut scratch)
                        };
                        match checked {
                            Ok(()) => {
                                for (b, c) in builders.iter_mut().zip(scratch.cells.drain(..)) {
                                    b.push(c);
                                }
                                accepted.push(i);
                            }
                            Err(reason) => {
                                rejected.push(i);
                                reasons.push(reason.to_string());
                            }
                        }
                    }
                    let valid = finish(fields, builders)?;
                    Ok(Checked {
                        valid,
                        accepted,
                        rejected,
                        reasons,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ModelError::Input("a row-checking thread panicked".into()))
                })
            })
            .collect()
    });
    let mut valid = finish(
        fields,
        fields
            .iter()
            .map(|f| CellBuilder::new(f.column, 0))
            .collect(),
    )?;
    let mut rejected: Vec<IdxSize> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut accepted: Vec<IdxSize> = Vec::new();
    for part in parts {
        let part = part?;
        valid.vstack_mut_owned(part.valid)?;
        accepted.extend(part.accepted);
        rejected.extend(part.rejected);
        reasons.extend(part.reasons);
    }
    valid.rechunk_mut_par();
    let idx = IdxCa::from_vec("idx".into(), rejected);
    let mut quarantine = rows.select(BRONZE_READ)?.take(&idx)?;
    quarantine.with_column(Column::new("reason".into(), reasons))?;
    Ok(Judged {
        valid,
        accepted,
        quarantine,
    })
}

/// The rows [`check_rows`] judged.
pub struct Judged {
    /// Typed columns of the rows that pass, in the order checked.
    pub valid: DataFrame,
    /// The input row number of each row of `valid`.
    pub accepted: Vec<IdxSize>,
    /// Bronze coordinates, raw value and reason of the rows that fail.
    pub quarantine: DataFrame,
}

/// The column names of a CSV header line (none if it is not one record).
fn csv_header(raw: &[u8]) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(raw);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => record
            .iter()
            .enumerate()
            // A byte-order mark is not part of the first name.
            .map(|(i, c)| {
                let c = if i == 0 {
                    c.trim_start_matches('\u{feff}')
                } else {
                    c
                };
                c.trim().to_string()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What one thread of [`check_rows`] produced.
struct Checked {
    valid: DataFrame,
    /// The row numbers of `valid`'s rows, in order.
    accepted: Vec<IdxSize>,
    rejected: Vec<IdxSize>,
    reasons: Vec<String>,
}

/// The checked cells of the builders as a frame with the fields' names.
fn finish(fields: &[FieldRule], builders: Vec<CellBuilder>) -> Result<DataFrame, ModelError> {
    let schema = Arc::new(Schema::new(
        fields
            .iter()
            .zip(&builders)
            .map(|(f, b)| Field::new(&f.name, b.data_type(), true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = builders
        .into_iter()
        .map(CellBuilder::finish)
        .collect::<Result<_, _>>()?;
    Ok(batch_to_df(&RecordBatch::try_new(schema, arrays)?)?)
}

/// An arrow builder for one output column of checked cells.
enum CellBuilder {
    Text(StringBuilder),
    Float(Float64Builder),
    Int(Int32Builder),
    Big(Int64Builder),
    Dec(Decimal128Builder, u8, i8),
    Micros(TimestampMicrosecondBuilder),
}

impl CellBuilder {
    /// A builder with room for `rows` cells (strings: ~36 bytes each).
    fn new(ty: ColumnType, rows: usize) -> Self {
        match ty {
            ColumnType::Int => CellBuilder::Int(Int32Builder::with_capacity(rows)),
            ColumnType::BigInt => CellBuilder::Big(Int64Builder::with_capacity(rows)),
            ColumnType::Double => CellBuilder::Float(Float64Builder::with_capacity(rows)),
            ColumnType::Decimal { precision, scale } => CellBuilder::Dec(
                Decimal128Builder::with_capacity(rows),
                precision,
                scale as i8,
            ),
            ColumnType::Timestamp => {
                CellBuilder::Micros(TimestampMicrosecondBuilder::with_capacity(rows))
            }
            _ => CellBuilder::Text(StringBuilder::with_capacity(rows, rows * 36)),
        }
    }

    fn push(&mut self, cell: Cell) {
        match (self, cell) {
            (CellBuilder::Text(b), Cell::Text(s)) => b.append_value(&s),
            (CellBuilder::Float(b), Cell::Float(v)) => b.append_value(v),
            (CellBuilder::Float(b), Cell::Int(v)) => b.append_value(v as f64),
            (CellBuilder::Int(b), Cell::Int(v)) => b.append_value(v as i32),
            (CellBuilder::Big(b), Cell::Int(v)) => b.append_value(v),
            (CellBuilder::Dec(b, ..), Cell::Decimal(v)) => b.append_value(v),
            (CellBuilder::Micros(b), Cell::Micros(v)) => b.append_value(v),
            (b, _) => b.push_null(),
        }
    }

    fn push_null(&mut self) {
        match self {
            CellBuilder::Text(b) => b.append_null(),
            CellBuilder::Float(b) => b.append_null(),
            CellBuilder::Int(b) => b.append_null(),
            CellBuilder::Big(b) => b.append_null(),
            CellBuilder::Dec(b, ..) => b.append_null(),
            CellBuilder::Micros(b) => b.append_null(),
        }
    }

    fn data_type(&self) -> arrow::datatypes::DataType {
        use arrow::datatypes::{DataType as D, TimeUnit};
        match self {
            CellBuilder::Text(_) => D::Utf8,
            CellBuilder::Float(_) => D::Float64,
            CellBuilder::Int(_) => D::Int32,
            CellBuilder::Big(_) => D::Int64,
            CellBuilder::Dec(_, p, s) => D::Decimal128(*p, *s),
            CellBuilder::Micros(_) => D::Timestamp(TimeUnit::Microsecond, None),
        }
    }

    fn finish(self) -> Result<ArrayRef, arrow::error::ArrowError> {
        Ok(match self {
            CellBuilder::Text(mut b) => Arc::new(b.finish()),
            CellBuilder::Float(mut b) => Arc::new(b.finish()),
            CellBuilder::Int(mut b) => Arc::new(b.finish()),
            CellBuilder::Big(mut b) => Arc::new(b.finish()),
            CellBuilder::Dec(mut b, p, s) => Arc::new(b.finish().with_precision_and_scale(p, s)?),
            CellBuilder::Micros(mut b) => Arc::new(b.finish()),
        })
    }
}
