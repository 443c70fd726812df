//! Run state in PostgreSQL (schema `dag`, `migrations/V2__scheduler.sql`):
//! recording runs, claiming tasks, recording how they ended.
//!
//! A task is claimed in one transaction under an advisory lock (so the
//! global concurrency limit holds over every scheduler) with
//! `FOR UPDATE SKIP LOCKED`, and carries a lease its scheduler renews. The
//! outcome is written only by the claim's holder (same scheduler, same
//! attempt), so a scheduler that lost its claim cannot overwrite the one
//! that took over. Every state change sends `NOTIFY dag_work`, which wakes
//! the schedulers waiting for work.

use crate::events::RunSummary;
use crate::executor::task::NewTask;
use crate::executor::{Settled, TaskOutcome};
use crate::pipeline::LOAD_NODE;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::time::Duration;

/// The channel schedulers LISTEN on.
pub const CHANNEL: &str = "dag_work";
/// Serializes claims (any constant shared by every scheduler).
const CLAIM_LOCK: i64 = 0x6461_6763_6c61_696d;

pub type DbResult<T> = Result<T, sqlx::Error>;

/// What created a run.
#[derive(Clone, Debug)]
pub enum Trigger {
    Manual,
    /// A schedule (its key) firing for an instant.
    Schedule {
        key: String,
        at: DateTime<Utc>,
    },
}

fn interval(d: Duration) -> String {
    format!("{} milliseconds", d.as_millis())
}

