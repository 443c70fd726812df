//! A SQL model's query run on empty inputs that have their models'
//! declared columns: `dag validate`'s check, without a lake, that the
//! query reads only columns its inputs declare and returns every column
//! the model declares (found before, only by a run with data).

use super::Catalog;
use super::sql::{execute, inputs};
use crate::decl::{Model, Source};
use crate::lake::bridge::batch_to_df;
use crate::lake::table::arrow_schema;
use arrow::array::RecordBatch;
use std::collections::BTreeMap;

/// What is wrong with `model`'s query on empty inputs (`None`: it runs,
/// or the model is not a SQL one).
pub fn problem(model: &Model, catalog: &Catalog) -> Option<String> {
    let Source::Sql { sql, asof, .. } = &model.source else {
        return None;
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
