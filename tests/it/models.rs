//! Silver and gold end to end, on the shipped telematics pipeline: bronze
//! tables are written directly (the Kafka side is tested in bronze.rs),
//! then `dag run` is the binary a user runs.
//!
//! What is proven: the invariant per table (bronze = silver + duplicates +
//! quarantine, reasons as generated), incremental runs equal one full
//! recompute row for row, a run without new bronze writes nothing, runs
//! killed anywhere resume without duplicates or gaps, a late event changes
//! exactly the aggregate rows it affects, unknown ids become inferred
//! dimension members.

use crate::fixtures::copy_dir;
use chrono::{DateTime, TimeDelta, Utc};
use dag::pipeline::Pipeline;
use jobs::bronze::batch::{BatchBuilder, RawMessage};
use jobs::bronze::table::{BatchCommit, BronzeTable, TableLocation};
use jobs::model::{Catalog, RunSettings};
use jobs::produce::sim::{Fleet, Kind, SimSettings, Simulator};
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const TELEMETRY: &str = "vehicle-telemetry";
const FINES: &str = "traffic-fines";

/// A project folder using the repo's pipeline and data, with its own lake.
/// The `in` count `dag run` printed for `model`.
fn rows_in(out: &str, model: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(model))
        .unwrap_or_else(|| panic!("no line for {model} in:\n{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "in")
        .expect("an `in` count");
    words[at + 1].parse().expect("a number")
}

pub(crate) struct Lake {
    dir: tempfile::TempDir,
    /// Next offset per (topic, partition).
    offsets: BTreeMap<(String, i32), i64>,
}

impl Lake {
    pub(crate) fn new() -> Lake {
        let dir = tempfile::tempdir().expect("tempdir");
        Lake::write_config(dir.path(), &repo().join("data"));
        Lake {
            dir,
            offsets: BTreeMap::new(),
        }
    }

    fn write_config(root: &Path, data: &Path) {
        let toml = format!(
            "pipeline = \"telematics\"\nmodels_dir = \"{}\"\ndata_dir = \"{}\"\n[warehouse]\nenabled = false\n[lake]\nuri = \"file://{}/lake\"\n",
            repo().join("models").display(),
            data.display(),
            root.display()
        );
        std::fs::write(root.join("dag.toml"), toml).expect("write dag.toml");
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn settings(&self) -> RunSettings {
        RunSettings::new(
            format!("file://{}/lake", self.root().display()),
            HashMap::new(),
            repo().join("data"),
        )
    }

    /// Appends messages to the two bronze tables as one commit each, with
    /// `ingested_at` pinned.
    pub(crate) async fn add(&mut self, records: &[Message], ingested_at: DateTime<Utc>) {
        for (name, topic) in [
            ("bronze_vehicle_telemetry", TELEMETRY),
            ("bronze_traffic_fines", FINES),
        ] {
            let mine: Vec<_> = records.iter().filter(|r| r.0 == topic).collect();
            if mine.is_empty() {
                continue;
            }
            let loc = TableLocation::in_lake(&self.settings().lake, "bronze", name, HashMap::new())
                .expect("location");
            let mut table = BronzeTable::open_or_create(name, topic, loc)
                .await
                .expect("bronze");
            table.claim(&[0, 1, 2]).await.expect("claim");
            let mut b = BatchBuilder::new(topic);
            for (_, key, value) in mine {
                let p = (key.iter().map(|c| *c as u32).sum::<u32>() % 3) as i32;
                let off = self.offsets.entry((topic.to_string(), p)).or_insert(0);
                b.push(
                    &RawMessage {
                        partition: p,
                        offset: *off,
                        key: Some(key),
                        value: value.as_deref(),
                        timestamp_ms: Some(ingested_at.timestamp_millis()),
                    },
                    ingested_at.timestamp_micros(),
                );
                *off += 1;
            }
            let (batch, spans) = b.finish();
            let outcome = table.commit(&batch, &spans).await.expect("commit");
            assert!(
                matches!(outcome, BatchCommit::Committed { .. }),
                "{outcome:?}"
            );
        }
    }

    pub(crate) fn run(&self, args: &[&str]) -> String {
        self.run_with(args, &[])
    }

    pub(crate) fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new(testkit::dag_bin())
            .current_dir(self.root())
            .arg("run")
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("dag run");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "dag run failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    pub(crate) async fn table(&self, name: &str) -> DataFrame {
        let t = catalog()
            .open_input(name, &self.settings())
            .await
            .expect("open");
        t.read_all(None).await.expect("read")
    }

    async fn version(&self, name: &str) -> i64 {
        catalog()
            .open_input(name, &self.settings())
            .await
            .expect("open")
            .version()
    }
}

pub(crate) fn catalog() -> Catalog {
    let p = Pipeline::load(&repo().join("models/telematics")).expect("pipeline");
    Catalog::new(p.graph.node_weights().cloned())
}

const SILVER_GOLD: [(&str, &[&str]); 13] = [
    ("silver_telemetry", &["event_id"]),
    ("silver_fines", &["fine_id"]),
    ("quarantine_telemetry", &["topic", "partition", "offset"]),
    ("quarantine_fines", &["topic", "partition", "offset"]),
    ("silver_vehicles", &["vehicle_id"]),
    ("silver_drivers", &["driver_id"]),
    ("fact_telemetry", &["event_id"]),
    ("fact_fines", &["fine_id"]),
    ("dim_vehicle", &["vehicle_id"]),
    ("dim_driver", &["driver_id"]),
    ("int_driver_daily_telemetry", &["driver_id", "event_date"]),
    ("agg_driver_daily", &["driver_id", "event_date"]),
    ("agg_alerts_15min", &["window_start"]),
];

pub(crate) type Message = (String, Vec<u8>, Option<Vec<u8>>);

/// Simulated messages as (kind, (topic, key, value)).
pub(crate) fn simulate(
    seed: u64,
    events: u64,
    start: &str,
    counts: &mut BTreeMap<Kind, u64>,
) -> Vec<(Kind, Message)> {
    let fleet = Fleet::from_data_dir(&repo().join("data")).expect("fleet");
    let s = SimSettings {
        seed,
        events,
        start: DateTime::parse_from_rfc3339(start)
            .expect("start")
            .with_timezone(&Utc),
        // Spread over hours, so that days and windows get several runs.
        report_every: std::time::Duration::from_secs(3600),
        bad_share: 0.08,
        unknown_share: 0.01,
        ..SimSettings::default()
    };
    let mut sim = Simulator::new(s, &fleet);
    let out = sim
        .by_ref()
        .map(|(k, r)| (k, (r.topic, r.key.unwrap_or_default(), r.value)))
        .collect();
    for (k, n) in &sim.counts {
        *counts.entry(*k).or_default() += n;
    }
    out
}

/// Runs a fresh lake holding a copy of `lake`'s bronze once, from scratch,
/// and checks that every silver and gold table of `lake` has unique keys and
/// equals that recompute row for row. Returns the fresh lake.
async fn assert_same_as_full_recompute(lake: &Lake) -> Lake {
    let full = Lake::new();
    copy_dir(
        &lake.root().join("lake/bronze"),
        &full.root().join("lake/bronze"),
    );
    full.run(&[]);
    for (name, key) in SILVER_GOLD {
        let t = lake.table(name).await;
        let unique = t
            .clone()
            .lazy()
            .select(key.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .unique(None, UniqueKeepStrategy::First)
            .collect()
            .expect("u");
        assert_eq!(unique.height(), t.height(), "{name}: duplicate keys");
        assert_same(name, &t, &full.table(name).await, key);
    }
    full
}

/// Rows sorted by `key`; floats compared with a relative 1e-9 (sums may
/// add in another order), everything else exactly.
fn assert_same(name: &str, a: &DataFrame, b: &DataFrame, key: &[&str]) {
    let sort = |d: &DataFrame| {
        d.sort(key.to_vec(), SortMultipleOptions::default())
            .expect("sort")
    };
    let (a, b) = (sort(a), sort(b));
    assert_eq!(a.height(), b.height(), "{name}: row counts differ");
    for c in a.columns() {
        let other = b.column(c.name()).expect("same columns");
        if c.dtype() == &DataType::Float64 {
            let (x, y) = (c.f64().expect("f64"), other.f64().expect("f64"));
            for (i, (u, v)) in x.iter().zip(y.iter()).enumerate() {
                let same = match (u, v) {
                    (Some(u), Some(v)) => (u - v).abs() <= 1e-9 * u.abs().max(1.0),
                    (None, None) => true,
                    _ => false,
                };
                assert!(same, "{name}.{} row {i}: {u:?} vs {v:?}", c.name());
            }
        } else {
            assert!(
                c.as_materialized_series()
                    .equals_missing(other.as_materialized_series()),
                "{name}.{} differs:\n{c:?}\n{other:?}",
                c.name()
            );
        }
    }
}

fn count_where(df: &DataFrame, column: &str, pred: impl Fn(&str) -> bool) -> u64 {
    df.column(column)
        .expect("column")
        .str()
        .expect("str")
        .iter()
        .filter(|v| v.is_some_and(&pred))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_runs_keep_the_invariant_and_equal_a_full_recompute() {
    let mut lake = Lake::new();
    let mut counts = BTreeMap::new();
    let mut total_bronze = 0u64;
    let mut resent = 0u64;
    let days = [
        "2026-11-18T06:00:00Z",
        "2026-11-19T06:00:00Z",
        "2026-11-19T18:00:00Z",
        "2026-11-20T06:00:00Z",
    ];
    let mut earlier: Vec<Message> = Vec::new();
    for (step, start) in days.iter().enumerate() {
        let made = simulate(100 + step as u64, 1500, start, &mut counts);
        let mut records: Vec<Message> = made.iter().map(|(_, m)| m.clone()).collect();
        // Re-sends of valid messages from earlier runs: duplicates across
        // runs, which must not displace the copy silver already holds.
        if step > 0 {
            let again: Vec<Message> = earlier.iter().step_by(97).take(15).cloned().collect();
            resent += again.len() as u64;
            records.extend(again);
        }
        earlier.extend(
            made.iter()
                .filter(|(k, _)| *k == Kind::Telemetry)
                .map(|(_, m)| m.clone()),
        );
        total_bronze += records.len() as u64;
        let ingested = DateTime::parse_from_rfc3339(start)
            .expect("t")
            .with_timezone(&Utc)
            + TimeDelta::days(1);
        let silver_before = if step > 0 {
            lake.table("silver_telemetry").await.height() as u64
        } else {
            0
        };
        lake.add(&records, ingested).await;
        let out = lake.run(&[]);
        assert!(out.contains("silver_telemetry"), "{out}");
        if step > 0 {
            // Scoped incremental runs: the fact reads only the events silver
            // gained; the aggregates read only the facts of affected
            // (driver, day) rows and windows; fact_fines only the fines in
            // scope and the telemetry their as-of join needs; never a full
            // recompute.
            let gained = lake.table("silver_telemetry").await.height() as u64 - silver_before;
            assert_eq!(rows_in(&out, "fact_telemetry"), gained, "{out}");
            let facts = lake.table("fact_telemetry").await.height() as u64;
            // The dimensions look the new facts' ids up and read only the
            // new fact rows for ids they do not hold yet.
            let new_facts = rows_in(&out, "fact_telemetry") + rows_in(&out, "fact_fines");
            for m in ["dim_driver", "dim_vehicle"] {
                assert!(
                    rows_in(&out, m) <= new_facts + 400,
                    "{m} read old facts:\n{out}"
                );
            }
            for m in ["agg_driver_daily", "agg_alerts_15min", "fact_fines"] {
                assert!(rows_in(&out, m) < facts, "{m} read every fact:\n{out}");
            }
            // The accumulated telemetry sums read the new facts only.
            assert_eq!(rows_in(&out, "int_driver_daily_telemetry"), gained, "{out}");
            assert!(!out.contains("full recompute"), "{out}");
        }

        // The invariant: every bronze row is in exactly one of silver, the
        // duplicates (simulated re-sends of valid messages) or quarantine.
        let n = |k: Kind| counts.get(&k).copied().unwrap_or(0);
        let bronze = lake.table("bronze_vehicle_telemetry").await.height() as u64
            + lake.table("bronze_traffic_fines").await.height() as u64;
        assert_eq!(bronze, total_bronze);
        let silver = lake.table("silver_telemetry").await;
        let fines = lake.table("silver_fines").await;
        let quarantine = lake.table("quarantine_telemetry").await;
        let q_fines = lake.table("quarantine_fines").await;
        let duplicates = n(Kind::Duplicate) + resent;
        assert_eq!(
            silver.height() as u64
                + fines.height() as u64
                + quarantine.height() as u64
                + q_fines.height() as u64
                + duplicates,
            bronze,
            "step {step}: silver + quarantine + duplicates != bronze"
        );
        assert_eq!(
            silver.height() as u64,
            n(Kind::Telemetry),
            "step {step}: valid distinct events"
        );
        assert_eq!(fines.height() as u64, n(Kind::Fine));
        assert_eq!(
            silver
                .column("event_id")
                .expect("id")
                .n_unique()
                .expect("n"),
            silver.height(),
            "silver_telemetry has a duplicate event_id"
        );
        // Reasons, as generated.
        let reason = |p: &str| count_where(&quarantine, "reason", |r| r.starts_with(p));
        assert_eq!(
            reason("malformed_json") + reason("empty_value"),
            n(Kind::MalformedJson) + n(Kind::EmptyValue) + n(Kind::Tombstone)
        );
        assert_eq!(reason("missing:"), n(Kind::Missing));
        assert_eq!(reason("type:"), n(Kind::Type));
        assert_eq!(reason("range:"), n(Kind::Range));
        assert_eq!(reason("future_event_time"), n(Kind::FutureEventTime));
        // Gold: one fact row per distinct valid event id.
        let fact = lake.table("fact_telemetry").await;
        assert_eq!(fact.height(), silver.height());
    }

    // A fact rebuilt in place removed and re-added every row: the sums
    // cannot take rows back, so they are recomputed from all (and say why);
    // the comparisons below prove the result.
    lake.run(&["fact_telemetry", "--full-refresh"]);
    let out = lake.run(&[]);
    let line = out
        .lines()
        .find(|l| l.starts_with("int_driver_daily_telemetry"))
        .unwrap_or_else(|| panic!("no line for the sums:\n{out}"));
    assert!(
        line.contains("full recompute") && line.contains("fact_telemetry removed or rewrote rows"),
        "{out}"
    );

    // Nothing new: no table gets a new version.
    let mut before = BTreeMap::new();
    for (name, _) in SILVER_GOLD {
        before.insert(name, lake.version(name).await);
    }
    let out = lake.run(&[]);
    for (name, _) in SILVER_GOLD {
        assert_eq!(
            lake.version(name).await,
            before[name],
            "{name} got a new version on a run with no new data:\n{out}"
        );
    }

    // One full recompute over a copy of the same bronze equals the result
    // of the incremental runs, row for row.
    let full = assert_same_as_full_recompute(&lake).await;
    // And `--full-refresh` in place gives the same again, cleaning bronze
    // in batches (one per file here): dedupe across batches keeps the first.
    let out = lake.run_with(&["--full-refresh"], &[("DAG_MODELS__CLEAN_BATCH_MB", "0")]);
    assert!(out.contains("silver_telemetry"), "{out}");
    for (name, key) in SILVER_GOLD {
        assert_same(name, &lake.table(name).await, &full.table(name).await, key);
    }

    // Unknown vehicles and drivers became inferred members; every fact
    // finds its dimension rows.
    let dim_v = lake.table("dim_vehicle").await;
    let inferred = dim_v
        .column("is_inferred")
        .expect("c")
        .bool()
        .expect("b")
        .sum()
        .unwrap_or(0);
    assert!(inferred > 0, "no inferred vehicle");
    assert!(count_where(&dim_v, "vehicle_id", |v| v.starts_with("V9")) as u32 == inferred);
    for (fact, column, dim) in [
        ("fact_telemetry", "vehicle_id", "dim_vehicle"),
        ("fact_telemetry", "driver_id", "dim_driver"),
        ("fact_fines", "vehicle_id", "dim_vehicle"),
        ("agg_driver_daily", "driver_id", "dim_driver"),
    ] {
        let f = lake.table(fact).await;
        let d = lake.table(dim).await;
        let orphans = f
            .lazy()
            .filter(col(column).is_not_null())
            .join(
                d.lazy(),
                [col(column)],
                [col(column)],
                JoinArgs::new(JoinType::Anti),
            )
            .collect()
            .expect("join");
        assert_eq!(
            orphans.height(),
            0,
            "{fact}.{column} without {dim}: {orphans:?}"
        );
    }
}

pub(crate) fn event(
    id: &str,
    vehicle: &str,
    driver: &str,
    time: &str,
    speed: f64,
    rpm: i64,
    gear: i64,
) -> Message {
    let v = format!(
        r#"{{"event_id":"{id}","vehicle_id":"{vehicle}","driver_id":"{driver}","event_time":"{time}","lat":45.1,"lon":9.2,"speed_kmh":{speed},"rpm":{rpm},"gear":{gear}}}"#
    );
    (
        TELEMETRY.into(),
        vehicle.as_bytes().to_vec(),
        Some(v.into_bytes()),
    )
}

fn fine(id: &str, vehicle: &str, time: &str, speed: f64, limit: f64, amount: &str) -> Message {
    let v = format!(
        r#"{{"fine_id":"{id}","vehicle_id":"{vehicle}","camera_id":"CAM1","issued_at":"{time}","speed_kmh":{speed},"limit_kmh":{limit},"amount_eur":{amount}}}"#
    );
    (
        FINES.into(),
        vehicle.as_bytes().to_vec(),
        Some(v.into_bytes()),
    )
}

/// Rows of `a` that `b` does not hold identically, as their keys.
pub(crate) fn changed_keys(a: &DataFrame, b: &DataFrame, key: &[&str]) -> Vec<String> {
    let all: Vec<Expr> = a
        .get_column_names()
        .iter()
        .map(|c| col(c.as_str()))
        .collect();
    let mut args = JoinArgs::new(JoinType::Anti);
    args.nulls_equal = true;
    let diff = a
        .clone()
        .lazy()
        .join(b.clone().lazy(), &all, &all, args)
        .collect()
        .expect("diff");
    let mut keys: Vec<String> = (0..diff.height())
        .map(|i| {
            key.iter()
                .map(|k| {
                    diff.column(k)
                        .expect("key")
                        .get(i)
                        .expect("row")
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    keys.sort();
    keys
}

/// A model table compacts its small files every `COMPACT_EVERY` commits
/// (continuous mode commits every few seconds). Silver run alone that many
/// times compacts files the fact has not read yet; the fact's next scoped
/// run still takes every new event (it used to read only the added files
/// still live, and lost the compacted ones) and equals a full recompute.
#[tokio::test(flavor = "multi_thread")]
async fn a_compaction_upstream_loses_no_row_to_the_scoped_runs_downstream() {
    use jobs::lake::table::COMPACT_EVERY;
    let mut lake = Lake::new();
    let mut counts = BTreeMap::new();
    let start = DateTime::parse_from_rfc3339("2026-11-18T06:00:00Z")
        .expect("t")
        .with_timezone(&Utc);
    let batch = |seed: u64, n: u64, counts: &mut BTreeMap<Kind, u64>| -> Vec<Message> {
        let at = (start + TimeDelta::minutes(seed as i64 * 10)).to_rfc3339();
        simulate(seed, n, &at, counts)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    };
    lake.add(&batch(0, 300, &mut counts), start + TimeDelta::days(1))
        .await;
    lake.run(&[]);
    let silver_before = lake.version("silver_telemetry").await;
    for seed in 1..=COMPACT_EVERY as u64 {
        lake.add(&batch(seed, 20, &mut counts), start + TimeDelta::days(1))
            .await;
        lake.run(&["silver_telemetry"]);
    }
    // Silver compacted (a version more than its runs made), and files the
    // fact had not read yet were among those compacted.
    let silver = lake.table("silver_telemetry").await;
    assert!(
        lake.version("silver_telemetry").await > silver_before + COMPACT_EVERY,
        "silver was not compacted"
    );
    lake.run(&[]);
    let fact = lake.table("fact_telemetry").await;
    assert_eq!(fact.height(), silver.height(), "fact rows lost");
    assert_same_as_full_recompute(&lake).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_event_changes_exactly_the_aggregate_rows_it_affects() {
    let mut lake = Lake::new();
    let at = DateTime::parse_from_rfc3339("2026-11-21T00:00:00Z")
        .expect("t")
        .with_timezone(&Utc);
    lake.add(
        &[
            event(
                "e1",
                "V0001",
                "D0001",
                "2026-11-20T10:00:00Z",
                50.0,
                2000,
                2,
            ),
            event(
                "e2",
                "V0001",
                "D0001",
                "2026-11-20T10:20:00Z",
                130.0,
                3000,
                4,
            ),
            event(
                "e3",
                "V0002",
                "D0003",
                "2026-11-20T12:00:00Z",
                60.0,
                2000,
                2,
            ),
            event(
                "e5",
                "V0003",
                "D0004",
                "2026-11-20T11:00:00Z",
                60.0,
                7000,
                2,
            ),
            fine(
                "f1",
                "V0001",
                "2026-11-20T10:30:00+00:00",
                130.0,
                100.0,
                "80.00",
            ),
            fine("f2", "V0002", "2026-11-20T12:30:00Z", 70.0, 50.0, "40.50"),
        ],
        at,
    )
    .await;
    lake.run(&[]);
    let before: Vec<DataFrame> = futures::future::join_all(
        [
            "fact_fines",
            "agg_driver_daily",
            "agg_alerts_15min",
            "fact_telemetry",
        ]
        .map(|t| lake.table(t)),
    )
    .await;
    let fines = &before[0];
    let f1 = fines
        .clone()
        .lazy()
        .filter(col("fine_id").eq(lit("f1")))
        .collect()
        .expect("f1");
    assert_eq!(
        f1.column("driver_id").expect("c").str().expect("s").get(0),
        Some("D0001")
    );

    // e4 arrives late: V0001 driven by D0002 at 10:25, an alert, and now the
    // latest event before fine f1 (10:30).
    lake.add(
        &[event(
            "e4",
            "V0001",
            "D0002",
            "2026-11-20T10:25:00.000001+00:00",
            125.0,
            3000,
            4,
        )],
        at + TimeDelta::hours(1),
    )
    .await;
    let out = lake.run(&[]);
    // f1 re-attributed through the as-of scope: the one fine of V0001 at or
    // after 10:25 and V0001's telemetry up to 10:30 (e1, e2, e4), not every
    // fine and fact.
    assert!(!out.contains("full recompute"), "{out}");
    assert_eq!(rows_in(&out, "fact_fines"), 4, "{out}");
    let after: Vec<DataFrame> = futures::future::join_all(
        [
            "fact_fines",
            "agg_driver_daily",
            "agg_alerts_15min",
            "fact_telemetry",
        ]
        .map(|t| lake.table(t)),
    )
    .await;
    let changes = |i: usize, key: &[&str]| {
        let mut k = changed_keys(&after[i], &before[i], key);
        k.extend(changed_keys(&before[i], &after[i], key));
        k.sort();
        k.dedup();
        k
    };
    assert_eq!(changes(0, &["fine_id"]), ["\"f1\""]);
    assert_eq!(
        changes(1, &["driver_id", "event_date"]),
        ["\"D0001\"|2026-11-20", "\"D0002\"|2026-11-20"]
    );
    assert_eq!(changes(2, &["window_start"]), ["2026-11-20 10:15:00"]);
    assert_eq!(changes(3, &["event_id"]), ["\"e4\""]);
    let daily = &after[1];
    let row = |driver: &str| {
        daily
            .clone()
            .lazy()
            .filter(col("driver_id").eq(lit(driver)))
            .collect()
            .expect("row")
    };
    let d1 = row("D0001");
    assert_eq!(
        d1.column("fines_count")
            .expect("c")
            .get(0)
            .expect("v")
            .to_string(),
        "0"
    );
    assert_eq!(
        d1.column("events")
            .expect("c")
            .get(0)
            .expect("v")
            .to_string(),
        "2"
    );
    let d2 = row("D0002");
    assert_eq!(
        d2.column("fines_count")
            .expect("c")
            .get(0)
            .expect("v")
            .to_string(),
        "1"
    );
    assert_eq!(
        d2.column("alert_events")
            .expect("c")
            .get(0)
            .expect("v")
            .to_string(),
        "1"
    );
    let windows = &after[2];
    let w = windows
        .clone()
        .lazy()
        .filter(col("alert_events").eq(lit(2)))
        .collect()
        .expect("w");
    assert_eq!(w.height(), 1, "{windows:?}");
    assert_eq!(
        w.column("max_speed_kmh")
            .expect("c")
            .get(0)
            .expect("v")
            .to_string(),
        "130.0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_killed_anywhere_resume_without_duplicates_or_gaps() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut lake = Lake::new();
    let mut counts = BTreeMap::new();
    let mut kills = 0;
    // The longest wait before the kill: a run that finished first shows how
    // long a whole run takes here, and the next waits are drawn below that,
    // so most runs die mid-way however fast this machine is.
    let mut longest_ms = 400u64;
    let mut round = 0u64;
    while round < 12 || (kills < 6 && round < 40) {
        // New bronze every other round; the others resume a killed run.
        if round.is_multiple_of(2) {
            let start = (DateTime::parse_from_rfc3339("2026-11-10T06:00:00Z")
                .expect("t")
                .with_timezone(&Utc)
                + TimeDelta::days(round as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let made = simulate(500 + round, 4000, &start, &mut counts);
            let records: Vec<Message> = made.into_iter().map(|(_, m)| m).collect();
            let at = DateTime::parse_from_rfc3339(&start)
                .expect("t")
                .with_timezone(&Utc)
                + TimeDelta::days(1);
            lake.add(&records, at).await;
        }
        let mut child = Command::new(testkit::dag_bin())
            .current_dir(lake.root())
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let began = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(
            rng.random_range(5..longest_ms.max(10)),
        ));
        match child.try_wait().expect("wait") {
            None => kills += 1,
            Some(status) => {
                assert!(status.success(), "round {round}: dag run failed: {status}");
                longest_ms = (began.elapsed().as_millis() as u64 * 4 / 5).max(10);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        round += 1;
    }
    assert!(
        kills >= 6,
        "only {kills} runs were killed mid-way: the test proves little"
    );
    lake.run(&[]);
    assert_same_as_full_recompute(&lake).await;
}

/// The process dies right after a model's commit (before what is
/// downstream of it runs): the next run goes on from each table's own
/// watermarks, and the sums that fold new rows into old ones count every
/// event exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_right_after_a_commit_resumes_and_counts_each_event_once() {
    let mut lake = Lake::new();
    let mut counts = BTreeMap::new();
    let mut add = async |lake: &mut Lake, seed: u64, start: &str| {
        let made = simulate(seed, 1500, start, &mut counts);
        let records: Vec<Message> = made.into_iter().map(|(_, m)| m).collect();
        let at = DateTime::parse_from_rfc3339(start)
            .expect("t")
            .with_timezone(&Utc)
            + TimeDelta::days(1);
        lake.add(&records, at).await;
    };
    add(&mut lake, 900, "2026-11-18T06:00:00Z").await;
    lake.run(&[]);
    for (round, model) in ["int_driver_daily_telemetry", "fact_telemetry"]
        .iter()
        .enumerate()
    {
        add(&mut lake, 901 + round as u64, "2026-11-18T12:00:00Z").await;
        let out = Command::new(testkit::dag_bin())
            .current_dir(lake.root())
            .arg("run")
            .env(jobs::model::ABORT_AFTER, model)
            .output()
            .expect("dag run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{model}: the run was not killed");
        assert!(stderr.contains("aborting after its commit"), "{stderr}");
        let resumed = lake.run(&[]);
        // The killed model's commit stands: it has nothing left to do.
        if *model == "int_driver_daily_telemetry" {
            assert!(
                resumed
                    .lines()
                    .any(|l| l.starts_with(model) && l.contains("up to date")),
                "{resumed}"
            );
        }
        // Same events in the facts and the sums, per driver and day.
        let facts = lake
            .table("fact_telemetry")
            .await
            .lazy()
            .group_by([col("driver_id"), col("event_date")])
            .agg([len().cast(DataType::Int64).alias("facts")])
            .collect()
            .expect("count");
        let sums = lake.table("int_driver_daily_telemetry").await;
        let both = sums
            .lazy()
            .join(
                facts.lazy(),
                [col("driver_id"), col("event_date")],
                [col("driver_id"), col("event_date")],
                JoinArgs::new(JoinType::Full),
            )
            .filter(
                col("events")
                    .neq(col("facts"))
                    .or(col("events").is_null())
                    .or(col("facts").is_null()),
            )
            .collect()
            .expect("join");
        assert_eq!(both.height(), 0, "after a kill at {model}: {both}");
    }
    assert_same_as_full_recompute(&lake).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seeds_reload_when_changed_and_name_a_repeated_key() {
    let lake = Lake::new();
    let data = lake.root().join("data");
    copy_dir(&repo().join("data"), &data);
    Lake::write_config(lake.root(), &data);
    let mut s = lake.settings();
    s.data_dir = data.clone();
    let out = lake.run(&["silver_drivers"]);
    assert!(out.contains("-> v1"), "{out}");
    let out = lake.run(&["silver_drivers"]);
    assert!(
        out.contains("up to date (drivers.csv is unchanged)"),
        "{out}"
    );
    let mut text = std::fs::read_to_string(data.join("drivers.csv")).expect("read");
    text.push_str("D7777,New Driver,B,Turin\n");
    std::fs::write(data.join("drivers.csv"), &text).expect("write");
    let out = lake.run(&["silver_drivers"]);
    assert!(out.contains("-> v2"), "{out}");
    let t = catalog()
        .open_input("silver_drivers", &s)
        .await
        .expect("open")
        .read_all(None)
        .await
        .expect("read");
    assert_eq!(count_where(&t, "driver_id", |d| d == "D7777"), 1);
    // A repeated key fails the seed, naming file and line; the table keeps
    // its last good version.
    let lines = text.lines().count();
    text.push_str("D0002,Someone Else,B,Rome\n");
    std::fs::write(data.join("drivers.csv"), &text).expect("write");
    let out = Command::new(testkit::dag_bin())
        .current_dir(lake.root())
        .args(["run", "silver_drivers"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let expect = format!(
        "drivers.csv:{}: key (driver_id) = (D0002) repeats line 3",
        lines + 1
    );
    assert!(stdout.contains(&expect), "{stdout}\nwanted: {expect}");
    assert_eq!(
        catalog()
            .open_input("silver_drivers", &s)
            .await
            .expect("open")
            .version(),
        2
    );
}
