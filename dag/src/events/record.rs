//! A sink that keeps `dag run`'s runs in PostgreSQL, in the scheduler's own
//! tables: one `dag.runs` row (trigger `cli`) and a `dag.task_runs` row per
//! node as it finishes, so `dag runs`, `dag status` and the UI show runs
//! made by hand beside the scheduled ones.
//!
//! Recording never stands in the run's way: events are queued to a writer
//! task, and a database that cannot be written is reported once (the run
//! goes on; the load, if any, reports its own errors).

use super::{Event, EventSink, NodeState};
use sqlx::PgPool;
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The recorder for `dag run` under `cfg`: None when runs are not to be
/// recorded (`models.record_runs = false`, or no database configured:
/// neither `DATABASE_URL` nor `[warehouse]`), or when the database cannot
/// be reached now (said once; the run goes on). dag's own migrations it
/// applies are said on `events`.
pub async fn open(cfg: &crate::config::Loaded, events: &dyn EventSink) -> Option<Recorder> {
    if !cfg.config.models.record_runs || !crate::warehouse::database_configured(cfg) {
        return None;
    }
    // One quick try: recording is not worth waiting for a database that
    // is down (the load, if any, retries and reports on its own).
    let pool = sqlx::postgres::PgPoolOptions::new()
        // The migration holds its lock on one connection and works on
        // another; the writer then needs one.
        .max_connections(3)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&cfg.warehouse_url)
        .await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => {
            tracing::warn!(
                "this run is not recorded: PostgreSQL at {} is not reachable: {e}",
                jobs::warehouse::connect::target(&cfg.warehouse_url)
            );
            return None;
        }
    };
    match jobs::warehouse::migrate::migrate(&pool).await {
        Ok(applied) => {
            for m in applied {
                events.emit(&Event::Notice {
                    text: format!("migration applied: {m}"),
                });
            }
        }
        Err(e) => {
            tracing::warn!("this run is not recorded: migrating dag's tables: {e}");
            return None;
        }
    }
    Some(Recorder::start(pool))
}

pub struct Recorder {
    queue: mpsc::UnboundedSender<Event>,
    writer: JoinHandle<()>,
}

impl Recorder {
    /// Starts the writer on `pool` (already migrated).
    pub fn start(pool: PgPool) -> Recorder {
        let (queue, mut rx) = mpsc::unbounded_channel::<Event>();
        let writer = tokio::spawn(async move {
            // Run name (the event's) -> row id.
            let mut ids: BTreeMap<String, i64> = BTreeMap::new();
            let mut failed = false;
            while let Some(event) = rx.recv().await {
                if failed {
                    continue;
                }
                if let Err(e) = write(&pool, &mut ids, &event).await {
                    tracing::warn!("this run is not recorded in the database: {e}");
                    failed = true;
                }
            }
        });
        Recorder { queue, writer }
    }

    /// Waits until every event emitted so far is written.
    pub async fn finish(self) {
        drop(self.queue);
        let _ = self.writer.await;
    }
}

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        let _ = self.queue.send(event.clone());
    }
}

async fn write(
    pool: &PgPool,
    ids: &mut BTreeMap<String, i64>,
    event: &Event,
) -> Result<(), sqlx::Error> {
    match event {
        Event::RunStarted { run, nodes, .. } => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO dag.runs (selector, trigger, state, note, started_at) \
                 VALUES ($1, 'cli', 'running', $2, now()) RETURNING id",
            )
            .bind(nodes.join(" "))
            .bind(format!("dag run {run}"))
            .fetch_one(pool)
            .await?;
            ids.insert(run.clone(), id);
        }
        Event::NodeFinished(n) => {
            let Some(id) = ids.get(&n.run) else {
                return Ok(());
            };
            let state = match n.state {
                NodeState::Success => "success",
                NodeState::Failed | NodeState::Retrying => "failed",
                NodeState::Skipped => "upstream_failed",
            };
            sqlx::query(
                "INSERT INTO dag.task_runs (run_id, node, state, attempt, max_attempts, \
                 started_at, finished_at, seconds, rows_in, rows_out, delta_version, error) \
                 VALUES ($1, $2, $3, 1, 1, now() - make_interval(secs => $4), now(), $4, \
                 $5, $6, $7, $8) \
                 ON CONFLICT (run_id, node) DO NOTHING",
            )
            .bind(id)
            .bind(&n.node)
            .bind(state)
            .bind(n.seconds)
            .bind(i64::try_from(n.rows_in).unwrap_or(i64::MAX))
            .bind(i64::try_from(n.rows_out).unwrap_or(i64::MAX))
            .bind(n.version)
            .bind(&n.error)
            .execute(pool)
            .await?;
        }
        Event::RunFinished(s) => {
            let Some(id) = ids.get(&s.run) else {
                return Ok(());
            };
            sqlx::query("UPDATE dag.runs SET state = $2, finished_at = now() WHERE id = $1")
                .bind(id)
                .bind(if s.success { "success" } else { "failed" })
                .execute(pool)
                .await?;
        }
        _ => {}
    }
    Ok(())
}
