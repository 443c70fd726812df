//! Producing messages: the telematics simulator ([`sim`]), JSONL replay
//! ([`replay`]) and the Kafka producer both feed ([`Sink`]).

pub mod replay;
pub mod sim;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One message to produce. `value: None` is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Counts deliveries as the broker acknowledges them.
#[derive(Default)]
pub struct Deliveries {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// What a producing run did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ProduceReport {
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub per_topic: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub seconds: f64,
}

/// A Kafka producer with acknowledged, idempotent delivery.
pub struct Sink {
    producer: BaseProducer<Deliveries>,
    per_topic: BTreeMap<String, u64>,
    sent: u64,
    started: Instant,
}

impl Sink {
    pub fn connect(
        bootstrap: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Self, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            // Retries without duplicates or reordering.
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.kbytes", (256 << 10).to_string())
            .set("message.timeout.ms", "120000");
        for (k, v) in properties {
            config.set(k, v);
        }
        Ok(Self {
            producer: config.create_with_context(Deliveries::default())?,
            per_topic: BTreeMap::new(),
            sent: 0,
            started: Instant::now(),
        })
    }

    /// Queues one message, waiting while the local queue is full.
    pub fn send(&mut self, r: &Record) -> Result<(), KafkaError> {
        loop {
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            match self.producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e),
            }
        }
        self.sent += 1;
        *self.per_topic.entry(r.topic.clone()).or_default() += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// Waits until every queued message is acknowledged (or failed).
    pub fn finish(self, timeout: Duration) -> Result<ProduceReport, KafkaError> {
        self.producer.flush(timeout)?;
        let ctx = self.producer.context();
        Ok(ProduceReport {
            sent: self.sent,
            delivered: ctx.delivered.load(Ordering::Relaxed),
            failed: ctx.failed.load(Ordering::Relaxed),
            per_topic: self.per_topic.clone(),
            first_error: ctx
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// How far ahead of its pace a paced pump may run before it sleeps: it
/// sends in bursts of this much time's worth of records. A sleep per
/// record (5,000 a second) cost the demo's process a sixth of its CPU in
/// wake-ups; the producer lingers 50 ms before sending anyway.
const PACE_SLACK: Duration = Duration::from_millis(10);

/// Sends every record, at most `rate` per second when given (measured
/// over [`PACE_SLACK`]), until the records end or `stop` is set.
pub fn pump<E>(
    sink: &mut Sink,
    records: impl Iterator<Item = Result<Record, E>>,
    rate: Option<u64>,
    stop: &AtomicBool,
) -> Result<u64, PumpError<E>> {
    let start = Instant::now();
    let mut n = 0u64;
    for r in records {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let r = r.map_err(PumpError::Input)?;
        if let Some(rate) = rate.filter(|r| *r > 0) {
            let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
            let now = Instant::now();
            if due > now + PACE_SLACK {
                std::thread::sleep(due - now);
            }
        }
        sink.send(&r).map_err(PumpError::Kafka)?;
        n += 1;
    }
    Ok(n)
}

#[derive(Debug, thiserror::Error)]
pub enum PumpError<E> {
    #[error("{0}")]
    Input(E),
    #[error("kafka: {0}")]
    Kafka(KafkaError),
}
