//! The warehouse load against a real PostgreSQL (a database per test):
//! gold tables from simulated bronze (`dag run`), loaded by `dag run` /
//! `dag load`, compared cell for cell with gold.
//!
//! What is proven: a load makes every warehouse table equal its gold table;
//! loading again changes no row version; a late event updates exactly the
//! affected aggregate rows; a load killed anywhere leaves the old or the new
//! state, never a mix, and the next load converges; a table that no longer
//! matches its model stops the load before any row is written; an
//! unreachable server is retried, then reported; a closed gate loads
//! nothing; an edited applied migration is an error.

use crate::fixtures::ok;
use crate::models::{Lake, Message, catalog, changed_keys, event, simulate};
use chrono::{DateTime, TimeDelta, Utc};
use jobs::decl::{ColumnType, Model};
use polars::prelude::*;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use testkit::TestDb;

const WAREHOUSE: [&str; 6] = [
    "fact_telemetry",
    "fact_fines",
    "agg_driver_daily",
    "agg_alerts_15min",
    "dim_driver",
    "dim_vehicle",
];

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t)
        .expect("time")
        .with_timezone(&Utc)
}

/// `dag ARGS` in the lake's folder, loading into `db`.
fn dag(lake: &Lake, db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(testkit::dag_bin())
        .current_dir(lake.root())
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("DAG_WAREHOUSE__ENABLED", "true")
        .env("DAG_WAREHOUSE__RETRY_TIMEOUT", "20s")
        .envs(env.iter().copied())
        .output()
        .expect("dag")
}

fn model(name: &str) -> Model {
    catalog().model(name).expect("model").clone()
}

/// Every row of a warehouse table as one string, sorted (cells typed as
/// the model says: floats compared exactly, timestamps to the microsecond).
async fn pg_rows(pool: &PgPool, name: &str) -> Vec<String> {
    let m = model(name);
    let select: Vec<String> = m
        .columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Int => format!("{}::bigint", c.name),
            ColumnType::Decimal { .. } | ColumnType::Date => format!("{}::text", c.name),
            ColumnType::Timestamp => format!(
                "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
                c.name
            ),
            _ => c.name.clone(),
        })
        .collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM gold.{name}",
        select.join(", ")
    )))
    .fetch_all(pool)
    .await
    .expect("select");
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            m.columns
                .iter()
                .enumerate()
                .map(|(i, c)| match c.ty {
                    ColumnType::Int | ColumnType::BigInt => {
                        format!("{:?}", r.get::<Option<i64>, _>(i))
                    }
                    ColumnType::Double => format!("{:?}", r.get::<Option<f64>, _>(i)),
                    ColumnType::Bool => format!("{:?}", r.get::<Option<bool>, _>(i)),
                    _ => format!("{:?}", r.get::<Option<String>, _>(i)),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    out.sort();
    out
}

/// The gold table's rows in the same form as [`pg_rows`].
async fn gold_rows(lake: &Lake, name: &str) -> Vec<String> {
    let m = model(name);
    let df = lake.table(name).await;
    let exprs: Vec<Expr> = m
        .columns
        .iter()
        .map(|c| {
            let e = col(c.name.as_str());
            match c.ty {
                ColumnType::Int | ColumnType::BigInt => e.cast(DataType::Int64),
                ColumnType::Decimal { .. } | ColumnType::Date => e.cast(DataType::String),
                ColumnType::Timestamp => e.dt().strftime("%Y-%m-%dT%H:%M:%S%.6f"),
                _ => e,
            }
        })
        .collect();
    let df = df.lazy().select(exprs).collect().expect("select");
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let cells: Vec<String> = m
            .columns
            .iter()
            .map(|c| {
                let s = df.column(&c.name).expect("column");
                match c.ty {
                    ColumnType::Int | ColumnType::BigInt => {
                        format!("{:?}", s.i64().expect("i64").get(i))
                    }
                    ColumnType::Double => format!("{:?}", s.f64().expect("f64").get(i)),
                    ColumnType::Bool => format!("{:?}", s.bool().expect("bool").get(i)),
                    _ => format!("{:?}", s.str().expect("str").get(i).map(str::to_string)),
                }
            })
            .collect();
        out.push(cells.join("|"));
    }
    out.sort();
    out
}

