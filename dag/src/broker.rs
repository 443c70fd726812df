//! `dag broker`: librdkafka's mock cluster, a Kafka-protocol broker held in
//! memory, served from this process until SIGTERM/SIGINT.
//!
//! Tests that kill the ingester or the scheduler need a broker that outlives
//! them; this is it, without Java or Docker. Limits (it is a test broker):
//! in memory only, so a broker restart loses every topic; no CreateTopics
//! (topics are created here at start, or auto-created with 4 partitions on
//! first use); it listens on a random loopback port, written to
//! `--bootstrap-file` once ready; each partition keeps at most 5 MB or
//! 100,000 messages (older ones are dropped, like retention).

use anyhow::Context;
use rdkafka::mocking::MockCluster;
use std::path::Path;

pub async fn serve(
    bootstrap_file: Option<&Path>,
    partitions: i32,
    topics: &[String],
) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("cannot start the mock Kafka cluster")?;
    for topic in topics {
        cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("cannot create topic {topic}"))?;
    }
    let bootstrap = cluster.bootstrap_servers();
    if let Some(path) = bootstrap_file {
        // Write then rename, so a reader never sees half an address.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bootstrap)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{bootstrap}");
    tracing::info!(bootstrap = %bootstrap, topics = ?topics, partitions, "broker ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    if let Some(path) = bootstrap_file {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("broker stopped");
    Ok(())
}
