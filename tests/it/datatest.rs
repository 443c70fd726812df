//! Data tests through the CLI, on real Delta tables (and PostgreSQL for
//! the gate).
//!
//! What is proven: every kind passes on good data and fails on bad data
//! with the exact failing count and the failing rows in its sample;
//! `where`, `warn_if`/`error_if` and `severity: warn` decide the status;
//! a parent that loses keys sends `relationships` back over every row;
//! exit codes 0/1/2; the JUnit report validates against the JUnit schema
//! CI systems read (`tests/fixtures/junit.xsd`, with xmllint) and the JSON
//! report against `docs/data-test-report.schema.json`; results land in
//! `_dag/test_results`. Write-audit-publish: a duplicate event_id forced
//! into gold fails `dag run`, skips the models downstream, blocks the load
//! (`dag run` and `dag load`), and PostgreSQL keeps the previous good
//! state; tests read only the rows since they last passed; a full refresh
//! clears it and the load converges.

use crate::fixtures::text;
use crate::models::{Lake, catalog, repo, simulate};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use testkit::TestDb;

/// A project with two seeds and a test of every kind on them.
struct Project {
    dir: tempfile::TempDir,
}

const THINGS_YML: &str = r#"kind: seed
description: Things with a test of every kind.
file: things.csv
# `row` keys the seed, so that ids can repeat for the unique test.
unique_key: [row]
columns:
  - {name: row, type: int, nullable: false}
  - name: id
    type: string
    tests: [not_null, unique]
  - name: parent_id
    type: string
    tests:
      - relationships: {to: parents, field: id}
  - name: color
    type: string
    tests:
      - accepted_values: {values: [red, blue]}
  - name: n
    type: int
    tests:
      - accepted_values: {range: "[0, 10]", severity: warn}
  - name: label
    type: string
    tests:
      - not_null: {where: "color = 'red'", warn_if: ">= 1", error_if: "> 2"}
  - name: at
    type: timestamp
tests:
  - expression: {sql: "n IS NULL OR n * 2 < 100"}
  - row_count: {min: 2, max: 8}
  - row_count: {equal_to: {model: parents, where: "kind = 'a'"}}
  - freshness: {column: at, max_lag: 1h}
  - unique: {columns: [parent_id, color]}
"#;

const PARENTS_YML: &str = r#"kind: seed
description: Parents.
file: parents.csv
unique_key: [id]
columns:
  - {name: id, type: string, nullable: false, tests: [not_null, unique]}
  - {name: kind, type: string}
"#;

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let silver = root.join("models/p/silver");
        std::fs::create_dir_all(&silver).expect("mkdir");
        std::fs::write(silver.join("things.yml"), THINGS_YML).expect("write");
        std::fs::write(silver.join("parents.yml"), PARENTS_YML).expect("write");
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        std::fs::write(
            root.join("data/parents.csv"),
            "id,kind\np1,a\np2,a\np3,a\np4,b\n",
        )
        .expect("write");
        write_config(root);
        Project { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes things.csv from rows `id,parent_id,color,n,label,age_minutes`.
    fn things(&self, rows: &[(&str, &str, &str, &str, &str, i64)]) {
        let now = Utc::now();
        let mut csv = String::from("row,id,parent_id,color,n,label,at\n");
        for (row, (id, parent, color, n, label, age)) in rows.iter().enumerate() {
            let at =
                (now - TimeDelta::minutes(*age)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            csv += &format!("{row},{id},{parent},{color},{n},{label},{at}\n");
        }
        std::fs::write(self.root().join("data/things.csv"), csv).expect("write");
    }

    fn dag(&self, args: &[&str]) -> Output {
        Command::new(testkit::dag_bin())
            .current_dir(self.root())
            .args(args)
            .output()
            .expect("dag")
    }

    /// `dag test --json/--junit/--markdown` into the project; returns the
    /// exit code, stdout and the JSON report.
    fn test(&self, extra: &[&str]) -> (i32, String, Value) {
        let json = self.root().join("report.json");
        let _ = std::fs::remove_file(&json);
        let mut args = vec![
            "test",
            "--json",
            "report.json",
            "--junit",
            "junit.xml",
            "--markdown",
            "report.md",
        ];
        args.extend_from_slice(extra);
        let out = self.dag(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let doc: Value = serde_json::from_str(&text).expect("JSON report");
        (out.status.code().unwrap_or(-1), stdout, doc)
    }
}

/// dag.toml of a project of pipeline `p` with a local lake, no warehouse.
fn write_config(root: &Path) {
    std::fs::write(
        root.join("dag.toml"),
        format!(
            "pipeline = \"p\"\n[lake]\nuri = \"file://{}/lake\"\n[warehouse]\nenabled = false\n",
            root.display()
        ),
    )
    .expect("write");
}

/// The results of a report by test kind and column(s) (or line order for
/// the model-level tests without columns).
fn by_name(doc: &Value) -> BTreeMap<String, Value> {
    doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["test"].as_str().expect("test").to_string(), r.clone()))
        .collect()
}

