//! What can go wrong with a model's Delta table.

use crate::lake::bridge::BridgeError;
use deltalake::DeltaTableError;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Delta(#[from] DeltaTableError),
    #[error(transparent)]
    Parquet(#[from] deltalake::parquet::errors::ParquetError),
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Schema(String),
    /// The table's columns are not the ones its model declares now.
    #[error(
        "{0}; a changed model's table is rebuilt by `dag run <model> --full-refresh` (and what reads it with it: `<model>+`)"
    )]
    Changed(String),
    #[error(
        "{0}: not committed: the task was given up (timed out, lost its claim, or its scheduler is stopping)"
    )]
    Cancelled(String),
}
