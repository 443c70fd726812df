//! What can go wrong running a model, one type for the model layer.

use crate::lake::bridge::BridgeError;
use crate::lake::table::TableError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Delta(#[from] deltalake::DeltaTableError),
    #[error(transparent)]
    Polars(#[from] polars::prelude::PolarsError),
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// Bad input the user can fix (a seed file, a missing table, ...).
    #[error("{0}")]
    Input(String),
}

impl ModelError {
    /// Whether running the model again can succeed: a store or the lake
    /// that failed on the way (a lost connection, a timeout, a commit
    /// conflict, a task given up), or an input that is not there yet (a
    /// seed file, a table), rather than the model itself (SQL that does not
    /// compile or run, a schema that does not fit), which fails the same
    /// way every time in this process (it loaded the pipeline once).
    pub fn is_transient(&self) -> bool {
        match self {
            ModelError::Delta(_) => true,
            ModelError::Table(t) => matches!(
                t,
                TableError::Delta(_) | TableError::Parquet(_) | TableError::Cancelled(_)
            ),
            ModelError::Polars(p) => matches!(p, polars::prelude::PolarsError::IO { .. }),
            ModelError::Input(_) => true,
            ModelError::Bridge(_) | ModelError::Arrow(_) => false,
        }
    }
}
