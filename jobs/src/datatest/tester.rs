//! Running a set of tests against the lake: each from its base (the last
//! clean pass on record), the results gathered and appended in one commit.

use super::{Options, Status, TestResult, eval, lock, results};
use crate::decl::{DataTest, Model, Severity};
use crate::model::{Catalog, ModelError, RunSettings};
use chrono::Utc;
use std::sync::Mutex;
use std::time::Instant;

/// Runs tests against the lake, keeping each test's base from the results
/// table; [`Tester::finish`] appends what ran. Shared by reference: a run
/// evaluates tests of independent models at the same time.
pub struct Tester {
    catalog: Catalog,
    settings: RunSettings,
    opts: Options,
    bases: Mutex<results::Bases>,
    ran: Mutex<Vec<TestResult>>,
    /// The tables its tests read, opened once.
    views: eval::Views,
}

impl Tester {
    pub async fn new(
        catalog: Catalog,
        settings: RunSettings,
        opts: Options,
    ) -> Result<Self, ModelError> {
        let bases = results::Bases::read(&settings).await?;
        Ok(Self {
            catalog,
            settings,
            opts,
            bases: Mutex::new(bases),
            ran: Mutex::new(Vec::new()),
            views: eval::Views::default(),
        })
    }

    /// A tester that starts from `bases` (read earlier in this process)
    /// instead of reading them from the results table.
    pub fn with_bases(
        catalog: Catalog,
        settings: RunSettings,
        opts: Options,
        bases: results::Bases,
    ) -> Self {
        Self {
            catalog,
            settings,
            opts,
            bases: Mutex::new(bases),
            ran: Mutex::new(Vec::new()),
            views: eval::Views::default(),
        }
    }

    /// Its tests of `model` judge `version` (see [`eval::Views::pin`]);
    /// before the first test of `model` runs.
    pub fn pin(&self, model: &str, version: i64) {
        self.views.pin(model, version);
    }

    /// The bases as they are now (with the passes of this tester's tests).
    pub fn bases(&self) -> results::Bases {
        lock(&self.bases).clone()
    }

    /// Runs one declared test of `model`; a test that cannot run is an
    /// `Error` result, not an `Err`.
    pub async fn run(&self, model: &Model, test: &DataTest) -> TestResult {
        let started = Instant::now();
        let passes = if self.opts.full {
            Vec::new()
        } else {
            lock(&self.bases).passes(&test.name)
        };
        let ctx = eval::Context {
            catalog: &self.catalog,
            settings: &self.settings,
            opts: &self.opts,
        };
        let mut result = match eval::evaluate(&ctx, &self.views, model, test, &passes).await {
            Ok(o) => judge(model, test, o),
            Err(e) => TestResult {
                status: Status::Error,
                message: e.to_string(),
                ..blank(model, test)
            },
        };
        result.seconds = started.elapsed().as_secs_f64();
        if result.status == Status::Pass && result.failing == 0 {
            lock(&self.bases).passed(
                &test.name,
                results::Base {
                    version: result.version,
                    compared_version: result.compared_version,
                    tested_at: self.opts.clock.max(Utc::now()).timestamp_micros(),
                },
            );
        }
        lock(&self.ran).push(result.clone());
        result
    }

    /// The results, without recording them (the caller appends them
    /// later, with others, in one commit).
    pub fn into_results(self) -> Vec<TestResult> {
        self.ran.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends every result to the results table, in one commit.
    pub async fn finish(self, run_id: &str) -> Result<Vec<TestResult>, ModelError> {
        let ran = self.ran.into_inner().unwrap_or_else(|e| e.into_inner());
        results::append(
            &self.settings,
            run_id,
            self.opts.clock,
            &ran,
            Some(self.catalog.tables()),
        )
        .await?;
        Ok(ran)
    }
}

fn blank(model: &Model, test: &DataTest) -> TestResult {
    TestResult {
        test: test.name.clone(),
        model: model.name.clone(),
        kind: test.kind.name().to_string(),
        severity: match test.severity {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
        .to_string(),
        columns: test.kind.columns(),
        version: -1,
        since_version: None,
        compared_version: None,
        rows_checked: 0,
        status: Status::Pass,
        failing: 0,
        seconds: 0.0,
        message: String::new(),
        sample: Vec::new(),
        declared_at: test.pos.to_string(),
    }
}

/// The status from the failing count, the severity and the thresholds, as
/// dbt decides it: `error_if` (default `!= 0`) fails an error-severity
/// test, else `warn_if` (default `!= 0`) warns.
fn judge(model: &Model, test: &DataTest, o: eval::Findings) -> TestResult {
    let nonzero = crate::decl::Threshold {
        op: crate::decl::CmpOp::Ne,
        value: 0,
    };
    let error_if = test.error_if.unwrap_or(nonzero);
    let warn_if = test.warn_if.unwrap_or(nonzero);
    let status = if test.severity == Severity::Error && error_if.holds(o.failing) {
        Status::Fail
    } else if warn_if.holds(o.failing) {
        Status::Warn
    } else {
        Status::Pass
    };
    TestResult {
        version: o.version,
        since_version: o.since_version,
        compared_version: o.compared_version,
        rows_checked: o.rows_checked,
        status,
        failing: o.failing,
        message: o.message,
        sample: o.sample,
        ..blank(model, test)
    }
}
