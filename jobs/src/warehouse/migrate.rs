//! The migrations of `migrations/` (embedded at build time), applied by
//! refinery through sqlx. Concurrent callers serialize on an advisory lock;
//! refinery's history lives in `dag.refinery_schema_history`, and a file
//! changed after it was applied stops with an error naming it.

use super::WarehouseError;
use refinery_core::Migration;
use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use sqlx::PgPool;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Advisory lock key of the migrations ("dagmigr" in ASCII).
const LOCK: i64 = 0x0064_6167_6d69_6772;

/// Applies pending migrations; returns the names applied now.
pub async fn migrate(pool: &PgPool) -> Result<Vec<String>, WarehouseError> {
    let mut lock = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut *lock)
        .await?;
    let result = async {
        sqlx::raw_sql("CREATE SCHEMA IF NOT EXISTS dag")
            .execute(&mut *lock)
            .await?;
        let mut runner = embedded::migrations::runner()
            .set_abort_divergent(true)
            .set_abort_missing(true)
            .set_grouped(true);
        runner.set_migration_table_name("dag.refinery_schema_history");
        let report = runner
            .run_async(&mut Migrator(pool.clone()))
            .await
            .map_err(|e| {
                // A lost connection is retried by the caller; anything else
                // (a divergent or missing migration, bad SQL) is final.
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(c) = cause {
                    if let Some(sql) = c.downcast_ref::<sqlx::Error>()
                        && super::connect::is_transient(sql)
                    {
                        return WarehouseError::Transient(format!("migrations: {e}: {sql}"));
                    }
                    cause = c.source();
                }
                WarehouseError::Migrate(e.to_string())
            })?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut *lock)
        .await;
    result
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
