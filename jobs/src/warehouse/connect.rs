//! Connections to PostgreSQL, and retrying work while it is down or
//! restarting: transient errors (refused or dropped connections, admin
//! shutdown, serialization failures) are retried with exponential backoff
//! until `retry_timeout`, then reported with the target and the last error.

use super::{WarehouseError, WarehouseSettings};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::future::Future;
use std::time::{Duration, Instant};

/// host:port/database of a URL, without user or password (for messages).
pub fn target(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "(unparsable URL)".into(),
    }
}

/// Whether retrying may succeed: the connection, not the statement, failed.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // 08: connection exception; 57P01-03: shutdown / cannot
            // connect now; 40001/40P01: serialization failure / deadlock.
            code.starts_with("08") || code.starts_with("57P") || code == "40001" || code == "40P01"
        }
        _ => false,
    }
}

/// Runs `work` until it succeeds, fails for good, or transient failures
/// have lasted `retry_timeout`.
pub async fn retrying<T, F, Fut>(
    s: &WarehouseSettings,
    what: &str,
    mut work: F,
) -> Result<T, WarehouseError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WarehouseError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let err = match work().await {
            Ok(v) => return Ok(v),
            Err(WarehouseError::Sql(e)) if is_transient(&e) => e.to_string(),
            Err(WarehouseError::Transient(e)) => e,
            Err(e) => return Err(e),
        };
        let elapsed = started.elapsed();
        if elapsed + delay > s.retry_timeout {
            return Err(WarehouseError::Unreachable {
                target: target(&s.url),
                attempts,
                seconds: elapsed.as_secs_f64(),
                last: err,
            });
        }
        tracing::warn!(
            target = %target(&s.url),
            attempt = attempts,
            retry_in = ?delay,
            "{what}: {err}"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// A small pool (a load is one transaction; migrations take a lock on a
/// second connection), connected with retries.
pub async fn connect(s: &WarehouseSettings) -> Result<PgPool, WarehouseError> {
    connect_with(s, 3).await
}

/// [`connect`] with room for `connections` at once.
pub async fn connect_with(
    s: &WarehouseSettings,
    connections: u32,
) -> Result<PgPool, WarehouseError> {
    retrying(s, "connecting to PostgreSQL", || async {
        Ok(PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&s.url)
            .await?)
    })
    .await
}
