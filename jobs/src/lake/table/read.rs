//! Reading a table's files into polars: through the parquet crate on the
//! table's own object store, crossing into polars through the C Data
//! Interface, with the partition columns (which Delta keeps out of the
//! files) added back from each file's partition values.

use super::data_file::DataFile;
use super::error::TableError;
use super::open::ModelTable;
use crate::lake::bridge::{BridgeError, batches_to_df};
use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
// ParquetObjectReader is deprecated in parquet 59 in favour of a hand-made
// AsyncFileReader; it still does what we need (ranged reads through the
// table's object store), so we keep it until deltalake moves on.
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::{
    ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use futures::{StreamExt, TryStreamExt};
use polars::prelude::{Column, DataFrame, Scalar};
use std::sync::Arc;

/// Files read at once by [`ModelTable::read`]: enough to keep every core
/// decoding, few enough that memory holds only a few files beyond the
/// result.
const READ_AHEAD: usize = 4;

impl ModelTable {
    /// Reads the whole table (optionally only some columns).
    pub async fn read_all(&self, columns: Option<&[&str]>) -> Result<DataFrame, TableError> {
        let files = self.files().await?;
        self.read(&files, columns).await
    }

    /// Reads `files` of this table into one DataFrame, in file order.
    pub async fn read(
        &self,
        files: &[DataFile],
        columns: Option<&[&str]>,
    ) -> Result<DataFrame, TableError> {
        let schema = match columns {
            Some(cols) => {
                let idx = cols
                    .iter()
                    .map(|c| {
                        self.schema.index_of(c).map_err(|_| {
                            TableError::Schema(format!("{} has no column `{c}`", self.name))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(self.schema.project(&idx)?)
            }
            None => self.schema.clone(),
        };
        // Strings and bytes are read as views, the layout polars holds
        // them in: the bridge then hands buffers over instead of
        // converting every value.
        let schema = as_views(&schema);
        let started = std::time::Instant::now();
        let store = self.table.log_store().object_store(None);
        let partition_by = Arc::new(self.partition_by.clone());
        // Each file is decoded in a task of its own: decoding (decompression
        // most of all) is CPU work, and futures buffered in this task would
        // all run on this one thread (a million bronze rows took 0.44 s on
        // one core of two). In file order, at most READ_AHEAD at a time.
        let batches: Vec<Vec<RecordBatch>> = futures::stream::iter(files.iter().cloned())
            .map(|f| {
                let (store, schema, partition_by) =
                    (store.clone(), schema.clone(), partition_by.clone());
                tokio::spawn(async move { read_file(store, f, schema, &partition_by).await })
            })
            .buffered(READ_AHEAD)
            .map(|joined| {
                joined.map_err(|e| TableError::Schema(format!("reading a file: task {e}")))?
            })
            .try_collect()
            .await?;
        let batches: Vec<RecordBatch> = batches.into_iter().flatten().collect();
        let df = batches_to_df(&batches, &schema)?;
        tracing::trace!(table = %self.name, files = files.len(), rows = df.height(), columns = schema.fields().len(), seconds = started.elapsed().as_secs_f64(), "read");
        Ok(constant_partitions(df, files, &self.partition_by)?)
    }
}

/// `schema` with its string and binary columns as views.
fn as_views(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                let ty = match f.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
                    DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
                    other => other.clone(),
                };
                Field::new(f.name(), ty, f.is_nullable())
            })
            .collect::<Vec<_>>(),
    ))
}

/// Reads one parquet file into batches of `schema`, adding the partition
/// columns from the file's partition values. String and binary columns of
/// the file are decoded straight into views.
#[allow(deprecated)] // ParquetObjectReader: see the imports
async fn read_file(
    store: Arc<dyn object_store::ObjectStore>,
    file: DataFile,
    schema: SchemaRef,
    partition_by: &[String],
) -> Result<Vec<RecordBatch>, TableError> {
    let path = deltalake::Path::from_url_path(&file.path)
        .map_err(|e| TableError::Schema(format!("bad file path {}: {e}", file.path)))?;
    let mut reader = ParquetObjectReader::new(store, path).with_file_size(file.size as u64);
    let plain = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await?;
    let viewed = ArrowReaderMetadata::try_new(
        plain.metadata().clone(),
        ArrowReaderOptions::new().with_schema(as_views(plain.schema())),
    )?;
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, viewed);
    let in_file: Vec<usize> = schema
        .fields()
        .iter()
        .filter(|f| !partition_by.contains(f.name()))
        .filter_map(|f| builder.schema().index_of(f.name()).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), in_file);
    let stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    let raw: Vec<RecordBatch> = stream.try_collect().await?;
    let mut out = Vec::with_capacity(raw.len());
    for b in raw {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = if partition_by.contains(field.name()) {
                let value = file.partition_values.get(field.name()).cloned().flatten();
                partition_column(field, value.as_deref(), b.num_rows())?
            } else if let Some(c) = b.column_by_name(field.name()) {
                if c.data_type() == field.data_type() {
                    c.clone()
                } else {
                    arrow::compute::cast(c, field.data_type())?
                }
            } else {
                // A nullable column added after this file was written.
                new_null_array(field.data_type(), b.num_rows())
            };
            columns.push(column);
        }
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(out)
}

