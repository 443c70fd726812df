//! Data tests as declared on a model: what each checks, how bad a failure
//! is, and the thresholds on failing-row counts.

use super::Pos;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

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

/// What a data test checks: one of the kinds of `datatest/kinds/` (one
/// file each), holding that kind's options. The declaration side asks only
/// what every kind answers; the evaluation finds the kind's own type back
/// with [`Kind::get`].
pub trait TestKind: fmt::Debug + Send + Sync + SameAs {
    /// The kind's name as written in YAML (`not_null`).
    fn name(&self) -> &'static str;
    /// The columns of the tested model the test is about (empty for a
    /// test of whole rows or of the table). They name the test and are
    /// read with the failing rows.
    fn columns(&self) -> Vec<String> {
        Vec::new()
    }
    /// Other models the test reads: it runs after them.
    fn reads(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Comparison and downcasting of a [`TestKind`], for any kind that
/// derives `PartialEq`.
pub trait SameAs: Any {
    fn as_any(&self) -> &dyn Any;
    fn same_as(&self, other: &dyn Any) -> bool;
}

impl<T: Any + PartialEq> SameAs for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn same_as(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>() == Some(self)
    }
}

/// A test's kind and options, shared by the clones of a pipeline.
#[derive(Clone, Debug)]
pub struct Kind(Arc<dyn TestKind>);

impl Kind {
    pub fn new(kind: impl TestKind + 'static) -> Self {
        Self(Arc::new(kind))
    }

    /// The kind's own type, if it is `K`.
    pub fn get<K: TestKind + 'static>(&self) -> Option<&K> {
        self.0.as_ref().as_any().downcast_ref::<K>()
    }
}

impl std::ops::Deref for Kind {
    type Target = dyn TestKind;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().same_as(other.0.as_ref().as_any())
    }
}

/// A declared data test of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct DataTest {
    /// Stable name: `<kind>_<model>[_<columns>]`, unique within the pipeline.
    pub name: String,
    pub kind: Kind,
    pub severity: Severity,
    /// Only rows matching this SQL condition are tested.
    pub filter: Option<String>,
    pub warn_if: Option<Threshold>,
    pub error_if: Option<Threshold>,
    pub pos: Pos,
}
