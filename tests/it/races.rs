//! Loads racing each other while runs fail their data tests
//! (write-audit-publish under concurrency): a seed and a gold model with a
//! `not_null` test, rewritten again and again, one version in three
//! failing the test; for each version a `dag run` and two `dag load`s
//! start at once, and a `dag scheduler` runs and loads the model every
//! second throughout. Watched all along in PostgreSQL: no row of a version
//! whose test failed is ever published, and `dag.loaded_versions` never
//! goes back. At the end a clean run publishes the last version. And a
//! run's tests judge the version its task committed, whatever another run
//! committed while they waited.

use sqlx::Row;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::TestDb;

pub(crate) struct Project {
    dir: tempfile::TempDir,
    db: TestDb,
}

impl Project {
    /// `schedule`: the pipeline's schedule of `+g` (`None`: none).
    pub(crate) async fn new(schedule: Option<&str>) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write(
            "models/r/silver/s.yml",
            "kind: seed\nfile: s.csv\nunique_key: [id]\ncolumns:\n  - {name: id, type: int, nullable: false}\n  - {name: v, type: string}\n",
        );
        write(
            "models/r/gold/g.yml",
            "kind: sql\nmaterialized: table\nunique_key: [id]\nwarehouse: true\ncolumns:\n  - {name: id, type: int, nullable: false}\n  - {name: v, type: string, tests: [not_null]}\n",
        );
        write("models/r/gold/g.sql", "SELECT id, v FROM s\n");
        write(
            "models/r/pipeline.yml",
            &match schedule {
                Some(cron) => format!(
                    "description: races\nschedules:\n  - {{select: \"+g\", cron: \"{cron}\"}}\n"
                ),
                None => "description: races\n".to_string(),
            },
        );
        write("data/s.csv", "id,v\n1,a\n2,b\n");
        write(
            "dag.toml",
            &format!(
                "pipeline = \"r\"\n[lake]\nuri = \"file://{}/lake\"\n[warehouse]\nenabled = true\n\
                 [scheduler]\ningest = false\nmetrics_addr = \"off\"\npoll_interval = \"1s\"\n\
                 lease = \"3s\"\nretry_backoff = \"200ms\"\n",
                root.display()
            ),
        );
        Project {
            dir,
            db: TestDb::create().await.expect("db"),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    fn dag(&self, args: &[&str]) -> Command {
        let mut c = Command::new(testkit::dag_bin());
        c.current_dir(self.root())
            .args(args)
            .env("DATABASE_URL", &self.db.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub(crate) fn output(&self, args: &[&str]) -> Output {
        self.dag(args).output().expect("dag")
    }

    /// The seed's next version, written aside and renamed into place.
    pub(crate) fn seed(&self, text: &str) {
        let tmp = self.root().join("data/.s.csv.tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.root().join("data/s.csv")).expect("rename");
    }
}

/// Polls `sql` (one text value or none) every 50 ms until `done` holds
/// of it, for at most 30 s; the value it ended on.
async fn wait_for(
    pool: &sqlx::PgPool,
    sql: &'static str,
    what: &str,
    done: impl Fn(Option<&str>) -> bool,
) -> Option<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v: Option<String> = sqlx::query_scalar(sql)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten();
        if done(v.as_deref()) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited 30 s for {what}: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The warehouse's load lock, held by the test as another load would.
struct LoadLock(sqlx::pool::PoolConnection<sqlx::Postgres>);

impl LoadLock {
    async fn hold(pool: &sqlx::PgPool) -> LoadLock {
        let mut conn = pool.acquire().await.expect("connection");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(jobs::warehouse::load::LOCK)
            .execute(&mut *conn)
            .await
            .expect("lock");
        LoadLock(conn)
    }

    /// Unlocks (a session lock outlives the connection's return to the pool).
    async fn release(mut self) {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(jobs::warehouse::load::LOCK)
            .execute(&mut *self.0)
            .await
            .expect("unlock");
    }
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_loads_never_publish_a_failed_version_nor_go_back() {
    let p = Project::new(Some("* * * * * *")).await;
    let out = p.output(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = p.output(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut scheduler: Child = p
        .dag(&["scheduler"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scheduler");

    // The watcher: what PostgreSQL shows, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let watcher = {
        let (pool, stop, seen) = (p.db.pool.clone(), stop.clone(), seen.clone());
        tokio::spawn(async move {
            let (mut last, mut polls) = (-1i64, 0u32);
            while !stop.load(Ordering::SeqCst) {
                let nulls: i64 = sqlx::query_scalar("SELECT count(*) FROM gold.g WHERE v IS NULL")
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0);
                if nulls > 0 {
                    seen.lock()
                        .expect("lock")
                        .push(format!("{nulls} row(s) of a failed version published"));
                }
                let v: Option<i64> = sqlx::query_scalar(
                    "SELECT delta_version FROM dag.loaded_versions WHERE model = 'g'",
                )
                .fetch_optional(&pool)
                .await
                .unwrap_or(None);
                if let Some(v) = v {
                    if v < last {
                        seen.lock()
                            .expect("lock")
                            .push(format!("loaded version went back from {last} to {v}"));
                    }
                    last = last.max(v);
                }
                polls += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            polls
        })
    };

    let (mut failed_runs, mut blocked_loads) = (0, 0);
    for i in 0..12 {
        let bad = i % 3 == 2;
        p.seed(&if bad {
            format!("id,v\n1,\n2,b{i}\n")
        } else {
            format!("id,v\n1,a{i}\n2,b{i}\n")
        });
        let run = p.dag(&["run"]).spawn().expect("run");
        let loads: Vec<Child> = (0..2)
            .map(|_| p.dag(&["load"]).spawn().expect("load"))
            .collect();
        let run = run.wait_with_output().expect("run");
        failed_runs += usize::from(!run.status.success());
        for l in loads {
            let out = l.wait_with_output().expect("load");
            blocked_loads += usize::from(text(&out).contains("BLOCKED"));
        }
        // The schedule fires in between.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Last, a good version and a clean run publish it: alone (a run of g
    // racing the scheduler's may lose its commit to a conflict, and
    // `dag run` does not retry; the races above are what this test is for).
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    p.seed("id,v\n1,last\n2,last\n");
    let out = p.output(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    stop.store(true, Ordering::SeqCst);
    let polls = watcher.await.expect("watcher");
    let violations = seen.lock().expect("lock").clone();
    assert!(violations.is_empty(), "{violations:?}");
    assert!(polls > 50, "the watcher hardly looked: {polls} polls");
    assert!(
        failed_runs >= 4,
        "the failing versions did fail their runs: {failed_runs}"
    );
    let rows: Vec<(i32, String)> = sqlx::query("SELECT id, v FROM gold.g ORDER BY id")
        .fetch_all(&p.db.pool)
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, vec![(1, "last".to_string()), (2, "last".to_string())]);
    eprintln!(
        "races: {failed_runs} runs failed their test, {blocked_loads} loads blocked, {polls} polls of PostgreSQL"
    );
}

/// The scheduler's load publishes the version its run's tests passed, not
/// a newer one committed meanwhile: the load task is held on the load lock
/// while another process commits a version of the model that fails its
/// test; released, the load publishes the tested version (before the fix,
/// the scheduled load took whatever was latest and published the nulls).
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_load_publishes_the_tested_version_not_a_newer_failed_one() {
    let p = Project::new(None).await;
    let out = p.output(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    p.seed("id,v\n1,tested\n2,tested\n");
    let mut scheduler: Child = p
        .dag(&["scheduler"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scheduler");
    // Hold the load lock: the run's load task will wait on it.
    let lock = LoadLock::hold(&p.db.pool).await;
    wait_for(
        &p.db.pool,
        "SELECT count(*)::text FROM dag.schedulers",
        "a scheduler",
        |v| v != Some("0"),
    )
    .await;
    let out = p.output(&["trigger", "+g"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        &p.db.pool,
        "SELECT state FROM dag.task_runs WHERE node = 'load:warehouse' ORDER BY run_id DESC LIMIT 1",
        "the load task running",
        |v| v == Some("running"),
    )
    .await;
    // Meanwhile a version that fails its test is committed.
    p.seed("id,v\n1,\n2,untested\n");
    let out = p.output(&["run", "--no-load"]);
    assert!(
        !out.status.success(),
        "the failing version failed: {}",
        text(&out)
    );
    assert!(text(&out).contains("not_null_g_v"), "{}", text(&out));
    lock.release().await;
    let out = p.output(&["status"]);
    let state = wait_for(
        &p.db.pool,
        // The scheduler's run (`dag run` records its own, trigger cli).
        "SELECT state FROM dag.runs WHERE trigger <> 'cli' ORDER BY id DESC LIMIT 1",
        "the run's end",
        |v| !matches!(v, Some("running" | "queued")),
    )
    .await;
    assert_eq!(state.as_deref(), Some("success"), "{}", text(&out));
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let rows: Vec<(i32, Option<String>)> = sqlx::query("SELECT id, v FROM gold.g ORDER BY id")
        .fetch_all(&p.db.pool)
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, Some("tested".to_string())),
            (2, Some("tested".to_string()))
        ],
        "the warehouse holds the version the run's tests passed"
    );
}

/// A task's tests judge the version its own commit made, not a newer one
/// that another writer committed between that commit and the tests (as a
/// scheduler stopped just before its commit and taken over could land
/// one): a run whose version of `g` holds a null is held after `g`'s
/// commit, before its tests; meanwhile another run commits a version of
/// `g` that passes. The held run's test judges its own version and fails,
/// and nothing of it is published (before the fix its tests opened the
/// newer version, passed, and its load published the null).
#[tokio::test(flavor = "multi_thread")]
async fn a_runs_tests_judge_its_own_commit_not_a_newer_one() {
    let p = Project::new(None).await;
    let out = p.output(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    p.seed("id,v\n1,\n2,untested\n");
    let marker = p.root().join("tests-stalled");
    let held = p
        .dag(&["run"])
        .env(
            jobs::stall::STALL_TESTS,
            format!("g:6000:{}", marker.display()),
        )
        .spawn()
        .expect("dag run");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "g's tests never stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.seed("id,v\n1,passing\n2,passing\n");
    let out = p.output(&["run", "--no-load"]);
    assert!(out.status.success(), "the passing version: {}", text(&out));
    let other_done = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let out = held.wait_with_output().expect("dag run");
    let said = text(&out);
    let resumed: f64 = said
        .lines()
        .find_map(|l| l.split("g's tests resumes at ").nth(1))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("the tests never resumed: {said}"));
    assert!(
        resumed > other_done,
        "the other run ended after the stall ({other_done} > {resumed}): make the stall longer"
    );
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('gold.g')::text")
        .fetch_one(&p.db.pool)
        .await
        .expect("to_regclass");
    if table.is_some() {
        let nulls: i64 = sqlx::query_scalar("SELECT count(*) FROM gold.g WHERE v IS NULL")
            .fetch_one(&p.db.pool)
            .await
            .expect("count");
        assert_eq!(
            nulls, 0,
            "the warehouse holds the version whose test fails: {said}"
        );
    }
    assert!(!out.status.success(), "the null was judged: {said}");
    assert!(said.contains("not_null_g_v"), "{said}");
}

/// A load waits for another one holding the load lock, but not for ever:
/// after warehouse.retry_timeout it gives up, says why, and loads nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_load_waits_for_the_lock_only_as_long_as_retry_timeout() {
    let p = Project::new(None).await;
    let out = p.output(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    p.seed("id,v\n1,new\n2,new\n");
    let out = p.output(&["run", "--no-load"]);
    assert!(out.status.success(), "{}", text(&out));
    let lock = LoadLock::hold(&p.db.pool).await;
    let started = std::time::Instant::now();
    let out = p
        .dag(&["load"])
        .env("DAG_WAREHOUSE__RETRY_TIMEOUT", "2s")
        .output()
        .expect("load");
    let waited = started.elapsed();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("another load has held the warehouse's load lock for 2s"),
        "{}",
        text(&out)
    );
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    assert!(
        !text(&out).contains("slow statement"),
        "a library's warning on the user's terminal: {}",
        text(&out)
    );
    lock.release().await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT v FROM gold.g ORDER BY id")
        .fetch_all(&p.db.pool)
        .await
        .expect("rows");
    assert_eq!(rows, ["a", "b"], "the warehouse kept its state");
    // Once the lock is free, the same load goes through.
    let out = p.output(&["load"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<String> = sqlx::query_scalar("SELECT v FROM gold.g ORDER BY id")
        .fetch_all(&p.db.pool)
        .await
        .expect("rows");
    assert_eq!(rows, ["new", "new"]);
}
