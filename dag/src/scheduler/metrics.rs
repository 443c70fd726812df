//! Prometheus metrics of a scheduler on `GET /metrics` (text format 0.0.4):
//! runs by state and the last successful warehouse load (from the
//! database, so every scheduler reports the same); this process's task
//! counts and durations per node, rows written per layer, and its bronze
//! ingesters' rows and consumer lag per partition.

use crate::events::{Event, EventSink, NodeState};
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct NodeStats {
    success: u64,
    failed: u64,
    seconds: f64,
    rows_out: u64,
}

/// What this scheduler's tasks and ingesters did.
#[derive(Default)]
pub struct Metrics {
    nodes: Mutex<BTreeMap<String, NodeStats>>,
    layers: Mutex<BTreeMap<String, u64>>,
    /// The in-process ingesters' counters.
    pub ingest: crate::ingest::SharedStats,
}

impl Metrics {
    /// Counts a task that ran (success, or failed) in `layer`.
    fn record(&self, layer: &str, n: &crate::events::NodeFinished) {
        let ok = n.state == NodeState::Success;
        if let (true, Ok(mut layers)) = (ok, self.layers.lock()) {
            *layers.entry(layer.to_string()).or_default() += n.rows_out;
        }
        let Ok(mut nodes) = self.nodes.lock() else {
            return;
        };
        let s = nodes.entry(n.node.clone()).or_default();
        if ok {
            s.success += 1;
            s.seconds += n.seconds;
            s.rows_out += n.rows_out;
        } else {
            s.failed += 1;
        }
    }

    fn render_tasks(&self, out: &mut String) {
        let Ok(nodes) = self.nodes.lock() else {
            return;
        };
        out.push_str("# HELP dag_tasks_total Tasks this scheduler ran, by node and outcome.\n# TYPE dag_tasks_total counter\n");
        for (n, s) in nodes.iter() {
            let _ = writeln!(
                out,
                "dag_tasks_total{{node=\"{n}\",outcome=\"success\"}} {}",
                s.success
            );
            let _ = writeln!(
                out,
                "dag_tasks_total{{node=\"{n}\",outcome=\"failed\"}} {}",
                s.failed
            );
        }
        out.push_str("# HELP dag_task_seconds_total Seconds spent in successful tasks, by node.\n# TYPE dag_task_seconds_total counter\n");
        for (n, s) in nodes.iter() {
            let _ = writeln!(
                out,
                "dag_task_seconds_total{{node=\"{n}\"}} {:.6}",
                s.seconds
            );
        }
        out.push_str("# HELP dag_rows_written_total Rows models wrote, by node.\n# TYPE dag_rows_written_total counter\n");
        for (n, s) in nodes.iter() {
            let _ = writeln!(out, "dag_rows_written_total{{node=\"{n}\"}} {}", s.rows_out);
        }
        if let Ok(layers) = self.layers.lock() {
            out.push_str("# HELP dag_layer_rows_written_total Rows models wrote, by layer.\n# TYPE dag_layer_rows_written_total counter\n");
            for (l, n) in layers.iter() {
                let _ = writeln!(out, "dag_layer_rows_written_total{{layer=\"{l}\"}} {n}");
            }
        }
        if let Ok(ingest) = self.ingest.lock()
            && !ingest.is_empty()
        {
            out.push_str("# HELP dag_bronze_rows_committed_total Messages committed to bronze, by source.\n# TYPE dag_bronze_rows_committed_total counter\n");
            for (source, s) in ingest.iter() {
                let _ = writeln!(
                    out,
                    "dag_bronze_rows_committed_total{{source=\"{source}\"}} {}",
                    s.committed_rows.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
            out.push_str("# HELP dag_consumer_lag Messages behind the partition's high watermark.\n# TYPE dag_consumer_lag gauge\n");
            for (source, s) in ingest.iter() {
                for (p, lag) in s.lags() {
                    let _ = writeln!(
                        out,
                        "dag_consumer_lag{{source=\"{source}\",partition=\"{p}\"}} {lag}"
                    );
                }
            }
        }
    }
}

async fn render(pool: &PgPool, m: &Metrics) -> String {
    let mut out = String::new();
    out.push_str("# HELP dag_runs Runs in the database, by state.\n# TYPE dag_runs gauge\n");
    if let Ok(rows) =
        sqlx::query("SELECT state, count(*) FROM dag.runs GROUP BY state ORDER BY state")
            .fetch_all(pool)
            .await
    {
        for r in rows {
            let _ = writeln!(
                out,
                "dag_runs{{state=\"{}\"}} {}",
                r.get::<String, _>(0),
                r.get::<i64, _>(1)
            );
        }
    }
    if let Ok(Some(t)) = sqlx::query_scalar::<_, Option<f64>>(
        "SELECT extract(epoch FROM max(loaded_at))::float8 FROM dag.load_history",
    )
    .fetch_one(pool)
    .await
    {
        out.push_str("# HELP dag_last_load_timestamp_seconds When the warehouse last loaded a change.\n# TYPE dag_last_load_timestamp_seconds gauge\n");
        let _ = writeln!(out, "dag_last_load_timestamp_seconds {t:.3}");
    }
    m.render_tasks(&mut out);
    out
}

/// Counts the tasks that ran in the metrics, then hands each event on.
pub struct Counting {
    pub metrics: std::sync::Arc<Metrics>,
    pub p: crate::pipeline::Pipeline,
    pub then: std::sync::Arc<dyn EventSink>,
}

impl EventSink for Counting {
    fn emit(&self, event: &Event) {
        if let Event::NodeFinished(n) = event
            && n.state != NodeState::Skipped
        {
            let layer = self
                .p
                .model(&n.node)
                .map_or("warehouse", |m| m.layer.as_str());
            self.metrics.record(layer, n);
        }
        self.then.emit(event);
    }
}

/// Serves `/metrics` until `stop`.
pub async fn serve(
    addr: std::net::SocketAddr,
    pool: PgPool,
    m: std::sync::Arc<Metrics>,
    stop: std::sync::Arc<super::Stop>,
) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("metrics on {addr}: {e} (scheduler.metrics_addr); serving none");
            return;
        }
    };
    // Port 0 picks a free one: say which (tests read it from here).
    match listener.local_addr() {
        Ok(bound) => println!("metrics on http://{bound}/metrics"),
        Err(_) => println!("metrics on http://{addr}/metrics"),
    }
    while !stop.is_set() {
        let Ok(Ok((mut sock, _))) =
            tokio::time::timeout(std::time::Duration::from_millis(500), listener.accept()).await
        else {
            continue;
        };
        // The request may arrive in pieces: read up to the end of its
        // head (a client that stalls gets what it sent so far judged).
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout(std::time::Duration::from_secs(2), sock.read(&mut buf[n..]))
                .await
            {
                Ok(Ok(got)) if got > 0 => n += got,
                _ => break,
            }
        }
        let request = String::from_utf8_lossy(&buf[..n]);
        let (status, body) = if request.starts_with("GET /metrics") {
            ("200 OK", render(&pool, &m).await)
        } else {
            ("404 Not Found", "GET /metrics\n".to_string())
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.write_all(body.as_bytes()).await;
    }
}
