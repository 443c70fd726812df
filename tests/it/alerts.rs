//! Alerts (`[[alerts]]`): a failing data test makes exactly one webhook
//! call that names the test, its model, its failing rows and links to its
//! page; the cooldown holds a repeat back (recorded as suppressed); a
//! webhook that fails is tried again until it answers, and its address
//! (a secret) never reaches the terminal; a bad rule names its key; a
//! scheduler alerts a breached freshness test once per cooldown, and an
//! ingester that stops on an error once per cooldown.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use testkit::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEED: &str = "kind: seed\nfile: b.csv\nunique_key: [id]\ncolumns:\n  - {name: id, type: int, nullable: false, tests: [not_null, unique]}\n  - {name: v, type: string, tests: [{accepted_values: {values: [x]}}]}\n";

/// A webhook on loopback that keeps each request's path and JSON body
/// and answers 500 to the first `fail_first` of them, 200 after.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Receiver {
    async fn start(path: &str, fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
        let got: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let seen = got.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body its Content-Length says.
                let (head, body) = loop {
                    let Ok(k) = sock.read(&mut chunk).await else {
                        break (String::new(), Vec::new());
                    };
                    if k == 0 {
                        break (String::new(), Vec::new());
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        while buf.len() < end + 4 + len {
                            match sock.read(&mut chunk).await {
                                Ok(k) if k > 0 => buf.extend_from_slice(&chunk[..k]),
                                _ => break,
                            }
                        }
                        break (head, buf[end + 4..].to_vec());
                    }
                };
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                seen.lock().expect("lock").push((path, json));
                n += 1;
                let status = if n <= fail_first {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = sock
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        Receiver { url, got }
    }

    fn calls(&self) -> Vec<(String, serde_json::Value)> {
        self.got.lock().expect("lock").clone()
    }
}

/// A one-seed pipeline whose `accepted_values` test fails on one row,
/// with `alerts` as dag.toml's `[[alerts]]`.
struct Project {
    dir: tempfile::TempDir,
    db: TestDb,
}

