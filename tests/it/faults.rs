//! The whole chain under faults: the shipped pipeline against the separate
//! broker process, the lake on S3 (through the fault proxy) and a
//! PostgreSQL of the test's own. While a producer sends simulated messages
//! (every bad kind among them), the test kills -9 the ingesters (two, of
//! one group) and the schedulers (two), freezes them with SIGSTOP past the
//! session timeout or the lease and wakes them as zombies, terminates
//! PostgreSQL's client connections, crashes PostgreSQL and starts it again
//! after an outage, and turns S3 storms on and off (failed requests,
//! writes that land with their answer lost, delays) at random points; a
//! schedule runs silver, gold, the tests and the load every 2 seconds
//! throughout. Nine kinds of fault, over a hundred in all. Throughout,
//! `dag.loaded_versions` never goes back, and at checkpoints the lake's
//! own invariants hold ([`check_lake`]) and PostgreSQL equals gold at a
//! version whose tests passed ([`check_warehouse`]). Then everything
//! restarts clean and a final `dag trigger gold --wait` runs.
//!
//! The invariant is checked against an independent recomputation from
//! the produced messages (the simulator's own record): PostgreSQL's
//! gold.fact_telemetry holds exactly one row per distinct valid event_id,
//! gold.fact_fines one per valid fine_id, and agg_driver_daily's event
//! counts per (driver, day) equal a count over the valid events.

use chrono::{DateTime, Utc};
use jobs::produce::sim::{Fleet, Kind, SimSettings, Simulator};
use rand::Rng;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::TestS3;
use testkit::pg_cluster::PgCluster;
use testkit::s3_faults::{ActionKind, FaultProxy, Method, Rule};

const START: &str = "2026-11-21T08:00:00Z";
const SEED: u64 = 77;
const EVENTS: u64 = 24_000;

struct Chain {
    dir: tempfile::TempDir,
    /// PostgreSQL of this test's own: the test crashes and restarts it.
    pg: PgCluster,
    pool: sqlx::PgPool,
    _s3: TestS3,
    proxy: FaultProxy,
    telemetry: String,
    fines: String,
    /// The processes [`Chain::spawn`] started, killed when the chain goes.
    spawned: std::sync::Mutex<Vec<u32>>,
}

impl Drop for Chain {
    /// A failed assertion leaves the ingesters and schedulers running
    /// (a `Child` is not killed when dropped): they are killed here, and
    /// on a failure the tail of their logs is printed first, the only
    /// account of what they did.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for log in ["scheduler", "ingest", "producer"] {
                eprintln!("--- {log} (last lines) ---\n{}", self.log(log));
            }
        }
        let pids = self.spawned.lock().map(|p| p.clone()).unwrap_or_default();
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// An S3 storm: a share of the lake's requests fail, land with their
/// answer lost, or wait.
fn storm() -> Vec<Rule> {
    vec![
        Rule::drop_response()
            .method(Method::Put)
            .path("/_delta_log/")
            .share(0.3),
        Rule::fail().method(Method::Put).share(0.10),
        Rule::fail().method(Method::Get).share(0.03),
        Rule::delay(Duration::from_millis(200)).share(0.05),
    ]
}

