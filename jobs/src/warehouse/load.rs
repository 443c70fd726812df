//! The load: gold tables into the warehouse, all in one transaction.
//!
//! Per table, from the Delta version `dag.loaded_versions` records to the
//! table's current version:
//! - `initial`: the warehouse table is empty: every row COPY'd straight in.
//! - `changes`: the rows of the data files added since (still live) are
//!   COPY'd into a staging table and upserted by key, skipping rows equal
//!   to what the table holds (so an unchanged row gets no new row
//!   version); keys of the removed files that no added file holds are
//!   deleted.
//! - `full` (no version recorded yet over a non-empty table, a table
//!   recreated, a removed file already vacuumed): every row staged and
//!   upserted, keys gold no longer has deleted.
//!
//! Then the new versions are recorded in the same transaction, so a
//! repeated load is a no-op and a crash leaves the previous state whole.
//! Concurrent loads serialize on an advisory lock.

use super::connect::retrying;
use super::steps::Steps;
use super::{WarehouseError, WarehouseSettings, csv, quote, schema};
use crate::decl::Model;
use crate::lake::table::{DataFile, ModelTable};
use crate::model::{Catalog, RunSettings};
use polars::prelude::DataFrame;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use std::time::Instant;

/// Advisory lock key of loads ("dagload").
pub const LOCK: i64 = 0x0064_6167_6c6f_6164;

/// Input files read per COPY chunk.
const CHUNK_BYTES: i64 = 32 << 20;

/// Whether the run's data tests let this load happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Load each table at its current version.
    Open,
    /// The data tests passed on these versions (model -> Delta version):
    /// each of those tables is loaded at that version, never at a newer,
    /// untested one a concurrent run committed meanwhile; a table whose
    /// warehouse already holds a newer version is left as it is.
    Audited(BTreeMap<String, i64>),
    /// Blocked, and why (a failing error-severity test, a failed model).
    Closed(String),
}

impl Gate {
    /// An open gate over the versions `results` judged, unless one of them
    /// blocks.
    pub fn after(results: &[crate::datatest::TestResult]) -> Gate {
        let blocking: Vec<String> = results
            .iter()
            .filter(|r| r.status.blocks())
            .map(|r| format!("test {} failed", r.test))
            .collect();
        if !blocking.is_empty() {
            return Gate::Closed(blocking.join(", "));
        }
        let mut versions = BTreeMap::new();
        for r in results {
            let v = versions.entry(r.model.clone()).or_insert(r.version);
            *v = (*v).max(r.version);
        }
        Gate::Audited(versions)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Initial,
    Changes,
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Initial => "initial",
            Mode::Changes => "changes",
            Mode::Full => "full",
        }
    }
}

/// What one table's load did.
#[derive(Clone, Debug)]
pub struct TableLoad {
    pub model: String,
    pub from: Option<i64>,
    pub to: i64,
    pub mode: Mode,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Tables that changed, in load order.
    pub tables: Vec<TableLoad>,
    /// Tables already at their gold version.
    pub current: Vec<String>,
    /// Tables without a gold table yet (their model never ran).
    pub missing: Vec<String>,
    /// Set when the gate was closed: nothing was loaded.
    pub blocked: Option<String>,
}

/// Loads `models` (those with a warehouse target) if the gate is open,
/// retrying the whole transaction while PostgreSQL is unreachable.
pub async fn load(
    ws: &WarehouseSettings,
    pool: &PgPool,
    models: &[&Model],
    catalog: &Catalog,
    s: &RunSettings,
    gate: Gate,
) -> Result<LoadReport, WarehouseError> {
    let audited = match gate {
        Gate::Closed(why) => {
            return Ok(LoadReport {
                blocked: Some(why),
                ..LoadReport::default()
            });
        }
        Gate::Open => BTreeMap::new(),
        Gate::Audited(versions) => versions,
    };
    let models: Vec<&Model> = models
        .iter()
        .copied()
        .filter(|m| m.warehouse.is_some())
        .collect();
    retrying(ws, "loading the warehouse", || {
        load_once(pool, &models, catalog, s, &audited, ws.retry_timeout)
    })
    .await
}