impl Project {
    async fn new(alerts: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in ["models/p/silver", "data"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        std::fs::write(root.join("models/p/silver/b.yml"), SEED).expect("write");
        std::fs::write(root.join("models/p/pipeline.yml"), "description: alerts\n").expect("write");
        std::fs::write(root.join("data/b.csv"), "id,v\n1,x\n2,q\n3,x\n").expect("write");
        std::fs::write(
            root.join("dag.toml"),
            format!(
                "pipeline = \"p\"\n[lake]\nuri = \"file://{}/lake\"\n[warehouse]\nenabled = true\n\
                 [ui]\nurl = \"http://dag.example:8686\"\n{alerts}",
                root.display()
            ),
        )
        .expect("write");
        Project {
            dir,
            db: TestDb::create().await.expect("db"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, envs: &[(&str, &str)]) -> Output {
        Command::new(testkit::dag_bin())
            .current_dir(self.root())
            .args(["run"])
            .env("DATABASE_URL", &self.db.url)
            .envs(envs.iter().copied())
            .output()
            .expect("dag run")
    }

    async fn recorded(&self) -> Vec<(String, String, String, i32)> {
        self.recorded_so_far().await.expect("dag.alerts")
    }

    /// What `dag.alerts` holds; an error before the first migration.
    async fn recorded_so_far(&self) -> Result<Vec<(String, String, String, i32)>, sqlx::Error> {
        sqlx::query_as("SELECT kind, subject, state, attempts FROM dag.alerts ORDER BY id")
            .fetch_all(&self.db.pool)
            .await
    }

    /// `dag scheduler` in the project, its output dropped.
    fn scheduler(&self) -> std::process::Child {
        Command::new(testkit::dag_bin())
            .current_dir(self.root())
            .args(["scheduler"])
            .env("DATABASE_URL", &self.db.url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dag scheduler")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_test_makes_one_webhook_call_and_the_cooldown_holds_the_repeat() {
    let hook = Receiver::start("/hook", 0).await;
    let p = Project::new(&format!(
        "[[alerts]]\nname = \"oncall\"\non = [\"test_failed\"]\nurl = \"{}\"\ncooldown = \"1h\"\n",
        hook.url
    ))
    .await;
    let out = p.run(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let (path, body) = &calls[0];
    assert_eq!(path, "/hook");
    let test = "accepted_values_b_v";
    assert_eq!(body["alert"], "oncall", "{body:#}");
    assert_eq!(body["kind"], "test_failed", "{body:#}");
    assert_eq!(body["test"], test, "{body:#}");
    assert_eq!(body["model"], "b", "{body:#}");
    assert_eq!(body["failing"], 1, "{body:#}");
    assert_eq!(
        body["link"],
        format!("http://dag.example:8686/tests/{test}"),
        "{body:#}"
    );
    assert_eq!(
        p.recorded().await,
        [(
            "test_failed".to_string(),
            test.to_string(),
            "delivered".to_string(),
            1
        )]
    );

    // The same failure within the cooldown: recorded, not sent.
    let out = p.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(hook.calls().len(), 1, "{:#?}", hook.calls());
    let recorded = p.recorded().await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[1].2, "suppressed", "{recorded:?}");
    p.db.drop_db().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_webhook_is_tried_again_and_its_address_is_never_printed() {
    // The address's path is the secret, as in Slack's webhooks.
    let hook = Receiver::start("/services/T0001/SECRET-TOKEN", 2).await;
    let p = Project::new(
        "[[alerts]]\non = [\"test_failed\", \"run_failed\"]\nurl_env = \"HOOK\"\nformat = \"slack\"\n",
    )
    .await;
    let out = p.run(&[("HOOK", hook.url.as_str())]);
    assert_eq!(out.status.code(), Some(1));
    let calls = hook.calls();
    // The test's alert (two 500s, then through) and the run's.
    assert_eq!(calls.len(), 4, "{calls:#?}");
    let texts: Vec<&str> = calls.iter().filter_map(|c| c.1["text"].as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("accepted_values_b_v") && t.contains("1 failing")),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("failed") && t.contains("run")),
        "{texts:#?}"
    );
    let mut recorded = p.recorded().await;
    recorded.sort();
    assert_eq!(
        recorded
            .iter()
            .map(|r| (r.0.as_str(), r.2.as_str(), r.3))
            .collect::<Vec<_>>(),
        [
            ("run_failed", "delivered", 1),
            ("test_failed", "delivered", 3)
        ]
    );
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            !text.contains("SECRET-TOKEN"),
            "the webhook's address leaked:\n{text}"
        );
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the webhook answered 500"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.db.drop_db().await.ok();
}

/// The scheduler's sink: a freshness test breached on every scheduled
/// run (every 2 s) calls the webhook once, the cooldown records the
/// repeats as suppressed, and the failed runs call it once too, with a
/// link to the run's page that the UI serves.
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_alerts_a_breached_freshness_test_once_per_cooldown() {
    let hook = Receiver::start("/hook", 0).await;
    let p = Project::new(&format!(
        "[scheduler]\ningest = false\nmetrics_addr = \"off\"\npoll_interval = \"1s\"\n\
         [[alerts]]\nname = \"oncall\"\non = [\"freshness\", \"run_failed\"]\nurl = \"{}\"\n",
        hook.url
    ))
    .await;
    let root = p.root();
    std::fs::write(
        root.join("models/p/silver/b.yml"),
        "kind: seed\nfile: b.csv\nunique_key: [id]\ncolumns:\n  - {name: id, type: int, nullable: false}\n  - {name: at, type: timestamp, nullable: false}\ntests:\n  - freshness: {column: at, max_lag: 1h}\n",
    )
    .expect("write");
    std::fs::write(root.join("data/b.csv"), "id,at\n1,2020-01-01T00:00:00Z\n").expect("write");
    std::fs::write(
        root.join("models/p/pipeline.yml"),
        "description: alerts\nschedules:\n  - {select: b, cron: \"*/2 * * * * *\"}\n",
    )
    .expect("write");
    let mut scheduler = p.scheduler();
    // Three failed runs: the first alerts, the next two are held back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut failed = 0i64;
    while failed < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        failed = sqlx::query_scalar("SELECT count(*) FROM dag.runs WHERE state = 'failed'")
            .fetch_one(&p.db.pool)
            .await
            .unwrap_or(0);
    }
    // The last run's alerts are recorded right after its end.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    assert!(failed >= 3, "only {failed} failed run(s) in 90 s");

    let calls = hook.calls();
    let kinds: Vec<&str> = calls.iter().filter_map(|c| c.1["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "freshness").count(),
        1,
        "{calls:#?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "run_failed").count(),
        1,
        "{calls:#?}"
    );
    let fresh = calls
        .iter()
        .find(|c| c.1["kind"] == "freshness")
        .map(|c| &c.1)
        .expect("freshness call");
    assert_eq!(fresh["test"], "freshness_b_at", "{fresh:#}");
    assert_eq!(fresh["model"], "b", "{fresh:#}");
    assert_eq!(fresh["status"], "fail", "{fresh:#}");
    assert_eq!(
        fresh["link"], "http://dag.example:8686/tests/freshness_b_at",
        "{fresh:#}"
    );
    // The run's link names a run PostgreSQL holds.
    let run = calls
        .iter()
        .find(|c| c.1["kind"] == "run_failed")
        .and_then(|c| c.1["link"].as_str())
        .and_then(|l| l.strip_prefix("http://dag.example:8686/runs/"))
        .and_then(|id| id.parse::<i64>().ok())
        .expect("a link to /runs/<id>");
    let state: String = sqlx::query_scalar("SELECT state FROM dag.runs WHERE id = $1")
        .bind(run)
        .fetch_one(&p.db.pool)
        .await
        .expect("the linked run");
    assert_eq!(state, "failed");
    let recorded = p.recorded().await;
    let count = |kind: &str, state: &str| {
        recorded
            .iter()
            .filter(|r| r.0 == kind && r.2 == state)
            .count()
    };
    assert_eq!(count("freshness", "delivered"), 1, "{recorded:?}");
    assert!(count("freshness", "suppressed") >= 2, "{recorded:?}");
    assert_eq!(count("run_failed", "delivered"), 1, "{recorded:?}");
    p.db.drop_db().await.ok();
}

/// An ingester that cannot open its bronze table (the lake's `bronze`
/// is a file, not a folder) stops on an error; the scheduler restarts it
/// and alerts `ingester_down` once per cooldown, naming the source and the
/// error and linking to the freshness page.
#[tokio::test(flavor = "multi_thread")]
async fn an_ingester_that_stops_on_an_error_is_alerted_once() {
    let hook = Receiver::start("/hook", 0).await;
    let p = Project::new(&format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n\
         [scheduler]\ningest = true\nmetrics_addr = \"off\"\npoll_interval = \"1s\"\n\
         [[alerts]]\nname = \"oncall\"\non = [\"ingester_down\"]\nurl = \"{}\"\n",
        testkit::kafka_bootstrap().expect("broker"),
        hook.url
    ))
    .await;
    let root = p.root();
    std::fs::create_dir_all(root.join("models/p/bronze")).expect("mkdir");
    std::fs::write(
        root.join("models/p/bronze/raw.yml"),
        format!(
            "kind: kafka_source\ntopic: {}\n",
            testkit::unique_topic("down")
        ),
    )
    .expect("write");
    std::fs::create_dir_all(root.join("lake")).expect("mkdir");
    std::fs::write(root.join("lake/bronze"), "not a folder").expect("write");
    let mut scheduler = p.scheduler();
    // The first failure alerts; the restart 5 s later fails again and is
    // held back by the cooldown.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut recorded: Vec<(String, String, String, i32)> = Vec::new();
    while std::time::Instant::now() < deadline {
        // dag.alerts exists once the scheduler migrated the database.
        recorded = p.recorded_so_far().await.unwrap_or_default();
        if recorded.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let body = &calls[0].1;
    assert_eq!(body["kind"], "ingester_down", "{body:#}");
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("raw: ")),
        "{body:#}"
    );
    assert_eq!(
        body["link"], "http://dag.example:8686/freshness",
        "{body:#}"
    );
    assert_eq!(
        recorded
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str()))
            .collect::<Vec<_>>()[..2],
        [
            ("ingester_down", "raw", "delivered"),
            ("ingester_down", "raw", "suppressed")
        ],
        "{recorded:?}"
    );
    p.db.drop_db().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_alert_rule_names_its_key() {
    for (rule, key, says) in [
        (
            "on = [\"test_fail\"]\nurl = \"http://127.0.0.1:9/\"",
            "alerts[0].on",
            "test_fail is not an event",
        ),
        ("on = [\"run_failed\"]", "alerts[0].url", "missing"),
        (
            "on = [\"run_failed\"]\nurl_env = \"DAG_NO_SUCH_HOOK\"",
            "alerts[0].url_env",
            "DAG_NO_SUCH_HOOK is not set",
        ),
        (
            "on = [\"run_failed\"]\nurl = \"http://127.0.0.1:9/\"\ncooldown = \"soon\"",
            "alerts[0].cooldown",
            "",
        ),
    ] {
        let p = Project::new(&format!("[[alerts]]\n{rule}\n")).await;
        let out = p.run(&[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rule}: {err}");
        assert!(err.contains(key) && err.contains(says), "{rule}: {err}");
        p.db.drop_db().await.ok();
    }
}
