//! One ingester from start to end: open the table, configure the consumer,
//! take the partitions, run the batch loop, commit what is pending on the
//! way out, and report.

use super::consumer::{client_config, take_partitions};
use super::error::IngestError;
use super::poll::poll_loop;
use super::settings::{IngestSettings, SourceSpec};
use super::state::{Ctx, State};
use super::stats::{IngestReport, IngestStats, lock};
use super::watermarks::watermarks;
use crate::bronze::table::BronzeTable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tracing::info;

/// Runs one ingester until `stop` is set (or, with `until_caught_up`,
/// until it has caught up). Blocking: call it on its own thread, with a
/// handle to a multi-thread tokio runtime for the Delta I/O.
pub fn run(
    source: SourceSpec,
    settings: IngestSettings,
    rt: Handle,
    stop: Arc<AtomicBool>,
    stats: Arc<IngestStats>,
) -> Result<IngestReport, IngestError> {
    let table = open_table(&source, &rt)?;
    let kafka_err = |error| IngestError::kafka(&source.name, error);
    let config = client_config(&source, &settings);
    let ctx = Ctx {
        rt: rt.clone(),
        state: Mutex::new(State::new(&source, &settings, table, &stats, &stop)),
    };
    let consumer: BaseConsumer<Ctx> = config.create_with_context(ctx).map_err(kafka_err)?;
    if settings.until_caught_up {
        let targets = watermarks(&consumer, &source.topic, &stop).map_err(kafka_err)?;
        info!(source = %source.name, ?targets, "catching up to these high watermarks");
        // Nothing to read: no group to join (a join waits for the group's
        // rebalance, up to a departed member's session timeout: 40 s with
        // not one message to take).
        if already_caught_up(&consumer, &targets, &rt, &source)? {
            info!(source = %source.name, "the table records every offset below the high watermarks: nothing to read");
            let mut done = report(&source, &stats, &consumer);
            done.caught_up_at_start = true;
            return Ok(done);
        }
        lock(&consumer.context().state).targets = targets;
    }
    take_partitions(&consumer, &source, &settings, &rt, &stop)?;
    info!(source = %source.name, topic = %source.topic, table = %source.location.url, "ingesting");

    let result = poll_loop(&consumer, &rt, &stop);
    close(&consumer, &rt, result)?;
    Ok(report(&source, &stats, &consumer))
}

/// Whether the table records, for every partition, an offset at or past
/// the partition's high watermark (an empty partition needs none).
fn already_caught_up(
    consumer: &BaseConsumer<Ctx>,
    targets: &BTreeMap<i32, (i64, i64)>,
    rt: &Handle,
    source: &SourceSpec,
) -> Result<bool, IngestError> {
    let st = lock(&consumer.context().state);
    let recorded = rt
        .block_on(st.table.recorded(targets.keys().copied()))
        .map_err(|e| IngestError::Table {
            source_name: source.name.clone(),
            table: source.location.url.to_string(),
            message: format!("cannot read the offsets it records: {e}"),
        })?;
    Ok(targets.iter().all(
        |(p, (low, high))| match recorded.get(p).copied().flatten() {
            Some(last) => last + 1 >= *high,
            None => high <= low,
        },
    ))
}

/// The source's bronze table, created if it does not exist yet.
fn open_table(source: &SourceSpec, rt: &Handle) -> Result<BronzeTable, IngestError> {
    rt.block_on(BronzeTable::open_or_create(
        &source.name,
        &source.topic,
        source.location.clone(),
    ))
    .map_err(|e| IngestError::Table {
        source_name: source.name.clone(),
        table: source.location.url.to_string(),
        message: format!("cannot open or create: {e}"),
    })
}

/// Commits what is pending and leaves the group; the loop's error, if any,
/// comes first.
fn close(
    consumer: &BaseConsumer<Ctx>,
    rt: &Handle,
    result: Result<(), IngestError>,
) -> Result<(), IngestError> {
    // Leaving the group revokes the partitions, which commits what is
    // pending (see `rebalance`).
    let closed = {
        let mut st = lock(&consumer.context().state);
        st.flush(rt, consumer)
    };
    consumer.unsubscribe();
    drop(
        consumer
            .poll(Duration::from_millis(0))
            .map(|r| r.map(|_| ())),
    );
    result.and(closed)
}

/// What the finished ingester did.
fn report(source: &SourceSpec, stats: &IngestStats, consumer: &BaseConsumer<Ctx>) -> IngestReport {
    let st = lock(&consumer.context().state);
    IngestReport {
        source: source.name.clone(),
        table: source.location.url.to_string(),
        rows: stats.committed_rows.load(Ordering::Relaxed),
        bytes: stats.committed_bytes.load(Ordering::Relaxed),
        commits: stats.commits.load(Ordering::Relaxed),
        skipped: stats.skipped.load(Ordering::Relaxed),
        fenced: stats.fenced.load(Ordering::Relaxed),
        version: st.table.version(),
        active_seconds: st.first_message.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        ..IngestReport::default()
    }
}
