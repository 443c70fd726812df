//! What the executor and its state stores say to each other: a claimed
//! task, what it needs to know of its run, how it ended, and the
//! [`StateStore`] trait itself.

use crate::events::RunSummary;
use jobs::datatest::TestResult;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// A task the executor holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub run_id: i64,
    /// The run's name in events.
    pub run: String,
    /// The run's name in `_dag/test_results`.
    pub results_run: String,
    pub node: String,
    pub attempt: i32,
    pub max_attempts: i32,
    /// This claim started its run (its first task).
    pub first: bool,
}

/// What a task needs to know of its run.
#[derive(Clone, Debug, Default)]
pub struct RunView {
    /// Every node of the run (models and the load).
    pub nodes: Vec<String>,
    /// Nodes of the run that failed or were skipped.
    pub failed: BTreeSet<String>,
    /// The Delta version each succeeded model task left its table at (its
    /// tests judged that version): what the run's load publishes.
    pub versions: BTreeMap<String, i64>,
}

/// What a task did (its rows, version, timing).
#[derive(Clone, Debug, Default)]
pub struct Done {
    pub seconds: f64,
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
    /// The Delta version the model wrote (None: nothing new).
    pub version: Option<i64>,
    /// The version the task left the table at, written or found, which
    /// its tests judged: what the run's load may publish.
    pub left_at: Option<i64>,
    pub quarantined: u64,
    pub duplicates: u64,
    /// Why the model did what it did (see `ModelReport::note`).
    pub note: Option<String>,
}

/// Whether trying a failed task again can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A lost connection, a store that timed out, a commit conflict, a
    /// lost lease: the next attempt may succeed.
    Transient,
    /// Bad SQL, bad input, a data test that failed: the same data gives
    /// the same answer, so the task is not retried.
    Deterministic,
}

/// Why a task failed, and whether a retry can help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    pub message: String,
    pub kind: ErrorKind,
}

impl TaskError {
    pub fn transient(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            kind: ErrorKind::Transient,
        }
    }

    pub fn deterministic(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            kind: ErrorKind::Deterministic,
        }
    }
}

/// How a task ended: what it did (a model whose test then failed still
/// wrote), its tests' results, and its error if it failed.
#[derive(Clone, Debug, Default)]
pub struct TaskOutcome {
    pub done: Done,
    pub tests: Vec<TestResult>,
    pub error: Option<TaskError>,
}

impl TaskOutcome {
    pub fn failed(error: TaskError) -> TaskOutcome {
        TaskOutcome {
            error: Some(error),
            ..TaskOutcome::default()
        }
    }

    /// Why the tasks downstream of `node`, which failed, do not run (and
    /// the load's gate stays closed): its failed tests, or its model.
    pub fn blocks_because(&self, node: &str) -> String {
        match &self.error {
            Some(e) if self.done.rows_out.is_some() => e.message.clone(),
            _ => format!("model {node} failed"),
        }
    }

    /// Tests run, failed (error severity) and warned.
    pub fn test_counts(&self) -> (usize, usize, usize) {
        let failed = self.tests.iter().filter(|r| r.status.blocks()).count();
        let warned = self
            .tests
            .iter()
            .filter(|r| r.status == jobs::datatest::Status::Warn)
            .count();
        (self.tests.len(), failed, warned)
    }
}

/// What recording a task's end changed besides the task.
#[derive(Clone, Debug, Default)]
pub struct Settled {
    /// Tasks that will not run because this one failed, with the reason.
    pub skipped: Vec<(String, String)>,
    /// The run is over: what it did in all.
    pub ended: Option<RunSummary>,
}

/// Where the state of runs lives, and who may run which task.
pub trait StateStore: Send + Sync + 'static {
    /// A ready task, if one is and the limits allow.
    fn claim(&self) -> impl Future<Output = anyhow::Result<Option<Claim>>> + Send;
    /// What the claimed task needs to know of its run.
    fn view(&self, c: &Claim) -> impl Future<Output = anyhow::Result<RunView>> + Send;
    /// Extends the claim; false when it is no longer ours.
    fn renew(&self, c: &Claim) -> impl Future<Output = anyhow::Result<bool>> + Send;
    /// Records how the claim ended (`retry`: it runs again later). `None`
    /// when the claim was no longer ours (nothing written).
    fn finish(
        &self,
        c: &Claim,
        outcome: &TaskOutcome,
        retry: bool,
    ) -> impl Future<Output = anyhow::Result<Option<Settled>>> + Send;
    /// Returns when there may be new work (besides a task of ours ending).
    fn wake(&self) -> impl Future<Output = ()> + Send;
    /// The executor stops once nothing runs and nothing can be claimed
    /// (one run), rather than waiting for new work until stopped.
    fn ends_when_idle(&self) -> bool;
    /// On a drain: gives this executor's unfinished claims back.
    fn hand_back(&self) -> impl Future<Output = anyhow::Result<u64>> + Send;
    /// Hands the test results of run `run_id`'s finished tasks that are
    /// not on record yet (kept by [`StateStore::finish`]) to `record`,
    /// which appends them to the results table; once it succeeded they
    /// are not handed out again. Returns how many were recorded.
    fn record_results<'a>(
        &'a self,
        run_id: i64,
        record: Recorder<'a>,
    ) -> impl Future<Output = anyhow::Result<usize>> + Send + 'a;
}

/// Appends a run's test results to the results table (boxed: a generic
/// closure returning a borrowing future defeats the `Send` proofs of the
/// tasks that await it).
pub type Recorder<'a> = Box<
    dyn FnOnce(
            Vec<TestResult>,
        ) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>
        + Send
        + 'a,
>;
