//! A SQL model's query run on empty inputs that have their models'
//! declared columns, and a cleaning model's `derive` on empty parsed
//! fields: `dag validate`'s check, without a lake, that they read only
//! columns that exist and a query returns every column the model declares
//! (found before, only by a run with data).

use super::Catalog;
use super::clean::derived;
use super::sql::{inputs, query};
use crate::decl::{Model, Source};
use crate::lake::bridge::empty_frame;
use crate::lake::table::{arrow_schema, arrow_type};
use arrow::datatypes::{Field, Schema};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What one dry run of a model found.
#[derive(Debug, Default)]
pub struct DryRun {
    /// Why the query (or `derive`) does not run.
    pub problem: Option<String>,
    /// Columns the query returns that the model does not declare: a run
    /// drops them.
    pub undeclared: Vec<String>,
}

/// `model`'s query (or `derive`) on empty inputs; nothing for other kinds,
/// or when an input is not a model of the catalog (the loader reports it).
pub fn dry_run(model: &Model, catalog: &Catalog) -> DryRun {
    let failed = |e: String| DryRun {
        problem: Some(e),
        ..DryRun::default()
    };
    let (sql, asof) = match &model.source {
        Source::Sql { sql, asof, .. } => (sql, asof),
        Source::Clean { fields, derive, .. } => {
            let schema = Schema::new(
                fields
                    .iter()
                    .map(|f| Field::new(&f.name, arrow_type(f.column), true))
                    .collect::<Vec<_>>(),
            );
            return match empty_frame(Arc::new(schema)).map(|p| derived(p, derive, &model.name)) {
                Ok(Err(e)) => failed(e.to_string()),
                _ => DryRun::default(),
            };
        }
        _ => return DryRun::default(),
    };
    let names = match inputs(model, sql, asof) {
        Ok(n) => n,
        Err(e) => return failed(e.to_string()),
    };
    let mut frames = BTreeMap::new();
    for name in names {
        let Some(empty) = catalog
            .columns(&name)
            .ok()
            .and_then(|c| empty_frame(arrow_schema(&c)).ok())
        else {
            return DryRun::default();
        };
        frames.insert(name, empty);
    }
    match query(model, sql, asof, &frames) {
        Err(e) => failed(e.to_string()),
        Ok(df) => DryRun {
            problem: None,
            undeclared: df
                .get_column_names()
                .into_iter()
                .filter(|c| model.column(c).is_none())
                .map(|c| c.to_string())
                .collect(),
        },
    }
}
