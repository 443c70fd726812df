//! How far a bronze table is behind its topic, from outside any ingester:
//! each partition's high watermark (asked of the broker) against the last
//! offset the table recorded for it (its `txn` action). The table is the
//! checkpoint, so this is the lag that matters, whatever a consumer group
//! says.

use crate::lake::table::ModelTable;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::time::Duration;

/// One partition of a topic as the bronze table sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    pub partition: i32,
    /// The oldest offset the broker still holds.
    pub low_watermark: i64,
    /// The offset the next message will get.
    pub high_watermark: i64,
    /// The last offset in the table (`None`: nothing of this partition yet).
    pub recorded: Option<i64>,
    /// Messages on the broker not yet in the table.
    pub lag: i64,
}

/// Every partition's low and high watermark, asked once (no retry: the
/// caller shows the error). Blocking: call it on the blocking pool.
pub fn watermarks(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<i32, (i64, i64)>, String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers);
    for (k, v) in properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().map_err(|e| format!("Kafka client: {e}"))?;
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("topic {topic}: {e}"))?;
    let mut out = BTreeMap::new();
    for t in md.topics() {
        if let Some(e) = t.error() {
            return Err(format!(
                "topic {topic}: {}",
                rdkafka::error::RDKafkaErrorCode::from(e)
            ));
        }
        for p in t.partitions() {
            let w = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .map_err(|e| format!("topic {topic} partition {}: {e}", p.id()))?;
            out.insert(p.id(), w);
        }
    }
    Ok(out)
}

/// Each partition's lag behind `watermarks`, from the offsets `table`
/// recorded (no table yet: everything the broker holds is lag).
pub async fn lags(
    table: Option<&ModelTable>,
    topic: &str,
    watermarks: &BTreeMap<i32, (i64, i64)>,
) -> Result<Vec<PartitionLag>, crate::lake::table::TableError> {
    let mut out = Vec::new();
    for (&partition, &(low, high)) in watermarks {
        let recorded = match table {
            Some(t) => t.txn(&super::app_id(topic, partition)).await?,
            None => None,
        };
        // The next offset to read: after the recorded one, and never
        // before what the broker still holds (retention may have passed
        // it: those messages are lost to the table, not pending).
        let next = recorded.map_or(low, |r| (r + 1).max(low));
        out.push(PartitionLag {
            partition,
            low_watermark: low,
            high_watermark: high,
            recorded,
            lag: (high - next).max(0),
        });
    }
    Ok(out)
}
