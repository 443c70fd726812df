//! The bronze columns a cleaning run reads, and the names a bronze row's
//! coordinates travel under.

/// The bronze columns a cleaning run reads (and a quarantine row keeps).
pub(super) const BRONZE_READ: [&str; 6] = [
    "topic",
    "partition",
    "offset",
    "value",
    "ingested_at",
    "ingest_date",
];

/// A bronze row's coordinates, and the names they travel under next to a
/// row's parsed fields in a backfill over a range.
pub(super) const COORDS: [&str; 3] = ["topic", "partition", "offset"];
pub(super) const HIDDEN: [&str; 3] = ["__dag_topic", "__dag_partition", "__dag_offset"];
