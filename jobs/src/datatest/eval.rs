//! A test's evaluation: the table version it checks, the rows in scope
//! (the files committed after the test's base, or every file), and the
//! kind that judges them (one file each, under `kinds/`).
//!
//! Row-wise kinds become one SQL condition a failing row satisfies
//! (`where` AND the kind's condition), run by polars SQL on each chunk.
//! Statistics answer without reading when they can: a `not_null` whose
//! files record no nulls, a `row_count` or `freshness` without `where`.

pub use super::kinds::common::{Context, Findings};

use super::kinds;
use super::kinds::common::{Scope, Target, input_error};
use super::lock;
use super::results::Base;
use crate::decl::{DataTest, Model};
use crate::lake::table::{DataFile, ModelTable};
use crate::model::ModelError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a tester's tests read of each model, taken once per tester: its
/// table, its live files, the files in scope since each base. A tester's
/// tests all judge the version they first found (a task's: the version
/// its model left; `dag test`'s: one snapshot), and opening a table,
/// listing its files and reading what changed since a base cost 20-30 ms
/// each time, more than most tests' own reading (a fact's eight tests
/// paid them eight times in every continuous run).
///
/// A model may be pinned to a version first ([`Views::pin`]): its tests
/// then judge that version even when a newer one is there.
#[derive(Default)]
pub struct Views {
    opened: Mutex<HashMap<String, Arc<View>>>,
    pinned: Mutex<HashMap<String, i64>>,
}

struct View {
    table: ModelTable,
    all: Vec<DataFile>,
    /// By the base's version (`None`: no base).
    scopes: Mutex<HashMap<Option<i64>, Arc<Scope>>>,
}

impl Views {
    /// The tests of `model` judge `version`, not the latest: a task's tests
    /// judge what its run's load will publish. A newer version can be
    /// there by then: a scheduler stopped before its commit and taken
    /// over can still commit when it wakes, after the task that took
    /// over wrote its own version and before that task's tests opened the
    /// table; they judged the stray version and the load published one no
    /// test had passed.
    pub fn pin(&self, model: &str, version: i64) {
        lock(&self.pinned).insert(model.to_string(), version);
    }

    async fn view(&self, ctx: &Context<'_>, model: &str) -> Result<Arc<View>, ModelError> {
        if let Some(v) = lock(&self.opened).get(model) {
            return Ok(v.clone());
        }
        let mut table = ctx.catalog.open_input(model, ctx.settings).await?;
        let pinned = lock(&self.pinned).get(model).copied();
        if let Some(v) = pinned
            && table.version() != v
        {
            table = table.at_version(v).await?;
        }
        let all = table.files().await?;
        let view = Arc::new(View {
            table,
            all,
            scopes: Mutex::default(),
        });
        // Two tests of one model opening it at once: the first kept wins,
        // so both judge the same version.
        Ok(lock(&self.opened)
            .entry(model.to_string())
            .or_insert(view)
            .clone())
    }
}

impl View {
    async fn scope(&self, base: Option<&Base>) -> Result<Arc<Scope>, ModelError> {
        let key = base.map(|b| b.version);
        if let Some(s) = lock(&self.scopes).get(&key) {
            return Ok(s.clone());
        }
        let scope = Arc::new(Scope::new(&self.table, &self.all, base).await?);
        lock(&self.scopes).insert(key, scope.clone());
        Ok(scope)
    }
}

pub async fn evaluate(
    ctx: &Context<'_>,
    views: &Views,
    model: &Model,
    test: &DataTest,
    passes: &[Base],
) -> Result<Findings, ModelError> {
    let view = views.view(ctx, &model.name).await?;
    let table = &view.table;
    let version = table.version();
    let base = super::results::pick(passes, table.created_at(), version);
    let scope = view.scope(base.as_ref()).await?;
    let t = Target {
        model,
        test,
        table,
        all: &view.all,
        scope: &scope,
        base: base.as_ref(),
    };
    // Each kind reports the scope it read (`since_version`).
    let Some(kind) = kinds::find(test.kind.name()) else {
        let msg = format!("unknown test kind `{}`", test.kind.name());
        return Err(input_error(test, msg));
    };
    let mut out = (kind.check)(ctx, &t).await?;
    out.version = version;
    if let Some(since) = out.since_version
        && out.rows_checked == 0
        && out.failing == 0
    {
        out.message = format!("nothing committed since v{since}, where it passed");
    }
    Ok(out)
}
