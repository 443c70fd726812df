//! What can go wrong running a model, one type for the model layer.

use super::bridge::BridgeError;
use super::table::TableError;

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