/// The one result whose name starts with `prefix`.
fn one<'a>(results: &'a BTreeMap<String, Value>, prefix: &str) -> &'a Value {
    let hits: Vec<&Value> = results
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(hits.len(), 1, "{prefix}: {:?}", results.keys());
    hits[0]
}

/// The `n`-th (by declaration line) result of a kind without columns.
fn nth_of_kind<'a>(results: &'a BTreeMap<String, Value>, kind: &str, n: usize) -> &'a Value {
    let mut hits: Vec<&Value> = results
        .values()
        .filter(|r| r["kind"] == kind && r["model"] == "things")
        .collect();
    hits.sort_by_key(|r| {
        r["declared_at"]
            .as_str()
            .and_then(|d| d.split(':').nth(1))
            .and_then(|l| l.parse::<u32>().ok())
            .unwrap_or(0)
    });
    hits[n]
}

fn check(r: &Value, status: &str, failing: u64) {
    assert_eq!(
        (r["status"].as_str(), r["failing"].as_u64()),
        (Some(status), Some(failing)),
        "{r:#}"
    );
}

/// The values of `column` in a result's sample, sorted.
fn sampled(r: &Value, column: &str) -> Vec<String> {
    let mut v: Vec<String> = r["sample"]
        .as_array()
        .expect("sample")
        .iter()
        .map(|row| match &row[column] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    v.sort();
    v
}

fn assert_valid_reports(p: &Project) {
    let xsd = repo().join("tests/fixtures/junit.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(p.root().join("junit.xml"))
        .output()
        .expect("xmllint (Debian libxml2-utils; scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "junit.xml does not validate against {}:\n{}",
        xsd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/data-test-report.schema.json")).expect("schema"),
    )
    .expect("schema JSON");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(p.root().join("report.json")).expect("report"),
    )
    .expect("report JSON");
    let errors = crate::json_schema::errors(&schema, &doc);
    assert!(errors.is_empty(), "report.json vs its schema: {errors:#?}");
}

#[test]
fn each_kind_passes_on_good_rows_and_fails_on_bad_ones_with_count_and_sample() {
    let p = Project::new();
    // No table yet: the tests cannot run (exit 2), and say why.
    let (code, stdout, doc) = p.test(&[]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("has no table"), "{stdout}");
    assert_eq!(doc["exit_code"], 2);

    p.things(&[
        ("t1", "p1", "red", "1", "x", 10),
        ("t2", "p2", "blue", "2", "", 20),
        ("t3", "", "red", "3", "y", 30),
    ]);
    let out = p.dag(&["run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (code, stdout, doc) = p.test(&[]);
    assert_eq!(code, 0, "{stdout}");
    let results = by_name(&doc);
    assert_eq!(results.len(), 13, "{:?}", results.keys());
    for (name, r) in &results {
        assert_eq!(r["status"], "pass", "{name}: {r:#}");
    }
    assert_valid_reports(&p);

    // The parent loses p2 while things stay as they were: the rows already
    // checked are checked again, and t2 is an orphan now.
    let parents = p.root().join("data/parents.csv");
    std::fs::write(&parents, "id,kind\np1,a\np3,a\np4,b\n").expect("write");
    let out = p.dag(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (code, _, doc) = p.test(&[]);
    assert_eq!(code, 1);
    let r = by_name(&doc);
    let orphan = one(&r, "relationships_things_parent_id");
    check(orphan, "fail", 1);
    assert_eq!(sampled(orphan, "parent_id"), ["p2"]);
    assert!(orphan["since_version"].is_null(), "{orphan:#}");
    std::fs::write(&parents, "id,kind\np1,a\np2,a\np3,a\np4,b\n").expect("write");

    // Bad rows: two t1, a green, n out of range twice (warn severity), an
    // orphan parent, an expression failure, red rows without a label, an
    // old `at`, (p1, red) twice, and one row more than parents of kind a.
    p.things(&[
        ("t1", "p1", "red", "1", "x", 200),
        ("t1", "p2", "green", "11", "", 200),
        ("t3", "p9", "red", "60", "", 200),
        ("t4", "p1", "red", "2", "", 200),
    ]);
    let out = p.dag(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (code, stdout, doc) = p.test(&[]);
    assert_eq!(code, 1, "{stdout}");
    let r = by_name(&doc);
    check(one(&r, "unique_things_id"), "fail", 2);
    assert_eq!(sampled(one(&r, "unique_things_id"), "id"), ["t1", "t1"]);
    check(one(&r, "not_null_things_id"), "pass", 0);
    check(one(&r, "relationships_things_parent_id"), "fail", 1);
    assert_eq!(
        sampled(one(&r, "relationships_things_parent_id"), "parent_id"),
        ["p9"]
    );
    check(one(&r, "accepted_values_things_color"), "fail", 1);
    assert_eq!(
        sampled(one(&r, "accepted_values_things_color"), "color"),
        ["green"]
    );
    // Warn severity never fails.
    check(one(&r, "accepted_values_things_n"), "warn", 2);
    assert_eq!(
        sampled(one(&r, "accepted_values_things_n"), "n"),
        ["11", "60"]
    );
    // `where` keeps the green row out; 2 failing: warn_if >= 1 holds,
    // error_if > 2 does not.
    check(one(&r, "not_null_things_label"), "warn", 2);
    // Samples carry the model's key (`row`) besides the tested columns.
    assert_eq!(sampled(one(&r, "not_null_things_label"), "row"), ["2", "3"]);
    check(nth_of_kind(&r, "expression", 0), "fail", 1);
    assert_eq!(sampled(nth_of_kind(&r, "expression", 0), "n"), ["60"]);
    check(nth_of_kind(&r, "row_count", 0), "pass", 0);
    let equal = nth_of_kind(&r, "row_count", 1);
    check(equal, "fail", 1);
    assert!(
        equal["message"]
            .as_str()
            .is_some_and(|m| m.contains("4 row(s), but parents has 3")),
        "{equal:#}"
    );
    let fresh = one(&r, "freshness_things_at");
    check(fresh, "fail", 1);
    assert!(
        fresh["message"]
            .as_str()
            .is_some_and(|m| m.contains("behind")),
        "{fresh:#}"
    );
    check(one(&r, "unique_things_parent_id_color"), "fail", 2);
    assert_eq!(
        sampled(one(&r, "unique_things_parent_id_color"), "row"),
        ["0", "3"]
    );
    assert_valid_reports(&p);
    let md = std::fs::read_to_string(p.root().join("report.md")).expect("markdown");
    assert!(md.contains("❌ fail | `unique_things_id`"), "{md}");
    assert!(md.contains("| t1 | t1 |") || md.contains("| t1 |"), "{md}");

    // A third red row without a label crosses error_if.
    p.things(&[
        ("t1", "p1", "red", "1", "", 5),
        ("t2", "p2", "red", "1", "", 5),
        ("t3", "p3", "red", "1", "", 5),
    ]);
    let _ = p.dag(&["run"]);
    let (code, _, doc) = p.test(&[]);
    assert_eq!(code, 1);
    check(one(&by_name(&doc), "not_null_things_label"), "fail", 3);
}

/// A duplicate of one gold fact row, committed straight into the table
/// (as a bad writer would), with no watermark of its own.
async fn force_duplicate_into_fact(lake: &Lake) -> String {
    let s = lake.settings();
    let fact = lake.table("fact_telemetry").await;
    let row = fact.head(Some(1));
    let event_id = row
        .column("event_id")
        .expect("event_id")
        .str()
        .expect("str")
        .get(0)
        .expect("a row")
        .to_string();
    let mut table = catalog()
        .open_output("fact_telemetry", &s)
        .await
        .expect("open");
    let adds = table.write_files(&row).await.expect("write");
    table
        .commit(adds, &[], &BTreeMap::new(), false)
        .await
        .expect("commit");
    event_id
}

async fn pg_state(db: &TestDb) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for t in [
        "fact_telemetry",
        "fact_fines",
        "agg_driver_daily",
        "agg_alerts_15min",
        "dim_driver",
        "dim_vehicle",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM gold.{t} t ORDER BY 1"
        )))
        .fetch_all(&db.pool)
        .await
        .expect("rows");
        out.insert(t, rows);
    }
    out
}

fn dag(lake: &Lake, db: &TestDb, args: &[&str]) -> Output {
    Command::new(testkit::dag_bin())
        .current_dir(lake.root())
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("DAG_WAREHOUSE__ENABLED", "true")
        .output()
        .expect("dag")
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t)
        .expect("time")
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_forced_into_gold_blocks_downstream_and_the_load_until_fixed() {
    let db = TestDb::create().await.expect("db");
    let mut lake = Lake::new();
    let mut counts = BTreeMap::new();
    let first: Vec<_> = simulate(7, 1500, "2026-11-18T06:00:00Z", &mut counts)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    lake.add(&first, at("2026-11-19T06:00:00Z")).await;
    let out = dag(&lake, &db, &["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let good = pg_state(&db).await;
    assert!(!good["fact_telemetry"].is_empty());

    let fact_rows_before = lake.table("fact_telemetry").await.height();
    let event_id = force_duplicate_into_fact(&lake).await;
    let agg_version = |lake: &Lake| {
        let s = lake.settings();
        async move {
            catalog()
                .open_input("agg_driver_daily", &s)
                .await
                .expect("open")
                .version()
        }
    };
    let agg_before = agg_version(&lake).await;
    let second: Vec<_> = simulate(8, 600, "2026-11-19T06:00:00Z", &mut counts)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    lake.add(&second, at("2026-11-20T06:00:00Z")).await;
    let out = dag(&lake, &db, &["run"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let unique_line = t
        .lines()
        .find(|l| l.contains("test unique_fact_telemetry_event_id"))
        .unwrap_or_else(|| panic!("no unique test line:\n{t}"));
    assert!(
        unique_line.contains("FAIL") && unique_line.contains("1 failing"),
        "{unique_line}"
    );
    for downstream in [
        "agg_driver_daily",
        "agg_alerts_15min",
        "dim_driver",
        "dim_vehicle",
    ] {
        assert!(
            t.lines()
                .any(|l| l.starts_with(downstream) && l.contains("skipped: upstream failed")),
            "{downstream} not skipped:\n{t}"
        );
    }
    assert!(
        t.contains("load: BLOCKED (test unique_fact_telemetry_event_id failed"),
        "{t}"
    );
    assert_eq!(
        agg_version(&lake).await,
        agg_before,
        "a skipped model wrote"
    );
    assert_eq!(pg_state(&db).await, good, "the warehouse moved");

    // The test read only what was committed since it last passed: the
    // forced row and the run's new facts, not the whole table.
    let (results, _) = test_results(&lake).await;
    let last = results
        .iter()
        .find(|r| r.0 == "unique_fact_telemetry_event_id" && r.1 == "fail")
        .expect("the failing result");
    let fact_rows_now = lake.table("fact_telemetry").await.height() as i64;
    assert_eq!(
        last.2,
        fact_rows_now - fact_rows_before as i64,
        "rows checked"
    );
    assert!(
        last.3.is_some(),
        "an incremental check names its base version"
    );

    // `dag load` audits first: still blocked, still the old state; and
    // `dag test` reports the same failure with the duplicated key.
    let out = dag(&lake, &db, &["load"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("BLOCKED"), "{}", text(&out));
    assert_eq!(pg_state(&db).await, good);
    let out = dag(&lake, &db, &["test", "fact_telemetry", "--json", "r.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(lake.root().join("r.json")).expect("report"))
            .expect("json");
    let results = by_name(&doc);
    let unique = one(&results, "unique_fact_telemetry_event_id");
    assert_eq!(sampled(unique, "event_id"), [event_id]);

    // Rebuilding the fact from silver removes the forced row: the tests
    // pass, downstream catches up and the load converges on gold.
    let out = dag(&lake, &db, &["run", "--full-refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    let state = pg_state(&db).await;
    assert_ne!(state, good, "the second day's data never arrived");
    assert_eq!(
        state["fact_telemetry"].len(),
        lake.table("fact_telemetry").await.height()
    );
}

/// (test, status, rows_checked, since_version) of every row of
/// `_dag/test_results`, in log order, and the run ids seen.
async fn test_results(lake: &Lake) -> (Vec<(String, String, i64, Option<i64>)>, Vec<String>) {
    let df = crate::fixtures::results_table(&lake.settings().lake, None).await;
    let col = |n: &str| df.column(n).expect("column").clone();
    let (test, status, rows, since, run) = (
        col("test"),
        col("status"),
        col("rows_checked"),
        col("since_version"),
        col("run_id"),
    );
    let mut out = Vec::new();
    let mut runs = Vec::new();
    for i in 0..df.height() {
        out.push((
            test.str()
                .expect("str")
                .get(i)
                .unwrap_or_default()
                .to_string(),
            status
                .str()
                .expect("str")
                .get(i)
                .unwrap_or_default()
                .to_string(),
            rows.i64().expect("i64").get(i).unwrap_or_default(),
            since.i64().expect("i64").get(i),
        ));
        let r = run
            .str()
            .expect("str")
            .get(i)
            .unwrap_or_default()
            .to_string();
        if !runs.contains(&r) {
            runs.push(r);
        }
    }
    (out, runs)
}

/// A table deleted and rebuilt under the same name: the passes recorded on
/// the old table are no base for the new one (issue 21, hypothesis 7).
/// Before the fix, the rebuilt table's version 1 matched the old base's
/// version 1, the test read "the files since version 1" (none) and a null
/// written into the new table passed `not_null`.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuilt_table_is_tested_whole_not_from_its_predecessors_base() {
    let p = crate::races::Project::new(None).await;
    let out = p.output(&["run", "--no-load"]);
    assert!(out.status.success(), "{}", crate::races::text(&out));
    assert!(
        crate::races::text(&out).contains("not_null_g_v"),
        "{}",
        crate::races::text(&out)
    );
    std::fs::remove_dir_all(p.root().join("lake/gold/g")).expect("delete the table");
    p.seed("id,v\n1,\n2,b\n");
    let out = p.output(&["run", "--no-load"]);
    let text = crate::races::text(&out);
    assert!(!out.status.success(), "the null passed: {text}");
    assert!(text.contains("not_null_g_v  FAIL"), "{text}");
}

/// The same for a `relationships` test's parent: rebuilt with a key fewer
/// while the child did not change, the child's rows are checked again
/// against the rebuilt parent, not judged by the old parent's version.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuilt_parent_sends_relationships_back_over_every_row() {
    let p = crate::races::Project::new(None).await;
    let write = |rel: &str, text: &str| {
        let path = p.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "models/r/silver/t.yml",
        "kind: seed\nfile: t.csv\nunique_key: [id]\ncolumns:\n  - {name: id, type: int, nullable: false}\n",
    );
    write("data/t.csv", "id\n1\n2\n");
    write(
        "models/r/gold/h.yml",
        "kind: sql\nmaterialized: table\nunique_key: [id]\ncolumns:\n  - name: id\n    type: int\n    nullable: false\n    tests:\n      - relationships: {to: g, field: id}\n",
    );
    write("models/r/gold/h.sql", "SELECT id FROM t\n");
    let out = p.output(&["run", "--no-load"]);
    assert!(out.status.success(), "{}", crate::races::text(&out));
    // The parent is deleted and rebuilt without key 2; the child stays.
    std::fs::remove_dir_all(p.root().join("lake/gold/g")).expect("delete the parent");
    p.seed("id,v\n1,a\n");
    let out = p.output(&["run", "--no-load", "+g"]);
    assert!(out.status.success(), "{}", crate::races::text(&out));
    let out = p.output(&["test", "h"]);
    let text = crate::races::text(&out);
    assert!(
        !out.status.success(),
        "h's row 2 points at no parent: {text}"
    );
    assert!(
        text.contains("relationships_h_id") && text.contains("FAIL"),
        "{text}"
    );
}

/// Test options are read as written: an unquoted `01` in `values:` is the
/// text `01` (as a string column holds it), not the number 1.
#[test]
fn accepted_values_written_as_plain_yaml_scalars_keep_their_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let silver = root.join("models/p/silver");
    std::fs::create_dir_all(&silver).expect("mkdir");
    std::fs::write(
        silver.join("codes.yml"),
        "kind: seed\nfile: codes.csv\nunique_key: [row]\ncolumns:\n  - {name: row, type: int, nullable: false}\n  - name: code\n    type: string\n    tests:\n      - accepted_values: {values: [01, 02, yes]}\n",
    )
    .expect("write");
    std::fs::create_dir_all(root.join("data")).expect("mkdir");
    std::fs::write(
        root.join("data/codes.csv"),
        "row,code\n1,01\n2,02\n3,yes\n4,1\n5,true\n",
    )
    .expect("write");
    write_config(root);
    let run = |args: &[&str]| {
        Command::new(testkit::dag_bin())
            .current_dir(root)
            .args(args)
            .output()
            .expect("dag")
    };
    let out = run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run(&["test", "--json", "report.json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("report.json")).expect("report"))
            .expect("JSON");
    let r = by_name(&doc);
    let t = one(&r, "accepted_values_codes_code");
    check(t, "fail", 2);
    assert_eq!(sampled(t, "code"), ["1", "true"]);
}
