//! File sources end to end, with the built binary on a pipeline written in
//! a temporary folder: CSV, JSON lines and Parquet files arriving in
//! folders (local, and on the S3 server) land in bronze once each, in
//! arrival order; an unreadable file becomes one quarantined row with its
//! path and reason; `clean` reads CSV rows (`format: csv`) and nested JSON
//! members (`path: location.lat`); ingesters killed -9 while files arrive
//! lose and duplicate nothing; the gold model over them loads into
//! PostgreSQL.

use crate::fixtures::{ok, strings, text};
use dag::pipeline::Pipeline;
use jobs::model::{Catalog, RunSettings};
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use testkit::{TestDb, TestS3};

const ORDERS_SOURCE: &str = "kind: file_source
description: Order exports, one CSV per batch.
path: landing/orders
format: csv
";

const EVENTS_SOURCE: &str = "kind: file_source
description: App events as JSON lines.
path: landing/events
format: json
";

const PAYMENTS_SOURCE: &str = "kind: file_source
description: Payments as Parquet.
path: landing/payments
format: parquet
";

const ORDERS: &str = "kind: clean
format: csv
input: raw_orders
quarantine: orders_quarantine
fields:
  - {name: order_id, type: string, required: true}
  - {name: amount, type: number, required: true, range: \"(0, 10000]\", max_decimals: 2, as: \"decimal(10,2)\"}
  - {name: placed_at, type: timestamp, required: true}
  - {name: note, type: string}
dedupe:
  key: [order_id]
columns:
  - {name: order_id, type: string, nullable: false, tests: [not_null, unique]}
  - {name: amount, type: \"decimal(10,2)\", nullable: false}
  - {name: placed_at, type: timestamp, nullable: false}
  - {name: note, type: string}
";

const EVENTS: &str = "kind: clean
input: raw_events
quarantine: events_quarantine
fields:
  - {name: event_id, type: string, required: true}
  - {name: lat, path: location.lat, type: number, required: true, range: \"[-90, 90]\"}
  - {name: lon, path: location.lon, type: number, required: true, range: \"[-180, 180]\"}
dedupe:
  key: [event_id]
columns:
  - {name: event_id, type: string, nullable: false}
  - {name: lat, type: double, nullable: false}
  - {name: lon, type: double, nullable: false}
";

const PAYMENTS: &str = "kind: clean
input: raw_payments
quarantine: payments_quarantine
fields:
  - {name: payment_id, type: string, required: true}
  - {name: cents, type: integer, required: true, as: bigint}
dedupe:
  key: [payment_id]
columns:
  - {name: payment_id, type: string, nullable: false}
  - {name: cents, type: bigint, nullable: false}
";

const DAILY_YML: &str = "kind: sql
description: Revenue per day.
unique_key: [day]
warehouse: true
columns:
  - {name: day, type: date, nullable: false, tests: [unique]}
  - {name: orders, type: bigint, nullable: false}
  - {name: revenue, type: \"decimal(12,2)\", nullable: false}
";

const DAILY_SQL: &str = "SELECT CAST(placed_at AS DATE) AS day, COUNT(*) AS orders, \
SUM(amount) AS revenue FROM {{ ref('orders') }} GROUP BY CAST(placed_at AS DATE)";

/// A pipeline `shop` with three file sources, in a temporary folder.
struct Shop {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Shop {
    /// `landing`: where the sources' folders are (`None`: the project's
    /// own `landing/`); `lake`: the lake URI (`None`: `./lake`).
    fn new(landing: Option<&str>, lake: Option<(&str, &str)>) -> Shop {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Shop { dir, env: vec![] };
        let at = |yml: &str| match landing {
            Some(prefix) => yml.replace("path: landing/", &format!("path: {prefix}/")),
            None => yml.to_string(),
        };
        s.write("models/shop/bronze/raw_orders.yml", &at(ORDERS_SOURCE));
        s.write("models/shop/bronze/raw_events.yml", &at(EVENTS_SOURCE));
        s.write("models/shop/bronze/raw_payments.yml", &at(PAYMENTS_SOURCE));
        s.write("models/shop/silver/orders.yml", ORDERS);
        s.write("models/shop/silver/events.yml", EVENTS);
        s.write("models/shop/silver/payments.yml", PAYMENTS);
        s.write("models/shop/gold/daily_revenue.yml", DAILY_YML);
        s.write("models/shop/gold/daily_revenue.sql", DAILY_SQL);
        // Files are renamed into place here (whole at once): no settling.
        let mut toml = "pipeline = \"shop\"\n[ingest]\nclock = \"2026-12-01T00:00:00Z\"\nbatch_interval = \"200ms\"\nfile_settle = \"0s\"\n".to_string();
        if let Some((uri, endpoint)) = lake {
            toml += &format!("[lake]\nuri = \"{uri}\"\n[s3]\nendpoint = \"{endpoint}\"\n");
        }
        s.write("dag.toml", &toml);
        s
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        self.write_bytes(rel, text.as_bytes());
    }

    fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        // Written aside and renamed, as a careful producer does: the
        // ingester never sees half a file (names starting with `.` are
        // ignored).
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().expect("name").to_string_lossy()
        ));
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(self.root()).args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn dag(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("dag")
    }

    fn settings(&self) -> RunSettings {
        RunSettings::new(
            format!("file://{}/lake", self.root().display()),
            HashMap::new(),
            self.root().join("data"),
        )
    }

    async fn table(&self, name: &str) -> DataFrame {
        let p = Pipeline::load(&self.root().join("models/shop")).expect("pipeline");
        let catalog = Catalog::new(p.graph.node_weights().cloned());
        catalog
            .open_input(name, &self.settings())
            .await
            .expect("open")
            .read_all(None)
            .await
            .expect("read")
    }
}

/// `(topic, offset)` of every bronze row, and per topic its row count.
fn per_file(bronze: &DataFrame) -> BTreeMap<String, Vec<i64>> {
    let topics = bronze
        .column("topic")
        .expect("topic")
        .str()
        .expect("str")
        .clone();
    let offsets = bronze
        .column("offset")
        .expect("offset")
        .i64()
        .expect("i64")
        .clone();
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (t, o) in topics.iter().zip(offsets.iter()) {
        out.entry(t.expect("topic").to_string())
            .or_default()
            .push(o.expect("offset"));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// A small Parquet file of payments.
fn payments_parquet(ids: &[&str], cents: &[i64]) -> Vec<u8> {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    let batch = RecordBatch::try_from_iter([
        (
            "payment_id",
            std::sync::Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
        ),
        (
            "cents",
            std::sync::Arc::new(Int64Array::from(cents.to_vec())) as ArrayRef,
        ),
    ])
    .expect("batch");
    let mut out = Vec::new();
    let mut w = deltalake::parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None)
        .expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

const ORDERS_1: &str = "order_id,amount,placed_at,note\n\
o1,10.50,2026-11-30T10:00:00Z,first\n\
o2,abc,2026-11-30T11:00:00Z,bad amount\n\
,5.00,2026-11-30T12:00:00Z,no id\n\
o3,7.25,2026-11-30T13:00:00Z,\"a note, with a comma\nand a line break\"\n\
o4,1.00\n";

const ORDERS_2: &str = "order_id,amount,placed_at,note\n\
o5,2.00,2026-12-01T09:00:00Z,\n\
o1,99.00,2026-12-01T10:00:00Z,a duplicate of o1\n";

const EVENTS_1: &str = "{\"event_id\":\"e1\",\"location\":{\"lat\":52.5,\"lon\":13.4}}\n\
{\"event_id\":\"e2\",\"location\":{\"lat\":91,\"lon\":0}}\n\
\n\
{\"event_id\":\"e3\",\"location\":{\"lon\":1}}\n\
{\"event_id\":\"e4\",\"location\":\"nowhere\"}\n\
not json\n";

#[tokio::test(flavor = "multi_thread")]
async fn csv_json_and_parquet_files_land_once_and_clean_with_reasons() {
    let shop = Shop::new(None, None);
    shop.write("landing/orders/2026-11-30.csv", ORDERS_1);
    shop.write("landing/events/a.jsonl", EVENTS_1);
    shop.write_bytes(
        "landing/payments/p1.parquet",
        &payments_parquet(&["p1", "p2"], &[1250, 99]),
    );
    shop.write("landing/payments/broken.parquet", "PAR1 not really parquet");
    // Ignored: not the format's extension, hidden, Spark's markers.
    shop.write("landing/orders/README.md", "# exports\n");
    shop.write("landing/orders/_SUCCESS", "");
    shop.write("landing/orders/.partial.csv", "order_id\nz\n");

    ok(shop.dag(&["validate"]));
    let out = ok(shop.dag(&["ingest", "--until-caught-up"]));
    assert!(
        out.contains("raw_orders: 5 records of 1 new file(s)"),
        "{out}"
    );
    assert!(
        out.contains("raw_payments: 3 records of 2 new file(s) (1 unreadable"),
        "{out}"
    );

    let orders = per_file(&shop.table("raw_orders").await);
    // Offsets are the lines each record starts on (o3's note spans two).
    assert_eq!(
        orders,
        BTreeMap::from([("2026-11-30.csv".to_string(), vec![2, 3, 4, 5, 7])]),
        "every data row of the CSV once, nothing from ignored files"
    );
    let payments = per_file(&shop.table("raw_payments").await);
    assert_eq!(payments["broken.parquet"], vec![-1]);
    assert_eq!(payments["p1.parquet"], vec![0, 1]);

    // Nothing new: no commit, same rows.
    let before = shop.table("raw_orders").await.height();
    let out = ok(shop.dag(&["ingest", "--until-caught-up"]));
    assert!(
        out.contains("raw_orders: 0 records of 0 new file(s)"),
        "{out}"
    );
    assert_eq!(shop.table("raw_orders").await.height(), before);

    let out = text(&shop.dag(&["run", "--no-load"]));
    let silver = shop.table("orders").await;
    assert_eq!(strings(&silver, "order_id"), ["o1", "o3"], "{out}");
    let o3 = silver
        .clone()
        .lazy()
        .filter(col("order_id").eq(lit("o3")))
        .collect()
        .expect("o3");
    assert_eq!(
        strings(&o3, "note"),
        ["a note, with a comma\nand a line break"]
    );
    assert_eq!(strings(&o3, "amount"), ["7.25"]);
    let q = shop.table("orders_quarantine").await;
    assert_eq!(
        strings(&q, "reason"),
        ["malformed_csv", "missing:order_id", "type:amount"],
        "{out}"
    );
    let events = shop.table("events").await;
    assert_eq!(strings(&events, "event_id"), ["e1"]);
    assert_eq!(strings(&events, "lat"), ["52.5"]);
    let q = shop.table("events_quarantine").await;
    assert_eq!(
        strings(&q, "reason"),
        ["malformed_json", "missing:lat", "range:lat", "type:lat"]
    );
    let payments = shop.table("payments").await;
    assert_eq!(strings(&payments, "payment_id"), ["p1", "p2"]);
    let q = shop.table("payments_quarantine").await;
    assert_eq!(strings(&q, "reason"), ["unreadable_file"]);
    assert_eq!(strings(&q, "topic"), ["broken.parquet"]);
    let why = strings(&q, "value");
    assert!(why[0].contains("Parquet"), "the reason is kept: {why:?}");

    // A later file: only its rows are new; its duplicate of o1 is counted,
    // not kept.
    shop.write("landing/orders/2026-12-01.csv", ORDERS_2);
    let out = ok(shop.dag(&["ingest", "raw_orders", "--until-caught-up"]));
    assert!(
        out.contains("raw_orders: 2 records of 1 new file(s)"),
        "{out}"
    );
    ok(shop.dag(&["run", "--no-load"]));
    let silver = shop.table("orders").await;
    assert_eq!(strings(&silver, "order_id"), ["o1", "o3", "o5"]);
    let o1 = silver
        .lazy()
        .filter(col("order_id").eq(lit("o1")))
        .collect()
        .expect("o1");
    assert_eq!(strings(&o1, "amount"), ["10.50"], "the first copy wins");
}

/// `dag ingest` killed -9 at random moments while files keep arriving:
/// afterwards every file's records are in bronze exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn ingesters_killed_while_files_arrive_lose_and_duplicate_nothing() {
    use rand::{Rng, SeedableRng};
    let shop = Shop::new(None, None);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    let mut kills = 0;
    let mut n = 0;
    for round in 0..12 {
        let mut child = shop
            .command(&["ingest", "raw_orders"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        for _ in 0..rng.random_range(1..6) {
            let rows = rng.random_range(1..300);
            let mut csv = String::from("order_id,amount,placed_at,note\n");
            for r in 0..rows {
                csv += &format!("o{n}-{r},1.00,2026-11-30T10:00:00Z,\n");
            }
            let name = format!("batch-{n:04}.csv");
            shop.write(&format!("landing/orders/{name}"), &csv);
            expected.insert(name, rows);
            n += 1;
            std::thread::sleep(std::time::Duration::from_millis(rng.random_range(0..150)));
        }
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(0..400)));
        if child.try_wait().expect("wait").is_none() {
            kills += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = round;
    }
    assert!(kills >= 10, "only {kills} ingesters were killed");
    ok(shop.dag(&["ingest", "raw_orders", "--until-caught-up"]));
    let got = per_file(&shop.table("raw_orders").await);
    let counts: BTreeMap<String, usize> = got.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    assert_eq!(counts, expected, "every file once, each row once");
    for (file, offsets) in &got {
        let mut distinct = offsets.clone();
        distinct.dedup();
        assert_eq!(&distinct, offsets, "{file}: a row twice");
    }
}

/// Files arriving under a prefix of the S3 server, into a lake on S3; the
/// gold model over them is loaded into PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn files_on_s3_flow_into_the_warehouse() {
    let s3 = TestS3::create().expect("s3");
    let db = TestDb::create().await.expect("db");
    let landing = format!("{}/landing", s3.url());
    let lake = format!("{}/lake", s3.url());
    let mut shop = Shop::new(Some(&landing), Some((&lake, &s3.endpoint)));
    shop.env = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("AWS_ACCESS_KEY_ID".into(), testkit::S3_ACCESS_KEY.into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            testkit::S3_SECRET_KEY.into(),
        ),
        ("DAG_WAREHOUSE__ENABLED".into(), "true".into()),
    ];
    let put = |rel: &str, bytes: Vec<u8>| {
        let store = s3.store.clone();
        let path = s3.path(rel);
        async move {
            object_store::ObjectStoreExt::put(store.as_ref(), &path, bytes.into())
                .await
                .expect("put");
        }
    };
    put(
        "landing/orders/2026-11-30.csv",
        ORDERS_1.as_bytes().to_vec(),
    )
    .await;
    put(
        "landing/orders/2026-12-01.csv",
        ORDERS_2.as_bytes().to_vec(),
    )
    .await;
    let out = ok(shop.dag(&["ingest", "--until-caught-up"]));
    assert!(
        out.contains("raw_orders: 7 records of 2 new file(s)"),
        "{out}"
    );
    let out = ok(shop.dag(&["run", "+daily_revenue"]));
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pg");
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT day::text, orders, revenue::text FROM gold.daily_revenue ORDER BY day",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        rows,
        vec![
            ("2026-11-30".to_string(), 2, "17.75".to_string()),
            ("2026-12-01".to_string(), 1, "2.00".to_string()),
        ]
    );
    // Again with nothing new: nothing taken twice.
    let out = ok(shop.dag(&["ingest", "--until-caught-up"]));
    assert!(
        out.contains("raw_orders: 0 records of 0 new file(s)"),
        "{out}"
    );
    pool.close().await;
}

/// A cleaning rule fixed after the fact: `dag backfill orders` rebuilds
/// silver (and its quarantine) from bronze and everything downstream, and
/// the lake and the warehouse end equal to a fresh run under the new rule.
#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_after_a_rule_fix_equals_a_fresh_run() {
    let (db_old, db_new) = (
        TestDb::create().await.expect("db"),
        TestDb::create().await.expect("db"),
    );
    let with_db = |mut shop: Shop, db: &TestDb| {
        shop.env = vec![
            ("DATABASE_URL".into(), db.url.clone()),
            ("DAG_WAREHOUSE__ENABLED".into(), "true".into()),
        ];
        shop
    };
    let fixed = ORDERS.replace("(0, 10000]", "(0, 10]");
    // Run under the old rule, file by file, then fix the rule and backfill.
    let old = with_db(Shop::new(None, None), &db_old);
    old.write("landing/orders/2026-11-30.csv", ORDERS_1);
    ok(old.dag(&["run"]));
    old.write("landing/orders/2026-12-01.csv", ORDERS_2);
    ok(old.dag(&["run"]));
    assert_eq!(
        strings(&old.table("orders").await, "order_id"),
        ["o1", "o3", "o5"]
    );
    old.write("models/shop/silver/orders.yml", &fixed);
    let out = ok(old.dag(&["backfill", "orders"]));
    assert!(
        out.contains("backfill: rebuilding 2 model(s) from their inputs: orders, daily_revenue"),
        "{out}"
    );
    // A fresh project under the new rule, both files at once.
    let new = with_db(Shop::new(None, None), &db_new);
    new.write("models/shop/silver/orders.yml", &fixed);
    new.write("landing/orders/2026-11-30.csv", ORDERS_1);
    new.write("landing/orders/2026-12-01.csv", ORDERS_2);
    ok(new.dag(&["run"]));

    for table in ["orders", "daily_revenue"] {
        let (a, b) = (old.table(table).await, new.table(table).await);
        for c in a.get_column_names() {
            assert_eq!(strings(&a, c), strings(&b, c), "{table}.{c}");
        }
    }
    assert_eq!(
        strings(&new.table("orders").await, "order_id"),
        ["o3", "o5"],
        "o1 (10.50, then 99.00) breaks the new range"
    );
    let reasons = |df: &DataFrame| -> Vec<String> {
        let (t, o, r) = (
            strings(df, "topic"),
            strings(df, "offset"),
            strings(df, "reason"),
        );
        let mut v: Vec<String> = t
            .iter()
            .zip(&o)
            .zip(&r)
            .map(|((t, o), r)| format!("{t}:{o}:{r}"))
            .collect();
        v.sort();
        v
    };
    let (qa, qb) = (
        old.table("orders_quarantine").await,
        new.table("orders_quarantine").await,
    );
    assert_eq!(qa.height(), qb.height(), "quarantine rows");
    assert_eq!(strings(&qa, "reason"), strings(&qb, "reason"));
    assert!(
        strings(&qb, "reason")
            .iter()
            .filter(|r| *r == "range:amount")
            .count()
            == 2,
        "{:?}",
        reasons(&qb)
    );
    let warehouse = |url: String| async move {
        let pool = sqlx::PgPool::connect(&url).await.expect("pg");
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT day::text, orders, revenue::text FROM gold.daily_revenue ORDER BY day",
        )
        .fetch_all(&pool)
        .await
        .expect("rows");
        pool.close().await;
        rows
    };
    let (wa, wb) = (
        warehouse(db_old.url.clone()).await,
        warehouse(db_new.url.clone()).await,
    );
    assert_eq!(
        wa, wb,
        "the warehouse after the backfill equals a fresh run's"
    );
    assert_eq!(
        wb,
        vec![
            ("2026-11-30".to_string(), 1, "7.25".to_string()),
            ("2026-12-01".to_string(), 1, "2.00".to_string()),
        ]
    );
}

/// A backfill over a range of dates after a rule fix: only the partitions
/// of those dates are replaced, in silver, its quarantine, the gold model
/// partitioned by the same date and the warehouse; every other date stays
/// as the old rule left it. Run twice, it changes nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_over_a_range_replaces_only_those_dates() {
    let db = TestDb::create().await.expect("db");
    let mut shop = Shop::new(None, None);
    shop.env = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("DAG_WAREHOUSE__ENABLED".into(), "true".into()),
    ];
    let by_day = |rule: &str| {
        ORDERS.replace("(0, 10000]", rule).replace(
            "dedupe:",
            "derive:\n  - {name: day, sql: \"CAST(placed_at AS DATE)\"}\npartition_by: [day]\ndedupe:",
        ) + "  - {name: day, type: date, nullable: false}\n"
    };
    shop.write("models/shop/silver/orders.yml", &by_day("(0, 10]"));
    shop.write(
        "models/shop/gold/daily_revenue.yml",
        &DAILY_YML.replace("warehouse: true", "warehouse: true\npartition_by: [day]"),
    );
    shop.write(
        "models/shop/gold/daily_revenue.sql",
        "SELECT day, COUNT(*) AS orders, SUM(amount) AS revenue FROM {{ ref('orders') }} GROUP BY day",
    );
    shop.write(
        "landing/orders/batch.csv",
        "order_id,amount,placed_at,note\n\
         a1,5.00,2026-11-29T10:00:00Z,\n\
         a2,50.00,2026-11-29T11:00:00Z,\n\
         b1,5.00,2026-11-30T10:00:00Z,\n\
         b2,60.00,2026-11-30T11:00:00Z,\n\
         b3,abc,2026-11-30T12:00:00Z,\n\
         c1,5.00,2026-12-01T10:00:00Z,\n\
         c2,70.00,2026-12-01T11:00:00Z,\n",
    );
    ok(shop.dag(&["run"]));
    assert_eq!(
        strings(&shop.table("orders").await, "order_id"),
        ["a1", "b1", "c1"]
    );
    // The rule is loosened; only 2026-11-30 is backfilled.
    shop.write("models/shop/silver/orders.yml", &by_day("(0, 10000]"));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pg");
    for attempt in 0..2 {
        let out = ok(shop.dag(&[
            "backfill",
            "orders",
            "--from",
            "2026-11-30",
            "--to",
            "2026-11-30",
        ]));
        assert!(
            out.contains("replacing 2026-11-30 to 2026-11-30 in 2 model(s): orders, daily_revenue"),
            "{out}"
        );
        let released = if attempt == 0 { 1 } else { 0 };
        assert!(
            out.contains(&format!(
                "{released} row(s) now pass into the range and left it"
            )),
            "{out}"
        );
        assert!(
            out.contains("out         2  quarantined 1  duplicates 0"),
            "{out}"
        );
        assert_eq!(
            sorted(strings(&shop.table("orders").await, "order_id")),
            ["a1", "b1", "b2", "c1"],
            "only 2026-11-30 is judged by the new rule (attempt {attempt})"
        );
        let q = shop.table("orders_quarantine").await;
        let column = |c: &str| -> Vec<String> {
            q.column(c)
                .expect("column")
                .cast(&DataType::String)
                .expect("text")
                .str()
                .expect("str")
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect()
        };
        let mut quarantined: Vec<String> = column("value")
            .iter()
            .zip(column("reason"))
            .map(|(v, r)| format!("{}:{r}", &v[..2]))
            .collect();
        quarantined.sort();
        assert_eq!(
            quarantined,
            ["a2:range:amount", "b3:type:amount", "c2:range:amount"],
            "rows of other dates stay quarantined (attempt {attempt})"
        );
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT day::text, orders, revenue::text FROM gold.daily_revenue ORDER BY day",
        )
        .fetch_all(&pool)
        .await
        .expect("rows");
        assert_eq!(
            rows,
            vec![
                ("2026-11-29".to_string(), 1, "5.00".to_string()),
                ("2026-11-30".to_string(), 2, "65.00".to_string()),
                ("2026-12-01".to_string(), 1, "5.00".to_string()),
            ],
            "attempt {attempt}"
        );
    }
    // Bad ranges are refused before anything runs.
    let out = shop.dag(&["backfill", "--from", "2026-12-01", "--to", "2026-11-30"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--from 2026-12-01 is after --to 2026-11-30"),
        "{}",
        text(&out)
    );
    let out = shop.dag(&["backfill", "--from", "2026-12-01"]);
    assert!(!out.status.success());
    pool.close().await;
}

/// A file still being written in place (as `cp` or SFTP do) is not taken
/// half-written: the ingester waits until it has been left alone for
/// `ingest.file_settle`, then takes it whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_written_in_place_is_taken_whole() {
    let mut shop = Shop::new(None, None);
    shop.env = vec![("DAG_INGEST__FILE_SETTLE".into(), "1s".into())];
    let path = shop.root().join("landing/orders/slow.csv");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let (head, tail) = ORDERS_2.split_at(ORDERS_2.find("\no1,").expect("row") + 1);
    std::fs::write(&path, head).expect("write");
    let child = shop
        .command(&["ingest", "raw_orders", "--until-caught-up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(600));
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open")
        .write_all(tail.as_bytes())
        .expect("append");
    let out = child.wait_with_output().expect("ingest");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("raw_orders: 2 records of 1 new file(s)"), "{t}");
    assert_eq!(
        per_file(&shop.table("raw_orders").await)["slow.csv"],
        vec![2, 3]
    );
}