async fn load_once(
    pool: &PgPool,
    models: &[&Model],
    catalog: &Catalog,
    s: &RunSettings,
    audited: &BTreeMap<String, i64>,
    lock_wait: std::time::Duration,
) -> Result<LoadReport, WarehouseError> {
    let mut report = LoadReport::default();
    let mut steps = Steps::start();
    let mut tx = pool.begin().await?;
    // Another load (or one hung mid-transaction) is waited for, but not
    // for ever: the lock wait is bounded, the load's own statements not.
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", lock_wait.as_millis().max(1)))
        .execute(&mut *tx)
        .await?;
    match sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await
    {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
            return Err(WarehouseError::Busy {
                seconds: lock_wait.as_secs_f64(),
            });
        }
        other => other?,
    };
    sqlx::query("SELECT set_config('lock_timeout', '0', true)")
        .execute(&mut *tx)
        .await?;
    steps.end("lock");
    // Tables are opened under the lock: a load that waited for another one
    // sees at least the versions that one loaded, so two loads can never
    // leave the warehouse at the older snapshot.
    let mut tables = Vec::new();
    for m in models {
        match catalog.open_input(&m.name, s).await {
            Ok(t) => {
                let latest = t.version();
                // The version the tests judged, not a newer untested one.
                let t = match audited.get(&m.name) {
                    Some(&v) if v < latest && v >= 0 => audited_rows(&m.name, t, v).await?,
                    _ => t,
                };
                tables.push((*m, t, latest));
            }
            Err(crate::model::ModelError::Input(_)) => report.missing.push(m.name.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    steps.end("open tables");
    let present: Vec<&Model> = tables.iter().map(|(m, _, _)| *m).collect();
    schema::check(&mut tx, &present).await?;
    steps.end("check schemas");
    tracing::debug!(%steps, "load: ready");
    let load_id = uuid::Uuid::new_v4();
    for (m, table, latest) in &tables {
        let loaded: Option<i64> =
            sqlx::query_scalar("SELECT delta_version FROM dag.loaded_versions WHERE model = $1")
                .bind(&m.name)
                .fetch_optional(&mut *tx)
                .await?;
        let to = table.version();
        if loaded == Some(to) {
            report.current.push(m.name.clone());
            continue;
        }
        // Another load already published a newer version of this table
        // (it is still there: not a table recreated from version 0): going
        // back to the audited one would undo it.
        if let Some(l) = loaded
            && l > to
            && *latest >= l
        {
            tracing::info!(model = %m.name, loaded = l, audited = to, "the warehouse holds a newer version: left as it is");
            report.current.push(m.name.clone());
            continue;
        }
        let started = Instant::now();
        let mut done = load_table(&mut tx, m, table, loaded).await?;
        done.seconds = started.elapsed().as_secs_f64();
        sqlx::query(
            "INSERT INTO dag.loaded_versions (model, delta_version, loaded_at) VALUES ($1, $2, now())
             ON CONFLICT (model) DO UPDATE SET delta_version = EXCLUDED.delta_version, loaded_at = now()",
        )
        .bind(&m.name)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO dag.load_history
             (load_id, model, from_version, to_version, mode, inserted, updated, deleted, seconds)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(load_id)
        .bind(&m.name)
        .bind(loaded)
        .bind(to)
        .bind(done.mode.as_str())
        .bind(done.inserted as i64)
        .bind(done.updated as i64)
        .bind(done.deleted as i64)
        .bind(done.seconds)
        .execute(&mut *tx)
        .await?;
        tracing::debug!(model = %m.name, mode = done.mode.as_str(), seconds = done.seconds, "loaded");
        report.tables.push(done);
    }
    tx.commit().await?;
    Ok(report)
}

/// `table` (opened at its latest version) holding the rows of version
/// `audited`: as it is when only rewrites (compaction) came after, which
/// moved rows between files but changed none; else time-travelled back.
async fn audited_rows(
    model: &str,
    table: ModelTable,
    audited: i64,
) -> Result<ModelTable, WarehouseError> {
    match table.changes(audited).await {
        Ok(ch) if ch.is_empty() => Ok(table),
        _ => {
            tracing::debug!(
                model,
                audited,
                latest = table.version(),
                "load: back to the audited version"
            );
            Ok(table.at_version(audited).await?)
        }
    }
}

/// The load of one table inside the transaction.
async fn load_table(
    conn: &mut PgConnection,
    m: &Model,
    table: &ModelTable,
    loaded: Option<i64>,
) -> Result<TableLoad, WarehouseError> {
    let Some(target) = &m.warehouse else {
        return Err(WarehouseError::Schema(format!(
            "model {} has no warehouse table",
            m.name
        )));
    };
    let qualified = format!("{}.{}", quote(&target.schema), quote(&target.table));
    let cols: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
    let col_list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let key: Vec<&str> = m.unique_key.iter().map(String::as_str).collect();
    let mut done = TableLoad {
        model: m.name.clone(),
        from: loaded,
        to: table.version(),
        mode: Mode::Full,
        inserted: 0,
        updated: 0,
        deleted: 0,
        seconds: 0.0,
    };
    let mut steps = Steps::start();
    let live = table.files().await?;
    // What changed since the loaded version, when that can be known.
    let changes = match loaded {
        Some(v) if v < table.version() => table.changes(v).await.ok(),
        _ => None,
    };
    let gone_keys = match &changes {
        Some(ch) if !ch.removed.is_empty() => match table.read(&ch.removed, Some(&key)).await {
            Ok(keys) => Some(Some(keys)),
            Err(e) => {
                tracing::info!(model = %m.name, "a removed file cannot be read ({e}): full load");
                None
            }
        },
        Some(_) => Some(None),
        None => None,
    };
    steps.end("read changes");
    let empty: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT NOT EXISTS (SELECT 1 FROM {qualified})"
    )))
    .fetch_one(&mut *conn)
    .await?;
    if empty {
        // Nothing to compare with: COPY straight into the table.
        done.mode = Mode::Initial;
        let copy = format!("COPY {qualified} ({col_list}) FROM STDIN WITH (FORMAT csv)");
        done.inserted = copy_files(conn, &copy, table, &live, &cols).await?;
        return Ok(done);
    }
    let stage = quote(&format!("dag_stage_{}", m.name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TEMP TABLE {stage} (LIKE {qualified}) ON COMMIT DROP"
    )))
    .execute(&mut *conn)
    .await?;
    let (files, gone) = match (&changes, gone_keys) {
        (Some(ch), Some(gone)) => {
            done.mode = Mode::Changes;
            // Compacted files holding new rows come with older rows too:
            // staged again, upserted to the same values.
            let files: Vec<DataFile> = ch.live_new(&live).into_iter().cloned().collect();
            (files, gone)
        }
        _ => (live.clone(), None),
    };
    steps.end("stage");
    let copy = format!("COPY {stage} ({col_list}) FROM STDIN WITH (FORMAT csv)");
    let staged = copy_files(conn, &copy, table, &files, &cols).await?;
    steps.end("copy");
    // Statistics help only the delete's join with the stage; the upsert
    // reads the stage in one scan whatever they say (a big stage of new
    // rows spent 0.14 s of a 0.7 s load on them).
    let deletes = done.mode == Mode::Full || gone.is_some();
    if staged > 10_000 && deletes {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {stage}")))
            .execute(&mut *conn)
            .await?;
    }
    done.deleted = delete_gone(conn, &m.name, &qualified, &stage, &key, done.mode, gone).await?;
    steps.end("delete");
    let (inserted, updated) = upsert(conn, &qualified, &stage, &cols, &key).await?;
    done.inserted = inserted;
    done.updated = updated;
    steps.end("upsert");
    tracing::debug!(model = %m.name, files = files.len(), staged, %steps, "load steps");
    Ok(done)
}