impl Chain {
    async fn new() -> Chain {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let (telemetry, fines) = crate::chain::shipped_pipeline(root, "fault");
        std::fs::write(
            root.join("models/telematics/pipeline.yml"),
            "description: faults\nschedules:\n  - {select: \"silver gold\", cron: \"*/2 * * * * *\"}\n",
        )
        .expect("write");
        let s3 = TestS3::create().expect("test s3");
        let proxy = FaultProxy::start(&s3.endpoint, 0xfa17).expect("proxy");
        let toml = format!(
            "pipeline = \"telematics\"\n[lake]\nuri = \"{}/lake\"\n[s3]\nendpoint = \"{}\"\n\
             [kafka]\nbootstrap_servers = \"{}\"\ngroup_id = \"g-{}\"\nsession_timeout = \"6s\"\n\
             [ingest]\nbatch_interval = \"300ms\"\nclock = \"2026-12-01T00:00:00Z\"\n\
             [warehouse]\nenabled = true\nretry_timeout = \"30s\"\n\
             [scheduler]\ningest = false\nmetrics_addr = \"off\"\nlease = \"2s\"\nretries = 8\n\
             retry_backoff = \"300ms\"\npoll_interval = \"1s\"\ngrace_period = \"1s\"\n",
            s3.url(),
            proxy.endpoint(),
            testkit::kafka_bootstrap().expect("broker"),
            testkit::unique_suffix()
        );
        std::fs::write(root.join("dag.toml"), toml).expect("write");
        let pg = PgCluster::start().expect("a PostgreSQL cluster of the test's own");
        let pool = sqlx::PgPool::connect(&pg.url()).await.expect("connect");
        Chain {
            dir,
            pg,
            pool,
            _s3: s3,
            proxy,
            telemetry,
            fines,
            spawned: std::sync::Mutex::default(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn dag(&self, args: &[&str]) -> Command {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(self.root())
            .args(args)
            .env("DATABASE_URL", self.pg.url())
            .env("AWS_ACCESS_KEY_ID", testkit::S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", testkit::S3_SECRET_KEY);
        c
    }

    fn spawn(&self, args: &[&str], log: &str) -> Child {
        let file = |ext: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.root().join(format!("{log}.{ext}")))
                .expect("log")
        };
        let child = self
            .dag(args)
            .stdout(Stdio::from(file("out")))
            .stderr(Stdio::from(file("err")))
            .spawn()
            .expect("spawn");
        if let Ok(mut spawned) = self.spawned.lock() {
            spawned.push(child.id());
        }
        child
    }

    fn log(&self, log: &str) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.root().join(format!("{log}.{ext}"))).unwrap_or_default()
        };
        let text = format!("{}\n{}", read("out"), read("err"));
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The pipeline, its catalog and settings that read the lake straight
    /// from S3 (not through the fault proxy), for the checks.
    fn lake(
        &self,
    ) -> (
        dag::pipeline::Pipeline,
        jobs::model::Catalog,
        jobs::model::RunSettings,
    ) {
        let p = dag::pipeline::Pipeline::load(&self.root().join("models/telematics"))
            .expect("pipeline");
        let catalog = jobs::model::Catalog::new(p.graph.node_weights().cloned());
        let settings = jobs::model::RunSettings::new(
            format!("{}/lake", self._s3.url()),
            crate::s3_faults::direct_storage(&self._s3),
            self.root().join("data"),
        );
        (p, catalog, settings)
    }

    /// Terminates every client connection to the test database but ours.
    async fn kill_connections(&self) {
        let _ = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
        )
        .execute(&self.pool)
        .await;
    }
}

/// Sends SIGSTOP or SIGCONT.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The independent recomputation: what the simulator sent.
struct Truth {
    events: BTreeSet<String>,
    fines: BTreeSet<String>,
    /// (driver_id, UTC date) -> valid events.
    per_driver_day: BTreeMap<(String, String), i64>,
    kinds: BTreeMap<Kind, u64>,
}

fn truth(c: &Chain) -> Truth {
    let fleet = Fleet::from_data_dir(&c.root().join("data")).expect("fleet");
    let settings = SimSettings {
        seed: SEED,
        events: EVENTS,
        telemetry_topic: c.telemetry.clone(),
        fines_topic: c.fines.clone(),
        start: DateTime::parse_from_rfc3339(START)
            .expect("start")
            .with_timezone(&Utc),
        bad_share: 0.05,
        ..SimSettings::default()
    };
    let mut t = Truth {
        events: BTreeSet::new(),
        fines: BTreeSet::new(),
        per_driver_day: BTreeMap::new(),
        kinds: BTreeMap::new(),
    };
    let mut sim = Simulator::new(settings, &fleet);
    for (kind, record) in sim.by_ref() {
        let Some(v) = record
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        else {
            continue;
        };
        match kind {
            Kind::Telemetry => {
                let id = v["event_id"].as_str().expect("event_id").to_string();
                if t.events.insert(id) {
                    let driver = v["driver_id"].as_str().expect("driver").to_string();
                    let day = DateTime::parse_from_rfc3339(v["event_time"].as_str().expect("time"))
                        .expect("rfc3339")
                        .with_timezone(&Utc)
                        .format("%Y-%m-%d")
                        .to_string();
                    *t.per_driver_day.entry((driver, day)).or_default() += 1;
                }
            }
            Kind::Fine => {
                t.fines
                    .insert(v["fine_id"].as_str().expect("fine_id").to_string());
            }
            _ => {}
        }
    }
    t.kinds = sim.counts.clone();
    t
}

