//! `accepted_values`: every non-null value of the column in scope is one
//! of a list, or within a range.
//!
//! Reads the files committed since the test's base (every file without
//! one), in chunks; the values become one SQL condition a failing row
//! satisfies. Nulls pass, as in dbt (`not_null` is the test for them).

use super::common::{Context, Outcome, Target, input_error, rowwise};
use crate::decl::{Allowed, Bound, ColumnType, DataTest, Model};
use crate::model::ModelError;

pub(crate) async fn check(
    ctx: &Context<'_>,
    t: &Target<'_>,
    column: &str,
    allowed: &Allowed,
) -> Result<Outcome, ModelError> {
    let ty = column_type(t.model, t.test, column)?;
    let cond = not_accepted(column, ty, allowed);
    rowwise(ctx, t, &cond, &[column]).await
}

fn column_type(model: &Model, test: &DataTest, column: &str) -> Result<ColumnType, ModelError> {
    model.column(column).map(|c| c.ty).ok_or_else(|| {
        input_error(
            test,
            format!("model {} has no column `{column}`", model.name),
        )
    })
}

/// `column` is set and not among the allowed values (nulls pass, as in dbt).
fn not_accepted(column: &str, ty: ColumnType, allowed: &Allowed) -> String {
    match allowed {
        Allowed::Values(values) => {
            let numeric = !matches!(ty, ColumnType::String | ColumnType::Binary)
                && values.iter().all(|v| v.parse::<f64>().is_ok());
            let list: Vec<String> = values
                .iter()
                .map(|v| {
                    if numeric {
                        v.clone()
                    } else {
                        format!("'{}'", v.replace('\'', "''"))
                    }
                })
                .collect();
            let subject = if numeric || ty == ColumnType::String {
                column.to_string()
            } else {
                format!("CAST({column} AS VARCHAR)")
            };
            format!(
                "{column} IS NOT NULL AND {subject} NOT IN ({})",
                list.join(", ")
            )
        }
        Allowed::Range(r) => {
            let mut inside = Vec::new();
            match r.low {
                Bound::Inclusive(v) => inside.push(format!("{column} >= {v}")),
                Bound::Exclusive(v) => inside.push(format!("{column} > {v}")),
                Bound::Unbounded => {}
            }
            match r.high {
                Bound::Inclusive(v) => inside.push(format!("{column} <= {v}")),
                Bound::Exclusive(v) => inside.push(format!("{column} < {v}")),
                Bound::Unbounded => {}
            }
            if inside.is_empty() {
                "FALSE".to_string()
            } else {
                format!("{column} IS NOT NULL AND NOT ({})", inside.join(" AND "))
            }
        }
    }
}
