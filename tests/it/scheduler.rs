//! The scheduler against a real PostgreSQL (a database per test), as
//! separate `dag scheduler` processes, on a small pipeline of two
//! independent branches (seed a -> c, seed b -> d) whose tasks are fast.
//!
//! What is proven: `dag trigger --wait` from another process is picked up
//! within a second (by notification: polling is set to 30 s) and
//! succeeds; a failing node leaves its downstream upstream_failed while
//! the other branch succeeds; retries wait their backoff, then succeed or
//! fail; two schedulers over 100 runs never run a task twice and leave none
//! stuck; a scheduler killed mid-task has it finished by the other once its
//! lease runs out, and one frozen in a commit past its lease never lands
//! it beside the other's; schedules fire at the right instants across a DST
//! change (virtual clock); SIGTERM drains and exits; `dag trigger` with no
//! scheduler says so.

use sqlx::Row;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use testkit::TestDb;

struct Project {
    dir: tempfile::TempDir,
    db: TestDb,
}

const SEED: &str = "kind: seed\nfile: {f}.csv\nunique_key: [id]\ncolumns:\n  - {name: id, type: int, nullable: false}\n  - {name: v, type: string}\n";
const SQL_YML: &str = "kind: sql\nmaterialized: table\nunique_key: [id]\ncolumns:\n  - {name: id, type: int, nullable: false}\n  - {name: v, type: string}\n";

