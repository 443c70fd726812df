//! The one executor of the pipeline's DAG: `dag run` and the scheduler run
//! their tasks through [`drive`], and differ only in the [`StateStore`]
//! that holds the run's state and hands out its tasks:
//!
//! - [`memory::MemoryStore`]: one run in this process (`dag run`);
//! - `scheduler::store::PgStore`: every run in PostgreSQL, shared by
//!   several schedulers through claims and leases.
//!
//! A task is a node of the run: a model with the data tests it owns
//! ([`task`]), or the warehouse load. The executor claims ready tasks up to
//! its limit, runs each on the blocking pool (renewing its lease, under its
//! timeout), records how it ended, and says what happened as [`Event`]s:
//! the run started, each node finished (or was skipped, or will be
//! retried), each test's result, the run finished.

pub mod memory;
mod state;
mod stop;
pub mod task;

use crate::events::{Event, NodeFinished, NodeState};
use crate::pipeline::LOAD_NODE;
use jobs::model::Cancel;
pub use state::{
    Claim, Done, ErrorKind, Recorder, RunView, Settled, StateStore, TaskError, TaskOutcome,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
pub use stop::Stop;
use task::Runner;

/// How the executor runs its tasks.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Tasks at once in this executor.
    pub concurrency: usize,
    /// The claim's lease, renewed every third of it (None: no lease).
    pub lease: Option<Duration>,
    /// A task running longer is cancelled and fails.
    pub timeout: Option<Duration>,
    /// On a drain, how long running tasks may still finish.
    pub grace: Duration,
    /// A task whose inputs' files hold more than this many bytes waits
    /// until no other such task runs (a full refresh: each big rebuild
    /// takes every core, and two at once add up their memory); smaller
    /// tasks run beside it. None: tasks are not weighed.
    pub heavy_bytes: Option<u64>,
}

