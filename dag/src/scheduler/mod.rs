//! `dag scheduler`: one long-running process that keeps the bronze
//! ingesters streaming, fires the pipeline's schedules, and runs the tasks
//! of queued runs (from schedules or `dag trigger`), with their state in
//! PostgreSQL so that several schedulers can share the work.
//!
//! - [`clock`]: the (system or virtual) clock and cron fire times.
//! - [`store`]: runs and tasks in the database: claims, leases, outcomes.
//! - [`pg`]: that store as the executor's state store.
//! - [`continuous`]: continuous mode, a bronze commit waking what reads it.
//! - `model_watch`: a warning when the pipeline's files change under it.
//!
//! The tasks run through the one executor (`crate::executor`), as
//! `dag run`'s do. Work is picked up on `NOTIFY dag_work` (a trigger, a finished task) or
//! every `poll_interval`. Each claimed task renews its lease every third of
//! it; a scheduler that dies stops renewing, and the others retry its
//! tasks once the lease ran out. SIGTERM drains: no new claims, in-flight
//! tasks get `grace_period` to finish (a model's commit is atomic, so one
//! cut short has written nothing), then are handed back; ingesters flush.

pub mod clock;
pub mod continuous;
pub mod kept_results;
mod model_watch;
pub mod pg;
mod settings;
pub mod store;

use crate::config::Loaded;
use crate::events::EventSink;
pub use crate::executor::Stop;
use crate::executor::task::{self, Runner};
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use clock::Schedule;
pub use settings::SchedulerSettings;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::Trigger;

/// The pipeline's schedules: pipeline.yml's and each model's own.
pub fn schedules(p: &Pipeline, tz: chrono_tz::Tz) -> Result<Vec<Schedule>, String> {
    let mut out = Vec::new();
    for s in &p.schedules {
        out.push(Schedule::new(&s.select, &s.cron, tz)?);
    }
    for m in p.graph.node_weights() {
        if let Some(cron) = &m.schedule {
            out.push(Schedule::new(&m.name, cron, tz)?);
        }
    }
    Ok(out)
}

