//! A model's Delta table: create it from the declared columns, read it (or
//! only some of its files) into polars, list what changed between two
//! versions, and commit new files, removed files and the input versions
//! consumed as one atomic Delta commit.
//!
//! Reading goes through the parquet crate on the table's own object store
//! (local or S3) and crosses into polars through the C Data Interface; the
//! partition columns, which Delta keeps out of the files, are added back
//! from each file's partition values.
//!
//! Its parts, under `table/`: `open` (opening or creating it, its loaded
//! state), `read` and `lookup` (rows and keys into polars), `changes` (what
//! commits did, from the log), `commit` (new files and the atomic commit),
//! `cache` (tables already loaded), `cancel` (no commit once a task is
//! given up).

mod cache;
mod cancel;
mod changes;
mod commit;
mod compact;
mod data_file;
mod error;
mod lookup;
mod open;
mod read;
mod schema;

pub use cache::TableCache;
pub use cancel::Cancel;
pub use changes::Changes;
pub use commit::{CHECKPOINT_EVERY, CLEANUP_EVERY, COMPACT_EVERY, after_checkpoint};
pub use data_file::{DataFile, STATS_SLACK_US};
pub use error::TableError;
pub use open::ModelTable;
pub use schema::{arrow_schema, arrow_type};
