//! Everything `dag migrate` does to a warehouse, in this order, under one
//! advisory lock (concurrent callers wait for each other):
//!
//! 1. dag's own metadata migrations (`migrations/`, schema `dag`, embedded
//!    at build time; history in `dag.schema_history`);
//! 2. the pipeline's tables, derived from its models ([`super::ddl`]):
//!    created when missing, changed by each model's `on_schema_change`;
//! 3. the pipeline's own SQL migrations (`<pipeline>/migrations/V<n>__<name>.sql`,
//!    read from disk at run time; history per pipeline in
//!    `dag.pipeline_<name>_migrations`), after the tables they index.
//!
//! [`plan`] computes the same without changing anything (`dag migrate
//! --plan`). A migration file changed or removed after it was applied
//! stops with an error naming it.

use super::WarehouseError;
use super::ddl::{self, TableChange};
use super::quote;
use crate::decl::{Model, Pos};
use refinery_core::Migration;
use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Advisory lock key of the migrations ("dagmigr" in ASCII).
const LOCK: i64 = 0x0064_6167_6d69_6772;

/// refinery's history of dag's own migrations.
const DAG_HISTORY: &str = "dag.schema_history";

/// A pipeline's SQL migrations, read from its `migrations/` folder.
#[derive(Clone, Debug, Default)]
pub struct PipelineMigrations {
    /// The pipeline's name (its history table is named after it).
    pub pipeline: String,
    /// (file, migration), by version.
    pub files: Vec<(PathBuf, Migration)>,
}

impl PipelineMigrations {
    /// Reads `<root>/migrations` (none when the folder does not exist).
    pub fn read(pipeline: &str, root: &Path) -> Result<Self, WarehouseError> {
        let dir = root.join("migrations");
        let files = if dir.is_dir() {
            pipeline_migrations(&dir).map_err(|e| {
                WarehouseError::Migrate(format!("{}: {}", e.pos.file.display(), e.message))
            })?
        } else {
            Vec::new()
        };
        Ok(Self {
            pipeline: pipeline.to_string(),
            files,
        })
    }

    /// `dag.pipeline_<name>_migrations`: one history per pipeline, so two
    /// pipelines never read each other's versions.
    pub fn history_table(&self) -> String {
        let name: String = self
            .pipeline
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("dag.pipeline_{name}_migrations")
    }

    fn migrations(&self) -> Vec<Migration> {
        self.files.iter().map(|(_, m)| m.clone()).collect()
    }
}

/// A problem with one file of a migrations folder.
#[derive(Debug)]
pub struct FileProblem {
    pub pos: Pos,
    pub message: String,
}

