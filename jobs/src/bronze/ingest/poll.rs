//! The batch loop: poll, take each message into the pending batch, cut a
//! batch when it is due (its files written while polling goes on) and
//! commit it once they are, and stop on `stop`, on an error a callback
//! raised, or once caught up.

use super::error::IngestError;
use super::state::Ctx;
use super::stats::lock;
use crate::bronze::batch::RawMessage;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tracing::warn;

/// Polls and commits until `stop`, a callback's fatal error, or (with
/// `until_caught_up`) the watermarks seen at start.
pub(super) fn poll_loop(
    consumer: &BaseConsumer<Ctx>,
    rt: &Handle,
    stop: &AtomicBool,
) -> Result<(), IngestError> {
    let ctx = consumer.context();
    let mut last_kafka_warning: Option<Instant> = None;
    // The state is locked once per poll (not around it: rebalance
    // callbacks run inside `poll` and lock it themselves).
    let mut wait = lock(&ctx.state).poll_wait();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let polled = consumer.poll(wait);
        let mut st = lock(&ctx.state);
        match polled {
            Some(Ok(m)) => {
                st.accept(&RawMessage {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key(),
                    value: m.payload(),
                    timestamp_ms: match m.timestamp() {
                        Timestamp::NotAvailable => None,
                        t => t.to_millis(),
                    },
                });
            }
            // Broker trouble: librdkafka retries; say so, at most every 10 s.
            Some(Err(e))
                if last_kafka_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) =>
            {
                warn!(error = %e, "kafka consumer error (retrying)");
                last_kafka_warning = Some(Instant::now());
            }
            Some(Err(_)) => {}
            None => {}
        }
        if let Some(e) = st.fatal.take() {
            return Err(e);
        }
        if !st.unsought.is_empty() {
            st.retry_seeks(consumer);
        }
        if st.landed() {
            st.settle(rt, consumer)?;
        }
        if st.due() {
            st.flush_behind(rt, consumer)?;
        }
        if st.settings.until_caught_up && st.caught_up() {
            return Ok(());
        }
        wait = st.poll_wait();
    }
}
