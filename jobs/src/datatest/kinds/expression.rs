//! `expression`: every row in scope satisfies a SQL boolean expression.
//!
//! Reads the files committed since the test's base (every file without
//! one), in chunks, with only the columns the expression and the `where`
//! name. A row whose expression is NULL fails: an unknown is not a pass.

use super::common::{Context, Findings, Target, rowwise};
use super::kind::{Check, KindDef, run};
use crate::decl::{Declaring, Kind, TestKind};
use crate::model::ModelError;

const NAME: &str = "expression";

pub(crate) const KIND: KindDef = KindDef {
    name: NAME,
    options: &["sql"],
    parse,
    check: run::<Expression>,
};

/// `expression: {sql: "..."}`: a SQL boolean every row must satisfy.
#[derive(Debug, PartialEq)]
pub struct Expression {
    pub sql: String,
}

impl TestKind for Expression {
    fn name(&self) -> &'static str {
        NAME
    }
}

fn parse(d: &mut Declaring) -> Option<Kind> {
    if !d.has("sql") {
        d.fail("an `expression` test needs `sql:` (a boolean every row must satisfy)");
        return None;
    }
    let sql = d.text("sql")?;
    if sql.trim().is_empty() {
        d.fail_at(
            "sql",
            "`sql:` is empty: write a boolean every row must satisfy",
        );
        return None;
    }
    Some(Kind::new(Expression { sql }))
}

impl Check for Expression {
    async fn check(&self, ctx: &Context<'_>, t: &Target<'_>) -> Result<Findings, ModelError> {
        let cond = format!("NOT COALESCE(({}), FALSE)", self.sql);
        rowwise(ctx, t, &cond, &[]).await
    }
}
