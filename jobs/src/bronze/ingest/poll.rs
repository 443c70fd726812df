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
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let wait = lock(&ctx.state).poll_wait();
        match consumer.poll(wait) {
            Some(Ok(m)) => {
                let raw = RawMessage {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key(),
                    value: m.payload(),
                    timestamp_ms: match m.timestamp() {
                        Timestamp::NotAvailable => None,
                        t => t.to_millis(),
                    },
                };
                lock(&ctx.state).accept(&raw);
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
        let mut st = lock(&ctx.state);
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
    }
}
