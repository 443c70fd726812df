//! The warehouse: gold models copied into PostgreSQL, exactly once.
//!
//! - [`migrate`]: dag's own migrations (schema `dag`), the pipeline's
//!   tables and the pipeline's own SQL migrations, under an advisory lock.
//! - [`ddl`]: a warehouse table derived from its model: its `CREATE TABLE`,
//!   and the changes a model's `on_schema_change` allows.
//! - [`schema`]: each warehouse table compared with its model before a row
//!   is written.
//! - [`load`]: per table, the rows changed since the Delta version the
//!   warehouse holds, COPY'd into staging and upserted by key, keys gold no
//!   longer has deleted; every table of a load and the versions loaded in
//!   one transaction.
//! - `steps`: where a load's time goes, step by step, at `-v`.
//! - [`connect`]: connections and transactions retried with backoff while
//!   PostgreSQL is down or restarting, then reported.

pub mod connect;
pub mod csv;
pub mod ddl;
pub mod load;
pub mod migrate;
pub mod schema;
mod steps;

use crate::model::ModelError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(
        "PostgreSQL at {target} is unreachable: gave up after {attempts} attempt(s) over {seconds:.0}s (warehouse.retry_timeout); last error: {last}"
    )]
    Unreachable {
        target: String,
        attempts: u32,
        seconds: f64,
        last: String,
    },
    /// A warehouse table does not match its model (nothing was written).
    #[error("{0}")]
    Schema(String),
    #[error("migrations: {0}")]
    Migrate(String),
    /// A lost connection under another library (refinery): retried.
    #[error("{0}")]
    Transient(String),
    /// Another load held the load lock for all of warehouse.retry_timeout.
    #[error(
        "another load has held the warehouse's load lock for {seconds:.0}s (warehouse.retry_timeout): nothing was loaded, the warehouse keeps its state"
    )]
    Busy { seconds: f64 },
    #[error("PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Polars(#[from] polars::prelude::PolarsError),
}

impl From<crate::lake::table::TableError> for WarehouseError {
    fn from(e: crate::lake::table::TableError) -> Self {
        WarehouseError::Model(e.into())
    }
}

/// Where the warehouse is and how long to wait for it.
#[derive(Clone, Debug)]
pub struct WarehouseSettings {
    /// postgres:// URL, password included when given by the environment.
    pub url: String,
    /// How long connection losses are retried before the load fails.
    pub retry_timeout: Duration,
}

/// `"name"` with inner quotes doubled: identifiers come from model files
/// (checked to be plain identifiers) and are quoted anyway.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}
