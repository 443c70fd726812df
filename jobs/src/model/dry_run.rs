//! A SQL model's query run on empty inputs that have their models'
//! declared columns, and a cleaning model's `derive` on empty parsed
//! fields: `dag validate`'s check, without a lake, that they read only
//! columns that exist and a query returns every column the model declares
//! (found before, only by a run with data).

use super::Catalog;
use super::clean::derived;
use super::sql::{execute, inputs};
use crate::decl::{Model, Source};
use crate::lake::bridge::batch_to_df;
use crate::lake::table::{arrow_schema, arrow_type};
use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
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
    let names = match inputs(model, sql, asof) {
        Ok(n) => n,
        Err(e) => return Some(e.to_string()),
    };
    let mut frames = BTreeMap::new();
    for name in names {
        // An unknown input is the loader's to report.
        let columns = catalog.columns(&name).ok()?;
        let empty = RecordBatch::new_empty(arrow_schema(&columns));
        frames.insert(name, batch_to_df(&empty).ok()?);
    }
    execute(model, sql, asof, &frames)
        .err()
        .map(|e| e.to_string())
}
