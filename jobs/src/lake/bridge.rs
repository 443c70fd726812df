//! polars <-> arrow-rs through the Arrow C Data Interface: buffers move
//! between the two libraries without copies (polars' string views are
//! re-encoded by arrow-rs' cast only when a Delta column needs `Utf8`).
//!
//! Timestamps: polars works on naive `Datetime(us)` here (this build has no
//! time-zone support), Delta stores `Timestamp(us, "UTC")`. Reading strips
//! the zone, writing casts back to the table's schema, so every value is
//! UTC microseconds on both sides.

use arrow::array::{ArrayRef, RecordBatch, make_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi, to_ffi};
use polars::prelude::*;
use polars_arrow::ffi as pffi;
use std::sync::Arc;

/// Errors crossing the bridge: either library's, or a column that does not
/// fit the target schema.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Polars(#[from] PolarsError),
    #[error("column `{0}` is missing from the result")]
    Missing(String),
    /// A value the declared type cannot hold: never written as a null.
    #[error(
        "column `{column}` is declared {declared}, but the query gives it {given} values that do not convert: {detail}"
    )]
    Cast {
        column: String,
        declared: String,
        given: String,
        detail: String,
    },
}

/// One arrow-rs array as a polars Series (zero-copy for fixed-width data).
fn array_to_series(name: &str, array: &ArrayRef) -> Result<Series, BridgeError> {
    let array = match array.data_type() {
        // Naive inside polars: see the module docs.
        DataType::Timestamp(unit, Some(_)) => {
            arrow::compute::cast(array, &DataType::Timestamp(*unit, None))?
        }
        _ => array.clone(),
    };
    let (ffi_array, ffi_schema) = to_ffi(&array.to_data())?;
    // Ownership of the array moves to polars, which calls its release.
    let ffi_array = std::mem::ManuallyDrop::new(ffi_array);
    // SAFETY: both structs are the C ABI's ArrowArray / ArrowSchema with the
    // same layout; exactly one side (polars) releases the array, and the
    // schema stays owned (and released) by arrow-rs after being read.
    let (p_array, p_schema) = unsafe {
        (
            std::ptr::read(&*ffi_array as *const FFI_ArrowArray as *const pffi::ArrowArray),
            &*(&ffi_schema as *const FFI_ArrowSchema as *const pffi::ArrowSchema),
        )
    };
    // SAFETY: the schema and array were just exported by arrow-rs and match.
    let field = unsafe { pffi::import_field_from_c(p_schema) }?;
    let p_array = unsafe { pffi::import_array_from_c(p_array, field.dtype.clone()) }?;
    Ok(Series::from_arrow(name.into(), p_array)?)
}

/// A record batch as a DataFrame.
pub fn batch_to_df(batch: &RecordBatch) -> Result<DataFrame, BridgeError> {
    let columns = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| array_to_series(f.name(), a).map(Column::from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DataFrame::new(batch.num_rows(), columns)?)
}

/// Record batches (all of one schema) as one DataFrame; `schema` gives the
/// columns when there are no batches.
pub fn batches_to_df(batches: &[RecordBatch], schema: &Schema) -> Result<DataFrame, BridgeError> {
    if batches.is_empty() {
        return batch_to_df(&RecordBatch::new_empty(Arc::new(schema.clone())));
    }
    let mut frames = batches.iter().map(batch_to_df);
    let mut df = frames.next().unwrap_or_else(|| Ok(DataFrame::empty()))?;
    for f in frames {
        df.vstack_mut_owned(f?)?;
    }
    Ok(df)
}

/// One polars column as an arrow-rs array.
fn column_to_array(c: &Column) -> Result<ArrayRef, BridgeError> {
    let p_array = c.clone().rechunk_to_arrow(CompatLevel::newest());
    let p_field =
        polars_arrow::datatypes::Field::new(c.name().clone(), p_array.dtype().clone(), true);
    let p_schema = pffi::export_field_to_c(&p_field);
    let mut p_ffi = pffi::export_array_to_c(p_array);
    // SAFETY: same C ABI structs; `from_raw` moves the array out (leaving
    // polars' copy released-empty), the schema stays polars' and is only read.
    let schema = unsafe { &*(&p_schema as *const pffi::ArrowSchema as *const FFI_ArrowSchema) };
    let array = unsafe {
        FFI_ArrowArray::from_raw(&mut p_ffi as *mut pffi::ArrowArray as *mut FFI_ArrowArray)
    };
    let data = unsafe { from_ffi(array, schema) }?;
    Ok(make_array(data))
}

