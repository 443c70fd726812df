//! `not_null`: no row in scope has a null in the column.
//!
//! Reads the files committed since the test's base (every file without
//! one). Without `where`, the writers' statistics answer first: when every
//! file in scope records its null count and each is zero, nothing is read.
//! Otherwise the rows are read in chunks and `<column> IS NULL` (with the
//! `where`) counts the failing ones.

use super::common::{Context, Findings, Target, rowwise, stat};
use super::kind::{Check, KindDef, run};
use crate::decl::{Declaring, Kind, TestKind};
use crate::model::ModelError;

const NAME: &str = "not_null";

pub(crate) const KIND: KindDef = KindDef {
    name: NAME,
    options: &["column"],
    parse,
    check: run::<NotNull>,
};

/// `not_null` under a column, or `not_null: {column: c}` on the model.
#[derive(Debug, PartialEq)]
pub struct NotNull {
    pub column: String,
}

impl TestKind for NotNull {
    fn name(&self) -> &'static str {
        NAME
    }
    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }
}

fn parse(d: &mut Declaring) -> Option<Kind> {
    d.subject().map(|column| Kind::new(NotNull { column }))
}

impl Check for NotNull {
    async fn check(&self, ctx: &Context<'_>, t: &Target<'_>) -> Result<Findings, ModelError> {
        check(ctx, t, &self.column).await
    }
}

async fn check(ctx: &Context<'_>, t: &Target<'_>, column: &str) -> Result<Findings, ModelError> {
    // Without `where`, the writers' null counts answer when they say none.
    if t.test.filter.is_none() {
        let counted: Option<Vec<(u64, u64)>> = t
            .scope
            .files
            .iter()
            .map(|f| {
                Some((
                    stat(f, "numRecords", None)?,
                    stat(f, "nullCount", Some(column))?,
                ))
            })
            .collect();
        if let Some(counted) = counted {
            let rows: u64 = counted.iter().map(|c| c.0).sum();
            if counted.iter().all(|c| c.1 == 0) {
                return Ok(Findings {
                    since_version: t.scope.since,
                    rows_checked: rows,
                    message: format!("{rows} row(s): no nulls recorded in the file statistics"),
                    ..Findings::default()
                });
            }
        }
    }
    let cond = format!("{column} IS NULL");
    rowwise(ctx, t, &cond, &[column]).await
}
