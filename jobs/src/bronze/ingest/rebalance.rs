//! The consumer context's callbacks: statistics into the live positions,
//! client errors logged, and rebalances (assignment positions partitions at
//! the offsets the table records; revocation commits what is pending while
//! the partitions are still ours).

use super::state::Ctx;
use super::stats::lock;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

impl ClientContext for Ctx {
    fn stats(&self, statistics: Statistics) {
        let st = lock(&self.state);
        let Some(topic) = statistics.topics.get(&st.source.topic) else {
            return;
        };
        let mut positions = lock(&st.stats.positions);
        for (p, info) in &topic.partitions {
            if let Some(next) = st.next.get(p) {
                positions.insert(*p, (*next, info.hi_offset));
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker outages land here; librdkafka reconnects by itself.
        warn!(%error, reason, "kafka client error (retrying)");
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut st = lock(&self.state);
        let topic = st.source.topic.clone();
        let parts: Vec<i32> = tpl
            .elements_for_topic(&topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match st.claim(&self.rt, &parts) {
                    Ok(next) => {
                        for (p, n) in &next {
                            let offset = if *n >= 0 {
                                Offset::Offset(*n)
                            } else {
                                Offset::Beginning
                            };
                            if let Err(e) = tpl.set_partition_offset(&topic, *p, offset) {
                                warn!(partition = p, error = %e, "cannot set start offset");
                            }
                        }
                        info!(source = %st.source.name, partitions = ?next, "assigned; starting at the offsets the table records");
                    }
                    Err(e) => st.fatal = Some(e),
                }
                st.assigned_once = true;
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    st.fatal = Some(st.kafka_error(e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Commit while the partitions are still ours; what cannot be
                // committed now is dropped (the next owner re-reads it).
                if let Err(e) = st.flush(&self.rt, consumer) {
                    warn!(error = %e, "could not commit before giving partitions up; dropping their rows");
                    st.pending.retain_partitions(|p| !parts.contains(&p));
                    st.table.discard_staged();
                }
                st.release(&parts);
                info!(source = %st.source.name, partitions = ?parts, "revoked");
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    warn!(error = %e, "unassign failed");
                }
            }
            other => {
                warn!(error = ?other, "rebalance error; dropping the assignment");
                let _ = st.flush(&self.rt, consumer);
                let all: Vec<i32> = st.next.keys().copied().collect();
                st.release(&all);
                let _ = consumer.unassign();
            }
        }
    }
}