/// Records a run and its tasks, queued. `None` when a scheduled run for
/// this schedule and instant exists already (another scheduler fired it).
pub async fn create_run(
    pool: &PgPool,
    selector: &str,
    trigger: &Trigger,
    tasks: &[NewTask],
    max_attempts: i32,
) -> DbResult<Option<i64>> {
    let mut tx = pool.begin().await?;
    let (kind, key, at) = match trigger {
        Trigger::Manual => ("manual", None, None),
        Trigger::Schedule { key, at } => ("schedule", Some(key.clone()), Some(*at)),
    };
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO dag.runs (selector, trigger, schedule, scheduled_for) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (schedule, scheduled_for) DO NOTHING RETURNING id",
    )
    .bind(selector)
    .bind(kind)
    .bind(key)
    .bind(at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    for t in tasks {
        sqlx::query(
            "INSERT INTO dag.task_runs (run_id, node, upstream, after, priority, max_attempts) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&t.node)
        .bind(&t.upstream)
        .bind(&t.after)
        .bind(t.priority)
        .bind(max_attempts)
        .execute(&mut *tx)
        .await?;
    }
    if tasks.is_empty() {
        sqlx::query(
            "UPDATE dag.runs SET state = 'success', started_at = now(), finished_at = now(), \
             note = 'nothing to run' WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    notify(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Records a scheduled run that was not started because the previous run
/// of its schedule was still going (`overlap = "skip"`).
pub async fn skip_run(
    pool: &PgPool,
    selector: &str,
    key: &str,
    at: DateTime<Utc>,
    previous: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO dag.runs (selector, trigger, schedule, scheduled_for, state, note, finished_at) \
         VALUES ($1, 'schedule', $2, $3, 'skipped', $4, now()) \
         ON CONFLICT (schedule, scheduled_for) DO NOTHING",
    )
    .bind(selector)
    .bind(key)
    .bind(at)
    .bind(format!("run {previous} of this schedule was still going"))
    .execute(pool)
    .await?;
    Ok(())
}

/// The unfinished run of a schedule, if any.
pub async fn open_run_of(pool: &PgPool, key: &str) -> DbResult<Option<i64>> {
    sqlx::query_scalar(
        "SELECT id FROM dag.runs WHERE schedule = $1 AND state IN ('queued', 'running') \
         ORDER BY id LIMIT 1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// The state of a schedule's latest run, if it has one.
pub async fn last_run_state(pool: &PgPool, key: &str) -> DbResult<Option<String>> {
    sqlx::query_scalar("SELECT state FROM dag.runs WHERE schedule = $1 ORDER BY id DESC LIMIT 1")
        .bind(key)
        .fetch_optional(pool)
        .await
}

/// The last instant a schedule fired for (so a restarted scheduler does
/// not fire again what another already did).
pub async fn last_fired(pool: &PgPool, key: &str) -> DbResult<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT max(scheduled_for) FROM dag.runs WHERE schedule = $1")
        .bind(key)
        .fetch_one(pool)
        .await
}

async fn notify(tx: &mut Transaction<'_, Postgres>) -> DbResult<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub use crate::executor::Claim;

/// Claims one ready task, if the global limit allows: queued (or due for
/// retry), its upstream in the run all succeeded, the tasks it runs after
/// all ended, no task of the same node running anywhere, and no earlier
/// unfinished run of the same schedule. Of the ready tasks, the oldest
/// run's, and in it the highest priority.
pub async fn claim(
    pool: &PgPool,
    me: &str,
    lease: Duration,
    max_concurrency: i64,
) -> DbResult<Option<Claim>> {
    let mut tx = pool.begin().await?;
    // A claim holds the lock for milliseconds; a wait this long means a
    // stuck peer: give up this round (the caller polls again) rather than
    // wait for ever.
    sqlx::query("SELECT set_config('lock_timeout', '10s', true)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CLAIM_LOCK)
        .execute(&mut *tx)
        .await?;
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dag.task_runs WHERE state = 'running'")
            .fetch_one(&mut *tx)
            .await?;
    if running >= max_concurrency {
        tx.commit().await?;
        return Ok(None);
    }
    let row = sqlx::query(
        "WITH ready AS ( \
           SELECT t.run_id, t.node FROM dag.task_runs t JOIN dag.runs r ON r.id = t.run_id \
           WHERE t.state IN ('queued', 'up_for_retry') \
             AND (t.next_attempt_at IS NULL OR t.next_attempt_at <= now()) \
             AND NOT EXISTS (SELECT 1 FROM dag.task_runs u WHERE u.run_id = t.run_id \
                             AND u.node = ANY(t.upstream) AND u.state NOT IN ('success', 'skipped')) \
             AND NOT EXISTS (SELECT 1 FROM dag.task_runs a WHERE a.run_id = t.run_id \
                             AND a.node = ANY(t.after) \
                             AND a.state IN ('queued', 'running', 'up_for_retry')) \
             AND NOT EXISTS (SELECT 1 FROM dag.task_runs o WHERE o.node = t.node AND o.state = 'running') \
             AND NOT EXISTS (SELECT 1 FROM dag.runs p WHERE p.schedule = r.schedule AND p.id < r.id \
                             AND p.state IN ('queued', 'running')) \
           ORDER BY t.run_id, t.priority DESC, t.node LIMIT 1 FOR UPDATE OF t SKIP LOCKED) \
         UPDATE dag.task_runs t SET state = 'running', attempt = t.attempt + 1, claimed_by = $1, \
           lease_until = now() + $2::interval, started_at = now(), next_attempt_at = NULL \
         FROM ready WHERE t.run_id = ready.run_id AND t.node = ready.node \
         RETURNING t.run_id, t.node, t.attempt, t.max_attempts",
    )
    .bind(me)
    .bind(interval(lease))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Ok(None);
    };
    let run_id: i64 = row.get(0);
    let mut c = Claim {
        run_id,
        run: run_id.to_string(),
        results_run: super::kept_results::results_run(run_id),
        node: row.get(1),
        attempt: row.get(2),
        max_attempts: row.get(3),
        first: false,
    };
    sqlx::query(
        "INSERT INTO dag.task_attempts (run_id, node, attempt, scheduler) VALUES ($1, $2, $3, $4)",
    )
    .bind(c.run_id)
    .bind(&c.node)
    .bind(c.attempt)
    .bind(me)
    .execute(&mut *tx)
    .await?;
    c.first = sqlx::query(
        "UPDATE dag.runs SET state = 'running', started_at = coalesce(started_at, now()) \
         WHERE id = $1 AND state = 'queued'",
    )
    .bind(c.run_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(Some(c))
}

/// How long until the earliest retry is due (zero if one is due now).
pub async fn next_retry_in(pool: &PgPool) -> DbResult<Option<Duration>> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 \
         FROM dag.task_runs WHERE state = 'up_for_retry'",
    )
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Extends a claim's lease; false when the claim is no longer ours.
pub async fn renew(pool: &PgPool, me: &str, c: &Claim, lease: Duration) -> DbResult<bool> {
    let n = sqlx::query(
        "UPDATE dag.task_runs SET lease_until = now() + $5::interval \
         WHERE run_id = $1 AND node = $2 AND attempt = $3 AND claimed_by = $4 AND state = 'running'",
    )
    .bind(c.run_id)
    .bind(&c.node)
    .bind(c.attempt)
    .bind(me)
    .bind(interval(lease))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Records a claim's outcome: success; a failure to `retry` after
/// `backoff * 2^(attempt-1)`; or a failure that fails the task and marks
/// its downstream upstream_failed. Ends the run when nothing in it is left
/// to do. `None` when the claim was no longer ours (nothing written).
pub async fn finish(
    pool: &PgPool,
    me: &str,
    c: &Claim,
    outcome: &TaskOutcome,
    retry: bool,
    backoff: Duration,
) -> DbResult<Option<Settled>> {
    let mut tx = pool.begin().await?;
    let d = &outcome.done;
    let (tests, tests_failed, tests_warned) = outcome.test_counts();
    let wait = backoff.saturating_mul(1 << (c.attempt - 1).clamp(0, 16));
    let (state, label) = match (&outcome.error, retry) {
        (None, _) => ("success", "success".to_string()),
        (Some(_), true) => (
            "up_for_retry",
            format!("failed, retry in {}s", wait.as_secs_f64()),
        ),
        (Some(_), false) => ("failed", "failed".to_string()),
    };
    let n = sqlx::query(
        "UPDATE dag.task_runs SET state = $5, claimed_by = NULL, lease_until = NULL, \
           finished_at = CASE WHEN $5 = 'up_for_retry' THEN NULL ELSE now() END, \
           next_attempt_at = CASE WHEN $5 = 'up_for_retry' THEN now() + $6::interval END, \
           error = $7, seconds = $8, rows_in = $9, rows_out = $10, delta_version = $11, \
           tests = $12, tests_failed = $13, tests_warned = $14, \
           unrecorded_results = CASE WHEN $15::jsonb IS NULL THEN unrecorded_results \
             ELSE coalesce(unrecorded_results, '[]'::jsonb) || $15::jsonb END \
         WHERE run_id = $1 AND node = $2 AND attempt = $3 AND claimed_by = $4 \
           AND state = 'running'",
    )
    .bind(c.run_id)
    .bind(&c.node)
    .bind(c.attempt)
    .bind(me)
    .bind(state)
    .bind(interval(wait))
    .bind(outcome.error.as_ref().map(|e| e.message.clone()))
    .bind(d.seconds)
    .bind(d.rows_in)
    .bind(d.rows_out)
    .bind(d.left_at)
    .bind(i32::try_from(tests).unwrap_or(i32::MAX))
    .bind(i32::try_from(tests_failed).unwrap_or(i32::MAX))
    .bind(i32::try_from(tests_warned).unwrap_or(i32::MAX))
    // Kept until the run's load (or its end) appends them to the results
    // table, with the run's others, in one commit.
    .bind((!outcome.tests.is_empty()).then_some(sqlx::types::Json(&outcome.tests)))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        // Not ours any more (lease expired and taken over): leave it.
        tx.rollback().await?;
        return Ok(None);
    }
    let mut settled = Settled::default();
    if state == "failed" {
        let why = outcome.blocks_because(&c.node);
        settled.skipped = fail_downstream(&mut tx, c.run_id, &c.node, &why).await?;
    }
    sqlx::query(
        "UPDATE dag.task_attempts SET finished_at = now(), outcome = $4 \
         WHERE run_id = $1 AND node = $2 AND attempt = $3",
    )
    .bind(c.run_id)
    .bind(&c.node)
    .bind(c.attempt)
    .bind(label)
    .execute(&mut *tx)
    .await?;
    settled.ended = end_run_if_done(&mut tx, c.run_id).await?;
    notify(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(settled))
}

/// Every task downstream of `node` in the run that has not run yet, with
/// `why` as its error; returns them with the reason.
async fn fail_downstream(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
    node: &str,
    why: &str,
) -> DbResult<Vec<(String, String)>> {
    let nodes: Vec<String> = sqlx::query_scalar(
        "WITH RECURSIVE down(node) AS ( \
           SELECT $2::text \
           UNION SELECT t.node FROM dag.task_runs t JOIN down d ON d.node = ANY(t.upstream) \
           WHERE t.run_id = $1) \
         UPDATE dag.task_runs SET state = 'upstream_failed', finished_at = now(), error = $3 \
         WHERE run_id = $1 AND node IN (SELECT node FROM down) AND node <> $2 \
           AND state IN ('queued', 'up_for_retry') \
         RETURNING node",
    )
    .bind(run_id)
    .bind(node)
    .bind(why)
    .fetch_all(&mut **tx)
    .await?;
    Ok(nodes.into_iter().map(|n| (n, why.to_string())).collect())
}

/// Ends the run when none of its tasks is left to do; returns what it did
/// in all when this call ended it.
async fn end_run_if_done(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
) -> DbResult<Option<RunSummary>> {
    // Two tasks of a run finishing at once each see the other still
    // running (neither's update is committed) and neither would end the
    // run. Taking the run's row lock first serializes them, and the check
    // below is a new statement, so the second sees the first's outcome.
    sqlx::query("SELECT 1 FROM dag.runs WHERE id = $1 FOR UPDATE")
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    let ended: Option<String> = sqlx::query_scalar(
        "UPDATE dag.runs r SET finished_at = now(), state = CASE WHEN EXISTS ( \
             SELECT 1 FROM dag.task_runs t WHERE t.run_id = r.id \
             AND t.state IN ('failed', 'upstream_failed')) THEN 'failed' ELSE 'success' END \
         WHERE r.id = $1 AND r.state IN ('queued', 'running') AND NOT EXISTS ( \
             SELECT 1 FROM dag.task_runs t WHERE t.run_id = r.id \
             AND t.state IN ('queued', 'running', 'up_for_retry')) \
         RETURNING r.state",
    )
    .bind(run_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(state) = ended else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT \
           count(*) FILTER (WHERE node <> $2 AND rows_out IS NOT NULL \
                            AND state IN ('success', 'failed')), \
           count(*) FILTER (WHERE node <> $2 AND rows_out IS NULL AND state = 'failed'), \
           count(*) FILTER (WHERE node <> $2 AND state = 'upstream_failed'), \
           coalesce(sum(tests), 0), coalesce(sum(tests_failed), 0), coalesce(sum(tests_warned), 0) \
         FROM dag.task_runs WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(LOAD_NODE)
    .fetch_one(&mut **tx)
    .await?;
    let count = |i: usize| usize::try_from(row.get::<i64, _>(i)).unwrap_or(0);
    Ok(Some(RunSummary {
        run: run_id.to_string(),
        success: state == "success",
        models_ran: count(0),
        models_failed: count(1),
        models_skipped: count(2),
        tests: count(3),
        tests_failed: count(4),
        tests_warned: count(5),
    }))
}

/// Tasks whose lease ran out (their scheduler died or hung): retried by
/// whoever claims them next while attempts remain, else failed. Returns
/// how many were released.
pub async fn expire_leases(pool: &PgPool) -> DbResult<u64> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "UPDATE dag.task_runs SET claimed_by = NULL, lease_until = NULL, \
           state = CASE WHEN attempt < max_attempts THEN 'up_for_retry' ELSE 'failed' END, \
           finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END, \
           next_attempt_at = now(), \
           error = 'the lease of ' || claimed_by || ' ran out (scheduler gone?)' \
         WHERE state = 'running' AND lease_until < now() \
         RETURNING run_id, node, state, attempt",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &rows {
        let (run_id, node, state, attempt): (i64, String, String, i32) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        sqlx::query(
            "UPDATE dag.task_attempts SET finished_at = now(), outcome = 'lease expired' \
             WHERE run_id = $1 AND node = $2 AND attempt = $3",
        )
        .bind(run_id)
        .bind(&node)
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
        if state == "failed" {
            fail_downstream(&mut tx, run_id, &node, &format!("model {node} failed")).await?;
            end_run_if_done(&mut tx, run_id).await?;
        }
    }
    if !rows.is_empty() {
        notify(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// On shutdown: this scheduler's running tasks go back to the queue
/// without using up an attempt (attempt numbers only grow, so the next
/// one gets a new number and one more is allowed).
pub async fn hand_back(pool: &PgPool, me: &str) -> DbResult<u64> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "UPDATE dag.task_runs SET state = 'queued', claimed_by = NULL, lease_until = NULL, \
           max_attempts = max_attempts + 1, started_at = NULL \
         WHERE claimed_by = $1 AND state = 'running' RETURNING run_id, node, attempt",
    )
    .bind(me)
    .fetch_all(&mut *tx)
    .await?;
    for r in &rows {
        sqlx::query(
            "UPDATE dag.task_attempts SET finished_at = now(), outcome = 'handed back' \
             WHERE run_id = $1 AND node = $2 AND attempt = $3",
        )
        .bind(r.get::<i64, _>(0))
        .bind(r.get::<String, _>(1))
        .bind(r.get::<i32, _>(2))
        .execute(&mut *tx)
        .await?;
    }
    notify(&mut tx).await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Registers or refreshes a scheduler's heartbeat.
pub async fn heartbeat(pool: &PgPool, me: &str, host: &str) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO dag.schedulers (id, host, pid) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL",
    )
    .bind(me)
    .bind(host)
    .bind(std::process::id() as i32)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn stopped(pool: &PgPool, me: &str) -> DbResult<()> {
    sqlx::query("UPDATE dag.schedulers SET stopped_at = now() WHERE id = $1")
        .bind(me)
        .execute(pool)
        .await?;
    Ok(())
}

/// Schedulers with a heartbeat within `within`.
pub async fn live_schedulers(pool: &PgPool, within: Duration) -> DbResult<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM dag.schedulers WHERE stopped_at IS NULL \
         AND heartbeat_at > now() - $1::interval",
    )
    .bind(interval(within))
    .fetch_one(pool)
    .await
}

/// What a task of run `run_id` needs to know of its run.
pub async fn run_view(pool: &PgPool, run_id: i64) -> DbResult<crate::executor::RunView> {
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT node, state, delta_version FROM dag.task_runs WHERE run_id = $1 ORDER BY node",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    let mut view = crate::executor::RunView::default();
    for (node, state, version) in rows {
        if matches!(state.as_str(), "failed" | "upstream_failed") {
            view.failed.insert(node.clone());
        }
        if let (Some(v), "success") = (version, state.as_str()) {
            view.versions.insert(node.clone(), v);
        }
        view.nodes.push(node);
    }
    Ok(view)
}
