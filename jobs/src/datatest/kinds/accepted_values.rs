//! `accepted_values`: every non-null value of the column in scope is one
//! of a list, or within a range.
//!
//! Reads the files committed since the test's base (every file without
//! one), in chunks; the values become one SQL condition a failing row
//! satisfies. Nulls pass, as in dbt (`not_null` is the test for them).

use super::common::{Context, Findings, Target, input_error, rowwise};
use super::kind::{Check, KindDef, run};
use crate::decl::{Bound, ColumnType, DataTest, Declaring, Interval, Kind, Model, TestKind};
use crate::model::ModelError;

const NAME: &str = "accepted_values";

pub(crate) const KIND: KindDef = KindDef {
    name: NAME,
    options: &["column", "values", "range"],
    parse,
    check: run::<AcceptedValues>,
};

/// `accepted_values: {values: [..]}` or `{range: "[low, high]"}`.
#[derive(Debug, PartialEq)]
pub struct AcceptedValues {
    pub column: String,
    pub allowed: Allowed,
}

/// The values an `accepted_values` test allows.
#[derive(Clone, Debug, PartialEq)]
pub enum Allowed {
    Values(Vec<String>),
    Range(Interval),
}

impl TestKind for AcceptedValues {
    fn name(&self) -> &'static str {
        NAME
    }
    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }
}

fn parse(d: &mut Declaring) -> Option<Kind> {
    let column = d.subject();
    let allowed = match (d.has("values"), d.has("range")) {
        (true, false) => match d.texts("values") {
            Some(v) if v.is_empty() => {
                d.fail_at("values", "`values:` is empty: list the accepted values");
                None
            }
            v => v.map(|v| Allowed::Values(v.into_iter().map(|(t, _)| t).collect())),
        },
        (false, true) => {
            let text = d.text("range")?;
            Interval::parse(&text)
                .map(Allowed::Range)
                .map_err(|e| d.fail_at("range", e))
                .ok()
        }
        _ => {
            d.fail(
                "an `accepted_values` test needs either `values: [..]` or `range: \"[low, high]\"`",
            );
            None
        }
    };
    let (column, allowed) = column.zip(allowed)?;
    Some(Kind::new(AcceptedValues { column, allowed }))
}

impl Check for AcceptedValues {
    async fn check(&self, ctx: &Context<'_>, t: &Target<'_>) -> Result<Findings, ModelError> {
        let ty = column_type(t.model, t.test, &self.column)?;
        let cond = not_accepted(&self.column, ty, &self.allowed);
        rowwise(ctx, t, &cond, &[&self.column]).await
    }
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
