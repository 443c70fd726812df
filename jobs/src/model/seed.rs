//! Seeds: a reference CSV from the data folder into a silver table, typed
//! as declared, with its key checked. The file's content hash rides in the
//! commit (app id `file:<name>`): an unchanged file is not reloaded, a
//! changed one replaces the table in one commit.

use super::{Catalog, ModelError, ModelReport, RunSettings, write};
use crate::decl::{ColumnType, Model};
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};

pub async fn run(
    model: &Model,
    file: &str,
    catalog: &Catalog,
    s: &RunSettings,
) -> Result<ModelReport, ModelError> {
    let path = s.data_dir.join(file);
    let bytes = std::fs::read(&path)
        .map_err(|e| ModelError::Input(format!("seed {}: {}: {e}", model.name, path.display())))?;
    let app_id = format!("file:{file}");
    let hash = content_hash(&bytes);
    let mut table = catalog.open_output(&model.name, s).await?;
    let mut report = ModelReport::default();
    if !s.full_refresh && table.txn(&app_id).await? == Some(hash) {
        report.note = Some(format!("{file} is unchanged"));
        return Ok(report);
    }
    let df = load(model, &path.display().to_string(), &bytes)?;
    report.rows_in = df.height() as u64;
    let written = write::overwrite(&mut table, &df, &BTreeMap::from([(app_id, hash)])).await?;
    report.rows_out = written.rows;
    report.version = Some(written.version);
    Ok(report)
}

/// FNV-1a over the bytes, as a non-negative txn version. Stable across
/// builds and platforms (std's hasher is not).
pub fn content_hash(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h & i64::MAX as u64) as i64
}

/// Parses and checks a seed file: the declared columns must be in the
/// header; values must cast to their types; non-nullable columns must be
/// filled; the unique key must not repeat. Errors name the file and line.
pub fn load(model: &Model, file: &str, bytes: &[u8]) -> Result<DataFrame, ModelError> {
    let err = |msg: String| ModelError::Input(format!("seed {}: {file}{msg}", model.name));
    let raw = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes.to_vec()))
        .finish()
        .map_err(|e| err(format!(": not a readable CSV: {e}")))?;
    // Line of data row i: the header is line 1.
    let line = |i: usize| i + 2;
    let mut columns = Vec::with_capacity(model.columns.len());
    for c in &model.columns {
        let text = raw.column(&c.name).map_err(|_| {
            let have: Vec<String> = raw
                .get_column_names()
                .iter()
                .map(|n| n.to_string())
                .collect();
            err(format!(
                ":1: no column `{}` in the header (it has {})",
                c.name,
                have.join(", ")
            ))
        })?;
        let text = text.as_materialized_series().str()?.clone();
        // Empty fields are missing values.
        let text: StringChunked = text.apply(|v| {
            v.filter(|s| !s.trim().is_empty())
                .map(std::borrow::Cow::Borrowed)
        });
        let typed = cast_text(&text.into_series(), c.ty)?;
        if let Some(i) = first_failed_cast(&text_nulls(&typed, &raw, &c.name)?) {
            let v = raw
                .column(&c.name)?
                .as_materialized_series()
                .str()?
                .get(i)
                .unwrap_or("");
            return Err(err(format!(
                ":{}: column `{}`: `{v}` is not a {}",
                line(i),
                c.name,
                c.ty
            )));
        }
        if !c.nullable
            && let Some(i) = typed.is_null().iter().position(|n| n == Some(true))
        {
            return Err(err(format!(
                ":{}: column `{}` is empty (declared nullable: false)",
                line(i),
                c.name
            )));
        }
        columns.push(typed.with_name(c.name.as_str().into()).into_column());
    }
    let df = DataFrame::new(raw.height(), columns)?;
    if let Some(key) = model.unique_key.first().map(|_| &model.unique_key) {
        let mut seen: HashMap<Vec<String>, usize> = HashMap::new();
        let key_cols: Vec<Series> = key
            .iter()
            .map(|k| {
                df.column(k)
                    .and_then(|c| c.as_materialized_series().cast(&DataType::String))
            })
            .collect::<Result<_, _>>()?;
        for i in 0..df.height() {
            let k: Vec<String> = key_cols
                .iter()
                .map(|s| {
                    s.str()
                        .ok()
                        .and_then(|s| s.get(i))
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            if let Some(first) = seen.insert(k.clone(), i) {
                return Err(err(format!(
                    ":{}: key ({}) = ({}) repeats line {}",
                    line(i),
                    key.join(", "),
                    k.join(", "),
                    line(first)
                )));
            }
        }
    }
    Ok(df)
}

fn cast_text(s: &Series, ty: ColumnType) -> Result<Series, ModelError> {
    let dtype = match ty {
        ColumnType::String => return Ok(s.clone()),
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        // Parsed here (ISO dates): polars' string-to-date cast is
        // deprecated and says so on the user's terminal.
        ColumnType::Date => {
            let days: Int32Chunked = s
                .str()?
                .iter()
                .map(|t| {
                    let d = chrono::NaiveDate::parse_from_str(t?.trim(), "%Y-%m-%d").ok()?;
                    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
                    i32::try_from((d - epoch).num_days()).ok()
                })
                .collect();
            return Ok(days
                .into_series()
                .with_name(s.name().clone())
                .cast(&DataType::Date)?);
        }
        ColumnType::Timestamp => DataType::Datetime(TimeUnit::Microseconds, None),
        ColumnType::Decimal { precision, scale } => {
            DataType::Decimal(precision as usize, scale as usize)
        }
        ColumnType::Binary => DataType::Binary,
    };
    Ok(s.cast(&dtype)?)
}

/// Per row: the text was present but its cast is null.
fn text_nulls(typed: &Series, raw: &DataFrame, name: &str) -> Result<Vec<bool>, ModelError> {
    let text = raw.column(name)?.as_materialized_series().str()?.clone();
    Ok(text
        .iter()
        .zip(typed.is_null().iter())
        .map(|(t, null)| t.is_some_and(|t| !t.trim().is_empty()) && null == Some(true))
        .collect())
}

fn first_failed_cast(failed: &[bool]) -> Option<usize> {
    failed.iter().position(|f| *f)
}
