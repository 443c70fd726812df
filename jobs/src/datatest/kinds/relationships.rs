//! `relationships`: every non-null value of the column is a value of a
//! field of another model (a foreign key).
//!
//! Reads the other model's field whole (its distinct values), then the
//! rows committed since the test's base in chunks. Rows checked before
//! stay valid only while the parent keeps its keys: when it lost any
//! since the version the base compared with (or was rebuilt since), the
//! test reads every row again and says so.

use super::common::{
    Context, Findings, KeyedFilter, Target, add_sample, chunks, needed_columns, select,
};
use super::kind::{Check, KindDef, run};
use crate::decl::{Declaring, Kind, TestKind};
use crate::lake::table::ModelTable;
use crate::model::ModelError;
use polars::prelude::*;

const NAME: &str = "relationships";

pub(crate) const KIND: KindDef = KindDef {
    name: NAME,
    options: &["column", "to", "field"],
    parse,
    check: run::<Relationships>,
};

/// `relationships: {to: model, field: column}`: a foreign key.
#[derive(Debug, PartialEq)]
pub struct Relationships {
    pub column: String,
    pub to: String,
    pub field: String,
}

impl TestKind for Relationships {
    fn name(&self) -> &'static str {
        NAME
    }
    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }
    fn reads(&self) -> Vec<String> {
        vec![self.to.clone()]
    }
}

/// The target model is mentioned (not read as an input) and its field is
/// a column of that model, both for the loader to check.
fn parse(d: &mut Declaring) -> Option<Kind> {
    let column = d.subject();
    if !d.has("to") || !d.has("field") {
        d.fail("a `relationships` test needs `to:` (a model) and `field:` (its column)");
        return None;
    }
    let (to, field) = (d.text("to"), d.text("field"));
    let (column, (to, field)) = column.zip(to.zip(field))?;
    d.mention(&to, d.pos("to"));
    d.foreign_column(&to, &field, d.pos("field"));
    Some(Kind::new(Relationships { column, to, field }))
}

impl Check for Relationships {
    async fn check(&self, ctx: &Context<'_>, t: &Target<'_>) -> Result<Findings, ModelError> {
        check(ctx, t, &self.column, &self.to, &self.field).await
    }
}

async fn check(
    ctx: &Context<'_>,
    t: &Target<'_>,
    column: &str,
    to: &str,
    field: &str,
) -> Result<Findings, ModelError> {
    let parent = ctx.catalog.open_input(to, ctx.settings).await?;
    let parent_files = parent.files().await?;
    let keys = parent
        .read(&parent_files, Some(&[field]))
        .await?
        .lazy()
        .select([col(field).alias(column)])
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?;
    // Rows already checked stay valid while the parent only gains keys; a
    // parent that lost keys since the check sends the test over the rows
    // that may point at them (every row, unless none was lost).
    let mut files = t.scope.files.clone();
    let mut since = t.scope.since;
    if let (Some(_), Some(b)) = (since, t.base) {
        // A parent rebuilt since the check (created after it) shares
        // nothing with the version compared then.
        let same_parent = parent
            .created_at()
            .is_none_or(|ms| b.tested_at >= ms.saturating_mul(1000));
        let stands = match b.compared_version {
            Some(pv) if pv <= parent.version() && same_parent => {
                !lost_keys(&parent, pv, field, &keys, column).await?
            }
            _ => false,
        };
        if !stands {
            files = t.all.to_vec();
            since = None;
        }
    }
    let needed = needed_columns(t.model, t.table, t.test, &[column], "")?;
    let cols: Vec<&str> = needed.iter().map(String::as_str).collect();
    let mut out = Findings {
        compared_version: Some(parent.version()),
        ..Findings::default()
    };
    for chunk in chunks(&files) {
        let rows = t.table.read(chunk, Some(&cols)).await?;
        out.rows_checked += rows.height() as u64;
        let rows = select(rows, t.test, &format!("{column} IS NOT NULL"))?;
        let orphans = rows.lazy().anti_on(keys.clone(), [col(column)]).collect()?;
        out.failing += orphans.height() as u64;
        add_sample(&mut out.sample, &orphans, ctx.opts.sample_rows);
    }
    out.message = if out.failing == 0 {
        format!(
            "{} row(s) checked, each {column} in {to}.{field}",
            out.rows_checked
        )
    } else {
        format!(
            "{} row(s) have a {column} that {to}.{field} does not hold",
            out.failing
        )
    };
    // The scope may have widened; the caller reports this one.
    if since.is_none() && t.scope.since.is_some() {
        out.message += " (the parent lost keys since the last check: every row checked)";
    }
    out.since_version = since;
    Ok(out)
}

/// Whether `parent` lost any `field` value after version `since` (the
/// values of files removed since then that its current rows lack). A
/// removed file that is gone counts as a loss.
async fn lost_keys(
    parent: &ModelTable,
    since: i64,
    field: &str,
    current: &DataFrame,
    alias: &str,
) -> Result<bool, ModelError> {
    let Ok(changes) = parent.changes(since).await else {
        return Ok(true);
    };
    if changes.removed.is_empty() {
        return Ok(false);
    }
    let Ok(old) = parent.read(&changes.removed, Some(&[field])).await else {
        return Ok(true);
    };
    let lost = old
        .lazy()
        .select([col(field).alias(alias)])
        .filter(col(alias).is_not_null())
        .anti_on(current.clone(), [col(alias)])
        .collect()?;
    Ok(lost.height() > 0)
}
