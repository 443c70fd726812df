//! The state of one run held in this process: `dag run`'s store. The same
//! rules as the scheduler's store in PostgreSQL (a task is ready when its
//! upstream tasks succeeded and the tasks it runs after have ended; the
//! longest chain first; a failure skips what is downstream), without
//! claims that other processes could take.

use super::state::{Claim, Recorder, RunView, Settled, StateStore, TaskOutcome};
use super::task::NewTask;
use crate::events::RunSummary;
use crate::pipeline::LOAD_NODE;
use jobs::datatest::TestResult;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Queued,
    Running,
    Success,
    Failed,
    UpstreamFailed,
}

impl State {
    fn ended(self) -> bool {
        !matches!(self, State::Queued | State::Running)
    }
}

struct Slot {
    task: NewTask,
    state: State,
    attempt: i32,
    outcome: TaskOutcome,
}

/// One run's tasks and how far each got.
pub struct MemoryStore {
    run: String,
    max_attempts: i32,
    slots: Mutex<(bool, Vec<Slot>)>,
    /// Test results of finished tasks not yet on record.
    unrecorded: Mutex<Vec<TestResult>>,
}

impl MemoryStore {
    /// A run named `run` of `tasks` (from `task::plan`).
    pub fn new(run: &str, tasks: Vec<NewTask>, max_attempts: i32) -> MemoryStore {
        let slots = tasks
            .into_iter()
            .map(|task| Slot {
                task,
                state: State::Queued,
                attempt: 0,
                outcome: TaskOutcome::default(),
            })
            .collect();
        MemoryStore {
            run: run.to_string(),
            max_attempts: max_attempts.max(1),
            slots: Mutex::new((false, slots)),
            unrecorded: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, Vec<Slot>)> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why `node` failed, if it did.
    pub fn error_of(&self, node: &str) -> Option<String> {
        let guard = self.lock();
        let slot = guard.1.iter().find(|s| s.task.node == node)?;
        (slot.state == State::Failed)
            .then(|| slot.outcome.error.as_ref().map(|e| e.message.clone()))
            .flatten()
    }

    /// Whether every task of the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.lock().1.iter().all(|s| s.state == State::Success)
    }
}

fn state_of(slots: &[Slot], node: &str) -> Option<State> {
    slots.iter().find(|s| s.task.node == node).map(|s| s.state)
}

impl StateStore for MemoryStore {
    async fn claim(&self) -> anyhow::Result<Option<Claim>> {
        let mut guard = self.lock();
        let (started, slots) = &mut *guard;
        let ready = |s: &Slot| {
            s.state == State::Queued
                && s.task
                    .upstream
                    .iter()
                    .all(|u| state_of(slots, u).is_none_or(|st| st == State::Success))
                && s.task
                    .after
                    .iter()
                    .all(|u| state_of(slots, u).is_none_or(State::ended))
        };
        // The highest priority; among equals, the first planned.
        let mut best: Option<usize> = None;
        for (i, s) in slots.iter().enumerate() {
            if ready(s) && best.is_none_or(|b| s.task.priority > slots[b].task.priority) {
                best = Some(i);
            }
        }
        let Some(i) = best else {
            return Ok(None);
        };
        let slot = &mut slots[i];
        slot.state = State::Running;
        slot.attempt += 1;
        let first = !*started;
        *started = true;
        Ok(Some(Claim {
            run_id: 0,
            run: self.run.clone(),
            results_run: self.run.clone(),
            node: slot.task.node.clone(),
            attempt: slot.attempt,
            max_attempts: self.max_attempts,
            first,
        }))
    }

    async fn view(&self, _c: &Claim) -> anyhow::Result<RunView> {
        let guard = self.lock();
        let slots = &guard.1;
        Ok(RunView {
            nodes: slots.iter().map(|s| s.task.node.clone()).collect(),
            failed: slots
                .iter()
                .filter(|s| matches!(s.state, State::Failed | State::UpstreamFailed))
                .map(|s| s.task.node.clone())
                .collect(),
            versions: slots
                .iter()
                .filter(|s| s.state == State::Success)
                .filter_map(|s| Some((s.task.node.clone(), s.outcome.done.left_at?)))
                .collect(),
        })
    }

    async fn renew(&self, _c: &Claim) -> anyhow::Result<bool> {
        Ok(true)
    }

    async fn finish(
        &self,
        c: &Claim,
        outcome: &TaskOutcome,
        retry: bool,
    ) -> anyhow::Result<Option<Settled>> {
        let mut guard = self.lock();
        let slots = &mut guard.1;
        let Some(i) = slots.iter().position(|s| s.task.node == c.node) else {
            return Ok(None);
        };
        slots[i].outcome = outcome.clone();
        self.unrecorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(outcome.tests.iter().cloned());
        let mut settled = Settled::default();
        slots[i].state = match (&outcome.error, retry) {
            (None, _) => State::Success,
            (Some(_), true) => State::Queued,
            (Some(_), false) => {
                let why = outcome.blocks_because(&c.node);
                // Everything downstream, through the upstream edges.
                let mut down = vec![c.node.clone()];
                while let Some(n) = down.pop() {
                    for s in slots.iter_mut() {
                        if s.state == State::Queued && s.task.upstream.contains(&n) {
                            s.state = State::UpstreamFailed;
                            settled.skipped.push((s.task.node.clone(), why.clone()));
                            down.push(s.task.node.clone());
                        }
                    }
                }
                State::Failed
            }
        };
        if slots.iter().all(|s| s.state.ended()) {
            settled.ended = Some(summary(&self.run, slots));
        }
        Ok(Some(settled))
    }

    async fn wake(&self) {
        // Only a task of this run ending changes anything.
        std::future::pending::<()>().await
    }

    fn ends_when_idle(&self) -> bool {
        true
    }

    async fn hand_back(&self) -> anyhow::Result<u64> {
        Ok(0)
    }

    async fn record_results<'a>(
        &'a self,
        _run_id: i64,
        record: Recorder<'a>,
    ) -> anyhow::Result<usize> {
        let taken = std::mem::take(&mut *self.unrecorded.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let n = taken.len();
        if let Err(e) = record(taken.clone()).await {
            // Still to record: the next call tries again.
            let mut kept = self.unrecorded.lock().unwrap_or_else(|e| e.into_inner());
            let newer = std::mem::replace(&mut *kept, taken);
            kept.extend(newer);
            return Err(e);
        }
        Ok(n)
    }
}

/// What the run did in all (the load is not a model).
fn summary(run: &str, slots: &[Slot]) -> RunSummary {
    let models = || slots.iter().filter(|s| s.task.node != LOAD_NODE);
    let model_ran = |s: &Slot| s.outcome.done.rows_out.is_some();
    let mut sum = RunSummary {
        run: run.to_string(),
        success: slots.iter().all(|s| s.state == State::Success),
        models_ran: models()
            .filter(|s| matches!(s.state, State::Success | State::Failed) && model_ran(s))
            .count(),
        models_failed: models()
            .filter(|s| s.state == State::Failed && !model_ran(s))
            .count(),
        models_skipped: models()
            .filter(|s| s.state == State::UpstreamFailed)
            .count(),
        ..RunSummary::default()
    };
    for s in slots {
        let (tests, failed, warned) = s.outcome.test_counts();
        sum.tests += tests;
        sum.tests_failed += failed;
        sum.tests_warned += warned;
    }
    sum
}