/// A DataFrame as one record batch of exactly `schema`: columns picked by
/// name, in the schema's order, cast to its types (views to `Utf8`, naive
/// timestamps to UTC, integer widths, decimals).
/// A frame of no rows with `schema`'s columns (as polars types them).
pub fn empty_frame(schema: SchemaRef) -> Result<DataFrame, BridgeError> {
    batch_to_df(&RecordBatch::new_empty(schema))
}

pub fn df_to_batch(df: &DataFrame, schema: &SchemaRef) -> Result<RecordBatch, BridgeError> {
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let c = df
            .column(field.name())
            .map_err(|_| BridgeError::Missing(field.name().clone()))?;
        let array = column_to_array(c)?;
        arrays.push(cast_to(&array, field).map_err(|e| match e {
            BridgeError::Arrow(e) => BridgeError::Cast {
                column: field.name().clone(),
                declared: declared(field.data_type()),
                given: declared(array.data_type()),
                detail: e.to_string(),
            },
            other => other,
        })?);
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(df.height())),
    )?)
}

fn cast_to(array: &ArrayRef, field: &Field) -> Result<ArrayRef, BridgeError> {
    if array.data_type() == field.data_type() {
        return Ok(array.clone());
    }
    let array = match (array.data_type(), field.data_type()) {
        // A naive timestamp: to micros, then labelled with the zone.
        (DataType::Timestamp(unit, None), DataType::Timestamp(TimeUnit::Microsecond, Some(tz))) => {
            let micros = if *unit == TimeUnit::Microsecond {
                array.clone()
            } else {
                arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?
            };
            labelled(&micros, tz)
        }
        (from, to) if from.is_floating() && to.is_integer() => {
            whole_numbers(array)?;
            arrow::compute::cast_with_options(array, to, &STRICT)?
        }
        _ => arrow::compute::cast_with_options(array, field.data_type(), &STRICT)?,
    };
    Ok(array)
}

/// A value that does not convert is an error, not a null: a query giving
/// text for an `int` column wrote nulls where the text was.
const STRICT: arrow::compute::CastOptions<'static> = arrow::compute::CastOptions {
    safe: false,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// Refuses floats with a fractional part: arrow's cast to an integer
/// would drop it (3.7 written as 3).
fn whole_numbers(array: &ArrayRef) -> Result<(), BridgeError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float64Type;
    let floats = arrow::compute::cast(array, &DataType::Float64)?;
    let floats = floats.as_primitive::<Float64Type>();
    let fractional = (0..floats.len())
        .filter(|&i| floats.is_valid(i))
        .map(|i| floats.value(i))
        .find(|v| v.is_finite() && v.fract() != 0.0);
    match fractional {
        Some(v) => Err(arrow::error::ArrowError::CastError(format!(
            "{v} has a fractional part (round or cast it in the query)"
        ))
        .into()),
        None => Ok(()),
    }
}

/// A type as a model file declares it (`int`, `string`, ...), else arrow's name.
fn declared(ty: &DataType) -> String {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "bool".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p}, {s})"),
        other => other.to_string(),
    }
}

/// Naive microseconds labelled with the zone `tz`, values unchanged: they
/// are UTC already (module docs). arrow's cast would read them as local
/// times of `tz` and convert each one (a time-zone lookup per value, which
/// for UTC changes nothing).
fn labelled(micros: &ArrayRef, tz: &Arc<str>) -> ArrayRef {
    use arrow::array::{AsArray, TimestampMicrosecondArray};
    let naive: &TimestampMicrosecondArray = micros.as_primitive();
    Arc::new(naive.clone().with_timezone(tz.clone()))
}