async fn set_of(c: &Chain, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&c.pool)
        .await
        .expect("query")
}

/// The lake's own invariants, read straight from S3 (not through the
/// proxy): in every bronze table each (partition, offset) once (and, when
/// `complete`, every offset the broker holds); for every cleaning model,
/// its quarantine's bronze coordinates once each and all in bronze, its
/// silver keys once each, and bronze = silver + quarantine + duplicates
/// (duplicates never negative). Silver and quarantines are read before
/// bronze, which only grows: each is a snapshot no later than bronze's.
/// Returns the rows checked.
async fn check_lake(c: &Chain, complete: bool) -> u64 {
    use jobs::decl::Source;
    use polars::prelude::{DataFrame, DataType, UniqueKeepStrategy};
    let (p, catalog, settings) = c.lake();
    let read = async |name: &str, cols: &[String]| -> DataFrame {
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        match catalog.open_input(name, &settings).await {
            Ok(t) => t.read_all(Some(&cols)).await.expect("read"),
            Err(_) => DataFrame::empty(),
        }
    };
    let coords = |df: &DataFrame| -> Vec<(String, i64, i64)> {
        if df.height() == 0 {
            return Vec::new();
        }
        let cast = |c: &str, t: DataType| df.column(c).expect("column").cast(&t).expect("cast");
        let (topic, part, off) = (
            cast("topic", DataType::String),
            cast("partition", DataType::Int64),
            cast("offset", DataType::Int64),
        );
        let (topic, part, off) = (
            topic.str().expect("str").clone(),
            part.i64().expect("i64").clone(),
            off.i64().expect("i64").clone(),
        );
        (0..df.height())
            .map(|i| {
                (
                    topic.get(i).unwrap_or_default().to_string(),
                    part.get(i).unwrap_or(-1),
                    off.get(i).unwrap_or(-1),
                )
            })
            .collect()
    };
    let coord_cols: Vec<String> = ["topic", "partition", "offset"].map(String::from).to_vec();
    let mut checked = 0u64;
    // (model, input, quarantine coordinates, silver rows)
    let mut cleaned = Vec::new();
    for m in p.graph.node_weights() {
        let Source::Clean {
            input,
            quarantine,
            dedupe,
            ..
        } = &m.source
        else {
            continue;
        };
        let q = coords(&read(quarantine, &coord_cols).await);
        let qset: BTreeSet<_> = q.iter().cloned().collect();
        assert_eq!(
            qset.len(),
            q.len(),
            "{quarantine}: a bronze row quarantined twice"
        );
        let silver = read(&m.name, &dedupe.key).await;
        if silver.height() > 0 {
            let distinct = silver
                .unique_stable(None, UniqueKeepStrategy::First, None)
                .expect("unique")
                .height();
            assert_eq!(
                distinct,
                silver.height(),
                "{}: a key twice in silver",
                m.name
            );
        }
        checked += (q.len() + silver.height()) as u64;
        cleaned.push((m.name.clone(), input.clone(), qset, silver.height()));
    }
    let mut bronze: BTreeMap<String, BTreeSet<(String, i64, i64)>> = BTreeMap::new();
    for m in p.graph.node_weights() {
        let Source::Kafka { topic } = &m.source else {
            continue;
        };
        let rows = coords(&read(&m.name, &coord_cols).await);
        checked += rows.len() as u64;
        let set: BTreeSet<_> = rows.iter().cloned().collect();
        assert_eq!(
            set.len(),
            rows.len(),
            "{}: an offset twice in bronze",
            m.name
        );
        if complete {
            for (part, (lo, hi)) in crate::s3_faults::watermarks(topic) {
                let held = set.iter().filter(|(_, p, _)| *p == part as i64).count() as i64;
                assert_eq!(
                    held,
                    hi - lo,
                    "{}: partition {part} holds {held} of {lo}..{hi}",
                    m.name
                );
            }
        }
        bronze.insert(m.name.clone(), set);
    }
    for (name, input, quarantined, silver) in cleaned {
        let b = bronze.get(&input).cloned().unwrap_or_default();
        assert!(
            quarantined.is_subset(&b),
            "{name}: quarantined rows that are not in {input}"
        );
        assert!(
            b.len() >= quarantined.len() + silver,
            "{name}: bronze {} < silver {silver} + quarantine {}",
            b.len(),
            quarantined.len()
        );
    }
    checked
}

