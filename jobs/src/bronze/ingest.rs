//! The ingester of one Kafka source: a consumer in a group that batches
//! messages and commits each batch, with its offsets, to the bronze table.
//!
//! One blocking thread per source drives librdkafka's `BaseConsumer`
//! (librdkafka fetches in its own threads; polling is cheap). Rebalance
//! callbacks run inside `poll` on that thread: on assignment the consumer
//! is positioned at the offsets the table records (never the group's
//! committed offsets); on revocation the pending batch is committed while
//! the partitions are still ours, or dropped if it cannot be. Kafka group
//! offsets are committed too, after the Delta commit, only so that the
//! usual lag tools work: nothing reads them back.
//!
//! Its parts, under `ingest/`: `settings` (what a source is and how it is
//! batched), `stats` (live counters and the final report), `error`,
//! `state` (the ingest state and what it takes), `rebalance` (the consumer
//! context: assignment and revocation), `commit` (a batch and its offsets
//! into the table, fencing, repositioning, upkeep), `consumer` (the
//! librdkafka configuration), `watermarks` (where `--until-caught-up`
//! stops), `poll` (the batch loop) and `run` (one ingester, start to end).

mod commit;
mod consumer;
mod error;
mod poll;
mod rebalance;
mod run;
mod settings;
mod state;
mod stats;
mod watermarks;

pub use error::IngestError;
pub use run::run;
pub use settings::{IngestSettings, SourceSpec};
pub use stats::{IngestReport, IngestStats};
