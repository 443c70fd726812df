//! Benchmark input: fills the two bronze tables of a lake straight from the
//! simulator (the messages `dag produce` would send), without a broker in
//! between, so benchmarks of silver and gold start from exactly N events.
//!
//!   fill_bronze LAKE_URI EVENTS SEED START INGESTED_AT [PARTITIONS]
//!
//! Messages go to partitions by key (like Kafka's default partitioner) and
//! are committed every 100,000 messages, as an ingester would; each commit
//! is `ingested_at` one second after the previous one, from INGESTED_AT.
//! Offsets continue from what the tables already hold, so a second call
//! adds more data (the incremental benchmark).

use chrono::{DateTime, TimeDelta, Utc};
use jobs::bronze::batch::{BatchBuilder, RawMessage};
use jobs::bronze::table::{BatchCommit, BronzeTable, TableLocation};
use jobs::produce::sim::{Fleet, SimSettings, Simulator};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const CHUNK: usize = 100_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [lake, events, seed, start, at, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: fill_bronze LAKE_URI EVENTS SEED START INGESTED_AT [PARTITIONS]");
    };
    let parts: i32 = rest.first().map(|p| p.parse()).transpose()?.unwrap_or(8);
    let at: DateTime<Utc> = at.parse()?;
    let settings = SimSettings {
        seed: seed.parse()?,
        events: events.parse()?,
        start: start.parse()?,
        ..SimSettings::default()
    };
    let fleet = Fleet::from_data_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("data").as_path())
        .map_err(anyhow::Error::msg)?;
    let topics = [
        (settings.telemetry_topic.clone(), "bronze_vehicle_telemetry"),
        (settings.fines_topic.clone(), "bronze_traffic_fines"),
    ];
    let mut tables = BTreeMap::new();
    let mut offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let all: Vec<i32> = (0..parts).collect();
    for (topic, name) in &topics {
        let loc = TableLocation::in_lake(lake, "bronze", name, HashMap::new())?;
        let mut t = BronzeTable::open_or_create(name, topic, loc).await?;
        for (p, last) in t.claim(&all).await? {
            offsets.insert((topic.clone(), p), last.map_or(0, |l| l + 1));
        }
        tables.insert(topic.clone(), t);
    }
    let events = settings.events;
    let sim = Simulator::new(settings, &fleet);
    let after = sim.time_of(events);
    let mut sim = sim.peekable();
    let mut commit_at = at;
    let mut total = 0usize;
    while sim.peek().is_some() {
        let chunk: Vec<_> = sim.by_ref().take(CHUNK).map(|(_, r)| r).collect();
        total += chunk.len();
        for (topic, table) in tables.iter_mut() {
            let mut b = BatchBuilder::new(topic);
            for r in chunk.iter().filter(|r| &r.topic == topic) {
                let key = r.key.as_deref();
                // FNV-1a of the key, like a partitioner: one vehicle, one partition.
                let h = key
                    .unwrap_or_default()
                    .iter()
                    .fold(0xcbf29ce484222325u64, |h, c| {
                        (h ^ *c as u64).wrapping_mul(0x100000001b3)
                    });
                let p = (h % parts as u64) as i32;
                let off = offsets.entry((topic.clone(), p)).or_insert(0);
                b.push(
                    &RawMessage {
                        partition: p,
                        offset: *off,
                        key,
                        value: r.value.as_deref(),
                        timestamp_ms: Some(commit_at.timestamp_millis()),
                    },
                    commit_at.timestamp_micros(),
                );
                *off += 1;
            }
            let (batch, spans) = b.finish();
            if batch.num_rows() == 0 {
                continue;
            }
            match table.commit(&batch, &spans).await? {
                BatchCommit::Committed { .. } => {}
                other => anyhow::bail!("{topic}: {other:?}"),
            }
        }
        commit_at += TimeDelta::seconds(1);
    }
    for table in tables.values_mut() {
        table.checkpoint().await?;
    }
    println!("{total} messages written to bronze");
    // For a follow-up call that continues the timeline (incremental runs).
    println!("next start: {}", after.to_rfc3339());
    Ok(())
}