/// PostgreSQL against the lake, with the load lock held so that no load
/// moves anything meanwhile: every table `dag.loaded_versions` names holds
/// exactly its gold model's rows at that version (as many rows, the same
/// set of unique keys), and each of the model's error-severity tests has
/// a result at that very version that did not fail (the load published
/// what its audit passed, nothing newer). Returns the rows checked, or
/// None when the lock or the database could not be had (PostgreSQL down,
/// a load holding the lock long).
async fn check_warehouse(c: &Chain) -> Option<u64> {
    use jobs::decl::{ColumnType, Severity};
    use polars::prelude::DataType;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&c.pg.url()).await.ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(jobs::warehouse::load::LOCK)
            .fetch_one(&mut conn)
            .await
            .ok()?;
        if got {
            break;
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let loaded: Vec<(String, i64)> =
        sqlx::query_as("SELECT model, delta_version FROM dag.loaded_versions")
            .fetch_all(&mut conn)
            .await
            .ok()?;
    if loaded.is_empty() {
        return Some(0);
    }
    let (p, catalog, settings) = c.lake();
    // (test, version) -> whether a result there did not fail.
    let results = jobs::lake::table::ModelTable::open(
        jobs::datatest::results::TABLE,
        &jobs::datatest::results::location(&settings).expect("location"),
        jobs::lake::table::arrow_schema(&jobs::datatest::results::columns()),
    )
    .await
    .expect("results table")
    .expect("a load happened, so tests ran")
    .read_all(Some(&["test", "version", "status"]))
    .await
    .expect("read results");
    let (tests, versions, status) = (
        results
            .column("test")
            .expect("test")
            .str()
            .expect("str")
            .clone(),
        results
            .column("version")
            .expect("v")
            .i64()
            .expect("i64")
            .clone(),
        results
            .column("status")
            .expect("s")
            .str()
            .expect("str")
            .clone(),
    );
    let passed: BTreeSet<(String, i64)> = (0..results.height())
        .filter(|&i| matches!(status.get(i), Some("pass" | "warn")))
        .filter_map(|i| Some((tests.get(i)?.to_string(), versions.get(i)?)))
        .collect();
    let mut checked = 0u64;
    for (model, version) in loaded {
        let m = p.model(&model).expect("a loaded model is in the pipeline");
        let target = m.warehouse.as_ref().expect("a warehouse model");
        for t in m.tests.iter().filter(|t| t.severity == Severity::Error) {
            assert!(
                passed.contains(&(t.name.clone(), version)),
                "{model}: published at version {version}, where test {} has no passing result",
                t.name
            );
        }
        let key: Vec<String> = m
            .tests
            .iter()
            .find(|t| t.kind.name() == "unique")
            .map(|t| t.kind.columns())
            .unwrap_or_else(|| m.unique_key.clone());
        let is_ts = |col: &str| {
            m.column(col)
                .is_some_and(|c| matches!(c.ty, ColumnType::Timestamp))
        };
        // Keys as text on both sides; timestamps as epoch microseconds.
        let pg_key = key
            .iter()
            .map(|k| {
                if is_ts(k) {
                    format!("(extract(epoch from \"{k}\") * 1000000)::bigint::text")
                } else {
                    format!("\"{k}\"::text")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let in_pg: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT concat_ws('|', {pg_key}) FROM \"{}\".\"{}\"",
            target.schema, target.table
        )))
        .fetch_all(&mut conn)
        .await
        .expect("read the warehouse table");
        let table = catalog
            .open_input(&model, &settings)
            .await
            .expect("open gold")
            .at_version(version)
            .await
            .expect("the loaded version is in the table's log");
        let cols: Vec<&str> = key.iter().map(String::as_str).collect();
        let df = table.read_all(Some(&cols)).await.expect("read gold");
        let parts: Vec<_> = key
            .iter()
            .map(|k| {
                let col = df.column(k).expect("key column");
                let col = if is_ts(k) {
                    col.cast(&DataType::Int64).expect("cast")
                } else {
                    col.clone()
                };
                col.cast(&DataType::String).expect("as text")
            })
            .collect();
        let in_gold: Vec<String> = (0..df.height())
            .map(|i| {
                parts
                    .iter()
                    .map(|c| c.str().expect("str").get(i).unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        assert_eq!(
            in_pg.len(),
            in_gold.len(),
            "{model}: PostgreSQL holds {} rows, gold at the loaded version {version} {}",
            in_pg.len(),
            in_gold.len()
        );
        let (a, b): (BTreeSet<_>, BTreeSet<_>) =
            (in_pg.into_iter().collect(), in_gold.into_iter().collect());
        let only_pg: Vec<_> = a.difference(&b).take(3).collect();
        let only_gold: Vec<_> = b.difference(&a).take(3).collect();
        assert!(
            only_pg.is_empty() && only_gold.is_empty(),
            "{model} at version {version}: only in PostgreSQL {only_pg:?}, only in gold {only_gold:?}"
        );
        checked += a.len() as u64;
    }
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(jobs::warehouse::load::LOCK)
        .execute(&mut conn)
        .await;
    Some(checked)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_invariant_holds_after_100_faults_of_nine_kinds() {
    let c = Chain::new().await;
    let t = truth(&c);
    for kind in [
        Kind::MalformedJson,
        Kind::Duplicate,
        Kind::Tombstone,
        Kind::FutureEventTime,
    ] {
        assert!(
            t.kinds.get(&kind).copied().unwrap_or(0) > 0,
            "{:?}",
            t.kinds
        );
    }
    let out = c.dag(&["migrate"]).output().expect("migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut producer = c.spawn(
        &[
            "produce",
            "--seed",
            &SEED.to_string(),
            "--events",
            &EVENTS.to_string(),
            "--rate",
            "1000",
            "--start",
            START,
            "--bad-share",
            "0.05",
        ],
        "producer",
    );
    // Two ingesters of one group and two schedulers: kills, zombies and
    // take-overs between live peers.
    let mut ingesters = [
        c.spawn(&["ingest"], "ingest"),
        c.spawn(&["ingest"], "ingest"),
    ];
    let mut schedulers = [
        c.spawn(&["scheduler"], "scheduler"),
        c.spawn(&["scheduler"], "scheduler"),
    ];
    let mut rng = rand::rng();
    let (mut kills, mut ingest_kills, mut scheduler_kills, mut pg_kills) = (0, 0, 0, 0);
    let (mut pg_restarts, mut warehouse_checkpoints) = (0, 0);
    let (mut ingest_zombies, mut scheduler_zombies, mut checkpoints, mut rows_checked) =
        (0, 0, 0, 0u64);
    // Processes stopped with SIGSTOP, and when they get SIGCONT.
    let mut stopped: Vec<(u32, Instant)> = Vec::new();
    let mut storms = 0;
    let mut loaded: BTreeMap<String, i64> = BTreeMap::new();
    let started = Instant::now();
    // Faults while the producer runs (and a little after), at least 30
    // kills and S3 storms among them.
    let s3_faults_enough = |n: testkit::s3_faults::FaultCounts| {
        n.failed + n.dropped + n.delayed >= 70 && n.failed > 0 && n.dropped > 0 && n.delayed > 0
    };
    // Until every kind the final check asks for has happened: a run that
    // finishes its work early (a faster pipeline) must not leave a kind
    // out by chance.
    while kills < 30
        || storms < 3
        || ingest_zombies == 0
        || scheduler_zombies == 0
        || checkpoints < 2
        || !s3_faults_enough(c.proxy.counts())
        || producer.try_wait().expect("producer").is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the producer never finished"
        );
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..900))).await;
        stopped.retain(|(pid, at)| {
            let due = *at <= Instant::now();
            if due {
                signal(*pid, "CONT");
            }
            !due
        });
        // A checkpoint: no table's loaded version ever goes back.
        if let Ok(rows) = sqlx::query_as::<_, (String, i64)>(
            "SELECT model, delta_version FROM dag.loaded_versions",
        )
        .fetch_all(&c.pool)
        .await
        {
            for (model, v) in rows {
                let before = loaded.insert(model.clone(), v).unwrap_or(-1);
                assert!(
                    v >= before,
                    "{model}: loaded version went back from {before} to {v}"
                );
            }
        }
        // Storms come and go between the kills (more often once the
        // producer is done and the lake is quieter).
        if rng.random_range(0..3) == 0 {
            c.proxy.set_rules(storm());
            storms += 1;
        } else if rng.random_range(0..2) == 0 {
            c.proxy.clear_rules();
        }
        // Now and then the lake's own invariants, mid-run.
        if kills % 8 == 0 {
            let n = check_lake(&c, false).await;
            let w = check_warehouse(&c).await;
            eprintln!("checkpoint {checkpoints}: {n} lake rows, warehouse {w:?}");
            rows_checked += n;
            if let Some(w) = w {
                rows_checked += w;
                warehouse_checkpoints += 1;
            }
            checkpoints += 1;
        }
        let i = rng.random_range(0..2);
        let is_stopped =
            |pid: u32, stopped: &[(u32, Instant)]| stopped.iter().any(|(p, _)| *p == pid);
        match rng.random_range(0..6) {
            0 => {
                stopped.retain(|(p, _)| *p != ingesters[i].id());
                kill9(&mut ingesters[i]);
                ingesters[i] = c.spawn(&["ingest"], "ingest");
                ingest_kills += 1;
            }
            1 => {
                stopped.retain(|(p, _)| *p != schedulers[i].id());
                kill9(&mut schedulers[i]);
                schedulers[i] = c.spawn(&["scheduler"], "scheduler");
                scheduler_kills += 1;
            }
            // A zombie ingester: frozen past the session timeout (6 s), so
            // the group hands its partitions to the other; then it wakes
            // with its batch and must be fenced by the table.
            3 if !is_stopped(ingesters[i].id(), &stopped) => {
                signal(ingesters[i].id(), "STOP");
                stopped.push((ingesters[i].id(), Instant::now() + Duration::from_secs(7)));
                ingest_zombies += 1;
            }
            // A zombie scheduler: frozen past its lease (2 s), so its
            // tasks are retried by the other; then it wakes mid-task.
            4 if !is_stopped(schedulers[i].id(), &stopped) => {
                signal(schedulers[i].id(), "STOP");
                stopped.push((schedulers[i].id(), Instant::now() + Duration::from_secs(3)));
                scheduler_zombies += 1;
            }
            // PostgreSQL crashes (every session cut, locks and open
            // transactions gone) and is down for up to 3 s.
            5 => {
                let outage = Duration::from_millis(rng.random_range(300..3000));
                tokio::task::block_in_place(|| c.pg.crash_restart(outage))
                    .expect("restart PostgreSQL");
                pg_restarts += 1;
            }
            _ => {
                c.kill_connections().await;
                pg_kills += 1;
            }
        }
        kills += 1;
    }
    assert!(
        producer.wait().expect("producer").success(),
        "{}",
        c.log("producer")
    );
    // Clean: bronze catches up, then one run brings everything up to date.
    c.proxy.clear_rules();
    for (pid, _) in stopped.drain(..) {
        signal(pid, "CONT");
    }
    for ingester in &mut ingesters {
        kill9(ingester);
    }
    let out = c
        .dag(&["ingest", "--until-caught-up"])
        .output()
        .expect("ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut done = false;
    for _ in 0..5 {
        let out = c
            .dag(&["trigger", "gold", "--wait"])
            .output()
            .expect("trigger");
        if out.status.success() {
            done = true;
            break;
        }
        eprintln!(
            "final run not clean yet: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(
        done,
        "the final run never succeeded:\n{}",
        c.log("scheduler")
    );
    for scheduler in &mut schedulers {
        kill9(scheduler);
    }
    rows_checked += check_lake(&c, true).await;
    rows_checked += check_warehouse(&c)
        .await
        .expect("the warehouse check at the end");
    checkpoints += 1;
    warehouse_checkpoints += 1;
    let s3 = c.proxy.events();
    let of = |k: ActionKind| s3.iter().filter(|e| e.action == k).count();
    let (failed, dropped, delayed) = (
        of(ActionKind::Fail),
        of(ActionKind::DropResponse),
        of(ActionKind::Delay),
    );
    eprintln!(
        "faults: {} ({ingest_kills} ingester kill -9, {scheduler_kills} scheduler kill -9, {ingest_zombies} ingester zombies (SIGSTOP 7 s), {scheduler_zombies} scheduler zombies (SIGSTOP 3 s), {pg_kills} PostgreSQL connection kills, {pg_restarts} PostgreSQL crash-restarts, {failed} S3 requests failed, {dropped} S3 answers lost after the write, {delayed} S3 requests delayed, in {storms} storms) in {:.0}s; lake invariants checked at {checkpoints} checkpoints, PostgreSQL against gold at {warehouse_checkpoints} ({rows_checked} rows)",
        kills + failed + dropped + delayed,
        started.elapsed().as_secs_f64()
    );
    assert!(
        kills + failed + dropped + delayed >= 100 && failed > 0 && dropped > 0 && delayed > 0,
        "too few faults to prove much"
    );

    let events: Vec<String> = set_of(&c, "SELECT event_id FROM gold.fact_telemetry").await;
    let distinct: BTreeSet<String> = events.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        events.len(),
        "repeated event_ids in PostgreSQL"
    );
    let missing: Vec<_> = t.events.difference(&distinct).take(5).collect();
    let extra: Vec<_> = distinct.difference(&t.events).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "fact_telemetry: {} rows for {} valid events; missing {missing:?}, extra {extra:?}",
        distinct.len(),
        t.events.len()
    );
    let fines: BTreeSet<String> = set_of(&c, "SELECT fine_id FROM gold.fact_fines")
        .await
        .into_iter()
        .collect();
    assert_eq!(fines, t.fines, "fact_fines");
    let per_day: BTreeMap<(String, String), i64> = sqlx::query(
        "SELECT driver_id, event_date::text, events FROM gold.agg_driver_daily WHERE events > 0",
    )
    .fetch_all(&c.pool)
    .await
    .expect("agg")
    .iter()
    .map(|r| ((r.get(0), r.get(1)), r.get(2)))
    .collect();
    assert_eq!(
        per_day, t.per_driver_day,
        "agg_driver_daily.events vs a recount"
    );
    assert!(kills >= 30 && ingest_kills > 0 && scheduler_kills > 0 && pg_kills > 0);
    assert!(ingest_zombies > 0 && scheduler_zombies > 0 && checkpoints > 1);
    assert!(pg_restarts > 0 && warehouse_checkpoints > 1);
}
