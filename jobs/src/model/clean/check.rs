//! The field rules over bronze rows, on every core: typed columns of the
//! rows that pass, quarantine rows (with their reason) of those that fail.

use super::columns::BRONZE_READ;
use crate::decl::{ColumnType, FieldRule, RecordFormat};
use crate::lake::bridge::batch_to_df;
use crate::model::ModelError;
use crate::model::values::{Cell, Reason, RowChecker, Scratch};
use arrow::array::{
    ArrayRef, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, Schema};
use polars::prelude::*;
use polars_arrow::array::{BinaryViewArray, PrimitiveArray};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let raw = RawRows {
        values,
        offsets,
        keys,
        ingested,
    };
    // Up to four slices per core, none under MIN_SLICE_ROWS: an
    // incremental run's ten thousand rows in one slice were checked on one
    // core while the other waited.
    let per_slice = (order.len() / (4 * crate::cores::count())).clamp(MIN_SLICE_ROWS, SLICE_ROWS);
    let slices: Vec<&[IdxSize]> = order.chunks(per_slice).collect();
    let threads = crate::cores::count().min(slices.len());
    // Each thread takes the next slice when done with one: a core that
    // another task holds for a while leaves its share to the others
    // (halves fixed in advance waited for the slowest core).
    let next = AtomicUsize::new(0);
    let mut parts: Vec<(usize, Result<Checked, ModelError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(slice) = slices.get(at) else {
                            return done;
                        };
                        done.push((at, check_slice(&raw, fields, format, slice)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(
                        0,
                        Err(ModelError::Input("a row-checking thread panicked".into())),
                    )]
                })
            })
            .collect()
    });
    parts.sort_by_key(|(at, _)| *at);
    gather(rows, fields, parts.into_iter().map(|(_, part)| part))
}

/// Rows checked as one unit of work (small enough that the cores share
/// the work evenly, big enough that each unit's columns are few chunks).
const SLICE_ROWS: usize = 32 * 1024;

/// The smallest slice: a slice builds its own columns, which are then
/// stacked, a cost that smaller slices would not repay.
const MIN_SLICE_ROWS: usize = 1024;

/// The bronze columns [`check_rows`] reads, as arrays.
#[derive(Clone, Copy)]
struct RawRows<'a> {
    values: &'a BinaryViewArray,
    offsets: &'a PrimitiveArray<i64>,
    /// A CSV row's header line (CSV only).
    keys: Option<&'a BinaryViewArray>,
    ingested: &'a PrimitiveArray<i64>,
}

/// One slice of [`check_rows`]'s work: the rows numbered `slice`, in
/// that order.
fn check_slice(
    raw: &RawRows<'_>,
    fields: &[FieldRule],
    format: RecordFormat,
    slice: &[IdxSize],
) -> Result<Checked, ModelError> {
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
        let at = raw.ingested.get(i as usize).unwrap_or(i64::MAX);
        let value = raw.values.get(i as usize);
        let checked = if raw.offsets.get(i as usize) == Some(-1) {
            Err(Reason::UnreadableFile)
        } else if let Some(keys) = raw.keys {
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
}

/// The threads' parts, in order, as one judgement of `rows`.
fn gather(
    rows: &DataFrame,
    fields: &[FieldRule],
    parts: impl Iterator<Item = Result<Checked, ModelError>>,
) -> Result<Judged, ModelError> {
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
