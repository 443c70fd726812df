//! `dag demo [--events N] [--keep]`: the whole pipeline on embedded
//! defaults, with nothing running beforehand. librdkafka's mock cluster is
//! the broker (in this process), the lake is `./demo/lake`, PostgreSQL is
//! `DATABASE_URL` or a private server ([`postgres`]). N simulated events
//! (every bad kind of the spec among them) are produced at a steady rate
//! while an in-process scheduler streams them into bronze and runs
//! silver, gold, the data tests and the load on each bronze commit
//! (continuous mode, one run at a time); then a final
//! `trigger gold`. It ends with a summary checked against what the
//! simulator sent: counts per layer, quarantine reasons, tests, warehouse
//! rows, produce-to-PostgreSQL freshness, where things are.

mod expected;
pub mod postgres;
mod summary;

use crate::config::Loaded;
use crate::executor::Stop;
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use crate::project::{load_pipeline, process_env};
use crate::scheduler::metrics::Metrics;
use expected::{Expected, expected};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jobs::datatest::Options;
use jobs::datatest::report::{Meta, Summary};
use jobs::decl::Source;
use jobs::model::Catalog;
use jobs::produce::sim::{Fleet, SimSettings};
use rdkafka::mocking::MockCluster;
use sqlx::PgPool;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use summary::count;

type Task<T> = tokio::task::JoinHandle<T>;
/// A command running on its own task.
type Running = Task<Result<CommandOutcome, CliError>>;

fn bar(multi: &MultiProgress, len: u64, label: &str) -> ProgressBar {
    let b = multi.add(ProgressBar::new(len));
    b.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos:>8}/{len:8} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_prefix(label.to_string());
    b
}

