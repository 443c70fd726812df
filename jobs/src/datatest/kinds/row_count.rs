//! `row_count`: the table's rows (with `where`: those it keeps) are at
//! least a minimum, at most a maximum, or as many as another model's.
//!
//! Always over every file, not only those since a base: a count is of the
//! whole table. Without `where`, the Delta statistics' record counts
//! answer when every file has them; otherwise the rows are read in chunks,
//! with only the columns the `where` names.

use super::common::{Context, Findings, Target, chunks, columns_in, input_error, stat};
use super::kind::{Check, KindDef, run};
use crate::decl::{DataTest, Declaring, Kind, TestKind};
use crate::lake::table::{DataFile, ModelTable};
use crate::model::ModelError;
use polars::prelude::*;
use polars::sql::SQLContext;

const NAME: &str = "row_count";

pub(crate) const KIND: KindDef = KindDef {
    name: NAME,
    options: &["min", "max", "equal_to"],
    parse,
    check: run::<RowCount>,
};

/// `row_count: {min: 1, max: 10}` or `{equal_to: {model: m, where: ".."}}`.
#[derive(Debug, PartialEq)]
pub struct RowCount {
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub equal_to: Option<CountOf>,
}

/// `equal_to:`: the rows of another model (with its own `where`).
#[derive(Clone, Debug, PartialEq)]
pub struct CountOf {
    pub model: String,
    pub filter: Option<String>,
}

impl TestKind for RowCount {
    fn name(&self) -> &'static str {
        NAME
    }
    fn reads(&self) -> Vec<String> {
        self.equal_to.iter().map(|c| c.model.clone()).collect()
    }
}

/// Bounds, or the count of another model (mentioned, not read).
fn parse(d: &mut Declaring) -> Option<Kind> {
    if !d.has("min") && !d.has("max") && !d.has("equal_to") {
        d.fail("a `row_count` test needs `min:`, `max:` or `equal_to:`");
        return None;
    }
    let (min, max) = (d.count("min"), d.count("max"));
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        d.fail(format!("`row_count` min {lo} is above max {hi}"));
    }
    let mut equal_to = None;
    if d.has("equal_to") {
        let mut fields = d.fields("equal_to", &["model", "where"])?;
        let Some((model, pos)) = fields.remove("model") else {
            d.fail_at(
                "equal_to",
                "`equal_to:` needs `model:` (the model to count)",
            );
            return None;
        };
        d.mention(&model, pos);
        let filter = fields.remove("where").map(|(w, _)| w);
        equal_to = Some(CountOf { model, filter });
    }
    Some(Kind::new(RowCount { min, max, equal_to }))
}

impl Check for RowCount {
    async fn check(&self, ctx: &Context<'_>, t: &Target<'_>) -> Result<Findings, ModelError> {
        check(ctx, t, self.min, self.max, self.equal_to.as_ref()).await
    }
}

/// Rows of a table (with an optional `where`), from the statistics when
/// they suffice.
async fn count_rows(
    table: &ModelTable,
    files: &[DataFile],
    filter: Option<&str>,
    test: &DataTest,
) -> Result<u64, ModelError> {
    if filter.is_none()
        && let Some(n) = files
            .iter()
            .map(|f| stat(f, "numRecords", None))
            .sum::<Option<u64>>()
    {
        return Ok(n);
    }
    let mut columns = columns_in(table, filter, test)?;
    if columns.is_empty() {
        // Some column is needed to count rows: the narrowest first one.
        columns.push(table.schema().field(0).name().clone());
    }
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut n = 0;
    for chunk in chunks(files) {
        let df = table.read(chunk, Some(&cols)).await?;
        n += match filter {
            Some(f) => {
                let mut ctx = SQLContext::new();
                ctx.register("t", df.lazy());
                ctx.execute(&format!("SELECT * FROM t WHERE {f}"))
                    .and_then(|lf| lf.collect())
                    .map_err(|e| input_error(test, e))?
                    .height() as u64
            }
            None => df.height() as u64,
        };
    }
    Ok(n)
}

async fn check(
    ctx: &Context<'_>,
    t: &Target<'_>,
    min: Option<u64>,
    max: Option<u64>,
    equal_to: Option<&CountOf>,
) -> Result<Findings, ModelError> {
    let test = t.test;
    let n = count_rows(t.table, t.all, test.filter.as_deref(), test).await?;
    let mut out = Findings {
        rows_checked: n,
        ..Findings::default()
    };
    let mut problems = Vec::new();
    if let Some(lo) = min
        && n < lo
    {
        problems.push(format!("{n} row(s), fewer than the minimum {lo}"));
    }
    if let Some(hi) = max
        && n > hi
    {
        problems.push(format!("{n} row(s), more than the maximum {hi}"));
    }
    if let Some(other) = equal_to {
        let o = ctx.catalog.open_input(&other.model, ctx.settings).await?;
        let files = o.files().await?;
        let m = count_rows(&o, &files, other.filter.as_deref(), test).await?;
        out.compared_version = Some(o.version());
        if m != n {
            problems.push(format!("{n} row(s), but {} has {m}", other.model));
        }
    }
    out.failing = u64::from(!problems.is_empty());
    out.message = if problems.is_empty() {
        format!("{n} row(s)")
    } else {
        problems.join("; ")
    };
    Ok(out)
}
