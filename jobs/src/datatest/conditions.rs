//! The SQL a model's tests carry (an `expression`'s `sql:`, any test's
//! `where:`), planned at load against the model's declared columns by the
//! engine that will evaluate it: a misspelt column is reported at the
//! test's line by `dag validate` and every command that loads the
//! pipeline, not found only when a run has rows to check (an incremental
//! run with none reported the broken test as passing).

use super::kinds::expression::Expression;
use crate::decl::{DataTest, Model, Pos};
use crate::lake::bridge::empty_frame;
use crate::lake::table::arrow_schema;
use polars::prelude::*;
use polars::sql::SQLContext;

/// Each test of `model` whose SQL does not run on the model's declared
/// columns: where it is declared and what is wrong.
pub fn problems(model: &Model) -> Vec<(Pos, String)> {
    let with_sql: Vec<&DataTest> = model
        .tests
        .iter()
        .filter(|t| t.filter.is_some() || t.kind.get::<Expression>().is_some())
        .collect();
    if with_sql.is_empty() {
        return Vec::new();
    }
    let Ok(rows) = empty_frame(arrow_schema(&model.columns)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in with_sql {
        let parts = t
            .filter
            .iter()
            .map(|f| ("where", f.as_str()))
            .chain(t.kind.get::<Expression>().map(|e| ("sql", e.sql.as_str())));
        for (key, sql) in parts {
            if let Err(e) = plan(&rows, sql) {
                out.push((
                    t.pos.clone(),
                    format!(
                        "test `{}`: its `{key}:` ({sql}) does not run on {}'s columns: {}",
                        t.name,
                        model.name,
                        first_line(&e)
                    ),
                ));
            }
        }
    }
    out
}

/// Plans and runs `cond` as a filter over `rows` (no rows: only the
/// names and types are checked).
fn plan(rows: &DataFrame, cond: &str) -> PolarsResult<()> {
    let mut ctx = SQLContext::new();
    ctx.register("t", rows.clone().lazy());
    ctx.execute(&format!("SELECT * FROM t WHERE ({cond})"))?
        .collect()
        .map(|_| ())
}

/// polars' message without the plan it appends after a blank line.
fn first_line(e: &PolarsError) -> String {
    let text = e.to_string();
    text.split("\n\n")
        .next()
        .unwrap_or(&text)
        .trim()
        .to_string()
}