/// Claims and runs tasks from `store` until `stop` (or, for a store that
/// ends when idle, until its runs are over), then drains.
pub async fn drive<S: StateStore>(store: Arc<S>, runner: Arc<Runner>, limits: Limits, stop: &Stop) {
    let running = Arc::new(AtomicUsize::new(0));
    let heavy_running = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    // Set when the drain's grace period is over: no task commits after.
    let stopping = Cancel::default();
    let limit = limits.concurrency.max(1);
    while !stop.is_set() {
        while running.load(Ordering::SeqCst) < limit {
            match store.claim().await {
                Ok(Some(c)) => {
                    if c.first {
                        announce(&*store, &runner, &c).await;
                    }
                    // One task at a time needs no weighing.
                    let heavy = match limits.heavy_bytes {
                        Some(max) if limit > 1 => runner.input_bytes(&c.node).await > max,
                        _ => false,
                    };
                    if heavy {
                        until_none_runs(&mut tasks, &heavy_running, stop).await;
                    }
                    if stop.is_set() {
                        break;
                    }
                    running.fetch_add(1, Ordering::SeqCst);
                    if heavy {
                        heavy_running.fetch_add(1, Ordering::SeqCst);
                    }
                    let (store, runner, limits, cancel) = (
                        store.clone(),
                        runner.clone(),
                        limits.clone(),
                        stopping.child(),
                    );
                    let (running, heavy_running) = (running.clone(), heavy_running.clone());
                    tasks.spawn(async move {
                        run_claim(&*store, runner, &limits, &c, cancel).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        if heavy {
                            heavy_running.fetch_sub(1, Ordering::SeqCst);
                        }
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("claiming: {e:#}");
                    break;
                }
            }
        }
        if tasks.is_empty() && store.ends_when_idle() {
            break;
        }
        tokio::select! {
            _ = store.wake() => {}
            _ = stop.wait() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Drain: in-flight tasks get the grace period, then go back.
    if !tasks.is_empty() {
        tracing::info!(
            "draining {} task(s) (up to {:?})",
            running.load(Ordering::SeqCst),
            limits.grace
        );
        let drained = tokio::time::timeout(limits.grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // Tasks still going may not commit any more, and are waited
            // for: a task handed back while its thread still ran could be
            // claimed and run a second time at once.
            stopping.cancel();
            while tasks.join_next().await.is_some() {}
        }
    }
    match store.hand_back().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!("handed back {n} unfinished task(s)"),
        Err(e) => tracing::error!("handing back tasks: {e:#}"),
    }
}

/// Waits, joining the tasks that end, until `counted` tasks run no more
/// or `stop` is set: a heavy task holds its claim meanwhile and nothing
/// else starts (a stop hands it back).
async fn until_none_runs(tasks: &mut tokio::task::JoinSet<()>, counted: &AtomicUsize, stop: &Stop) {
    while counted.load(Ordering::SeqCst) > 0 && !stop.is_set() {
        tokio::select! {
            _ = tasks.join_next() => {}
            _ = stop.wait() => {}
        }
    }
}

/// The run of `c` begins: its models and the tests they may run.
async fn announce<S: StateStore>(store: &S, runner: &Runner, c: &Claim) {
    let nodes: Vec<String> = match store.view(c).await {
        Ok(v) => v.nodes.into_iter().filter(|n| n != LOAD_NODE).collect(),
        Err(e) => {
            tracing::warn!("run {}: {e:#}", c.run);
            return;
        }
    };
    let tests = nodes
        .iter()
        .filter_map(|n| runner.p.model(n))
        .flat_map(|m| m.tests.iter().map(|t| t.name.clone()))
        .collect();
    runner.events.emit(&Event::RunStarted {
        run: c.run.clone(),
        nodes,
        tests,
    });
}

/// Runs one claimed task under its timeout, renewing the lease, records
/// the outcome and says what happened.
async fn run_claim<S: StateStore>(
    store: &S,
    runner: Arc<Runner>,
    limits: &Limits,
    c: &Claim,
    cancel: Cancel,
) {
    let view = match store.view(c).await {
        Ok(v) => v,
        Err(e) => {
            // Not run, not recorded: the lease runs out and it is retried.
            tracing::warn!("run {}: {e:#}", c.run);
            return;
        }
    };
    // The results of the run's tests are on record before its load
    // publishes what they judged.
    let unrecorded = match c.node == LOAD_NODE {
        true => record_results(store, &runner, c.run_id, &c.results_run)
            .await
            .err(),
        false => None,
    };
    // The task runs on the blocking pool: a model's CPU-bound stretches
    // must not hold up the lease renewals (nor a scheduler's heartbeat)
    // on the async workers, or a live scheduler would lose its claim.
    let work = {
        let (runner, c) = (runner.clone(), c.clone());
        let rt = tokio::runtime::Handle::current();
        let cancel = cancel.clone();
        let job = tokio::task::spawn_blocking(move || {
            rt.block_on(async move {
                match unrecorded {
                    Some(e) => TaskOutcome::failed(TaskError::transient(format!(
                        "recording the test results: {e:#}"
                    ))),
                    None => runner.execute(&c, &view, cancel).await,
                }
            })
        });
        async move {
            job.await.unwrap_or_else(|e| {
                TaskOutcome::failed(TaskError::transient(format!(
                    "the task panicked or was cancelled: {e}"
                )))
            })
        }
    };
    tokio::pin!(work);
    let limited = async {
        loop {
            let renewal = async {
                match limits.lease {
                    Some(lease) => tokio::time::sleep(lease / 3).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut work => break Some(r),
                _ = renewal => match store.renew(c).await {
                    Ok(true) => {}
                    Ok(false) => break None,
                    Err(e) => tracing::warn!("renewing the lease of {}: {e:#}", c.node),
                },
            }
        }
    };
    let outcome = match limits.timeout {
        Some(t) => tokio::time::timeout(t, limited).await.ok(),
        None => Some(limited.await),
    };
    // A task given up is cancelled (it cannot commit any more) and joined
    // before its retry can be claimed: never two executions at once.
    let outcome = match outcome {
        Some(Some(r)) if !cancel.is_cancelled() => r,
        // The executor is stopping: the task is handed back.
        Some(Some(_)) => return,
        Some(None) => {
            cancel.cancel();
            let _ = (&mut work).await;
            tracing::warn!("run {} {}: claim lost, result dropped", c.run, c.node);
            return;
        }
        None => {
            cancel.cancel();
            let _ = (&mut work).await;
            TaskOutcome::failed(TaskError::transient(format!(
                "timed out after {:?} (nothing committed after that)",
                limits.timeout.unwrap_or_default()
            )))
        }
    };
    release_freed_memory();
    let retry = outcome
        .error
        .as_ref()
        .is_some_and(|e| e.kind == ErrorKind::Transient && c.attempt < c.max_attempts);
    let settled = match store.finish(c, &outcome, retry).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::warn!(
                "run {} {}: claim lost before the result was written",
                c.run,
                c.node
            );
            return;
        }
        Err(e) => {
            tracing::error!("run {} {}: recording the outcome: {e:#}", c.run, c.node);
            return;
        }
    };
    settle(store, &runner, c, outcome, retry, settled).await;
}

/// Says how the task `c` ended and what that settled (tasks skipped, the
/// run over); a run that ended records its tests' results.
async fn settle<S: StateStore>(
    store: &S,
    runner: &Runner,
    c: &Claim,
    outcome: TaskOutcome,
    retry: bool,
    settled: Settled,
) {
    let events = &*runner.events;
    events.emit(&Event::NodeFinished(node_event(c, &outcome, retry)));
    for r in outcome.tests {
        events.emit(&Event::TestFinished {
            run: c.run.clone(),
            result: r,
        });
    }
    for (node, why) in settled.skipped {
        events.emit(&Event::NodeFinished(NodeFinished::of(
            &c.run,
            &node,
            NodeState::Skipped,
            Some(why),
        )));
    }
    if let Some(summary) = settled.ended {
        // A run without a load, or whose load did not run, records its
        // tests' results as it ends.
        if let Err(e) = record_results(store, runner, c.run_id, &c.results_run).await {
            tracing::warn!("run {}: recording the test results: {e:#}", c.run);
        }
        events.emit(&Event::RunFinished(summary));
    }
}

/// Appends the test results run `run_id` kept (its finished tasks') to
/// the results table as run `results_run`, in one commit: a commit per
/// task cost 0.06-0.13 s on a continuous run's critical path.
pub async fn record_results<S: StateStore>(
    store: &S,
    runner: &Runner,
    run_id: i64,
    results_run: &str,
) -> anyhow::Result<usize> {
    store
        .record_results(
            run_id,
            Box::new(move |results| {
                Box::pin(async move { runner.append_results(results_run, &results).await })
            }),
        )
        .await
}

/// The event of a task that ended.
fn node_event(c: &Claim, outcome: &TaskOutcome, retry: bool) -> NodeFinished {
    let state = match (&outcome.error, retry) {
        (None, _) => NodeState::Success,
        (Some(_), true) => NodeState::Retrying,
        (Some(_), false) => NodeState::Failed,
    };
    let d = &outcome.done;
    NodeFinished {
        attempt: u32::try_from(c.attempt).unwrap_or(0),
        max_attempts: u32::try_from(c.max_attempts).unwrap_or(0),
        rows_in: u64::try_from(d.rows_in.unwrap_or(0)).unwrap_or(0),
        rows_out: u64::try_from(d.rows_out.unwrap_or(0)).unwrap_or(0),
        quarantined: d.quarantined,
        duplicates: d.duplicates,
        version: d.version,
        seconds: d.seconds,
        note: d.note.clone(),
        tests_failed: outcome.test_counts().1,
        ..NodeFinished::of(
            &c.run,
            &c.node,
            state,
            outcome.error.as_ref().map(|e| e.message.clone()),
        )
    }
}

/// Hands memory freed by the task that just ended back to the system
/// when the process holds more than [`TRIM_ABOVE`]. glibc keeps freed
/// memory in its arenas, fragmented: the next model's peak then stacked
/// on the last one's (10M events: the biggest model alone peaks at 1.2 GB,
/// the run at 1.6 GB; 1.26 GB with this). Below the bound it is left
/// alone: trimming after every model made the next ones fault their pages
/// back in (1M full run 3.5 -> 3.9 s).
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    if resident_bytes().is_some_and(|b| b > TRIM_ABOVE) {
        // SAFETY: malloc_trim only returns free pages; no pointer changes.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Resident memory from which a finished task's freed memory is returned.
const TRIM_ABOVE: u64 = 1 << 30;

/// This process's resident set, from /proc (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
