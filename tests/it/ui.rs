//! The web UI in a real browser: a scheduler serves it (`ui.in_scheduler`)
//! over a pipeline that `dag run` ran once; headless Chromium, driven by
//! `ui/tests/pages.mjs` (playwright-core), opens every page, clicks a node,
//! triggers a run and follows it to its end. What the pages showed is
//! checked against PostgreSQL; the screenshots are kept under
//! `ci-artifacts/ui/`.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::TestDb;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each node's latest finished state, as the pipeline page should show it.
async fn latest_states(db: &TestDb) -> BTreeMap<String, String> {
    sqlx::query_as::<_, (String, String)>(
        "SELECT DISTINCT ON (node) node, state FROM dag.task_runs \
         WHERE finished_at IS NOT NULL ORDER BY node, finished_at DESC",
    )
    .fetch_all(&db.pool)
    .await
    .expect("task_runs")
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_in_chromium_shows_what_postgresql_holds() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: scripts/setup.sh installs it"
    );
    let ui_dir = repo().join("ui");
    assert!(
        ui_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: scripts/setup.sh installs ui/node_modules"
    );
    let db = TestDb::create().await.expect("db");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    crate::fixtures::two_branches(
        root,
        "[warehouse]\nenabled = true\n\
         [scheduler]\ningest = false\nmetrics_addr = \"off\"\npoll_interval = \"1s\"\n\
         [ui]\naddr = \"127.0.0.1:0\"\nin_scheduler = true\n",
    );
    let dag = |args: &[&str]| {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(root).args(args).env("DATABASE_URL", &db.url);
        c
    };
    let out = dag(&["run", "silver", "gold"]).output().expect("dag run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A scheduler that serves the UI; its first lines say where.
    let mut scheduler = dag(&["scheduler"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("scheduler");
    let base = ui_address(&mut scheduler);
    let shots = repo().join("ci-artifacts/ui");
    let report = browse(
        "pages.mjs",
        "report",
        &base,
        &shots,
        &["c", "gold", "accepted_values_c_v"],
    );
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["layout"], true, "the graph is laid out by dagre");

    // Pipeline: the bronze-less graph's four models, coloured as the
    // latest task of each in PostgreSQL (the triggered run is not in yet
    // when the page was read: it ran after).
    let graph: BTreeMap<String, String> =
        serde_json::from_value(report["graph"].clone()).expect("graph");
    assert_eq!(
        graph.keys().cloned().collect::<Vec<_>>(),
        ["a", "b", "c", "d"],
        "{report:#}"
    );
    assert!(graph.values().all(|s| s == "success"), "{graph:?}");

    // The model page of the clicked node: its loaded version.
    let loaded: i64 =
        sqlx::query_scalar("SELECT delta_version FROM dag.loaded_versions WHERE model = 'c'")
            .fetch_one(&db.pool)
            .await
            .expect("loaded version");
    assert!(
        report["model"]["heading"]
            .as_str()
            .is_some_and(|h| h.starts_with("c ")),
        "{report:#}"
    );
    assert_eq!(report["model"]["loaded_version"], loaded.to_string());
    assert_eq!(report["model"]["links"], "Inputs: a · Outputs: none");
    assert!(report["model"]["recent"].as_i64() >= Some(1), "{report:#}");

    // The run triggered from the page ended as PostgreSQL says, task by
    // task.
    let id = report["triggered"]["id"].as_i64().expect("run id");
    let state: String = sqlx::query_scalar("SELECT state FROM dag.runs WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("run");
    assert_eq!(report["triggered"]["state"], state.as_str(), "{report:#}");
    assert_eq!(state, "success");
    let tasks: BTreeMap<String, String> = sqlx::query_as::<_, (String, String)>(
        "SELECT node, state FROM dag.task_runs WHERE run_id = $1",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await
    .expect("tasks")
    .into_iter()
    .collect();
    let shown: BTreeMap<String, String> =
        serde_json::from_value(report["triggered"]["tasks"].clone()).expect("tasks");
    assert_eq!(shown, tasks, "{report:#}");
    assert!(report["triggered"]["bars"].as_i64() >= Some(tasks.len() as i64));
    assert_eq!(
        latest_states(&db)
            .await
            .get("load:warehouse")
            .map(String::as_str),
        Some("success")
    );

    // Data quality: ten tests, one warns (a's `z` reaches c).
    let tests: BTreeMap<String, String> =
        serde_json::from_value(report["tests"].clone()).expect("tests");
    assert_eq!(tests.len(), 10, "{tests:?}");
    assert_eq!(tests["accepted_values_c_v"], "warn", "{tests:?}");
    assert_eq!(
        tests.values().filter(|s| *s == "pass").count(),
        9,
        "{tests:?}"
    );
    for page in ["pipeline", "model", "run", "runs", "tests", "test"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}.png");
    }
    db.drop_db().await.ok();
}

/// Runs `node ui/tests/<script> base out args...` and returns the report
/// it wrote (`<name>.json` under `out`).
fn browse(script: &str, name: &str, base: &str, out: &Path, args: &[&str]) -> Value {
    let _ = std::fs::remove_file(out.join(format!("{name}.json")));
    let started = Instant::now();
    let run = Command::new("node")
        .current_dir(repo().join("ui"))
        .arg(format!("tests/{script}"))
        .args([base, out.to_str().expect("utf-8 path")])
        .args(args)
        .output()
        .expect("node");
    serde_json::from_str(
        &std::fs::read_to_string(out.join(format!("{name}.json"))).unwrap_or_default(),
    )
    .unwrap_or_else(|e| {
        panic!(
            "no report ({e}) after {:?}:\n{}\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        )
    })
}

/// The address a `dag ui` or `dag scheduler` prints on its `ui on` line.
fn ui_address(child: &mut std::process::Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("ui on ") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the UI never said where it is")
}

/// `dag ui` over a Kafka pipeline that quarantined rows, is behind its
/// topic and whose newest event is two hours old: the quarantine page
/// shows what the quarantine table holds (binary values flagged), the
/// freshness page the lag the broker and the table imply, the loaded
/// version PostgreSQL holds and the freshness test past its threshold;
/// the data-quality page carries the Markdown report.
#[tokio::test(flavor = "multi_thread")]
async fn quarantine_and_freshness_pages_show_the_lake_the_broker_and_postgresql() {
    assert!(
        repo().join("ui/node_modules/playwright-core").is_dir(),
        "playwright-core is missing: scripts/setup.sh installs ui/node_modules"
    );
    let db = TestDb::create().await.expect("db");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let topic = testkit::unique_topic("ui-health");
    crate::fixtures::events_pipeline(root, &topic, "[ui]\naddr = \"127.0.0.1:0\"\n");
    let dag = |args: &[&str]| {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(root).args(args).env("DATABASE_URL", &db.url);
        c
    };
    let run = |args: &[&str]| {
        let out = dag(args).output().expect("dag");
        assert!(
            out.status.success(),
            "dag {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let produce = |name: &str, lines: &[Value]| {
        let file = root.join(name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&file, text).expect("write jsonl");
        run(&["produce", "--file", file.to_str().expect("utf-8")]);
    };
    let two_hours_ago = (chrono::Utc::now() - chrono::TimeDelta::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let good = |id: &str| {
        serde_json::json!({"topic": topic, "partition": 0, "key": id,
            "value": format!("{{\"id\": \"{id}\", \"at\": \"{two_hours_ago}\"}}")})
    };
    produce(
        "first.jsonl",
        &[
            good("e1"),
            serde_json::json!({"topic": topic, "partition": 0, "key": "e2", "value": "{\"id\": \"e2\"}"}),
            good("e3"),
            // Not UTF-8 and not JSON: quarantined, shown escaped with its hex.
            serde_json::json!({"topic": topic, "partition": 0, "key": "e4", "value_b64": "/wA8c2NyaXB0Pg=="}),
            serde_json::json!({"topic": topic, "partition": 0, "key": "e5", "value": "{\"id\": \"e5\", \"at\": \"yesterday\"}"}),
            good("e6"),
        ],
    );
    run(&["ingest", "--until-caught-up"]);
    run(&["run"]);
    // Two more the table has not taken: the lag.
    produce("second.jsonl", &[good("e7"), good("e8")]);

    let mut ui = dag(&["ui"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dag ui");
    let base = ui_address(&mut ui);
    let shots = repo().join("ci-artifacts/ui");
    let (run_id, note): (i64, String) = sqlx::query_as("SELECT id, note FROM dag.runs")
        .fetch_one(&db.pool)
        .await
        .expect("the recorded dag run");
    let run_name = note.trim_start_matches("dag run ");
    let report = browse("health.mjs", "health", &base, &shots, &[run_name]);
    let _ = ui.kill();
    let _ = ui.wait();
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");

    // Quarantine: the page's counts are the table's, by reason; the sample
    // is every row (three), with its bronze coordinates.
    let p = dag::pipeline::Pipeline::load(&root.join("models/p")).expect("pipeline");
    let catalog = jobs::model::Catalog::new(p.graph.node_weights().cloned());
    let settings = jobs::model::RunSettings::new(
        format!("file://{}/lake", root.display()),
        std::collections::HashMap::new(),
        root.join("data"),
    );
    let q = catalog
        .open_input("events_quarantine", &settings)
        .await
        .expect("quarantine table")
        .read_all(None)
        .await
        .expect("read");
    let mut reasons: BTreeMap<String, i64> = BTreeMap::new();
    for r in crate::fixtures::strings(&q, "reason") {
        *reasons.entry(r).or_default() += 1;
    }
    let shown = &report["quarantine"]["events_quarantine"];
    assert_eq!(shown["rows"], 3, "{report:#}");
    let shown_reasons: BTreeMap<String, i64> =
        serde_json::from_value(shown["reasons"].clone()).expect("reasons");
    assert_eq!(shown_reasons, reasons, "{report:#}");
    let offsets: Vec<String> = q
        .column("offset")
        .expect("offset")
        .i64()
        .expect("i64")
        .iter()
        .map(|o| format!("0:{}", o.expect("offset")))
        .collect();
    let mut sampled: Vec<String> = shown["sample"]
        .as_array()
        .expect("sample")
        .iter()
        .map(|s| s["at"].as_str().unwrap_or("").to_string())
        .collect();
    sampled.sort();
    let mut offsets = offsets;
    offsets.sort();
    assert_eq!(sampled, offsets, "{report:#}");
    assert_eq!(offsets, ["0:1", "0:3", "0:4"]);
    let binary: Vec<&Value> = shown["sample"]
        .as_array()
        .expect("sample")
        .iter()
        .filter(|s| s["binary"] == true)
        .collect();
    assert_eq!(binary.len(), 1, "{report:#}");
    assert_eq!(binary[0]["text"], "\\xff\\u{0}<script>", "{report:#}");
    assert!(shown["bars"].as_i64() >= Some(1), "{report:#}");

    // Freshness: the table holds offsets 0..=5, the broker 0..=7.
    assert_eq!(report["sources"]["raw_events"]["lag"], "2", "{report:#}");
    // Every message went to partition 0: the topic's other partitions
    // (as many as the broker gives a new topic) are not behind.
    let partitions: BTreeMap<String, i64> =
        serde_json::from_value(report["sources"]["raw_events"]["partitions"].clone())
            .expect("partitions");
    assert_eq!(partitions.get("0"), Some(&2), "{report:#}");
    assert!(
        partitions.iter().all(|(p, lag)| p == "0" || *lag == 0),
        "{report:#}"
    );
    assert_eq!(report["sources"]["raw_events"]["committed"], true);
    let loaded: i64 =
        sqlx::query_scalar("SELECT delta_version FROM dag.loaded_versions WHERE model = 'latest'")
            .fetch_one(&db.pool)
            .await
            .expect("loaded version");
    assert_eq!(report["tables"]["latest"], loaded.to_string(), "{report:#}");
    let fresh = &report["freshness_tests"]["freshness_events_at"];
    assert_eq!(fresh["breached"], "yes", "{report:#}");
    assert_eq!(fresh["last"], "warn", "{report:#}");
    assert_eq!(fresh["threshold_marks"], 3, "{report:#}");

    // The Markdown report: what `dag test --markdown` writes.
    let md = report["markdown"].as_str().unwrap_or("");
    assert!(md.starts_with("## Data tests: ⚠️ warn"), "{md}");
    assert!(md.contains("`freshness_events_at`"), "{md}");
    // The run's page by the name `dag run` gave it.
    assert!(
        report["named_run"]
            .as_str()
            .is_some_and(|h| h.starts_with(&format!("Run {run_id} "))),
        "{report:#}"
    );
    for page in ["quarantine", "freshness"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}.png");
    }
    db.drop_db().await.ok();
}