/// The progress bars, drawn only on a terminal.
fn bars(want: &Expected) -> (MultiProgress, ProgressBar, ProgressBar) {
    let multi = MultiProgress::with_draw_target(if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stdout()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bronze = bar(&multi, want.messages, "bronze");
    let warehouse = bar(&multi, want.valid_events, "warehouse");
    (multi, bronze, warehouse)
}

fn say(s: String) {
    println!("{s}");
}

pub async fn demo(
    explicit: Option<&Path>,
    events: u64,
    rate: Option<u64>,
    keep: bool,
) -> Result<CommandOutcome, CliError> {
    let started = Instant::now();
    let cwd = std::env::current_dir().map_err(|e| CliError::Other(e.into()))?;
    let dir = fresh_dir(&cwd)?;

    // The broker, in this process.
    let cluster: MockCluster<'static, _> = MockCluster::new(1)
        .map_err(|e| anyhow::anyhow!("cannot start librdkafka's mock cluster: {e}"))?;
    let bootstrap = cluster.bootstrap_servers();
    let (url, private) = warehouse_url().await?;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let (cfg, p) = configure(explicit, &cwd, &dir, &bootstrap, &url, &suffix, &cluster)?;

    // What the producer will send: the same simulator, same settings.
    let fleet = Fleet::from_data_dir(&cfg.data_dir()).map_err(|e| anyhow::anyhow!(e))?;
    let rate = rate.unwrap_or((events / 10).max(1000)).max(1);
    let start = crate::produce::default_start(events, &fleet);
    let topic = |model: &str, default: &str| crate::produce::topic_of(&p, model, default);
    let sim = SimSettings {
        seed: 42,
        events,
        start,
        bad_share: 0.02,
        telemetry_topic: topic("bronze_vehicle_telemetry", "vehicle-telemetry"),
        fines_topic: topic("bronze_traffic_fines", "traffic-fines"),
        ..SimSettings::default()
    };
    let want = expected(&sim, &fleet);
    say(format!(
        "dag demo: {events} simulated events ({} messages with fines, bad ones and duplicates) at {rate}/s \
         -> broker {bootstrap} -> lake {} -> PostgreSQL {}",
        want.messages,
        dir.join("lake").display(),
        jobs::warehouse::connect::target(&url)
    ));

    let stop = Arc::new(Stop::default());
    let metrics = Arc::new(Metrics::default());
    let (scheduler, producer) = spawn_workers(&cfg, &p, &stop, &metrics, events, rate, start);
    let pool = crate::warehouse::ready_warehouse(
        &cfg,
        &p,
        &crate::events::Console::new(crate::events::Style::Log),
    )
    .await?;

    // Progress: bronze (from the ingesters), the warehouse (its fact rows).
    let (_multi, bronze_bar, wh_bar) = bars(&want);
    stream(
        &pool,
        &metrics,
        &want,
        &producer,
        &scheduler,
        &bronze_bar,
        &wh_bar,
        started,
    )
    .await?;
    bronze_bar.finish_with_message("every message committed");
    let (run, state) = final_run(&pool, &cfg, &p, &scheduler, &wh_bar).await?;
    wh_bar.finish_with_message(format!("final run {run}: {state}"));
    let mut scheduler = Some(scheduler);
    if !keep {
        stop.set();
        if let Some(h) = scheduler.take() {
            let _ = h.await;
        }
    }
    let _ = producer.await;

    let report_dir = dir.join("report");
    let tests = quality_report(&cfg, &p, &report_dir, &suffix).await?;
    let catalog = Catalog::new(p.graph.node_weights().cloned());
    let settings = cfg.model_settings(false);
    let summary = summary::summarize(&catalog, &settings, &pool, &want, &p).await?;
    let fresh = summary::freshness(&catalog, &settings, &pool).await?;
    say(String::new());
    say(format!(
        "dag demo: {events} events through broker -> bronze -> silver -> gold -> tests -> PostgreSQL in {:.1} s (final run {state})",
        started.elapsed().as_secs_f64()
    ));
    for line in summary.lines {
        say(line);
    }
    say_where(&tests, fresh, &dir, &url, keep, private.is_none());
    let consistent =
        summary.consistent && state == "success" && tests.fail == 0 && tests.error == 0;
    say(format!(
        "  invariant   {}",
        if consistent {
            "holds: every count matches what the simulator sent"
        } else {
            "BROKEN: see the lines marked with !"
        }
    ));
    if keep {
        keep_up(&cfg, &p, &stop, &bootstrap, private.is_some()).await;
        if let Some(h) = scheduler.take() {
            let _ = h.await;
        }
    } else if let Some(pg) = private {
        pg.stop().map_err(CliError::Other)?;
    }
    drop(cluster);
    Ok(if consistent {
        CommandOutcome::Success
    } else {
        CommandOutcome::Failed
    })
}

/// The scheduler (in this process, quiet) and the producer, started.
fn spawn_workers(
    cfg: &Loaded,
    p: &Pipeline,
    stop: &Arc<Stop>,
    metrics: &Arc<Metrics>,
    events: u64,
    rate: u64,
    start: chrono::DateTime<chrono::Utc>,
) -> (Running, Running) {
    let scheduler = {
        let (cfg, p, stop, metrics) = (cfg.clone(), p.clone(), stop.clone(), metrics.clone());
        tokio::spawn(async move {
            let quiet =
                std::sync::Arc::new(crate::events::Console::new(crate::events::Style::Quiet));
            crate::scheduler::serve_until(&cfg, p, stop, metrics, quiet, true).await
        })
    };
    let producer = {
        let (cfg, p) = (cfg.clone(), p.clone());
        let args = crate::cli::ProduceArgs {
            file: None,
            events: Some(events),
            rate: Some(rate),
            seed: 42,
            start: Some(start.to_rfc3339()),
            bad_share: 0.02,
        };
        tokio::spawn(async move { crate::produce::run(&cfg, &p, args).await })
    };
    (scheduler, producer)
}

/// The closing lines after the counts: tests, freshness, where the lake,
/// the reports and the warehouse are.
fn say_where(
    tests: &Summary,
    fresh: Option<(f64, f64, usize)>,
    dir: &Path,
    url: &str,
    keep: bool,
    external_db: bool,
) {
    let report_dir = dir.join("report");
    say(format!(
        "  tests       {} passed, {} warned, {} failed, {} could not run  ({})",
        tests.pass,
        tests.warn,
        tests.fail,
        tests.error,
        report_dir.join("data-quality.md").display()
    ));
    say(match fresh {
        Some((p50, p99, n)) => format!(
            "  freshness   produce -> row in PostgreSQL: p50 {p50:.1} s, p99 {p99:.1} s over {n} events (continuous: a run per bronze commit)"
        ),
        None => "  freshness   no loaded event to measure".into(),
    });
    say(format!("  lake        {}", dir.join("lake").display()));
    say(format!(
        "  report      {}/{{junit.xml,data-quality.md,data-quality.json}}",
        report_dir.display()
    ));
    say(format!(
        "  query{}psql \"{url}\" -c \"SELECT driver_id, event_date, events, alert_events, fines_count, fines_eur FROM gold.agg_driver_daily ORDER BY fines_eur DESC LIMIT 5\"",
        if keep || external_db {
            "       "
        } else {
            " (--keep) "
        }
    ));
}

/// `./demo`, without the lake and report of an earlier demo.
fn fresh_dir(cwd: &Path) -> Result<PathBuf, CliError> {
    let dir = cwd.join("demo");
    for sub in ["lake", "report"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    std::fs::create_dir_all(dir.join("report")).map_err(|e| CliError::Other(e.into()))?;
    Ok(dir)
}

/// PostgreSQL: `DATABASE_URL`, else a private server with a fresh
/// database (returned, to stop it at the end).
async fn warehouse_url() -> Result<(String, Option<postgres::PrivatePostgres>), CliError> {
    if let Some(u) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Ok((u, None));
    }
    say("starting a private PostgreSQL (no DATABASE_URL)...".into());
    let pg = postgres::PrivatePostgres::start()?;
    let admin = PgPool::connect(&pg.url)
        .await
        .map_err(|e| anyhow::anyhow!("PostgreSQL at {}: {e}", pg.url))?;
    for sql in [
        "DROP DATABASE IF EXISTS dag_demo WITH (FORCE)",
        "CREATE DATABASE dag_demo",
    ] {
        sqlx::query(sql)
            .execute(&admin)
            .await
            .map_err(anyhow::Error::from)?;
    }
    admin.close().await;
    let url = match pg.url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/dag_demo"),
        None => pg.url.clone(),
    };
    Ok((url, Some(pg)))
}