async fn assert_equals_gold(lake: &Lake, pool: &PgPool) {
    for name in WAREHOUSE {
        let (pg, gold) = (pg_rows(pool, name).await, gold_rows(lake, name).await);
        assert_eq!(pg.len(), gold.len(), "{name}: row counts differ");
        assert!(pg == gold, "gold.{name} differs from its gold table");
    }
}

/// Row versions (xmin) by key text, per table.
async fn versions(pool: &PgPool, name: &str) -> BTreeMap<String, String> {
    let key = model(name).unique_key.join(" || '|' || ");
    sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(format!(
        "SELECT ({key})::text, xmin::text FROM gold.{name}"
    )))
    .fetch_all(pool)
    .await
    .expect("xmin")
    .into_iter()
    .collect()
}

async fn loaded_versions(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT model, delta_version FROM dag.loaded_versions")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect()
}

async fn simulated_lake(events: u64) -> Lake {
    let mut lake = Lake::new();
    let mut counts = BTreeMap::new();
    let made = simulate(7, events, "2026-11-18T06:00:00Z", &mut counts);
    let records: Vec<Message> = made.into_iter().map(|(_, m)| m).collect();
    lake.add(&records, at("2026-11-22T00:00:00Z")).await;
    lake
}

#[tokio::test(flavor = "multi_thread")]
async fn loads_equal_gold_a_second_load_changes_nothing_and_a_late_event_moves_only_its_rows() {
    let db = TestDb::create().await.expect("db");
    let mut lake = simulated_lake(1500).await;
    let out = ok(dag(&lake, &db, &["run"], &[]));
    assert!(
        out.contains("migration applied: V1__load_state")
            && out.contains("table gold.fact_telemetry: table created"),
        "{out}"
    );
    assert!(out.contains("(initial)"), "{out}");
    assert_equals_gold(&lake, &db.pool).await;
    let gold_versions: BTreeMap<String, i64> = {
        let mut v = BTreeMap::new();
        for name in WAREHOUSE {
            v.insert(name.to_string(), lake_version(&lake, name).await);
        }
        v
    };
    assert_eq!(loaded_versions(&db.pool).await, gold_versions);

    // Again: nothing to do, no row gets a new version.
    let mut before = BTreeMap::new();
    for name in WAREHOUSE {
        before.insert(name, versions(&db.pool, name).await);
    }
    let out = ok(dag(&lake, &db, &["load"], &[]));
    for name in WAREHOUSE {
        assert!(
            out.contains(&format!("load {name:<16}  up to date")),
            "{out}"
        );
        assert_eq!(versions(&db.pool, name).await, before[name], "{name}");
    }

    // A late event: the affected aggregate rows, and only they, change in
    // PostgreSQL (row versions), and every table still equals gold.
    let gold_before: Vec<DataFrame> =
        futures::future::join_all(["agg_driver_daily", "agg_alerts_15min"].map(|t| lake.table(t)))
            .await;
    let late: Vec<Message> = vec![event(
        "late-1",
        "V0001",
        "D0001",
        "2026-11-18T07:03:00Z",
        150.0,
        6500,
        5,
    )];
    lake.add(&late, at("2026-11-22T01:00:00Z")).await;
    let out = ok(dag(&lake, &db, &["run"], &[]));
    assert!(out.contains("(changes)"), "{out}");
    assert_equals_gold(&lake, &db.pool).await;
    let gold_after: Vec<DataFrame> =
        futures::future::join_all(["agg_driver_daily", "agg_alerts_15min"].map(|t| lake.table(t)))
            .await;
    for (i, (name, key)) in [
        ("agg_driver_daily", vec!["driver_id", "event_date"]),
        ("agg_alerts_15min", vec!["window_start"]),
    ]
    .iter()
    .enumerate()
    {
        let mut changed = changed_keys(&gold_after[i], &gold_before[i], key);
        changed.extend(changed_keys(&gold_before[i], &gold_after[i], key));
        changed.sort();
        changed.dedup();
        assert!(
            !changed.is_empty(),
            "{name}: the late event changed nothing"
        );
        let now = versions(&db.pool, name).await;
        let moved = now
            .iter()
            .filter(|(k, v)| before[name].get(*k) != Some(v))
            .count();
        assert_eq!(
            moved,
            changed.len(),
            "{name}: PostgreSQL rows with a new version vs gold rows changed {changed:?}"
        );
    }
    let fact = versions(&db.pool, "fact_telemetry").await;
    let moved: Vec<&String> = fact
        .iter()
        .filter(|(k, v)| before["fact_telemetry"].get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(moved, ["late-1"]);
    db.drop_db().await.expect("drop");
}

async fn lake_version(lake: &Lake, name: &str) -> i64 {
    catalog()
        .open_input(name, &lake.settings())
        .await
        .expect("open")
        .version()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_killed_anywhere_leaves_the_old_or_the_new_state_and_then_converges() {
    let db = TestDb::create().await.expect("db");
    let mut lake = simulated_lake(100_000).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    let empty: BTreeMap<String, Vec<String>> = WAREHOUSE
        .iter()
        .map(|n| (n.to_string(), Vec::new()))
        .collect();
    let mut old = empty;
    let mut kills = 0;
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..3 {
        if round > 0 {
            // New data for the next round: changes to upsert and delete.
            let mut counts = BTreeMap::new();
            let start = format!("2026-11-{:02}T06:00:00Z", 18 + round);
            let made = simulate(100 + round as u64, 20_000, &start, &mut counts);
            let records: Vec<Message> = made.into_iter().map(|(_, m)| m).collect();
            lake.add(
                &records,
                at("2026-11-23T00:00:00Z") + TimeDelta::hours(round),
            )
            .await;
            ok(dag(&lake, &db, &["run", "--no-load"], &[]));
        }
        let mut new = BTreeMap::new();
        for name in WAREHOUSE {
            new.insert(name.to_string(), gold_rows(&lake, name).await);
        }
        for _ in 0..8 {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            // Process start, connection and migrations take ~20 ms; the
            // COPYs and upserts of a round a few hundred.
            let wait = std::time::Duration::from_millis(20 + rng_state % 300);
            let mut child = Command::new(testkit::dag_bin())
                .current_dir(lake.root())
                .arg("load")
                .env("DATABASE_URL", &db.url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
            std::thread::sleep(wait);
            let finished = child.try_wait().expect("wait");
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            if let Some(status) = finished {
                assert!(
                    status.success(),
                    "dag load failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            kills += usize::from(finished.is_none());
            // Whole old state or whole new state, in every table at once.
            let mut now = BTreeMap::new();
            for name in WAREHOUSE {
                let rows = match sqlx::query_scalar::<_, bool>(
                    "SELECT to_regclass('gold.fact_telemetry') IS NOT NULL",
                )
                .fetch_one(&db.pool)
                .await
                .expect("regclass")
                {
                    true => pg_rows(&db.pool, name).await,
                    false => Vec::new(),
                };
                now.insert(name.to_string(), rows);
            }
            assert!(
                now == old || now == new,
                "round {round}: the warehouse holds a mix of the old and the new state"
            );
            if now == new {
                break;
            }
        }
        ok(dag(&lake, &db, &["load"], &[]));
        assert_equals_gold(&lake, &db.pool).await;
        old = new;
    }
    assert!(kills >= 3, "only {kills} load(s) were killed mid-way");
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_no_longer_matches_its_model_stops_the_load_before_any_row() {
    let db = TestDb::create().await.expect("db");
    let lake = simulated_lake(500).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    ok(dag(&lake, &db, &["migrate"], &[]));
    sqlx::raw_sql(
        "ALTER TABLE gold.fact_fines ADD COLUMN camera text;
         ALTER TABLE gold.fact_telemetry ALTER COLUMN rpm TYPE bigint;",
    )
    .execute(&db.pool)
    .await
    .expect("alter");
    let out = dag(&lake, &db, &["load"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gold.fact_fines (model fact_fines, on_schema_change: fail): the table has column camera (text), the model does not; to fix: ALTER TABLE \"gold\".\"fact_fines\" DROP COLUMN \"camera\""),
        "{err}"
    );
    assert!(
        err.contains("column rpm changes type bigint -> integer"),
        "{err}"
    );
    assert!(loaded_versions(&db.pool).await.is_empty());
    for name in WAREHOUSE {
        assert!(
            pg_rows(&db.pool, name).await.is_empty(),
            "{name} was written"
        );
    }
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_warehouse_is_retried_then_reported() {
    let db = TestDb::create().await.expect("db");
    let lake = simulated_lake(200).await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("postgres://nobody:secret@127.0.0.1:{port}/warehouse");
    let started = std::time::Instant::now();
    let out = dag(
        &lake,
        &db,
        &["run"],
        &[
            ("DATABASE_URL", url.as_str()),
            ("DAG_WAREHOUSE__RETRY_TIMEOUT", "3s"),
        ],
    );
    assert!(!out.status.success());
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "PostgreSQL at 127.0.0.1:{port}/warehouse is unreachable"
        )),
        "{err}"
    );
    assert!(err.contains("attempt"), "{err}");
    assert!(!err.contains("secret"), "the password leaked: {err}");
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_killed_mid_load_are_retried_and_the_load_completes() {
    let db = TestDb::create().await.expect("db");
    let lake = simulated_lake(40_000).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    // Migrated first: only the load's own statements match COPY below
    // (the migrations' comments mention it too).
    ok(dag(&lake, &db, &["migrate"], &[]));
    let child = Command::new(testkit::dag_bin())
        .current_dir(lake.root())
        .args(["-v", "load"])
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Terminate the loader's backends while it works (as a restart would).
    let mut terminated = 0;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query ILIKE '%COPY%') t",
        )
        .fetch_one(&db.pool)
        .await
        .expect("terminate");
        terminated += n;
        if terminated >= 2 {
            break;
        }
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    if terminated > 0 {
        assert!(
            err.contains("loading the warehouse"),
            "no retry logged: {err}"
        );
    }
    assert_equals_gold(&lake, &db.pool).await;
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_gate_loads_nothing_and_an_open_one_loads() {
    use jobs::warehouse::load::{Gate, load};
    use jobs::warehouse::{WarehouseSettings, connect, migrate};
    let db = TestDb::create().await.expect("db");
    let lake = simulated_lake(300).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    let ws = WarehouseSettings {
        url: db.url.clone(),
        retry_timeout: std::time::Duration::from_secs(10),
    };
    let pool = connect::connect(&ws).await.expect("connect");
    let cat = catalog();
    let models: Vec<Model> = WAREHOUSE.iter().map(|n| model(n)).collect();
    let refs: Vec<&Model> = models.iter().collect();
    migrate::migrate_pipeline(&pool, &refs, &migrate::PipelineMigrations::default())
        .await
        .expect("migrate");
    let closed = load(
        &ws,
        &pool,
        &refs,
        &cat,
        &lake.settings(),
        Gate::Closed("unique(fact_telemetry.event_id) failed".into()),
    )
    .await
    .expect("load");
    assert_eq!(
        closed.blocked.as_deref(),
        Some("unique(fact_telemetry.event_id) failed")
    );
    assert!(loaded_versions(&db.pool).await.is_empty());
    assert!(pg_rows(&db.pool, "fact_telemetry").await.is_empty());
    let open = load(&ws, &pool, &refs, &cat, &lake.settings(), Gate::Open)
        .await
        .expect("load");
    assert_eq!(open.tables.len(), WAREHOUSE.len());
    assert_equals_gold(&lake, &db.pool).await;
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_once_and_an_edited_applied_migration_is_an_error() {
    let db = TestDb::create().await.expect("db");
    let lake = Lake::new();
    let first = ok(dag(&lake, &db, &["migrate"], &[]));
    for want in [
        "migration applied: V1__load_state",
        "migration applied: V2__scheduler",
        "schema gold created",
        "table gold.dim_driver: table created",
    ] {
        assert!(first.contains(want), "{want} not in {first}");
    }
    let again = ok(dag(&lake, &db, &["migrate"], &[]));
    assert!(
        !again.contains("applied") && !again.contains("created"),
        "{again}"
    );
    let tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'gold'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables")
    .into_iter()
    .collect();
    assert_eq!(tables, WAREHOUSE.iter().map(|t| t.to_string()).collect());
    // As if V1 had been edited after it was applied.
    sqlx::query("UPDATE dag.schema_history SET checksum = '1' WHERE version = 1")
        .execute(&db.pool)
        .await
        .expect("tamper");
    let out = dag(&lake, &db, &["migrate"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dag migrations") && err.contains("load_state"),
        "{err}"
    );
    db.drop_db().await.expect("drop");
}

/// Each warehouse model's Delta version in `lake`.
async fn gold_versions(lake: &Lake) -> BTreeMap<String, i64> {
    let mut v = BTreeMap::new();
    for name in WAREHOUSE {
        v.insert(name.to_string(), lake_version(lake, name).await);
    }
    v
}

/// A late telemetry event (`late-1`, for a day already loaded) in bronze.
async fn add_late_event(lake: &mut Lake) {
    let late: Vec<Message> = vec![event(
        "late-1",
        "V0001",
        "D0001",
        "2026-11-18T07:03:00Z",
        150.0,
        6500,
        5,
    )];
    lake.add(&late, at("2026-11-22T01:00:00Z")).await;
}

/// A load of the warehouse models behind a gate the data tests opened on
/// `versions`, into `db` (migrated first).
async fn load_audited(
    db: &TestDb,
    lake: &Lake,
    versions: &BTreeMap<String, i64>,
) -> jobs::warehouse::load::LoadReport {
    use jobs::warehouse::load::{Gate, load};
    use jobs::warehouse::{WarehouseSettings, connect, migrate};
    let ws = WarehouseSettings {
        url: db.url.clone(),
        retry_timeout: std::time::Duration::from_secs(10),
    };
    let pool = connect::connect(&ws).await.expect("connect");
    let models: Vec<Model> = WAREHOUSE.iter().map(|n| model(n)).collect();
    let refs: Vec<&Model> = models.iter().collect();
    migrate::migrate_pipeline(&pool, &refs, &migrate::PipelineMigrations::default())
        .await
        .expect("migrate");
    let gate = Gate::Audited(versions.clone());
    let report = load(&ws, &pool, &refs, &catalog(), &lake.settings(), gate)
        .await
        .expect("load");
    pool.close().await;
    report
}

/// Write-audit-publish with concurrent runs: a load publishes the versions
/// its tests judged, not a newer one another run committed meanwhile, and
/// a load of an older audited version after a newer one was loaded leaves
/// the warehouse at the newer one (it never goes back).
#[tokio::test(flavor = "multi_thread")]
async fn a_load_publishes_the_audited_versions_and_never_goes_back() {
    let db = TestDb::create().await.expect("db");
    let mut lake = simulated_lake(300).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    let old = gold_versions(&lake).await;
    // Another run commits a late event (its tests are not ours).
    add_late_event(&mut lake).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    let new = gold_versions(&lake).await;
    assert!(new["fact_telemetry"] > old["fact_telemetry"]);
    let has_late = async || {
        pg_rows(&db.pool, "fact_telemetry")
            .await
            .iter()
            .any(|r| r.contains("late-1"))
    };
    // The audited (older) versions are what is published.
    load_audited(&db, &lake, &old).await;
    // The fact table at its audited version; a table whose rows the
    // newer run did not change may be loaded at its newer version (the
    // same rows: no time travel needed).
    let loaded = loaded_versions(&db.pool).await;
    assert_eq!(
        loaded["fact_telemetry"], old["fact_telemetry"],
        "{loaded:?}"
    );
    for (name, v) in &loaded {
        assert!(*v >= old[name] && *v <= new[name], "{name}: {loaded:?}");
    }
    assert!(!has_late().await, "an untested version was published");
    // The newer audit publishes the newer versions...
    load_audited(&db, &lake, &new).await;
    assert_eq!(loaded_versions(&db.pool).await, new);
    assert!(has_late().await);
    assert_equals_gold(&lake, &db.pool).await;
    // ...and a late load of the older audit (it lost the race for the
    // lock) changes nothing.
    let report = load_audited(&db, &lake, &old).await;
    assert!(report.tables.is_empty(), "{report:?}");
    assert_eq!(loaded_versions(&db.pool).await, new);
    assert_equals_gold(&lake, &db.pool).await;
    db.drop_db().await.expect("drop");
}

/// A gold table compacted after its tests ran (a rewrite: same rows, other
/// files) is loaded at the compacted version, which holds the audited
/// rows: no time travel back to the audited one (a full replay of the
/// table's log, 0.45 s of a continuous run's load). A data change after
/// the audited version still sends the load back (the test above).
#[tokio::test(flavor = "multi_thread")]
async fn a_load_takes_a_rewrite_after_the_audited_version_as_the_audited_rows() {
    let db = TestDb::create().await.expect("db");
    let mut lake = simulated_lake(300).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    // A second commit, so that the fact table has two small files to
    // compact.
    add_late_event(&mut lake).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    let audited = gold_versions(&lake).await;
    let mut fact = catalog()
        .open_input("fact_telemetry", &lake.settings())
        .await
        .expect("open");
    assert!(fact.compact_small_files(2).await.expect("compact") >= 2);
    let compacted = fact.version();
    assert_eq!(compacted, audited["fact_telemetry"] + 1);
    load_audited(&db, &lake, &audited).await;
    let mut expected = audited;
    expected.insert("fact_telemetry".to_string(), compacted);
    assert_eq!(loaded_versions(&db.pool).await, expected);
    assert_equals_gold(&lake, &db.pool).await;
    db.drop_db().await.expect("drop");
}

/// A commit by another tool that changes only a gold table's metadata
/// (here its log retention; a schema change is the same action) after the tests
/// judged it is not "the same rows": the load goes back to the audited
/// version, as it does for a data change.
#[tokio::test(flavor = "multi_thread")]
async fn a_load_goes_back_over_a_metadata_change_after_the_audited_version() {
    let db = TestDb::create().await.expect("db");
    let lake = simulated_lake(300).await;
    ok(dag(&lake, &db, &["run", "--no-load"], &[]));
    let audited = gold_versions(&lake).await;
    let fact = catalog()
        .open_input("fact_telemetry", &lake.settings())
        .await
        .expect("open");
    let props = std::collections::HashMap::from([(
        "delta.logRetentionDuration".to_string(),
        "interval 31 days".to_string(),
    )]);
    let retagged = fact
        .delta()
        .clone()
        .set_tbl_properties()
        .with_properties(props)
        .await
        .expect("set a property");
    assert_eq!(
        retagged.version(),
        Some(audited["fact_telemetry"] as u64 + 1),
        "one metadata commit after the audited version"
    );
    load_audited(&db, &lake, &audited).await;
    assert_eq!(loaded_versions(&db.pool).await, audited);
    assert_equals_gold(&lake, &db.pool).await;
    db.drop_db().await.expect("drop");
}
