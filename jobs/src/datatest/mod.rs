//! Data tests: the checks a model's YAML declares (`tests:`), run on the
//! table version a run just wrote, before anything downstream of it or the
//! warehouse sees it (write-audit-publish).
//!
//! Results are data: every result is appended to the results table
//! (`<lake>/_dag/test_results`) with the Delta version it tested. The last
//! version at which a test passed with no failing row is its *base*: the
//! next check of a row-wise kind (not_null, accepted_values, expression,
//! relationships, unique) reads only the files committed after the base,
//! so a test costs what the new data costs; and since a failure does not
//! move the base, it keeps failing until the rows that caused it are gone.
//! `unique` checks the new keys against the rest of the table by reading
//! only the key columns (pruned by partition); `row_count` and `freshness`
//! read the Delta statistics unless they have a `where`. `full` re-checks
//! every row.
//!
//! - [`eval`]: each kind, on polars.
//! - [`results`]: the results table and the bases read from it.
//! - [`report`]: JUnit XML, Markdown and JSON reports of a set of results.

pub mod eval;
pub mod report;
pub mod results;

use crate::model::{Catalog, ModelError, Settings};
use crate::spec::{DataTest, Model, Severity, TestKind};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Mutex;
use std::time::Instant;

/// How a test ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// Failing rows within the warn threshold, or a warn-severity test
    /// over its threshold: reported, blocks nothing.
    Warn,
    /// An error-severity test over its threshold: blocks the load and
    /// everything downstream of the model.
    Fail,
    /// The test could not run (a missing table, bad SQL in `where`, ...).
    Error,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }

    /// Whether this result stops the load and the model's downstream.
    pub fn blocks(&self) -> bool {
        matches!(self, Status::Fail | Status::Error)
    }
}

/// One test's result.
#[derive(Clone, Debug, Serialize)]
pub struct TestResult {
    pub test: String,
    pub model: String,
    pub kind: String,
    pub severity: String,
    /// The columns tested (empty for `expression` and `row_count`).
    pub columns: Vec<String>,
    /// The Delta version of the model's table that was tested.
    pub version: i64,
    /// Only rows committed after this version were read; `None`: every row.
    pub since_version: Option<i64>,
    /// The version of the model compared with (relationships, row_count).
    pub compared_version: Option<i64>,
    pub rows_checked: u64,
    pub status: Status,
    pub failing: u64,
    pub seconds: f64,
    /// What failed, or how the test passed.
    pub message: String,
    /// Up to `sample_rows` failing rows (key and tested columns).
    pub sample: Vec<serde_json::Map<String, serde_json::Value>>,
    /// `file:line` of the declaration.
    pub declared_at: String,
}

/// How tests run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Check every row, not only those since each test's base.
    pub full: bool,
    /// The run's clock, for `freshness`.
    pub clock: DateTime<Utc>,
    /// Failing rows kept per result.
    pub sample_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            full: false,
            clock: Utc::now(),
            sample_rows: 10,
        }
    }
}

/// Every model a test reads: its own and those it compares with.
pub fn test_inputs(model: &str, test: &DataTest) -> Vec<String> {
    let mut out = vec![model.to_string()];
    match &test.kind {
        TestKind::Relationships { to, .. } => out.push(to.clone()),
        TestKind::RowCount {
            equal_to: Some(c), ..
        } => out.push(c.model.clone()),
        _ => {}
    }
    out
}

/// The columns a test names.
pub fn tested_columns(kind: &TestKind) -> Vec<String> {
    match kind {
        TestKind::NotNull { column }
        | TestKind::Relationships { column, .. }
        | TestKind::AcceptedValues { column, .. }
        | TestKind::Freshness { column, .. } => vec![column.clone()],
        TestKind::Unique { columns } => columns.clone(),
        TestKind::Expression { .. } | TestKind::RowCount { .. } => vec![],
    }
}

/// Runs tests against the lake, keeping each test's base from the results
/// table; [`Tester::finish`] appends what ran. Shared by reference: a run
/// evaluates tests of independent models at the same time.
pub struct Tester {
    catalog: Catalog,
    settings: Settings,
    opts: Options,
    bases: Mutex<results::Bases>,
    ran: Mutex<Vec<TestResult>>,
}

impl Tester {
    pub async fn new(
        catalog: Catalog,
        settings: Settings,
        opts: Options,
    ) -> Result<Self, ModelError> {
        let bases = results::Bases::read(&settings).await?;
        Ok(Self {
            catalog,
            settings,
            opts,
            bases: Mutex::new(bases),
            ran: Mutex::new(Vec::new()),
        })
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
        let mut result = match eval::evaluate(&ctx, model, test, &passes).await {
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

    /// Appends every result to the results table, in one commit.
    pub async fn finish(self, run_id: &str) -> Result<Vec<TestResult>, ModelError> {
        let ran = self.ran.into_inner().unwrap_or_else(|e| e.into_inner());
        results::append(&self.settings, run_id, self.opts.clock, &ran).await?;
        Ok(ran)
    }
}

/// A guard on `m`; a test that panicked while holding it left plain data
/// (a base or a result list), still good to use.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        columns: tested_columns(&test.kind),
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
fn judge(model: &Model, test: &DataTest, o: eval::Outcome) -> TestResult {
    let nonzero = crate::spec::Threshold {
        op: crate::spec::CmpOp::Ne,
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