/// Runs the ingester of `source` until `stop`; one that stops on an error
/// (a lake down past its retry timeout) is started again after a pause that
/// grows while it keeps failing: bronze keeps flowing while the scheduler
/// lives, and the lag gauge with it.
async fn keep_ingesting(
    cfg: &Loaded,
    p: &Pipeline,
    source: &str,
    shared: &crate::ingest::SharedStats,
    stop: &Arc<AtomicBool>,
    events: &dyn EventSink,
) {
    let names = [source.to_string()];
    let mut pause = Duration::from_secs(5);
    loop {
        let started = std::time::Instant::now();
        match crate::ingest::run_sharing(cfg, p, &names, false, shared, stop.clone()).await {
            Ok(_) => return,
            Err(e) => {
                events.emit(&crate::events::Event::IngesterDown {
                    source: source.to_string(),
                    error: format!("{e:#}"),
                });
                tracing::info!("ingester {source}: restarting in {pause:?}");
            }
        }
        if started.elapsed() > Duration::from_secs(600) {
            pause = Duration::from_secs(5);
        }
        let until = std::time::Instant::now() + pause;
        while std::time::Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

/// A scheduler's id: host, pid and a random suffix.
fn scheduler_id(host: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &id[..6])
}

/// `dag scheduler`: until SIGTERM/SIGINT.
pub async fn serve(
    cfg: &Loaded,
    p: Pipeline,
    events: Arc<dyn EventSink>,
) -> Result<CommandOutcome, CliError> {
    let stop = Arc::new(Stop::default());
    let stopping = stop.clone().on_signals();
    let metrics = Arc::new(metrics::Metrics::default());
    let outcome = serve_until(cfg, p, stop, metrics, events, false).await;
    stopping.abort();
    outcome
}

/// A scheduler until `stop` (`dag demo` runs one in-process, `quiet`, and
/// reads its `metrics`); what its tasks do goes to `events`. Long because:
/// it starts each of the scheduler's parts in order, one spawn each.
pub async fn serve_until(
    cfg: &Loaded,
    p: Pipeline,
    stop: Arc<Stop>,
    metrics: Arc<metrics::Metrics>,
    events: Arc<dyn EventSink>,
    quiet: bool,
) -> Result<CommandOutcome, CliError> {
    let mut s = SchedulerSettings::from_config(cfg);
    s.quiet = quiet;
    let schedules = schedules(&p, s.tz).map_err(|e| anyhow::anyhow!(e))?;
    // Coordination connections: LISTEN holds one for good; the heartbeat
    // and lease expiry, the schedules' firing and the claims need theirs;
    // and every running task renews its lease (with three connections,
    // renewals of several tasks would queue behind the others).
    let connections = 3 + u32::try_from(s.max_concurrency).unwrap_or(u32::MAX).min(64);
    let pool = crate::warehouse::ready_with(cfg, connections).await?;
    let host = jobs::datatest::report::hostname();
    let me = scheduler_id(&host);
    store::heartbeat(&pool, &me, &host)
        .await
        .map_err(anyhow::Error::from)?;
    if !quiet {
        println!(
            "scheduler {me}: {} schedule(s) in {}, up to {} task(s) at once",
            schedules.len(),
            s.tz,
            s.max_concurrency
        );
    }
    let mut background = tokio::task::JoinSet::new();
    background.spawn(keep_alive(pool.clone(), me.clone(), host, stop.clone()));
    for sch in schedules {
        background.spawn(fire(
            pool.clone(),
            p.clone(),
            cfg.config.warehouse.enabled,
            sch,
            s.clone(),
            stop.clone(),
        ));
    }
    if let Some(addr) = s.metrics_addr {
        background.spawn(metrics::serve(
            addr,
            pool.clone(),
            metrics.clone(),
            stop.clone(),
        ));
    }
    // Alerts hear what the console hears; what an earlier process left
    // undelivered is sent again.
    let alerts = crate::alerts::Alerts::start(cfg).map(Arc::new);
    let events: Arc<dyn EventSink> = match &alerts {
        Some(a) => Arc::new(crate::events::Tee(vec![events, a.clone()])),
        None => events,
    };
    background.spawn(crate::alerts::resend_until(cfg.clone(), stop.clone()));
    background.spawn(model_watch::warn_on_changes(p.root.clone(), stop.clone()));
    if cfg.config.ui.in_scheduler {
        let (listener, url) = crate::ui::bind(cfg).await?;
        if !quiet {
            println!("ui on {url}");
        }
        let (cfg, p, stop) = (cfg.clone(), p.clone(), stop.clone());
        background.spawn(async move {
            if let Err(e) = crate::ui::serve(listener, &cfg, p, stop).await {
                tracing::error!("{e}");
            }
        });
    }
    let ingest = (s.ingest
        && p.graph
            .node_weights()
            .any(|m| m.layer == jobs::decl::Layer::Bronze))
    .then(|| start_ingesters(cfg, &p, &metrics, &events, &stop));
    if ingest.is_some() && s.continuous {
        background.spawn(continuous::wake_on_commits(
            pool.clone(),
            p.clone(),
            cfg.clone(),
            metrics.ingest.clone(),
            s.clone(),
            stop.clone(),
        ));
    }
    let mut runner = Runner::new(cfg, p.clone()).keeping_test_bases();
    runner.events = Arc::new(metrics::Counting {
        metrics: metrics.clone(),
        p,
        then: events,
    });
    let limits = crate::executor::Limits {
        concurrency: usize::try_from(s.max_concurrency).unwrap_or(1),
        lease: Some(s.lease),
        timeout: Some(s.task_timeout),
        grace: s.grace_period,
        heavy_bytes: None,
    };
    let states = Arc::new(pg::PgStore::new(pool.clone(), &me, s.clone()).await);
    let runner = Arc::new(runner);
    background.spawn(sweep_results(
        pool.clone(),
        states.clone(),
        runner.clone(),
        stop.clone(),
    ));
    crate::executor::drive(states, runner, limits, &stop).await;
    store::stopped(&pool, &me).await.ok();
    if let Some(a) = &alerts {
        a.finish().await;
    }
    if let Some(i) = ingest {
        let _ = i.await;
    }
    background.abort_all();
    if !quiet {
        println!("scheduler {me}: stopped");
    }
    Ok(CommandOutcome::Success)
}

/// The pipeline's bronze ingesters, each kept running until `stop`
/// (they commit what is pending as they stop).
fn start_ingesters(
    cfg: &Loaded,
    p: &Pipeline,
    metrics: &metrics::Metrics,
    events: &Arc<dyn EventSink>,
    stop: &Arc<Stop>,
) -> tokio::task::JoinHandle<()> {
    let (cfg, p, shared, events) = (
        cfg.clone(),
        p.clone(),
        metrics.ingest.clone(),
        events.clone(),
    );
    let flag = Arc::new(AtomicBool::new(false));
    let (set, on) = (flag.clone(), stop.clone());
    tokio::spawn(async move {
        on.wait().await;
        set.store(true, Ordering::SeqCst);
    });
    let sources: Vec<String> = p
        .graph
        .node_weights()
        .filter(|m| m.source.is_bronze_source())
        .map(|m| m.name.clone())
        .collect();
    tokio::spawn(async move {
        let each = sources.into_iter().map(|source| {
            let (cfg, p, shared, flag, events) = (
                cfg.clone(),
                p.clone(),
                shared.clone(),
                flag.clone(),
                events.clone(),
            );
            async move { keep_ingesting(&cfg, &p, &source, &shared, &flag, &*events).await }
        });
        futures::future::join_all(each).await;
    })
}

/// Heartbeat, and handing out the tasks of schedulers that went silent.
async fn keep_alive(pool: PgPool, me: String, host: String, stop: Arc<Stop>) {
    while !stop.is_set() {
        if let Err(e) = store::heartbeat(&pool, &me, &host).await {
            tracing::warn!("heartbeat: {e}");
        }
        match store::expire_leases(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "{n} task(s) whose scheduler stopped renewing its lease go back to the queue"
            ),
            Err(e) => tracing::warn!("expiring leases: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Records the test results that ended runs still keep (their recorder
/// died, or the lake was down when they ended), now and then.
async fn sweep_results(
    pool: PgPool,
    states: Arc<pg::PgStore>,
    runner: Arc<Runner>,
    stop: Arc<Stop>,
) {
    const EVERY: Duration = Duration::from_secs(30);
    while !stop.is_set() {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.wait() => break,
        }
        let runs = match kept_results::runs_with_unrecorded_results(&pool).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("looking for unrecorded test results: {e}");
                continue;
            }
        };
        for run_id in runs {
            let name = kept_results::results_run(run_id);
            match crate::executor::record_results(&*states, &runner, run_id, &name).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("run {run_id}: {n} test results recorded late"),
                Err(e) => tracing::warn!("run {run_id}: recording the test results: {e:#}"),
            }
        }
    }
}