/// Deletes the warehouse rows whose keys gold no longer has: in a load of
/// changes, the keys of removed files that no staged row brings back; in a
/// full load, every key not staged. Returns the rows deleted.
async fn delete_gone(
    conn: &mut PgConnection,
    model: &str,
    qualified: &str,
    stage: &str,
    key: &[&str],
    mode: Mode,
    gone: Option<DataFrame>,
) -> Result<u64, WarehouseError> {
    let key_list = key.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let same_key = |a: &str, b: &str| {
        key.iter()
            .map(|k| format!("{a}.{q} = {b}.{q}", q = quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    // Deletions: keys gold no longer has.
    Ok(match (mode, gone) {
        (Mode::Changes, None) => 0,
        (Mode::Changes, Some(mut keys)) => {
            let gone_table = quote(&format!("dag_gone_{model}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TEMP TABLE {gone_table} ON COMMIT DROP AS SELECT {key_list} FROM {qualified} WITH NO DATA"
            )))
            .execute(&mut *conn)
            .await?;
            let mut copy = conn
                .copy_in_raw(&format!(
                    "COPY {gone_table} ({key_list}) FROM STDIN WITH (FORMAT csv)"
                ))
                .await?;
            copy.send(csv::encode(&mut keys)?).await?;
            copy.finish().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {qualified} t USING {gone_table} g WHERE {} AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE {})",
                same_key("t", "g"),
                same_key("s", "g")
            )))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        }
        _ => sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {qualified} t WHERE NOT EXISTS (SELECT 1 FROM {stage} s WHERE {})",
            same_key("s", "t")
        )))
        .execute(&mut *conn)
        .await?
        .rows_affected(),
    })
}