/// The demo's configuration (the project's, or the shipped pipeline's when
/// there is none here) pointed at the in-process broker, `demo/lake` and
/// `url`; its topics created; silver and gold in continuous mode (a run
/// of what reads a source on each of its bronze commits), no schedule.
fn configure(
    explicit: Option<&Path>,
    cwd: &Path,
    dir: &Path,
    bootstrap: &str,
    url: &str,
    suffix: &str,
    cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
) -> Result<(Loaded, Pipeline), CliError> {
    let mut env = process_env();
    for (k, v) in [
        ("DAG_LAKE__URI", format!("file://{}/lake", dir.display())),
        ("DAG_KAFKA__BOOTSTRAP_SERVERS", bootstrap.to_string()),
        ("DAG_KAFKA__GROUP_ID", format!("dag-demo-{suffix}")),
        ("DAG_KAFKA__SESSION_TIMEOUT", "6s".into()),
        ("DAG_INGEST__BATCH_INTERVAL", "1s".into()),
        ("DAG_INGEST__CLOCK", "system".into()),
        ("DAG_WAREHOUSE__ENABLED", "true".into()),
        ("DAG_SCHEDULER__INGEST", "true".into()),
        ("DAG_SCHEDULER__CONTINUOUS", "true".into()),
        ("DAG_SCHEDULER__METRICS_ADDR", "off".into()),
        ("DAG_SCHEDULER__POLL_INTERVAL", "1s".into()),
        ("DAG_SCHEDULER__CLOCK", "system".into()),
        ("DATABASE_URL", url.to_string()),
    ] {
        env.insert(k.to_string(), v);
    }
    // The binary alone is enough: with no project here, the pipeline it
    // ships is written under demo/ and used.
    let shipped: PathBuf;
    let explicit = match explicit {
        None if !env.contains_key("DAG_CONFIG")
            && !cwd.join("dag.toml").is_file()
            && !cwd.join("models").is_dir() =>
        {
            let w = crate::examples::write("telematics", &dir.join("project"), true)?;
            say(format!(
                "no dag.toml or models/ here: using the telematics pipeline shipped in the binary ({})",
                dir.join("project").display()
            ));
            shipped = w.config;
            Some(shipped.as_path())
        }
        other => other,
    };
    let cfg = crate::config::load(explicit, &env, cwd)?;
    let mut p = load_pipeline(&cfg)?;
    // 8 partitions: the mock broker keeps 5 MB per partition, which a
    // steady run must not outpace between two ingest commits.
    for m in p.graph.node_weights() {
        if let Source::Kafka { topic } = &m.source {
            cluster
                .create_topic(topic, 8, 1)
                .map_err(|e| anyhow::anyhow!("creating topic {topic}: {e}"))?;
        }
    }
    // Silver and gold woken by bronze commits while events arrive
    // (DAG_SCHEDULER__CONTINUOUS above); no schedule of the project fires.
    p.schedules.clear();
    for idx in p.graph.node_indices() {
        p.graph[idx].schedule = None;
    }
    Ok((cfg, p))
}