/// The `V<n>__<name>.sql` files of `dir`, by version. Other files (a
/// README) are ignored; a `.sql` file with another name, two files of one
/// version or an unreadable file is an error naming the file.
pub fn pipeline_migrations(dir: &Path) -> Result<Vec<(PathBuf, Migration)>, FileProblem> {
    let problem = |p: &Path, message: String| FileProblem {
        pos: Pos::file(p),
        message,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| problem(dir, format!("cannot read folder: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("sql"))
        .collect();
    paths.sort();
    let mut out: Vec<(PathBuf, Migration)> = Vec::new();
    for path in paths {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let well_named = stem.starts_with('V')
            && stem[1..].split_once("__").is_some_and(|(v, name)| {
                !v.is_empty()
                    && v.chars().all(|c| c.is_ascii_digit())
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !well_named {
            return Err(problem(
                &path,
                "a migration file is named V<version>__<name>.sql (e.g. V1__indexes.sql): version digits, name letters, digits and _".into(),
            ));
        }
        let sql = std::fs::read_to_string(&path)
            .map_err(|e| problem(&path, format!("cannot read: {e}")))?;
        let m = Migration::unapplied(stem, &sql).map_err(|e| problem(&path, e.to_string()))?;
        if let Some((other, _)) = out.iter().find(|(_, o)| o.version() == m.version()) {
            return Err(problem(
                &path,
                format!(
                    "version {} is taken by {} too: each migration has its own version",
                    m.version(),
                    other.display()
                ),
            ));
        }
        out.push((path, m));
    }
    out.sort_by_key(|(_, m)| m.version());
    Ok(out)
}

/// What `dag migrate` would do now.
#[derive(Debug, Default)]
pub struct Plan {
    /// dag's own migrations not applied yet.
    pub dag_pending: Vec<Migration>,
    /// Schemas of warehouse tables that do not exist yet.
    pub schemas: Vec<String>,
    /// One entry per model whose table needs something.
    pub tables: Vec<TableChange>,
    /// The pipeline's migrations not applied yet (file, migration).
    pub pipeline_pending: Vec<(PathBuf, Migration)>,
    /// Tables in the pipeline's schemas that none of its models loads
    /// (left alone, reported).
    pub foreign: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.dag_pending.is_empty()
            && self.schemas.is_empty()
            && self.tables.iter().all(TableChange::is_empty)
            && self.pipeline_pending.is_empty()
    }

    /// Every difference `on_schema_change` does not allow.
    pub fn problems(&self) -> Vec<String> {
        self.tables
            .iter()
            .flat_map(|t| t.problems.iter().cloned())
            .collect()
    }

    /// The SQL `dag migrate` runs, in order, with a comment before each
    /// part saying what it is.
    pub fn sql(&self) -> String {
        let mut out = String::new();
        for m in &self.dag_pending {
            out += &format!("-- dag metadata migration {m}\n");
            out += m.sql().unwrap_or_default().trim_end();
            out += "\n\n";
        }
        for s in &self.schemas {
            out += &format!("CREATE SCHEMA IF NOT EXISTS {};\n\n", quote(s));
        }
        for t in &self.tables {
            if t.statements.is_empty() {
                continue;
            }
            out += &format!("-- {} (model {})\n", t.table, t.model);
            for n in &t.notes {
                out += &format!("--   {n}\n");
            }
            for s in table_statements(t) {
                out += &s;
                out += ";\n";
            }
            out += "\n";
        }
        for (path, m) in &self.pipeline_pending {
            out += &format!("-- pipeline migration {m} ({})\n", path.display());
            out += m.sql().unwrap_or_default().trim_end();
            out += "\n\n";
        }
        for p in self.problems() {
            out += &format!("-- NOT RUN: {p}\n");
        }
        out
    }
}

/// A table change's statements and its load-state reset.
fn table_statements(t: &TableChange) -> Vec<String> {
    let mut out = t.statements.clone();
    if t.reset_load {
        out.push(format!(
            "DELETE FROM dag.loaded_versions WHERE model = '{}'",
            t.model.replace('\'', "''")
        ));
    }
    out
}

/// What [`migrate_pipeline`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// dag's own migrations applied now.
    pub dag: Vec<String>,
    pub schemas: Vec<String>,
    /// The table changes that ran.
    pub tables: Vec<TableChange>,
    /// The pipeline's migrations applied now.
    pub pipeline: Vec<String>,
    pub foreign: Vec<String>,
}

/// The versions recorded in a refinery history table (none when it does
/// not exist yet).
async fn applied_versions(
    conn: &mut PgConnection,
    table: &str,
) -> Result<BTreeSet<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(BTreeSet::new());
    }
    let versions: Vec<i32> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
            .fetch_all(&mut *conn)
            .await?;
    Ok(versions.into_iter().map(i64::from).collect())
}

/// What `dag migrate` would do for `models` and `pipeline`; changes nothing.
pub async fn plan(
    conn: &mut PgConnection,
    models: &[&Model],
    pipeline: &PipelineMigrations,
) -> Result<Plan, WarehouseError> {
    let done = applied_versions(conn, DAG_HISTORY).await?;
    let dag_pending = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .filter(|m| !done.contains(&i64::from(m.version())))
        .cloned()
        .collect();
    let mut plan = tables_plan(conn, models).await?;
    plan.dag_pending = dag_pending;
    let done = applied_versions(conn, &pipeline.history_table()).await?;
    plan.pipeline_pending = pipeline
        .files
        .iter()
        .filter(|(_, m)| !done.contains(&i64::from(m.version())))
        .cloned()
        .collect();
    Ok(plan)
}

/// The schema and table part of a plan.
async fn tables_plan(conn: &mut PgConnection, models: &[&Model]) -> Result<Plan, WarehouseError> {
    let mut plan = Plan::default();
    let schemas: BTreeSet<&str> = models
        .iter()
        .filter_map(|m| m.warehouse.as_ref().map(|t| t.schema.as_str()))
        .collect();
    for s in &schemas {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(s)
                .fetch_one(&mut *conn)
                .await?;
        if !exists {
            plan.schemas.push(s.to_string());
            continue;
        }
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
        )
        .bind(s)
        .fetch_all(&mut *conn)
        .await?;
        for t in tables {
            let ours = models.iter().any(|m| {
                m.warehouse
                    .as_ref()
                    .is_some_and(|w| w.schema == *s && w.table == t)
            });
            if !ours {
                plan.foreign.push(format!("{s}.{t}"));
            }
        }
    }
    for m in models {
        let Some(t) = &m.warehouse else { continue };
        let live = ddl::live(conn, &t.schema, &t.table).await?;
        if let Some(ch) = ddl::change(m, live.as_ref())
            && !ch.is_empty()
        {
            plan.tables.push(ch);
        }
    }
    Ok(plan)
}

/// Applies dag's own migrations only (commands that need the run metadata
/// but no pipeline tables); returns the names applied now.
pub async fn migrate(pool: &PgPool) -> Result<Vec<String>, WarehouseError> {
    let mut lock = lock(pool).await?;
    let result = run_dag(pool).await;
    unlock(&mut lock).await;
    result
}