/// Inserts new keys and updates changed rows from the stage; equal rows
/// are left alone (no new row version). Returns (inserted, updated).
async fn upsert(
    conn: &mut PgConnection,
    qualified: &str,
    stage: &str,
    cols: &[&str],
    key: &[&str],
) -> Result<(u64, u64), WarehouseError> {
    let col_list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let key_list = key.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let others: Vec<&str> = cols.iter().copied().filter(|c| !key.contains(c)).collect();
    let on_conflict = if others.is_empty() {
        "DO NOTHING".to_string()
    } else {
        let set = others
            .iter()
            .map(|c| format!("{q} = EXCLUDED.{q}", q = quote(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let mine = others
            .iter()
            .map(|c| format!("t.{}", quote(c)))
            .collect::<Vec<_>>();
        let theirs = others
            .iter()
            .map(|c| format!("EXCLUDED.{}", quote(c)))
            .collect::<Vec<_>>();
        format!(
            "DO UPDATE SET {set} WHERE ({}) IS DISTINCT FROM ({})",
            mine.join(", "),
            theirs.join(", ")
        )
    };
    let (inserted, updated): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH up AS (
            INSERT INTO {qualified} AS t ({col_list}) SELECT {col_list} FROM {stage}
            ON CONFLICT ({key_list}) {on_conflict}
            RETURNING (xmax = 0) AS inserted)
         SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
    )))
    .fetch_one(&mut *conn)
    .await?;
    Ok((inserted as u64, updated as u64))
}

/// COPYs the rows of `files` (columns `cols`, in this order) with the
/// `copy` statement, a chunk of files at a time; returns the rows copied.
async fn copy_files(
    conn: &mut PgConnection,
    copy: &str,
    table: &ModelTable,
    files: &[DataFile],
    cols: &[&str],
) -> Result<u64, WarehouseError> {
    let mut sink = conn.copy_in_raw(copy).await?;
    let mut start = 0;
    let result = async {
        while start < files.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < files.len() && (end == start || bytes < CHUNK_BYTES) {
                bytes += files[end].size;
                end += 1;
            }
            let mut df = table.read(&files[start..end], Some(cols)).await?;
            start = end;
            sink.send(csv::encode(&mut df)?).await?;
        }
        Ok::<_, WarehouseError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(sink.finish().await?),
        Err(e) => {
            let _ = sink.abort(e.to_string()).await;
            Err(e)
        }
    }
}