/// Follows the stream until the producer is done and bronze holds every
/// message, moving the bars (a line every 2 s when not on a terminal).
#[allow(clippy::too_many_arguments)]
async fn stream<P, S>(
    pool: &PgPool,
    metrics: &Metrics,
    want: &Expected,
    producer: &Task<P>,
    scheduler: &Task<S>,
    bronze_bar: &ProgressBar,
    wh_bar: &ProgressBar,
    started: Instant,
) -> Result<(), CliError> {
    let plain = !std::io::stdout().is_terminal();
    let mut last_line = Instant::now();
    let committed = || -> u64 {
        metrics
            .ingest
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(_, st)| st.committed_rows.load(Ordering::Relaxed))
                    .sum()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let b = committed();
        let w = count(pool, "fact_telemetry").await as u64;
        bronze_bar.set_position(b);
        wh_bar.set_position(w);
        if plain && last_line.elapsed() > Duration::from_secs(2) {
            say(format!(
                "  {:>5.1}s  bronze {b}/{}  warehouse fact rows {w}/{}",
                started.elapsed().as_secs_f64(),
                want.messages,
                want.valid_events
            ));
            last_line = Instant::now();
        }
        if producer.is_finished() && b >= want.messages {
            return Ok(());
        }
        if Instant::now() > deadline || scheduler.is_finished() {
            return Err(CliError::Other(anyhow::anyhow!(
                "bronze stopped at {b} of {} messages",
                want.messages
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The final run: gold and everything upstream, tests, load; its id and
/// how it ended.
async fn final_run<S>(
    pool: &PgPool,
    cfg: &Loaded,
    p: &Pipeline,
    scheduler: &Task<S>,
    wh_bar: &ProgressBar,
) -> Result<(i64, String), CliError> {
    let gold = crate::select::Selector::parse("gold")
        .and_then(|sel| p.select(&sel))
        .map_err(CliError::Selector)?;
    let nodes = crate::trigger::with_upstream(p, &gold);
    let (run, _) = crate::trigger::queue(pool, cfg, p, &nodes, "gold").await?;
    loop {
        let state: String = sqlx::query_scalar("SELECT state FROM dag.runs WHERE id = $1")
            .bind(run)
            .fetch_one(pool)
            .await
            .map_err(anyhow::Error::from)?;
        wh_bar.set_position(count(pool, "fact_telemetry").await as u64);
        if matches!(state.as_str(), "success" | "failed" | "skipped") {
            return Ok((run, state));
        }
        // The in-process scheduler runs it: if it died, nothing will.
        if scheduler.is_finished() {
            return Err(CliError::Other(anyhow::anyhow!(
                "the scheduler stopped before the final run {run} ended (state {state})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The data-quality report over every row, written to `report_dir`.
async fn quality_report(
    cfg: &Loaded,
    p: &Pipeline,
    report_dir: &Path,
    suffix: &str,
) -> Result<Summary, CliError> {
    let opts = Options {
        full: true,
        ..Options::default()
    };
    let clock = opts.clock;
    let id = format!("demo-{suffix}");
    let every: Vec<_> = p.graph.node_indices().collect();
    let results = crate::datatest::run_on_current(cfg, p, &every, opts, &id, false).await?;
    let meta = Meta {
        run_id: id,
        generated_at: clock,
        full: true,
    };
    let files = crate::datatest::ReportFiles {
        junit: Some(report_dir.join("junit.xml")),
        markdown: Some(report_dir.join("data-quality.md")),
        json: Some(report_dir.join("data-quality.json")),
    };
    crate::datatest::write_reports(&meta, &results, &files, false)?;
    Ok(Summary::of(&results))
}

/// `--keep`: serves the UI (on ui.addr, or any free port when that one is
/// taken) and keeps everything up until Ctrl-C.
async fn keep_up(cfg: &Loaded, p: &Pipeline, stop: &Arc<Stop>, bootstrap: &str, private: bool) {
    let bound = match crate::ui::bind(cfg).await {
        Ok(b) => Ok(b),
        Err(_) => {
            let mut any = cfg.clone();
            any.config.ui.addr = "127.0.0.1:0".into();
            crate::ui::bind(&any).await
        }
    };
    match bound {
        Ok((listener, url)) => {
            say(format!("\nthe UI: {url}"));
            let (cfg, p, stop) = (cfg.clone(), p.clone(), stop.clone());
            tokio::spawn(async move { crate::ui::serve(listener, &cfg, p, stop).await });
        }
        Err(e) => say(format!("\nthe UI could not start: {e}")),
    }
    say(format!(
        "\n--keep: the broker ({bootstrap}), the scheduler and PostgreSQL stay up; Ctrl-C to stop (PostgreSQL keeps running{})",
        if private {
            ": /var/tmp/dag-demo-postgres"
        } else {
            ""
        }
    ));
    let _ = tokio::signal::ctrl_c().await;
    stop.set();
}