/// Applies dag's own migrations, the pipeline's tables and the pipeline's
/// migrations (see the module docs). A table difference its model's
/// `on_schema_change` does not allow stops before any table or pipeline
/// migration is touched.
pub async fn migrate_pipeline(
    pool: &PgPool,
    models: &[&Model],
    pipeline: &PipelineMigrations,
) -> Result<Applied, WarehouseError> {
    let mut lock = lock(pool).await?;
    let result = migrate_locked(pool, &mut lock, models, pipeline).await;
    unlock(&mut lock).await;
    result
}

async fn migrate_locked(
    pool: &PgPool,
    lock: &mut PgConnection,
    models: &[&Model],
    pipeline: &PipelineMigrations,
) -> Result<Applied, WarehouseError> {
    let mut applied = Applied {
        dag: run_dag(pool).await?,
        ..Applied::default()
    };
    // Computed under the lock: what another migrate did is seen.
    let plan = tables_plan(lock, models).await?;
    let problems = plan.problems();
    if !problems.is_empty() {
        return Err(WarehouseError::Schema(format!(
            "the warehouse does not match the models (nothing was changed):\n  {}",
            problems.join("\n  ")
        )));
    }
    let mut tx = lock.begin().await?;
    for s in &plan.schemas {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote(s)
        )))
        .execute(&mut *tx)
        .await?;
    }
    for t in &plan.tables {
        for s in table_statements(t) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if super::connect::is_transient(&e) {
                        WarehouseError::Sql(e)
                    } else {
                        WarehouseError::Schema(format!(
                            "{} (model {}): {e}\n  while running: {s}",
                            t.table, t.model
                        ))
                    }
                })?;
        }
    }
    tx.commit().await?;
    applied.schemas = plan.schemas;
    applied.tables = plan.tables;
    applied.foreign = plan.foreign;
    if !pipeline.files.is_empty() {
        let migrations = pipeline.migrations();
        let mut runner = refinery_core::Runner::new(&migrations)
            .set_abort_divergent(true)
            .set_abort_missing(true)
            .set_grouped(true);
        runner.set_migration_table_name(pipeline.history_table());
        let report = runner
            .run_async(&mut Migrator(pool.clone()))
            .await
            .map_err(|e| refinery_error(e, "pipeline migrations"))?;
        applied.pipeline = report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect();
    }
    Ok(applied)
}

/// A connection holding the migration lock (waits for other migrates).
async fn lock(pool: &PgPool) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, WarehouseError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(conn)
}

async fn unlock(conn: &mut PgConnection) {
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut *conn)
        .await;
}

async fn run_dag(pool: &PgPool) -> Result<Vec<String>, WarehouseError> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("CREATE SCHEMA IF NOT EXISTS dag")
        .execute(&mut *conn)
        .await?;
    drop(conn);
    let mut runner = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .set_grouped(true);
    runner.set_migration_table_name(DAG_HISTORY);
    let report = runner
        .run_async(&mut Migrator(pool.clone()))
        .await
        .map_err(|e| refinery_error(e, "dag migrations"))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// A lost connection is retried by the caller; anything else (a divergent
/// or missing migration, bad SQL) is final.
fn refinery_error(e: refinery_core::Error, what: &str) -> WarehouseError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(sql) = c.downcast_ref::<sqlx::Error>()
            && super::connect::is_transient(sql)
        {
            return WarehouseError::Transient(format!("{what}: {e}: {sql}"));
        }
        cause = c.source();
    }
    WarehouseError::Migrate(format!("{what}: {e}"))
}

/// refinery's async driver over a sqlx pool (the orphan rule needs the
/// newtype).
struct Migrator(PgPool);

impl AsyncTransaction for Migrator {
    type Error = sqlx::Error;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &'a mut self,
        queries: T,
    ) -> Result<usize, sqlx::Error> {
        let mut tx = self.0.begin().await?;
        let mut n = 0;
        for q in queries {
            // Migration files hold several statements: the simple protocol.
            sqlx::raw_sql(sqlx::AssertSqlSafe(q.to_owned()))
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }
}

impl AsyncQuery<Vec<Migration>> for Migrator {
    async fn query<'a>(&'a mut self, query: &'a str) -> Result<Vec<Migration>, sqlx::Error> {
        use sqlx::Row;
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_all(&self.0)
            .await?;
        rows.iter()
            .map(|r| {
                let decode = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
                let at = time::OffsetDateTime::parse(
                    &r.try_get::<String, _>(2)?,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| decode(e.into()))?;
                let sum: u64 = r
                    .try_get::<String, _>(3)?
                    .parse()
                    .map_err(|e: std::num::ParseIntError| decode(e.into()))?;
                Ok(Migration::applied(r.try_get(0)?, r.try_get(1)?, at, sum))
            })
            .collect()
    }
}

impl AsyncMigrate for Migrator {}
