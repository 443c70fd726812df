//! What every handler of the UI shares: the pipeline and where its state
//! lives (the `Ui`), and the shape of an answer.

use crate::config::Loaded;
use crate::pipeline::Pipeline;
use axum::Json;
use axum::http::StatusCode;
use jobs::datatest::results::Recorded;
use serde_json::{Value, json};
use std::sync::Arc;

/// The test results last read from the lake, and the table version they
/// were read at.
pub type Cache = tokio::sync::Mutex<Option<(Option<i64>, Arc<Vec<Recorded>>)>>;

/// What every handler reads: the pipeline, where its state lives.
pub struct Ui {
    pub cfg: Loaded,
    pub p: Pipeline,
    /// None when no database is configured: no runs to show.
    pub pool: Option<sqlx::PgPool>,
    /// The test results last read from the lake.
    pub results: Cache,
}

/// A handler's answer: JSON, or a status with `{"error": "..."}`.
pub type Answer = Result<Json<Value>, (StatusCode, Json<Value>)>;

/// The error answer: `status` with `{"error": message}`.
pub fn fail(status: StatusCode, message: impl std::fmt::Display) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": message.to_string() })))
}

/// The warehouse's loaded version of each model and when it was loaded.
pub async fn loaded_versions(
    pool: &sqlx::PgPool,
) -> std::collections::BTreeMap<String, (i64, String)> {
    sqlx::query_as::<_, (String, i64, String)>(
        "SELECT model, delta_version, \
           to_char(loaded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         FROM dag.loaded_versions",
    )
    .fetch_all(pool)
    .await
    .map(|rows| rows.into_iter().map(|(m, v, at)| (m, (v, at))).collect())
    .unwrap_or_default()
}