/// Fires one schedule: a run at each fire time (once, whichever scheduler
/// gets there first), or a skipped run while the previous one still goes.
async fn fire(
    pool: PgPool,
    p: Pipeline,
    load: bool,
    sch: Schedule,
    s: SchedulerSettings,
    stop: Arc<Stop>,
) {
    let key = sch.key();
    // Start after the last fire time recorded (by anyone), or now.
    let mut after = match store::last_fired(&pool, &key).await {
        Ok(Some(t)) if t > s.clock.now() - chrono::TimeDelta::minutes(1) => t,
        _ => s.clock.now(),
    };
    while !stop.is_set() {
        let Some(next) = sch.next_after(after) else {
            tracing::error!("schedule {key} never fires again");
            return;
        };
        // Sleep in short steps so that a drain is not held up.
        let wait = s.clock.until(next);
        if wait > Duration::ZERO {
            tokio::time::sleep(wait.min(Duration::from_millis(500))).await;
            continue;
        }
        after = next;
        let created = async {
            if !s.queue_overlaps
                && let Some(prev) = store::open_run_of(&pool, &key).await?
            {
                store::skip_run(&pool, &sch.select, &key, next, prev).await?;
                tracing::info!("schedule {key} at {next}: skipped, run {prev} still going");
                return Ok::<_, anyhow::Error>(());
            }
            let nodes = crate::select::Selector::parse(&sch.select)
                .and_then(|sel| p.select(&sel))
                .map_err(|e| anyhow::anyhow!(e))?;
            let nodes = crate::run::runnable(&p, &nodes);
            let tasks = task::plan(&p, &nodes, load);
            let trigger = Trigger::Schedule {
                key: key.clone(),
                at: next,
            };
            if let Some(id) =
                store::create_run(&pool, &sch.select, &trigger, &tasks, s.max_attempts).await?
            {
                tracing::info!("schedule {key} at {next}: run {id} queued");
            }
            Ok(())
        };
        if let Err(e) = created.await {
            tracing::error!("schedule {key} at {next}: {e:#}");
        }
    }
}

pub mod metrics;
