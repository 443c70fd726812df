//! The Kafka consumer of one source: its librdkafka configuration, and how
//! it takes its partitions (every partition directly, or through the
//! consumer group).

use super::error::IngestError;
use super::settings::{IngestSettings, SourceSpec};
use super::state::Ctx;
use super::stats::lock;
use super::watermarks::watermarks;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::AtomicBool;
use tokio::runtime::Handle;
use tracing::info;

/// The consumer's configuration: manual offsets (the table keeps them),
/// timeouts that outlast a commit's retries, big fetches, then the
/// source's own properties.
pub(super) fn client_config(source: &SourceSpec, settings: &IngestSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("group.id", format!("{}.{}", settings.group_id, source.name))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            settings.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout.as_millis() / 3)
                .max(100)
                .to_string(),
        )
        // A commit retries an unreachable lake for up to retry_timeout
        // without polling: the group must not evict us meanwhile, or the
        // partitions move while we still commit (a zombie). librdkafka's
        // background thread keeps the session alive; this bounds the poll gap.
        .set(
            "max.poll.interval.ms",
            (settings.retry_timeout.as_millis() + 300_000)
                .min(86_400_000)
                .to_string(),
        )
        .set("statistics.interval.ms", "1000")
        // Big fetches: bronze wants throughput, and memory stays bounded.
        .set("fetch.max.bytes", (64 << 20).to_string())
        .set("max.partition.fetch.bytes", (16 << 20).to_string())
        .set("queued.max.messages.kbytes", (128 << 10).to_string())
        // Once the local queue is full (as it is while a batch is written),
        // librdkafka postpones the next fetch by this much; the default
        // (1 s) left the ingester idle after every commit, emptying the
        // queue long before the next fetch came. Checking again soon costs
        // a wakeup per partition, nothing more.
        .set("fetch.queue.backoff.ms", "10");
    for (k, v) in &settings.kafka_properties {
        config.set(k, v);
    }
    config
}

/// Positions the consumer at the offsets the table records: every
/// partition directly with `assign_all`, else by joining the group (the
/// rebalance callback positions what the group assigns).
pub(super) fn take_partitions(
    consumer: &BaseConsumer<Ctx>,
    source: &SourceSpec,
    settings: &IngestSettings,
    rt: &Handle,
    stop: &AtomicBool,
) -> Result<(), IngestError> {
    let kafka_err = |error| IngestError::kafka(&source.name, error);
    if settings.assign_all {
        // Every partition, from where the table says: no group to join.
        let parts: Vec<i32> = watermarks(consumer, &source.topic, stop)
            .map_err(kafka_err)?
            .into_keys()
            .collect();
        let mut st = lock(&consumer.context().state);
        let next = st.claim(rt, &parts)?;
        let mut tpl = TopicPartitionList::new();
        for (p, n) in &next {
            let offset = if *n >= 0 {
                Offset::Offset(*n)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(&source.topic, *p, offset)
                .map_err(kafka_err)?;
        }
        st.assigned_once = true;
        drop(st);
        consumer.assign(&tpl).map_err(kafka_err)?;
        info!(source = %source.name, partitions = ?next, "took every partition; starting at the offsets the table records");
    } else {
        consumer.subscribe(&[&source.topic]).map_err(kafka_err)?;
    }
    Ok(())
}