impl Project {
    /// The pipeline, with `scheduler` settings appended to dag.toml and
    /// `pipeline_yml` as pipeline.yml.
    async fn new(scheduler: &str, pipeline_yml: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let silver = root.join("models/p/silver");
        let gold = root.join("models/p/gold");
        std::fs::create_dir_all(&silver).expect("mkdir");
        std::fs::create_dir_all(&gold).expect("mkdir");
        for (seed, model) in [("a", "c"), ("b", "d")] {
            std::fs::write(
                silver.join(format!("{seed}.yml")),
                SEED.replace("{f}", seed),
            )
            .expect("write");
            std::fs::write(gold.join(format!("{model}.yml")), SQL_YML).expect("write");
            std::fs::write(
                gold.join(format!("{model}.sql")),
                format!("SELECT id, v FROM {seed}\n"),
            )
            .expect("write");
        }
        std::fs::write(root.join("models/p/pipeline.yml"), pipeline_yml).expect("write");
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        std::fs::write(root.join("data/a.csv"), "id,v\n1,x\n2,y\n").expect("write");
        std::fs::write(root.join("data/b.csv"), "id,v\n1,x\n").expect("write");
        // Test defaults, unless `scheduler` sets the key itself.
        let defaults: String = [
            ("ingest", "false"),
            ("metrics_addr", "\"off\""),
            ("poll_interval", "\"30s\""),
            ("retry_backoff", "\"1s\""),
            ("lease", "\"3s\""),
            ("grace_period", "\"5s\""),
        ]
        .iter()
        .filter(|(k, _)| !scheduler.contains(&format!("{k} =")))
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
        std::fs::write(
            root.join("dag.toml"),
            format!(
                "pipeline = \"p\"\n[lake]\nuri = \"file://{}/lake\"\n[warehouse]\nenabled = false\n\
                 [scheduler]\n{defaults}{scheduler}\n",
                root.display(),
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

    fn dag(&self, args: &[&str]) -> Command {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(self.root())
            .args(args)
            .env("DATABASE_URL", &self.db.url);
        c
    }

    fn output(&self, args: &[&str]) -> Output {
        self.dag(args).output().expect("dag")
    }

    fn scheduler(&self, log: &str) -> Child {
        self.scheduler_with(log, &[])
    }

    /// A scheduler with `env` set, its output in `<log>.out` and `.err`.
    fn scheduler_with(&self, log: &str, env: &[(&str, String)]) -> Child {
        let file = |ext: &str| {
            std::fs::File::create(self.root().join(format!("{log}.{ext}"))).expect("log")
        };
        self.dag(&["scheduler"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(file("out")))
            .stderr(Stdio::from(file("err")))
            .spawn()
            .expect("spawn scheduler")
    }

    fn log(&self, log: &str) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.root().join(format!("{log}.{ext}"))).unwrap_or_default()
        };
        format!("{}\n{}", read("out"), read("err"))
    }

    /// Waits until `n` schedulers have a heartbeat.
    async fn wait_for_schedulers(&self, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let live: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM dag.schedulers WHERE stopped_at IS NULL \
                 AND heartbeat_at > now() - interval '5 seconds'",
            )
            .fetch_one(&self.db.pool)
            .await
            .unwrap_or(0);
            if live >= n {
                return;
            }
            assert!(Instant::now() < deadline, "no {n} live scheduler(s)");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Adds `e`, an append model over the seed `a`, and runs `a`.
    fn append_model_e(&self) {
        let gold = self.root().join("models/p/gold");
        std::fs::write(
            gold.join("e.yml"),
            "kind: sql\nmaterialized: append\ncolumns:\n  - {name: id, type: int, nullable: false}\n  - {name: v, type: string}\n",
        )
        .expect("write");
        std::fs::write(gold.join("e.sql"), "SELECT id, v FROM a\n").expect("write");
        assert!(self.output(&["run", "a"]).status.success());
    }

    /// The rows `e`'s Delta table holds.
    async fn rows_of_e(&self) -> usize {
        let pipeline =
            dag::pipeline::Pipeline::load(&self.root().join("models/p")).expect("pipeline");
        let catalog = jobs::model::Catalog::new(pipeline.graph.node_weights().cloned());
        let settings = jobs::model::RunSettings::new(
            format!("file://{}/lake", self.root().display()),
            Default::default(),
            self.root().join("data"),
        );
        catalog
            .open_input("e", &settings)
            .await
            .expect("open e")
            .read_all(None)
            .await
            .expect("read e")
            .height()
    }

    async fn tasks(&self, run: i64) -> Vec<(String, String, i32)> {
        sqlx::query(
            "SELECT node, state, attempt FROM dag.task_runs WHERE run_id = $1 ORDER BY node",
        )
        .bind(run)
        .fetch_all(&self.db.pool)
        .await
        .expect("tasks")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    }

    async fn run_state(&self, run: i64) -> String {
        sqlx::query_scalar("SELECT state FROM dag.runs WHERE id = $1")
            .bind(run)
            .fetch_one(&self.db.pool)
            .await
            .expect("run")
    }

    async fn wait_run(&self, run: i64, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let s = self.run_state(run).await;
            if matches!(s.as_str(), "success" | "failed" | "skipped") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "run {run} still {s}: {:?}",
                self.tasks(run).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn stdout(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_id(out: &Output) -> i64 {
    let text = stdout(out);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("run ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no run id in:\n{text}"))
}

fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// Sends `SIG<sig>` (`STOP`, `CONT`).
fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status();
}

fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for a child to exit within `within`; its exit code.
fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The port a scheduler's log says its metrics listen on.
pub(crate) fn metrics_port(log: &str) -> u16 {
    log.lines()
        .find_map(|l| {
            l.strip_prefix("metrics on http://127.0.0.1:")?
                .split('/')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no metrics address in:\n{log}"))
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .expect("send");
    let mut text = String::new();
    sock.read_to_string(&mut text).expect("read");
    text
}

const NO_SCHEDULES: &str = "description: test\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_trigger_from_another_process_is_picked_up_within_a_second_and_succeeds() {
    // Port 0: the scheduler binds a free port and prints it.
    let p = Project::new("metrics_addr = \"127.0.0.1:0\"", NO_SCHEDULES).await;
    // No scheduler yet: it says so and offers `dag run`.
    let out = p.output(&["trigger", "gold"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no scheduler is running"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("dag run gold"), "{}", stdout(&out));

    let mut s = p.scheduler("s1");
    p.wait_for_schedulers(1).await;
    let out = p.output(&["trigger", "gold", "--wait"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), p.log("s1"));
    let id = run_id(&out);
    assert!(
        stdout(&out).contains(&format!("run {id}: success")),
        "{}",
        stdout(&out)
    );
    // Upstream brought along: the seeds ran before the gold models.
    let tasks = p.tasks(id).await;
    let nodes: Vec<&str> = tasks.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(nodes, ["a", "b", "c", "d"]);
    assert!(
        tasks.iter().all(|t| t.1 == "success" && t.2 == 1),
        "{tasks:?}"
    );
    let lag: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(t.started_at) - r.created_at)::float8 \
         FROM dag.runs r JOIN dag.task_runs t ON t.run_id = r.id WHERE r.id = $1 GROUP BY r.id",
    )
    .bind(id)
    .fetch_one(&p.db.pool)
    .await
    .expect("lag");
    assert!(lag < 1.0, "picked up after {lag:.3}s");
    // History and per-node status from any shell.
    let runs = stdout(&p.output(&["runs"]));
    assert!(runs.contains("success") && runs.contains("4/0/4"), "{runs}");
    let status = stdout(&p.output(&["status", &id.to_string()]));
    assert!(
        status.contains(&format!("run {id} (manual `gold`): success")),
        "{status}"
    );

    // Prometheus metrics.
    let port = metrics_port(&p.log("s1"));
    let metrics = http_get(port, "/metrics");
    for want in [
        "dag_runs{state=\"success\"} 1",
        "dag_tasks_total{node=\"c\",outcome=\"success\"} 1",
        "dag_task_seconds_total{node=\"a\"}",
        "dag_rows_written_total{node=\"c\"} 2",
    ] {
        assert!(metrics.contains(want), "{want} not in:\n{metrics}");
    }

    // SIGTERM: drains and exits.
    sigterm(&s);
    assert_eq!(
        wait_exit(&mut s, Duration::from_secs(10)),
        Some(0),
        "{}",
        p.log("s1")
    );
    assert!(p.log("s1").contains("stopped"), "{}", p.log("s1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_node_fails_its_downstream_and_the_other_branch_succeeds() {
    let p = Project::new("retries = 0", NO_SCHEDULES).await;
    std::fs::remove_file(p.root().join("data/b.csv")).expect("rm");
    let mut s = p.scheduler("s1");
    p.wait_for_schedulers(1).await;
    let out = p.output(&["trigger", "c", "d", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let id = run_id(&out);
    let tasks = p.tasks(id).await;
    assert_eq!(
        tasks,
        [
            ("a".to_string(), "success".to_string(), 1),
            ("b".to_string(), "failed".to_string(), 1),
            ("c".to_string(), "success".to_string(), 1),
            ("d".to_string(), "upstream_failed".to_string(), 0),
        ]
    );
    assert_eq!(p.run_state(id).await, "failed");
    let status = stdout(&p.output(&["status"]));
    assert!(
        status.contains("b.csv"),
        "the error names the file: {status}"
    );
    kill9(&mut s);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_wait_their_backoff_then_succeed_or_fail() {
    let p = Project::new("retries = 2", NO_SCHEDULES).await;
    std::fs::remove_file(p.root().join("data/b.csv")).expect("rm");
    let mut s = p.scheduler("s1");
    p.wait_for_schedulers(1).await;
    let id = run_id(&p.output(&["trigger", "b"]));
    // After the first failure the file appears: the retry succeeds.
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.tasks(id).await[0].1 != "up_for_retry" {
        assert!(Instant::now() < deadline, "{:?}", p.tasks(id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(p.root().join("data/b.csv"), "id,v\n1,x\n").expect("write");
    assert_eq!(p.wait_run(id, Duration::from_secs(20)).await, "success");
    assert_eq!(
        p.tasks(id).await,
        [("b".to_string(), "success".to_string(), 2)]
    );

    // Never there: 3 attempts, each retry after 1 s then 2 s, then failed.
    std::fs::remove_file(p.root().join("data/b.csv")).expect("rm");
    let id = run_id(&p.output(&["trigger", "b"]));
    assert_eq!(p.wait_run(id, Duration::from_secs(30)).await, "failed");
    let starts: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM started_at)::float8 FROM dag.task_attempts \
         WHERE run_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&p.db.pool)
    .await
    .expect("attempts");
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert!(starts[1] - starts[0] >= 1.0, "{starts:?}");
    assert!(starts[2] - starts[1] >= 2.0, "backoff doubles: {starts:?}");
    kill9(&mut s);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_schedulers_share_100_runs_and_never_run_a_task_twice() {
    let p = Project::new("max_concurrency = 4", NO_SCHEDULES).await;
    let mut s1 = p.scheduler("s1");
    let mut s2 = p.scheduler("s2");
    p.wait_for_schedulers(2).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        let sel = if i % 2 == 0 { "c" } else { "d" };
        let out = p.output(&["trigger", sel]);
        assert!(out.status.success(), "{}", stdout(&out));
        ids.push(run_id(&out));
    }
    for id in &ids {
        assert_eq!(
            p.wait_run(*id, Duration::from_secs(120)).await,
            "success",
            "run {id}"
        );
    }
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT run_id, node FROM dag.task_attempts \
         GROUP BY run_id, node HAVING count(*) > 1) x",
    )
    .fetch_one(&p.db.pool)
    .await
    .expect("count");
    assert_eq!(twice, 0, "a task ran twice");
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM dag.task_attempts")
        .fetch_one(&p.db.pool)
        .await
        .expect("count");
    assert_eq!(attempts, 200, "two tasks per run, each once");
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dag.task_runs WHERE state <> 'success'")
            .fetch_one(&p.db.pool)
            .await
            .expect("count");
    assert_eq!(open, 0, "tasks left behind");
    let by: i64 = sqlx::query_scalar("SELECT count(DISTINCT scheduler) FROM dag.task_attempts")
        .fetch_one(&p.db.pool)
        .await
        .expect("count");
    assert_eq!(by, 2, "both schedulers took work");
    // The global limit held over both: never more than 4 tasks at once.
    let most: i64 = sqlx::query_scalar(
        "SELECT max((SELECT count(*) FROM dag.task_attempts b \
                     WHERE b.started_at <= a.started_at AND b.finished_at > a.started_at)) \
         FROM dag.task_attempts a",
    )
    .fetch_one(&p.db.pool)
    .await
    .expect("overlap");
    assert!((1..=4).contains(&most), "{most} tasks at once");
    kill9(&mut s1);
    kill9(&mut s2);
}

/// A seed big enough to take a while (a second or two) to load.
fn big_seed(p: &Project) {
    let mut csv = String::from("id,v\n");
    for i in 0..1_500_000 {
        csv += &format!("{i},value number {i}\n");
    }
    std::fs::write(p.root().join("data/a.csv"), csv).expect("write");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_killed_mid_task_has_it_finished_by_the_other() {
    let p = Project::new("", NO_SCHEDULES).await;
    big_seed(&p);
    let mut children = [p.scheduler("s1"), p.scheduler("s2")];
    p.wait_for_schedulers(2).await;
    let id = run_id(&p.output(&["trigger", "a"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let holder: String = loop {
        let held: Option<String> = sqlx::query_scalar(
            "SELECT claimed_by FROM dag.task_runs WHERE run_id = $1 AND state = 'running'",
        )
        .bind(id)
        .fetch_optional(&p.db.pool)
        .await
        .expect("claim");
        if let Some(h) = held {
            break h;
        }
        assert!(Instant::now() < deadline, "{:?}", p.tasks(id).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Scheduler ids are host:pid:suffix.
    let pid: u32 = holder
        .split(':')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("pid");
    let (dead, alive): (Vec<_>, Vec<_>) = children.iter_mut().partition(|c| c.id() == pid);
    assert_eq!(dead.len(), 1, "{holder}");
    for c in dead {
        kill9(c);
    }
    assert_eq!(
        p.wait_run(id, Duration::from_secs(60)).await,
        "success",
        "{}\n{}",
        p.log("s1"),
        p.log("s2")
    );
    let attempts: Vec<(i32, String, Option<String>)> = sqlx::query(
        "SELECT attempt, scheduler, outcome FROM dag.task_attempts WHERE run_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&p.db.pool)
    .await
    .expect("attempts")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        attempts[0].2.as_deref(),
        Some("lease expired"),
        "{attempts:?}"
    );
    assert_eq!(attempts[1].2.as_deref(), Some("success"), "{attempts:?}");
    assert_ne!(attempts[0].1, attempts[1].1);
    for c in alive {
        kill9(c);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_fire_at_their_local_times_across_a_dst_change() {
    // 09:00 Berlin daily; the clock starts 2026-03-27 12:00Z and runs
    // 20,000x (a day in 4.3 s). DST starts 2026-03-29 (+01 -> +02).
    let p = Project::new(
        "timezone = \"Europe/Berlin\"\nclock = \"2026-03-27T12:00:00Z x20000\"",
        "schedules:\n  - {select: a, cron: \"0 0 9 * * *\"}\n",
    )
    .await;
    let mut s = p.scheduler("s1");
    p.wait_for_schedulers(1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let fired: Vec<String> = loop {
        let fired: Vec<String> = sqlx::query_scalar(
            "SELECT to_char(scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') \
             FROM dag.runs WHERE trigger = 'schedule' ORDER BY scheduled_for",
        )
        .fetch_all(&p.db.pool)
        .await
        .expect("runs");
        if fired.len() >= 3 {
            break fired;
        }
        assert!(
            Instant::now() < deadline,
            "fired {fired:?}\n{}",
            p.log("s1")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        fired[..3],
        [
            "2026-03-28T08:00:00",
            "2026-03-29T07:00:00",
            "2026-03-30T07:00:00"
        ]
    );
    sigterm(&s);
    assert_eq!(
        wait_exit(&mut s, Duration::from_secs(10)),
        Some(0),
        "{}",
        p.log("s1")
    );
}

/// The runs of the schedule: (state, note, started, finished) in epoch s.
async fn scheduled_runs(p: &Project) -> Vec<(String, String, Option<f64>, Option<f64>)> {
    sqlx::query(
        "SELECT state, coalesce(note, ''), extract(epoch FROM started_at)::float8, \
         extract(epoch FROM finished_at)::float8 FROM dag.runs \
         WHERE trigger = 'schedule' ORDER BY scheduled_for",
    )
    .fetch_all(&p.db.pool)
    .await
    .expect("runs")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// An hourly schedule on a clock 14,400x fast fires every 0.25 s while
/// the first run (a 1.5M-row seed) takes longer than that.
async fn overlapping(overlap: &str) -> (Project, Vec<(String, String, Option<f64>, Option<f64>)>) {
    let p = Project::new(
        &format!("overlap = \"{overlap}\"\nclock = \"2026-06-01T00:00:00Z x14400\""),
        "schedules:\n  - {select: a, cron: \"0 0 * * * *\"}\n",
    )
    .await;
    big_seed(&p);
    let mut s = p.scheduler("s1");
    p.wait_for_schedulers(1).await;
    // Until the first run and 5 more fires are settled.
    let deadline = Instant::now() + Duration::from_secs(40);
    let runs = loop {
        let runs = scheduled_runs(&p).await;
        let done = runs
            .iter()
            .filter(|r| r.0 != "queued" && r.0 != "running")
            .count();
        if runs.first().is_some_and(|r| r.0 == "success") && done >= 6 {
            break runs;
        }
        assert!(Instant::now() < deadline, "{runs:?}\n{}", p.log("s1"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    sigterm(&s);
    assert_eq!(
        wait_exit(&mut s, Duration::from_secs(15)),
        Some(0),
        "{}",
        p.log("s1")
    );
    (p, runs)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_firing_during_its_previous_run_skips_or_queues() {
    let (_p, runs) = overlapping("skip").await;
    let skipped: Vec<_> = runs.iter().filter(|r| r.0 == "skipped").collect();
    assert!(!skipped.is_empty(), "{runs:?}");
    assert!(
        skipped.iter().all(|r| r.1.contains("still going")),
        "{runs:?}"
    );
    assert_eq!(runs[0].0, "success", "{runs:?}");

    let (_p, runs) = overlapping("queue").await;
    assert!(runs.iter().all(|r| r.0 != "skipped"), "{runs:?}");
    // Queued runs start only after the one before has finished.
    let done: Vec<_> = runs.iter().filter(|r| r.0 == "success").collect();
    assert!(done.len() >= 6, "{runs:?}");
    for w in done.windows(2) {
        let (Some(prev_end), Some(next_start)) = (w[0].3, w[1].2) else {
            panic!("{runs:?}");
        };
        assert!(next_start >= prev_end, "runs overlap: {runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_back_a_task_that_cannot_finish_within_the_grace_period() {
    let p = Project::new("grace_period = \"100ms\"", NO_SCHEDULES).await;
    big_seed(&p);
    let mut first = p.scheduler("s1");
    p.wait_for_schedulers(1).await;
    let id = run_id(&p.output(&["trigger", "a"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.tasks(id).await[0].1 != "running" {
        assert!(Instant::now() < deadline, "{:?}", p.tasks(id).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&first);
    assert_eq!(
        wait_exit(&mut first, Duration::from_secs(10)),
        Some(0),
        "{}",
        p.log("s1")
    );
    assert!(p.log("s1").contains("handed back 1"), "{}", p.log("s1"));
    assert_eq!(p.tasks(id).await[0].1, "queued");
    // Another scheduler finishes it; the cut-short attempt is on record.
    let mut second = p.scheduler("s2");
    assert_eq!(
        p.wait_run(id, Duration::from_secs(60)).await,
        "success",
        "{}",
        p.log("s2")
    );
    let outcomes: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT outcome FROM dag.task_attempts WHERE run_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&p.db.pool)
    .await
    .expect("attempts");
    assert_eq!(
        outcomes,
        [Some("handed back".to_string()), Some("success".to_string())]
    );
    kill9(&mut second);
}

/// A task that times out while its model is still about to commit is
/// cancelled and joined before its retry can run: the late commit never
/// lands, and the two executions never overlap (hypothesis 6 of issue 21:
/// the timed-out attempt kept running on the blocking pool and appended
/// its rows next to the retry's).
#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_task_never_commits_next_to_its_retry() {
    let p = Project::new("task_timeout = \"1s\"\nretries = 2", NO_SCHEDULES).await;
    p.append_model_e();
    // e's first commit stalls 3 s, past the task's 1 s timeout.
    let marker = p.root().join("stalled");
    let mut s = p.scheduler_with(
        "s1",
        &[(
            jobs::stall::STALL_COMMIT,
            format!("e:3000:{}", marker.display()),
        )],
    );
    p.wait_for_schedulers(1).await;
    let id = run_id(&p.output(&["trigger", "e"]));
    assert_eq!(
        p.wait_run(id, Duration::from_secs(30)).await,
        "success",
        "{}",
        p.log("s1")
    );
    assert!(marker.exists(), "the commit never stalled: {}", p.log("s1"));
    let attempts: Vec<(i32, f64, f64, Option<String>)> = sqlx::query_as(
        "SELECT attempt, extract(epoch FROM started_at)::float8, \
         extract(epoch FROM finished_at)::float8, outcome FROM dag.task_attempts \
         WHERE run_id = $1 AND node = 'e' ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&p.db.pool)
    .await
    .expect("attempts");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    // Give a late commit the time it would need to land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resumed: f64 = p
        .log("s1")
        .lines()
        .find_map(|l| l.split("'s commit resumes at ").nth(1))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no resumed commit: {}", p.log("s1")));
    assert!(
        attempts[1].1 >= resumed,
        "the retry started at {} while the timed-out attempt still ran (its commit resumed at \
         {resumed}): {attempts:?}",
        attempts[1].1
    );
    kill9(&mut s);
    assert_eq!(p.rows_of_e().await, 2, "each of a's rows once in e");
}

/// A running scheduler keeps the pipeline it loaded; when the model files
/// change under it, it says so (an edited rule was silently ignored by its
/// runs until a restart).
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_says_when_the_model_files_change_under_it() {
    let p = Project::new("", NO_SCHEDULES).await;
    let mut s = p.scheduler("s1");
    p.wait_for_schedulers(1).await;
    let said = "changed since this scheduler loaded them";
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!p.log("s1").contains(said), "{}", p.log("s1"));
    std::fs::write(
        p.root().join("models/p/gold/c.sql"),
        "SELECT id, v FROM a WHERE id > 1\n",
    )
    .expect("write");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.log("s1").contains(said) {
        assert!(Instant::now() < deadline, "no warning: {}", p.log("s1"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill9(&mut s);
}

/// A scheduler frozen (SIGSTOP) in a task's commit until its lease has
/// run out, another scheduler taking the task over and finishing the run,
/// then thawed: its commit, whose stall is over by then, never lands
/// beside the other's (whether the lost lease cancels it first or the
/// table refuses it as a concurrent commit of the same input version), so
/// the append model holds each of its input's rows once.
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_frozen_in_a_commit_and_taken_over_never_lands_it() {
    let p = Project::new("", NO_SCHEDULES).await;
    p.append_model_e();
    let marker = p.root().join("stalled");
    let mut frozen = p.scheduler_with(
        "s1",
        &[(
            jobs::stall::STALL_COMMIT,
            format!("e:1500:{}", marker.display()),
        )],
    );
    p.wait_for_schedulers(1).await;
    let id = run_id(&p.output(&["trigger", "e"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.log("s1").contains("stalling e's commit") {
        assert!(Instant::now() < deadline, "no stall: {}", p.log("s1"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&frozen, "STOP");
    let mut other = p.scheduler("s2");
    let state = p.wait_run(id, Duration::from_secs(60)).await;
    signal(&frozen, "CONT");
    assert_eq!(state, "success", "{}\n{}", p.log("s1"), p.log("s2"));
    // The thawed scheduler's stall is long over: give its commit the
    // time it would need to land.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.log("s1").contains("e's commit resumes at") {
        assert!(Instant::now() < deadline, "never resumed: {}", p.log("s1"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    kill9(&mut frozen);
    kill9(&mut other);
    let outcomes: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT scheduler, outcome FROM dag.task_attempts WHERE run_id = $1 AND node = 'e' \
         ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&p.db.pool)
    .await
    .expect("attempts");
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(
        outcomes[0].1.as_deref(),
        Some("lease expired"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].1.as_deref(), Some("success"), "{outcomes:?}");
    assert_ne!(outcomes[0].0, outcomes[1].0, "{outcomes:?}");
    assert_eq!(
        p.rows_of_e().await,
        2,
        "each of a's rows once in e: {}\n{}",
        p.log("s1"),
        p.log("s2")
    );
}

/// `dag produce --file` lines of events `e<i>` for `ids`, at now.
fn events_jsonl(topic: &str, ids: std::ops::Range<u32>) -> String {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    ids.map(|i| {
        format!(
            "{}\n",
            serde_json::json!({"topic": topic, "key": format!("e{i}"),
                "value": format!("{{\"id\": \"e{i}\", \"at\": \"{at}\"}}")})
        )
    })
    .collect()
}

/// The events pipeline (fixtures) on a topic of its own, in continuous
/// mode polling every `poll`, with a database of its own.
async fn continuous_project(label: &str, poll: &str) -> (TestDb, tempfile::TempDir, String) {
    let db = TestDb::create().await.expect("db");
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = testkit::unique_topic(label);
    crate::fixtures::events_pipeline(
        dir.path(),
        &topic,
        &format!(
            "[scheduler]\ncontinuous = true\nmetrics_addr = \"off\"\npoll_interval = \"{poll}\"\n"
        ),
    );
    (db, dir, topic)
}

/// Continuous mode: no schedule, no trigger; each bronze commit of the
/// scheduler's ingester queues a run of what reads the source, so rows
/// produced to Kafka reach the warehouse on their own, twice over, and
/// every run is a `continuous` one that succeeded. Each run's test results
/// reach the results table in one commit (one `tested_at`), all of them,
/// and none is left kept in PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn in_continuous_mode_a_bronze_commit_carries_rows_to_the_warehouse() {
    let (db, dir, topic) = continuous_project("continuous", "1s").await;
    let root = dir.path();
    std::fs::write(
        root.join("models/p/gold/latest.yml"),
        "kind: sql\nmaterialized: table\nunique_key: [id]\nwarehouse: true\ncolumns:\n  \
         - {name: id, type: string, nullable: false, tests: [not_null, unique]}\n  \
         - {name: at, type: timestamp, nullable: false}\n",
    )
    .expect("write");
    let dag = |args: &[&str]| {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(root).args(args).env("DATABASE_URL", &db.url);
        c
    };
    let produce = |name: &str, ids: std::ops::Range<u32>| {
        let text = events_jsonl(&topic, ids);
        let file = root.join(name);
        std::fs::write(&file, text).expect("write jsonl");
        let out = dag(&["produce", "--file", file.to_str().expect("utf-8")])
            .output()
            .expect("dag produce");
        assert!(out.status.success(), "{}", stdout(&out));
    };
    let mut scheduler = dag(&["scheduler"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scheduler");
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM gold.latest")
            .fetch_one(&db.pool)
            .await
            .unwrap_or(0)
    };
    let until = |want: i64| {
        let rows = &rows;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut got = 0;
            while Instant::now() < deadline {
                got = rows().await;
                if got >= want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            got
        }
    };
    produce("first.jsonl", 0..5);
    let first = until(5).await;
    produce("second.jsonl", 5..12);
    let second = until(12).await;
    sigterm(&scheduler);
    let _ = wait_exit(&mut scheduler, Duration::from_secs(30));
    assert_eq!((first, second), (5, 12), "rows in gold.latest");
    let runs: Vec<(String, String)> =
        sqlx::query_as("SELECT coalesce(schedule, trigger), state FROM dag.runs ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("runs");
    assert!(runs.len() >= 2, "{runs:?}");
    assert!(
        runs.iter()
            .all(|(s, state)| s == "continuous" && state == "success"),
        "{runs:?}"
    );
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dag.task_runs WHERE unrecorded_results IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .expect("kept");
    assert_eq!(kept, 0, "test results left unrecorded");
    let ran: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT run_id, sum(tests)::bigint FROM dag.task_runs GROUP BY run_id \
         HAVING sum(tests) > 0 ORDER BY run_id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tests per run");
    let recorded = recorded_results(&root.join("lake")).await;
    let want: BTreeMap<String, (i64, usize)> = ran
        .iter()
        .map(|(run, n)| (format!("run-{run}"), (*n, 1)))
        .collect();
    assert_eq!(recorded, want, "(results, commits) per run");
    db.drop_db().await.ok();
}

/// Continuous mode after a crash: bronze holds rows no run took (here
/// ingested by `dag ingest`, as a scheduler killed -9 right after its
/// commit would leave them); a scheduler starting queues a run of what
/// reads the source, and they reach the warehouse with no new message
/// (before, they waited for the next commit or a trigger).
#[tokio::test(flavor = "multi_thread")]
async fn in_continuous_mode_a_starting_scheduler_catches_up_what_bronze_holds() {
    let (db, dir, topic) = continuous_project("catch_up", "30s").await;
    let root = dir.path();
    let dag = |args: &[&str]| {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(root).args(args).env("DATABASE_URL", &db.url);
        c
    };
    std::fs::write(root.join("m.jsonl"), events_jsonl(&topic, 0..4)).expect("write");
    for args in [
        &["produce", "--file", "m.jsonl"][..],
        &["ingest", "--until-caught-up"][..],
    ] {
        let out = dag(args).output().expect("dag");
        assert!(out.status.success(), "{args:?}: {}", stdout(&out));
    }
    let log = std::fs::File::create(root.join("s.err")).expect("log");
    let mut scheduler = dag(&["scheduler"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("scheduler");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rows = 0;
    while Instant::now() < deadline && rows < 4 {
        rows = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM gold.latest")
            .fetch_one(&db.pool)
            .await
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sigterm(&scheduler);
    let _ = wait_exit(&mut scheduler, Duration::from_secs(30));
    assert_eq!(
        rows,
        4,
        "{}",
        std::fs::read_to_string(root.join("s.err")).unwrap_or_default()
    );
    db.drop_db().await.ok();
}

/// Per run id in the lake's results table: its rows, and in how many
/// commits they came (distinct `tested_at`).
async fn recorded_results(lake: &Path) -> BTreeMap<String, (i64, usize)> {
    let uri = format!("file://{}", lake.display());
    let df = crate::fixtures::results_table(&uri, Some(&["run_id", "tested_at"])).await;
    let runs = df
        .column("run_id")
        .expect("run_id")
        .str()
        .expect("str")
        .clone();
    let at = df
        .column("tested_at")
        .expect("tested_at")
        .cast(&polars::prelude::DataType::Int64)
        .expect("cast");
    let at = at.i64().expect("i64").clone();
    let mut seen: BTreeMap<String, (i64, std::collections::BTreeSet<i64>)> = BTreeMap::new();
    for i in 0..df.height() {
        let e = seen
            .entry(runs.get(i).unwrap_or_default().to_string())
            .or_default();
        e.0 += 1;
        e.1.insert(at.get(i).unwrap_or_default());
    }
    seen.into_iter()
        .map(|(run, (n, commits))| (run, (n, commits.len())))
        .collect()
}
