//! A SQL model's query run on empty inputs that have their models'
//! declared columns, and a cleaning model's `derive` on empty parsed
//! fields: `dag validate`'s check, without a lake, that they read only
//! columns that exist and a query returns every column the model declares
//! (found before, only by a run with data).

use super::Catalog;
use super::clean::derived;
use super::sql::{inputs, query};
use crate::decl::{AsofJoin, Model, Source};
use crate::lake::bridge::batch_to_df;
use crate::lake::table::{arrow_schema, arrow_type};
use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use polars::prelude::DataFrame;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What is wrong with `model`'s query on empty inputs (`None`: it runs,
/// or the model is not a SQL one).
pub fn problem(model: &Model, catalog: &Catalog) -> Option<String> {
    let (sql, asof) = match &model.source {
        Source::Sql { sql, asof, .. } => (sql, asof),
        Source::Clean { fields, derive, .. } => {
            let schema = Schema::new(
                fields
                    .iter()
                    .map(|f| Field::new(&f.name, arrow_type(f.column), true))
                    .collect::<Vec<_>>(),
            );
            let parsed = batch_to_df(&RecordBatch::new_empty(Arc::new(schema))).ok()?;
            return derived(parsed, derive, &model.name)
                .err()
                .map(|e| e.to_string());
        }
        _ => return None,
    };
    if let Err(e) = inputs(model, sql, asof) {
        return Some(e.to_string());
    }
    // An unknown input is the loader's to report.
    let frames = empty_inputs(model, sql, asof, catalog)?;
    query(model, sql, asof, &frames)
        .err()
        .map(|e| e.to_string())
}

/// The columns `model`'s query returns on empty inputs that the model does
/// not declare: a run drops them (`dag validate` warns).
pub fn undeclared(model: &Model, catalog: &Catalog) -> Vec<String> {
    let Source::Sql { sql, asof, .. } = &model.source else {
        return Vec::new();
    };
    let Some(frames) = empty_inputs(model, sql, asof, catalog) else {
        return Vec::new();
    };
    let Ok(df) = query(model, sql, asof, &frames) else {
        return Vec::new();
    };
    df.get_column_names()
        .into_iter()
        .filter(|c| model.column(c).is_none())
        .map(|c| c.to_string())
        .collect()
}

/// An empty frame, with its declared columns, for each input of the
/// query (`None` if one is not a model of the catalog).
fn empty_inputs(
    model: &Model,
    sql: &str,
    asof: &[AsofJoin],
    catalog: &Catalog,
) -> Option<BTreeMap<String, DataFrame>> {
    let mut frames = BTreeMap::new();
    for name in inputs(model, sql, asof).ok()? {
        let columns = catalog.columns(&name).ok()?;
        let empty = RecordBatch::new_empty(arrow_schema(&columns));
        frames.insert(name, batch_to_df(&empty).ok()?);
    }
    Some(frames)
}
