//! The typed events (`--log-format json`): `dag run` and the scheduler,
//! given the same pipeline on their own lakes and warehouses, emit the
//! same events for the same work: each model's outcome, rows and Delta
//! version, each data test's verdict on the version it judged, and the
//! tables the load moved. The text console prints from the same events.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::TestDb;

const SEED: &str = "kind: seed\nfile: {f}.csv\nunique_key: [id]\ncolumns:\n  - {name: id, type: int, nullable: false, tests: [not_null, unique]}\n  - {name: v, type: string}\n";

struct Project {
    dir: tempfile::TempDir,
    db: TestDb,
}

impl Project {
    async fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::fixtures::two_branches(
            dir.path(),
            "[warehouse]\nenabled = true\n\
             [scheduler]\ningest = false\nmetrics_addr = \"off\"\npoll_interval = \"1s\"\n",
        );
        Project {
            dir,
            db: TestDb::create().await.expect("db"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn dag(&self, args: &[&str]) -> Command {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(self.root())
            .args(args)
            .env("DATABASE_URL", &self.db.url);
        c
    }
}

/// The JSON events among `text`'s lines.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// What two executions must agree on: per node its state, rows out and
/// version; per test its status, failing rows, rows checked and version;
/// per loaded table its versions and rows inserted.
fn work(events: &[Value]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in events {
        match e["event"].as_str() {
            Some("node_finished") => {
                out.insert(
                    format!("node {}", e["node"]),
                    format!("{} out={} v={}", e["state"], e["rows_out"], e["version"]),
                );
            }
            Some("test_finished") => {
                out.insert(
                    format!("test {}", e["test"]),
                    format!(
                        "{} failing={} checked={} v={}",
                        e["status"], e["failing"], e["rows_checked"], e["version"]
                    ),
                );
            }
            Some("run_finished") => {
                out.insert(
                    "run finished".to_string(),
                    format!(
                        "success={} ran={} failed={} skipped={} tests={} failed={} warned={}",
                        e["success"],
                        e["models_ran"],
                        e["models_failed"],
                        e["models_skipped"],
                        e["tests"],
                        e["tests_failed"],
                        e["tests_warned"]
                    ),
                );
            }
            Some("load_finished") => {
                for t in e["tables"].as_array().into_iter().flatten() {
                    out.insert(
                        format!("load {}", t["model"]),
                        format!(
                            "{} -> {} inserted={}",
                            t["from_version"], t["to_version"], t["inserted"]
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn dag_run_and_the_scheduler_emit_the_same_events_for_the_same_work() {
    // dag run, JSON events on stdout.
    let one = Project::new().await;
    let out = one
        .dag(&["--log-format", "json", "run", "silver", "gold"])
        .output()
        .expect("dag run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_run = events(&stdout);
    // Notices (dag's migrations applied before the run) aside, the run
    // opens and closes the stream.
    let kinds: Vec<Value> = by_run
        .iter()
        .map(|e| e["event"].clone())
        .filter(|k| k != "notice")
        .collect();
    assert_eq!(
        kinds.first().cloned(),
        Some(Value::from("run_started")),
        "{stdout}"
    );
    assert_eq!(
        kinds.last().cloned(),
        Some(Value::from("run_finished")),
        "{stdout}"
    );
    // Every line of a JSON run is an event: nothing else on stdout.
    assert_eq!(by_run.len(), stdout.lines().count(), "{stdout}");

    // The scheduler, on a lake and warehouse of its own.
    let two = Project::new().await;
    let (by_scheduler, ok) = through_a_scheduler(&two).await;
    assert!(ok, "the scheduler's run failed: {by_scheduler:#?}");

    let (a, b) = (work(&by_run), work(&by_scheduler));
    // Four models and the load node, eight error tests and two warn
    // tests (one warns: `z` in a), two tables loaded.
    assert_eq!(
        a.keys().filter(|k| k.starts_with("node")).count(),
        5,
        "{a:#?}"
    );
    assert_eq!(
        a["node \"load:warehouse\""], "\"success\" out=0 v=null",
        "{a:#?}"
    );
    assert_eq!(
        a.keys().filter(|k| k.starts_with("test")).count(),
        10,
        "{a:#?}"
    );
    assert_eq!(
        a.keys().filter(|k| k.starts_with("load")).count(),
        2,
        "{a:#?}"
    );
    assert_eq!(
        a["test \"accepted_values_c_v\""].split(' ').next(),
        Some("\"warn\""),
        "{a:#?}"
    );
    assert_eq!(a, b, "dag run and the scheduler disagree");
    one.db.drop_db().await.ok();
    two.db.drop_db().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_prints_a_line_per_model_test_and_table_from_the_same_events() {
    let p = Project::new().await;
    let out = p.dag(&["run", "silver", "gold"]).output().expect("dag run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for want in [
        "  test not_null_c_id",
        "WARN",
        "load c",
        "4 model(s) ran, 0 failed, 0 skipped; 10 test(s), 0 failed, 1 warned",
    ] {
        assert!(stdout.contains(want), "`{want}` missing:\n{stdout}");
    }
    assert!(!stdout.contains("{\""), "no JSON in text mode:\n{stdout}");
    p.db.drop_db().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dag_run_is_recorded_as_a_run_with_a_row_per_node() {
    use sqlx::Row;
    let p = Project::new().await;
    let out = p
        .dag(&["--log-format", "json", "run", "silver", "gold"])
        .output()
        .expect("dag run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let emitted = events(&String::from_utf8_lossy(&out.stdout));
    // A model breaks: the second run fails, and so is it recorded.
    std::fs::write(
        p.root().join("models/p/gold/c.sql"),
        "SELECT id, nope FROM a\n",
    )
    .expect("write");
    let out = p
        .dag(&["run", "--full-refresh", "silver", "gold"])
        .output()
        .expect("dag run");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let runs = sqlx::query("SELECT id, trigger, state, selector FROM dag.runs ORDER BY id")
        .fetch_all(&p.db.pool)
        .await
        .expect("runs");
    let runs: Vec<(i64, String, String, String)> = runs
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(
        (runs[0].1.as_str(), runs[0].2.as_str(), runs[0].3.as_str()),
        ("cli", "success", "a b c d")
    );
    assert_eq!((runs[1].1.as_str(), runs[1].2.as_str()), ("cli", "failed"));
    let tasks = |run: i64| {
        let pool = p.db.pool.clone();
        async move {
            sqlx::query(
                "SELECT node, state, rows_out, delta_version FROM dag.task_runs \
                 WHERE run_id = $1 ORDER BY node",
            )
            .bind(run)
            .fetch_all(&pool)
            .await
            .expect("tasks")
            .iter()
            .map(|r| {
                let (node, state): (String, String) = (r.get(0), r.get(1));
                let (rows, v): (Option<i64>, Option<i64>) = (r.get(2), r.get(3));
                (node, format!("{state} {} {v:?}", rows.unwrap_or(0)))
            })
            .collect::<BTreeMap<String, String>>()
        }
    };
    // The first run's rows say what its events said.
    let want: BTreeMap<String, String> = emitted
        .iter()
        .filter(|e| e["event"] == "node_finished")
        .map(|e| {
            (
                e["node"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{} {} {:?}",
                    e["state"].as_str().unwrap_or_default(),
                    e["rows_out"],
                    e["version"].as_i64()
                ),
            )
        })
        .collect();
    assert_eq!(want.len(), 5, "{want:?}");
    assert_eq!(tasks(runs[0].0).await, want);
    let second = tasks(runs[1].0).await;
    assert!(second["c"].starts_with("failed"), "{second:?}");
    assert!(
        second["load:warehouse"].starts_with("upstream_failed"),
        "{second:?}"
    );
    // `dag runs` lists both.
    let listed = p.dag(&["runs"]).output().expect("dag runs");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.matches("cli").count(), 2, "{listed}");
    p.db.drop_db().await.ok();
}

/// Runs `silver gold` through a scheduler of `p` (JSON events) triggered
/// once: the events, and whether the run succeeded.
async fn through_a_scheduler(p: &Project) -> (Vec<Value>, bool) {
    let log = p.root().join("scheduler.out");
    let mut scheduler = p
        .dag(&["--log-format", "json", "scheduler"])
        .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
        .stderr(Stdio::null())
        .spawn()
        .expect("scheduler");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up: Option<i64> =
            sqlx::query_scalar("SELECT count(*) FROM dag.schedulers WHERE stopped_at IS NULL")
                .fetch_one(&p.db.pool)
                .await
                .ok();
        if up.unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the scheduler never started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = p
        .dag(&["trigger", "silver", "gold", "--wait"])
        .output()
        .expect("trigger");
    // The run's last events are written just after its state: give the
    // scheduler a moment to say them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"run_finished\"")
    {
        assert!(Instant::now() < deadline, "no run_finished event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let text = std::fs::read_to_string(&log).expect("scheduler log");
    (events(&text), out.status.success())
}

/// Each node's recorded state, in `dag.task_runs`.
async fn recorded_states(p: &Project) -> Vec<(String, String)> {
    sqlx::query_as("SELECT node, state FROM dag.task_runs ORDER BY node")
        .fetch_all(&p.db.pool)
        .await
        .expect("task_runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_test_stops_the_same_nodes_in_dag_run_and_the_scheduler() {
    // b's v must be x, and one row holds q: the test fails (error
    // severity), so d (built from b) is skipped and the load keeps the
    // warehouse as it was; c goes on.
    let strict = SEED.replace("{f}", "b").replace(
        "{name: v, type: string}",
        "{name: v, type: string, tests: [{accepted_values: {values: [x]}}]}",
    );
    let bad = |p: &Project| {
        std::fs::write(p.root().join("models/p/silver/b.yml"), &strict).expect("write");
        std::fs::write(p.root().join("data/b.csv"), "id,v\n1,x\n2,q\n").expect("write");
    };
    let one = Project::new().await;
    bad(&one);
    let out = one
        .dag(&["--log-format", "json", "run", "silver", "gold"])
        .output()
        .expect("dag run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let by_run = events(&String::from_utf8_lossy(&out.stdout));

    let two = Project::new().await;
    bad(&two);
    let (by_scheduler, ok) = through_a_scheduler(&two).await;
    assert!(!ok, "the scheduler's run failed too");

    let (a, b) = (work(&by_run), work(&by_scheduler));
    assert_eq!(
        a["node \"b\""].split(' ').next(),
        Some("\"failed\""),
        "{a:#?}"
    );
    assert_eq!(
        a["node \"d\""].split(' ').next(),
        Some("\"skipped\""),
        "{a:#?}"
    );
    assert_eq!(
        a["node \"load:warehouse\""].split(' ').next(),
        Some("\"skipped\""),
        "{a:#?}"
    );
    assert_eq!(
        a["node \"c\""].split(' ').next(),
        Some("\"success\""),
        "{a:#?}"
    );
    assert_eq!(
        a["run finished"], "success=false ran=3 failed=0 skipped=1 tests=8 failed=1 warned=1",
        "{a:#?}"
    );
    assert_eq!(a, b, "dag run and the scheduler disagree");
    // And they record the same states.
    let (x, y) = (recorded_states(&one).await, recorded_states(&two).await);
    assert_eq!(x.len(), 5, "{x:?}");
    assert_eq!(x, y, "dag run and the scheduler recorded different states");
    one.db.drop_db().await.ok();
    two.db.drop_db().await.ok();
}

/// A load ruled out by a failing test while another branch still runs is
/// said once the run is over, after that branch's lines (it was printed
/// before them, as if the run had ended): b fails its test, c's commit is
/// held a second.
#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_load_is_said_after_the_models_still_running() {
    let p = Project::new().await;
    let strict = SEED.replace("{f}", "b").replace(
        "{name: v, type: string}",
        "{name: v, type: string, tests: [{accepted_values: {values: [x]}}]}",
    );
    std::fs::write(p.root().join("models/p/silver/b.yml"), &strict).expect("write");
    std::fs::write(p.root().join("data/b.csv"), "id,v\n1,x\n2,q\n").expect("write");
    let marker = p.root().join("stalled");
    let out = p
        .dag(&["run", "silver", "gold"])
        .env(
            jobs::stall::STALL_COMMIT,
            format!("c:1000:{}", marker.display()),
        )
        .output()
        .expect("dag run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(marker.exists(), "c's commit never stalled:\n{stdout}");
    let at = |prefix: &str| {
        stdout
            .lines()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line `{prefix}`:\n{stdout}"))
    };
    assert!(at("c ") < at("load: BLOCKED"), "{stdout}");
    let summary = stdout
        .lines()
        .position(|l| l.contains("model(s) ran"))
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    assert!(at("load: BLOCKED") < summary, "{stdout}");
    p.db.drop_db().await.ok();
}
