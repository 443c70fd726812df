//! The test results a run's tasks keep in PostgreSQL
//! (`dag.task_runs.unrecorded_results`, written by [`super::store::finish`]
//! in the transaction that ends the task) until the run's load, or its end,
//! appends them to the lake's results table in one commit; and the ended
//! runs whose results are still kept (their recorder died).

use super::store::DbResult;
use jobs::datatest::TestResult;
use sqlx::PgPool;

/// The name of run `run_id` in the lake's results table.
pub fn results_run(run_id: i64) -> String {
    format!("run-{run_id}")
}

/// Hands the test results run `run_id`'s tasks kept (see
/// [`super::store::finish`]) to `record`, then clears them, holding their
/// rows meanwhile: of two recorders of one run (its load and a sweep), the
/// second finds nothing.
/// A crash between `record` and the clearing records them again on the
/// next try (twice in the history; a test's base is the same).
pub async fn record_results(
    pool: &PgPool,
    run_id: i64,
    record: crate::executor::Recorder<'_>,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let kept: Vec<sqlx::types::Json<Vec<TestResult>>> = sqlx::query_scalar(
        "SELECT unrecorded_results FROM dag.task_runs \
         WHERE run_id = $1 AND unrecorded_results IS NOT NULL ORDER BY node FOR UPDATE",
    )
    .bind(run_id)
    .fetch_all(&mut *tx)
    .await?;
    let results: Vec<TestResult> = kept.into_iter().flat_map(|j| j.0).collect();
    if results.is_empty() {
        return Ok(0);
    }
    let n = results.len();
    record(results).await?;
    sqlx::query(
        "UPDATE dag.task_runs SET unrecorded_results = NULL \
         WHERE run_id = $1 AND unrecorded_results IS NOT NULL",
    )
    .bind(run_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Ended runs whose tasks still keep test results (their recorder died or
/// failed), oldest first.
pub async fn runs_with_unrecorded_results(pool: &PgPool) -> DbResult<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT r.id FROM dag.runs r WHERE r.state NOT IN ('queued', 'running') \
         AND EXISTS (SELECT 1 FROM dag.task_runs t WHERE t.run_id = r.id \
                     AND t.unrecorded_results IS NOT NULL) \
         ORDER BY r.id LIMIT 100",
    )
    .fetch_all(pool)
    .await
}
