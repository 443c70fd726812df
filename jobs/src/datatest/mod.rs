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
//! - [`conditions`]: a test's SQL planned against the model's declared
//!   columns when the pipeline loads.
//! - [`eval`]: a test's evaluation: its scope, dispatched to its kind.
//! - `kinds/`: each kind in one file (`not_null.rs`, `accepted_values.rs`,
//!   `expression.rs`, `unique.rs`, `relationships.rs`, `row_count.rs`,
//!   `freshness.rs`): its options, how the loader reads them and its check
//!   on polars; what they share (`common.rs`); the list of kinds.
//! - [`freshness`]: the newest value of a timestamp column (the
//!   `freshness` kind's, which the UI's freshness page measures too).
//! - [`results`]: the results table and the bases read from it.
//! - [`report`]: JUnit XML, Markdown and JSON reports of a set of results.

pub mod conditions;
pub mod eval;
pub(crate) mod kinds;
pub mod report;
pub mod results;
mod tester;

pub use kinds::freshness;
pub use tester::Tester;

use crate::decl::DataTest;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// How a test ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
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
    out.extend(test.kind.reads());
    out
}

/// A guard on `m`; a test that panicked while holding it left plain data
/// (a base, a result list, an opened table), still good to use.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
