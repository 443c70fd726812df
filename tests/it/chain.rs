//! The whole chain on the spec invariant: simulated messages with every bad
//! kind -> the broker (`dag produce`) -> bronze (`dag ingest`) -> silver ->
//! gold -> PostgreSQL (`dag run`), with the shipped models and seeds.
//!
//! What is proven: `gold.fact_telemetry` in PostgreSQL holds exactly one row
//! per distinct valid telemetry event_id the simulator made (and
//! `gold.fact_fines` one per valid fine_id), recomputed here from the
//! simulator's own record of what it sent; a second produce + ingest + run
//! adds exactly the new events, and a run with nothing new changes nothing.
//! The same through `dag scheduler`: its ingesters stream the produced
//! messages into bronze (its metrics show every message committed and no
//! lag), and `dag trigger gold --wait` brings silver and gold up to date,
//! tests them and loads PostgreSQL.

use crate::fixtures::copy_dir;
use chrono::{DateTime, Utc};
use jobs::produce::sim::{Fleet, Kind, SimSettings, Simulator};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use testkit::TestDb;

const START: &str = "2026-11-21T08:00:00Z";

/// A copy of the shipped pipeline reading topics of its own.
struct Project {
    dir: tempfile::TempDir,
    telemetry: String,
    fines: String,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let (telemetry, fines) = shipped_pipeline(root, "chain");
        // The ingest clock is pinned after every valid event (they start
        // at START), so only the simulator's future events are "future".
        let toml = format!(
            "pipeline = \"telematics\"\n[lake]\nuri = \"file://{}/lake\"\n\
             [kafka]\nbootstrap_servers = \"{}\"\ngroup_id = \"g-{}\"\nsession_timeout = \"6s\"\n\
             [ingest]\nbatch_interval = \"300ms\"\nclock = \"2026-12-01T00:00:00Z\"\n\
             [warehouse]\nenabled = true\nretry_timeout = \"20s\"\n",
            root.display(),
            testkit::kafka_bootstrap().expect("broker"),
            testkit::unique_suffix()
        );
        std::fs::write(root.join("dag.toml"), toml).expect("write dag.toml");
        Project {
            dir,
            telemetry,
            fines,
        }
    }

    fn spawn(&self, db: &TestDb, args: &[&str], log: &str) -> std::process::Child {
        let file = |ext: &str| {
            std::fs::File::create(self.dir.path().join(format!("{log}.{ext}"))).expect("log")
        };
        Command::new(testkit::dag_bin())
            .current_dir(self.dir.path())
            .args(args)
            .env("DATABASE_URL", &db.url)
            .stdout(std::process::Stdio::from(file("out")))
            .stderr(std::process::Stdio::from(file("err")))
            .spawn()
            .expect("spawn dag")
    }

    fn log(&self, log: &str) -> String {
        ["out", "err"]
            .iter()
            .map(|ext| {
                std::fs::read_to_string(self.dir.path().join(format!("{log}.{ext}")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn dag(&self, db: &TestDb, args: &[&str]) -> String {
        let out = Command::new(testkit::dag_bin())
            .current_dir(self.dir.path())
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .expect("run dag");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "dag {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `dag produce` of `events` simulated messages, then ingest until
    /// bronze has caught up with the broker.
    fn produce_and_ingest(&self, db: &TestDb, seed: u64, events: u64, start: &str) {
        let (seed, events) = (seed.to_string(), events.to_string());
        self.dag(
            db,
            &[
                "produce",
                "--seed",
                &seed,
                "--events",
                &events,
                "--start",
                start,
                "--bad-share",
                "0.05",
            ],
        );
        self.dag(db, &["ingest", "--until-caught-up"]);
    }

    /// What the simulator sent for these settings: the valid telemetry
    /// event_ids and fine_ids, and how many messages of each kind.
    fn sent(&self, seed: u64, events: u64, start: &str) -> Sent {
        let fleet = Fleet::from_data_dir(&self.dir.path().join("data")).expect("fleet");
        let settings = SimSettings {
            seed,
            events,
            telemetry_topic: self.telemetry.clone(),
            fines_topic: self.fines.clone(),
            start: DateTime::parse_from_rfc3339(start)
                .expect("start")
                .with_timezone(&Utc),
            bad_share: 0.05,
            ..SimSettings::default()
        };
        let mut sent = Sent::default();
        let mut sim = Simulator::new(settings, &fleet);
        for (kind, record) in sim.by_ref() {
            let id_field = match kind {
                Kind::Telemetry => "event_id",
                Kind::Fine => "fine_id",
                _ => continue,
            };
            let value: serde_json::Value =
                serde_json::from_slice(record.value.as_deref().expect("valid has a value"))
                    .expect("valid is JSON");
            let id = value[id_field].as_str().expect("id").to_string();
            match kind {
                Kind::Telemetry => sent.events.insert(id),
                _ => sent.fines.insert(id),
            };
        }
        sent.kinds = sim.counts.clone();
        sent
    }
}

#[derive(Default)]
struct Sent {
    events: BTreeSet<String>,
    fines: BTreeSet<String>,
    kinds: BTreeMap<Kind, u64>,
}

impl Sent {
    fn extend(&mut self, other: Sent) {
        self.events.extend(other.events);
        self.fines.extend(other.fines);
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
    }
}

/// Copies the shipped pipeline (models and data) into `root`, its two
/// bronze sources reading topics of their own; returns (telemetry, fines).
pub(crate) fn shipped_pipeline(root: &Path, label: &str) -> (String, String) {
    let repo = crate::fixtures::repo();
    copy_dir(
        &repo.join("models/telematics"),
        &root.join("models/telematics"),
    );
    copy_dir(&repo.join("data"), &root.join("data"));
    let telemetry = testkit::unique_topic(&format!("{label}-tel"));
    let fines = testkit::unique_topic(&format!("{label}-fin"));
    let bronze = root.join("models/telematics/bronze");
    for (file, topic) in [
        ("bronze_vehicle_telemetry.yml", &telemetry),
        ("bronze_traffic_fines.yml", &fines),
    ] {
        let path = bronze.join(file);
        let yml = std::fs::read_to_string(&path).expect("read model");
        let rewritten: Vec<String> = yml
            .lines()
            .map(|l| {
                if l.starts_with("topic:") {
                    format!("topic: {topic}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert_ne!(yml, rewritten.join("\n"), "{file} names no topic");
        std::fs::write(&path, rewritten.join("\n") + "\n").expect("write model");
    }
    (telemetry, fines)
}

/// Every value of `column` in `table` (text), with how often it occurs.
async fn ids(db: &TestDb, table: &str, column: &str) -> BTreeMap<String, i64> {
    // Table and column are this file's constants.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {column}::text AS id, count(*) AS n FROM gold.{table} GROUP BY 1"
    )))
    .fetch_all(&db.pool)
    .await
    .expect("query")
    .iter()
    .map(|r| (r.get::<String, _>("id"), r.get::<i64, _>("n")))
    .collect()
}

async fn assert_invariant(db: &TestDb, sent: &Sent, what: &str) {
    for (table, column, want) in [
        ("fact_telemetry", "event_id", &sent.events),
        ("fact_fines", "fine_id", &sent.fines),
    ] {
        let got = ids(db, table, column).await;
        let repeated: Vec<_> = got.iter().filter(|(_, n)| **n > 1).take(5).collect();
        assert!(
            repeated.is_empty(),
            "{what}: gold.{table} repeats {repeated:?}"
        );
        let got: BTreeSet<String> = got.into_keys().collect();
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(want).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{what}: gold.{table} has {} rows for {} valid ids; missing {missing:?}, extra {extra:?}",
            got.len(),
            want.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_valid_event_reaches_postgresql_exactly_once() {
    let p = Project::new();
    let db = TestDb::create().await.expect("db");
    let (seed, events) = (11, 6000);
    p.produce_and_ingest(&db, seed, events, START);
    let mut sent = p.sent(seed, events, START);
    // Every bad kind of the spec is in the stream, or the test proves less.
    for kind in [
        Kind::MalformedJson,
        Kind::EmptyValue,
        Kind::Tombstone,
        Kind::Missing,
        Kind::Type,
        Kind::Range,
        Kind::FutureEventTime,
        Kind::Duplicate,
    ] {
        assert!(
            sent.kinds.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind:?} among {events} messages: {:?}",
            sent.kinds
        );
    }
    let out = p.dag(&db, &["run"]);
    assert!(out.contains("fact_telemetry"), "{out}");
    assert_invariant(&db, &sent, "first run").await;

    // More events later in time (and the same producer seed again: exact
    // re-sends of the first batch's messages, every one a duplicate).
    let later = "2026-11-22T08:00:00Z";
    p.produce_and_ingest(&db, seed + 1, 2000, later);
    p.produce_and_ingest(&db, seed, 500, START);
    let resent = p.sent(seed, 500, START);
    assert!(resent.events.is_subset(&sent.events) && resent.fines.is_subset(&sent.fines));
    sent.extend(p.sent(seed + 1, 2000, later));
    p.dag(&db, &["run"]);
    assert_invariant(&db, &sent, "second run").await;

    // Nothing new: the load finds every table up to date.
    let xmins: i64 =
        sqlx::query_scalar("SELECT sum(xmin::text::bigint)::bigint FROM gold.fact_telemetry")
            .fetch_one(&db.pool)
            .await
            .expect("xmin");
    let out = p.dag(&db, &["run"]);
    assert!(out.contains("up to date"), "{out}");
    let again: i64 =
        sqlx::query_scalar("SELECT sum(xmin::text::bigint)::bigint FROM gold.fact_telemetry")
            .fetch_one(&db.pool)
            .await
            .expect("xmin");
    assert_eq!(xmins, again, "a run with nothing new rewrote fact rows");
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut sock) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(sock, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut text = String::new();
    let _ = sock.read_to_string(&mut text);
    text
}

/// The sum of a metric's samples (0 when absent).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_streams_bronze_and_a_triggered_run_loads_postgresql() {
    let p = Project::new();
    let toml = p.dir.path().join("dag.toml");
    let mut cfg = std::fs::read_to_string(&toml).expect("read");
    // Port 0: the scheduler binds a free port and prints it.
    cfg += "[scheduler]\nmetrics_addr = \"127.0.0.1:0\"\npoll_interval = \"10s\"\n";
    std::fs::write(&toml, cfg).expect("write");
    let db = TestDb::create().await.expect("db");
    let mut scheduler = p.spawn(&db, &["scheduler"], "scheduler");
    let (seed, events) = (21, 4000);
    p.dag(
        &db,
        &[
            "produce",
            "--seed",
            "21",
            "--events",
            "4000",
            "--start",
            START,
            "--bad-share",
            "0.05",
        ],
    );
    let sent = p.sent(seed, events, START);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let port = loop {
        let log = p.log("scheduler");
        if log.contains("metrics on http://") {
            break crate::scheduler::metrics_port(&log);
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let messages: u64 = sent.kinds.values().sum();
    // Every message reaches bronze through the scheduler's ingesters.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let m = http_get(port, "/metrics");
        let committed = metric_sum(&m, "dag_bronze_rows_committed_total");
        if committed as u64 == messages && metric_sum(&m, "dag_consumer_lag") == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bronze has {committed} of {messages}:\n{m}\n{}",
            p.log("scheduler")
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let out = p.dag(&db, &["trigger", "gold", "--wait"]);
    assert!(out.contains("success"), "{out}\n{}", p.log("scheduler"));
    assert_invariant(&db, &sent, "scheduled run").await;
    // The triggered run's own status (a scheduled run may have started
    // since and be the latest).
    let run = out
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in:\n{out}"));
    let status = p.dag(&db, &["status", run]);
    assert!(status.contains("load:warehouse"), "{status}");
    let _ = Command::new("kill")
        .args(["-TERM", &scheduler.id().to_string()])
        .status();
    let code = scheduler.wait().expect("wait").code();
    assert_eq!(code, Some(0), "{}", p.log("scheduler"));
}
