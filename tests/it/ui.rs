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
    let stdout = scheduler.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("ui on ") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the scheduler never said where its UI is");

    let shots = repo().join("ci-artifacts/ui");
    let _ = std::fs::remove_file(shots.join("report.json"));
    let started = Instant::now();
    let out = Command::new("node")
        .current_dir(&ui_dir)
        .args([
            "tests/pages.mjs",
            &base,
            shots.to_str().expect("utf-8 path"),
            "c",
            "gold",
            "accepted_values_c_v",
        ])
        .output()
        .expect("node");
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(shots.join("report.json")).unwrap_or_default(),
    )
    .unwrap_or_else(|e| {
        panic!(
            "no report ({e}) after {:?}:\n{}\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
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