/// `df` (rows of `files`) with each partition column that holds one value
/// in all of `files` as a scalar column: polars then groups, joins and
/// filters on it as the constant it is (an incremental aggregate
/// re-reading one day grouped by (driver, day) encoded the day into
/// every row's key).
fn constant_partitions(
    mut df: DataFrame,
    files: &[DataFile],
    partition_by: &[String],
) -> Result<DataFrame, BridgeError> {
    if df.height() == 0 {
        return Ok(df);
    }
    for p in partition_by {
        let Ok(column) = df.column(p) else {
            continue;
        };
        let first = files.first().and_then(|f| f.partition_values.get(p));
        if !files.iter().all(|f| f.partition_values.get(p) == first) {
            continue;
        }
        let value = column.get(0)?.into_static();
        let scalar = Scalar::new(column.dtype().clone(), value);
        let constant = Column::new_scalar(p.as_str().into(), scalar, df.height());
        df.with_column(constant)?;
    }
    Ok(df)
}

/// A constant column from a partition value as the log stores it (text).
fn partition_column(
    field: &Field,
    value: Option<&str>,
    rows: usize,
) -> Result<ArrayRef, TableError> {
    // The value is parsed once and then repeated: casting `rows` copies
    // of the text parsed a date per row (a tenth of re-reading a day).
    let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![value]));
    let one = match field.data_type() {
        DataType::Utf8 => text,
        other => arrow::compute::cast(&text, other)?,
    };
    let zeros = arrow::array::UInt32Array::from(vec![0u32; rows]);
    Ok(arrow::compute::take(&one, &zeros, None)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{DataType as PlType, IntoLazy, col, df};
    use std::collections::BTreeMap;

    fn file(day: Option<&str>) -> DataFile {
        DataFile {
            path: format!("event_date={}/part.parquet", day.unwrap_or("null")),
            partition_values: BTreeMap::from([("event_date".to_string(), day.map(String::from))]),
            size: 1,
            stats: None,
        }
    }

    #[test]
    fn a_partition_column_with_one_value_in_every_file_becomes_a_constant() {
        let rows = df!("id" => ["a", "b", "c"], "event_date" => ["2026-11-21"; 3])
            .unwrap()
            .lazy()
            .with_column(col("event_date").cast(PlType::Date))
            .collect()
            .unwrap();
        let day = Some("2026-11-21");
        let out = constant_partitions(
            rows.clone(),
            &[file(day), file(day)],
            &["event_date".into()],
        )
        .unwrap();
        let c = out.column("event_date").unwrap();
        assert!(matches!(c, Column::Scalar(_)), "not a constant: {c:?}");
        assert_eq!(c.dtype(), &PlType::Date);
        assert!(out.equals(&rows), "values changed: {out:?}");
    }

    #[test]
    fn a_partition_column_over_several_values_stays_as_read() {
        let rows = df!("id" => ["a", "b"], "event_date" => ["2026-11-21", "2026-11-22"]).unwrap();
        let files = [file(Some("2026-11-21")), file(Some("2026-11-22"))];
        let out = constant_partitions(rows.clone(), &files, &["event_date".into()]).unwrap();
        assert!(!matches!(
            out.column("event_date").unwrap(),
            Column::Scalar(_)
        ));
        assert!(out.equals(&rows));
        // One file with a null partition and one without: not one value.
        let files = [file(None), file(Some("2026-11-21"))];
        let out = constant_partitions(rows.clone(), &files, &["event_date".into()]).unwrap();
        assert!(!matches!(
            out.column("event_date").unwrap(),
            Column::Scalar(_)
        ));
    }
}
