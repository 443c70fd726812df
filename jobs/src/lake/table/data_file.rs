//! One data file of a table as its log records it, and what its
//! statistics say about its rows.

use std::collections::BTreeMap;

/// One data file of the table, as the log records it.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFile {
    /// Relative to the table root, as written in the log.
    pub path: String,
    pub partition_values: BTreeMap<String, Option<String>>,
    pub size: i64,
    /// The writer's statistics (Delta `stats` JSON), when recorded.
    pub stats: Option<String>,
}

impl DataFile {
    /// The file's row count, from the statistics.
    pub fn rows(&self) -> Option<i64> {
        let stats: serde_json::Value = serde_json::from_str(self.stats.as_deref()?).ok()?;
        stats.get("numRecords")?.as_i64()
    }

    /// (min, max) of an integer or timestamp column from the statistics,
    /// timestamps as epoch microseconds.
    pub fn bounds(&self, column: &str) -> Option<(i64, i64)> {
        let stats: serde_json::Value = serde_json::from_str(self.stats.as_deref()?).ok()?;
        let value = |side: &str| -> Option<i64> {
            match stats.get(side)?.get(column)? {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(t) => chrono::DateTime::parse_from_rfc3339(t)
                    .ok()
                    .map(|t| t.timestamp_micros()),
                _ => None,
            }
        };
        Some((value("minValues")?, value("maxValues")?))
    }
}

/// Timestamp statistics in the Delta log may be truncated (to the
/// millisecond or the second, by writer): a file's bounds are widened by
/// this much before they decide anything.
pub const STATS_SLACK_US: i64 = 1_000_000;
