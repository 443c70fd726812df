//! Where `--until-caught-up` stops: the partitions' watermarks at start,
//! and whether every partition held has reached them.

use super::state::{Ctx, State};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::warn;

/// Low and high watermarks of every partition of `topic`, retried until the
/// broker answers (or `stop`).
pub(super) fn watermarks(
    consumer: &BaseConsumer<Ctx>,
    topic: &str,
    stop: &AtomicBool,
) -> Result<BTreeMap<i32, (i64, i64)>, KafkaError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        let attempt = (|| {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let mut out = BTreeMap::new();
            for t in md.topics() {
                if let Some(e) = t.error() {
                    return Err(KafkaError::MetadataFetch(e.into()));
                }
                for p in t.partitions() {
                    let w = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                    out.insert(p.id(), w);
                }
            }
            Ok(out)
        })();
        match attempt {
            Ok(w) if !w.is_empty() => return Ok(w),
            Ok(_) => warn!(topic, "topic has no partitions yet; waiting"),
            Err(e) if stop.load(Ordering::Relaxed) => return Err(e),
            Err(e) => {
                warn!(topic, error = %e, retry_in = ?backoff, "cannot read watermarks; retrying")
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(BTreeMap::new());
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

impl State {
    /// Whether every partition held has reached its high watermark at start.
    pub(super) fn caught_up(&self) -> bool {
        self.assigned_once
            && self.next.iter().all(|(p, next)| match self.targets.get(p) {
                Some((low, high)) => {
                    if *next >= 0 {
                        next >= high
                    } else {
                        high <= low
                    }
                }
                // A partition created after start: not part of this run.
                None => true,
            })
    }
}
