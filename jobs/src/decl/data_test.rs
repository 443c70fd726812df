//! Data tests as declared on a model: what each checks, how bad a failure
//! is, and the thresholds on failing-row counts.

use super::{Interval, Pos};
use std::time::Duration;

/// How bad a failing data test is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Fails the run and blocks the load and downstream models.
    Error,
    /// Reported; blocks nothing.
    Warn,
}

/// A threshold on a test's failing-row count, as dbt writes it (`"> 10"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub op: CmpOp,
    pub value: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Eq,
    Ne,
    Lt,
    Le,
}

impl Threshold {
    pub fn parse(s: &str) -> Option<Threshold> {
        let s = s.trim();
        let (op, rest) = [
            (">=", CmpOp::Ge),
            ("<=", CmpOp::Le),
            ("!=", CmpOp::Ne),
            ("<>", CmpOp::Ne),
            ("==", CmpOp::Eq),
            (">", CmpOp::Gt),
            ("<", CmpOp::Lt),
            ("=", CmpOp::Eq),
        ]
        .into_iter()
        .find_map(|(tok, op)| s.strip_prefix(tok).map(|r| (op, r)))?;
        Some(Threshold {
            op,
            value: rest.trim().parse().ok()?,
        })
    }

    pub fn holds(&self, failures: u64) -> bool {
        match self.op {
            CmpOp::Gt => failures > self.value,
            CmpOp::Ge => failures >= self.value,
            CmpOp::Eq => failures == self.value,
            CmpOp::Ne => failures != self.value,
            CmpOp::Lt => failures < self.value,
            CmpOp::Le => failures <= self.value,
        }
    }
}

/// What a data test checks.
#[derive(Clone, Debug, PartialEq)]
pub enum TestKind {
    NotNull {
        column: String,
    },
    Unique {
        columns: Vec<String>,
    },
    Relationships {
        column: String,
        to: String,
        field: String,
    },
    AcceptedValues {
        column: String,
        allowed: Allowed,
    },
    /// A SQL boolean every row must satisfy.
    Expression {
        sql: String,
    },
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
        equal_to: Option<CountOf>,
    },
    /// The newest `column` value is within `max_lag` of the run's clock.
    Freshness {
        column: String,
        max_lag: Duration,
    },
}

impl TestKind {
    pub fn name(&self) -> &'static str {
        match self {
            TestKind::NotNull { .. } => "not_null",
            TestKind::Unique { .. } => "unique",
            TestKind::Relationships { .. } => "relationships",
            TestKind::AcceptedValues { .. } => "accepted_values",
            TestKind::Expression { .. } => "expression",
            TestKind::RowCount { .. } => "row_count",
            TestKind::Freshness { .. } => "freshness",
        }
    }
}

/// The values an `accepted_values` test allows.
#[derive(Clone, Debug, PartialEq)]
pub enum Allowed {
    Values(Vec<String>),
    Range(Interval),
}

/// `row_count: {equal_to: {model: x, where: "..."}}`.
#[derive(Clone, Debug, PartialEq)]
pub struct CountOf {
    pub model: String,
    pub filter: Option<String>,
}

/// A declared data test of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct DataTest {
    /// Stable name: `<kind>_<model>[_<columns>]`, unique within the pipeline.
    pub name: String,
    pub kind: TestKind,
    pub severity: Severity,
    /// Only rows matching this SQL condition are tested.
    pub filter: Option<String>,
    pub warn_if: Option<Threshold>,
    pub error_if: Option<Threshold>,
    pub pos: Pos,
}
