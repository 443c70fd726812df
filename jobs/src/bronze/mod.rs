//! Bronze: every Kafka message, byte for byte, in a Delta table, exactly
//! once.
//!
//! - [`batch`]: the bronze schema and the Arrow batch builder.
//! - [`table`]: one bronze table, its recorded offsets, and commits that
//!   carry rows and offsets together.
//! - [`ingest`]: the consumer-group ingester around them.
//! - [`files`]: the ingester of a file source (files under a folder or an
//!   object-store prefix, each taken once).
//! - [`lag`]: how far a table is behind its topic (for the UI).
//! - [`clock`]: what stamps `ingested_at` (pinnable for reproducible runs).

pub mod batch;
pub mod clock;
pub mod files;
pub mod ingest;
pub mod lag;
pub mod table;

pub use batch::{PARTITION_COLUMN, bronze_schema};
pub use clock::IngestClock;
pub use ingest::{IngestError, IngestReport, IngestSettings, IngestStats, SourceSpec, run};
pub use table::{BronzeTable, TableLocation, app_id};
