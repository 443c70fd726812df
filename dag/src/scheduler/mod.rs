//! `dag scheduler`: one long-running process that keeps the bronze
//! ingesters streaming, fires the pipeline's schedules, and runs the tasks
//! of queued runs (from schedules or `dag trigger`), with their state in
//! PostgreSQL so that several schedulers can share the work.
//!
//! - [`clock`]: the (system or virtual) clock and cron fire times.
//! - [`store`]: runs and tasks in the database: claims, leases, outcomes.
//! - [`task`]: the tasks of a run and what each one does.
//!
//! Work is picked up on `NOTIFY dag_work` (a trigger, a finished task) or
//! every `poll_interval`. Each claimed task renews its lease every third of
//! it; a scheduler that dies stops renewing, and the others retry its
//! tasks once the lease ran out. SIGTERM drains: no new claims, in-flight
//! tasks get `grace_period` to finish (a model's commit is atomic, so one
//! cut short has written nothing), then are handed back; ingesters flush.

pub mod clock;
mod stop;
pub mod store;
pub mod task;

use crate::config::Loaded;
use crate::events::{Event, EventSink, NodeFinished, NodeState};
use crate::outcome::{CliError, Outcome};
use crate::pipeline::Pipeline;
use clock::{Clock, Schedule};
use jobs::model::Cancel;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
pub use stop::Stop;
use store::{Claim, Trigger};
use task::Runner;

/// The `[scheduler]` settings, parsed (validated when the config loaded).
#[derive(Clone, Debug)]
pub struct Settings {
    pub tz: chrono_tz::Tz,
    pub max_concurrency: i64,
    pub max_attempts: i32,
    pub retry_backoff: Duration,
    pub task_timeout: Duration,
    pub lease: Duration,
    pub queue_overlaps: bool,
    pub poll_interval: Duration,
    pub grace_period: Duration,
    pub ingest: bool,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub clock: Clock,
    /// No lines on stdout (an in-process scheduler).
    pub quiet: bool,
}

impl Settings {
    pub fn from_config(cfg: &Loaded) -> Settings {
        let c = &cfg.config.scheduler;
        let d =
            |t: &str, secs: u64| jobs::spec::parse_duration(t).unwrap_or(Duration::from_secs(secs));
        Settings {
            tz: c.timezone.parse().unwrap_or(chrono_tz::UTC),
            max_concurrency: i64::from(c.max_concurrency.max(1)),
            max_attempts: c.retries as i32 + 1,
            retry_backoff: d(&c.retry_backoff, 10),
            task_timeout: d(&c.task_timeout, 3600),
            lease: d(&c.lease, 30),
            queue_overlaps: c.overlap == "queue",
            poll_interval: d(&c.poll_interval, 1),
            grace_period: d(&c.grace_period, 30),
            ingest: c.ingest,
            metrics_addr: c.metrics_addr.parse().ok(),
            clock: Clock::parse(&c.clock).unwrap_or(Clock::System),
            quiet: false,
        }
    }
}

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
) {
    let names = [source.to_string()];
    let mut pause = Duration::from_secs(5);
    loop {
        let started = std::time::Instant::now();
        match crate::ingest::run_sharing(cfg, p, &names, false, shared, stop.clone()).await {
            Ok(_) => return,
            Err(e) => tracing::error!("ingester {source} stopped: {e:#}; restarting in {pause:?}"),
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
) -> Result<Outcome, CliError> {
    let stop = Arc::new(Stop::default());
    let stopping = stop_on_signals(stop.clone());
    let metrics = Arc::new(metrics::Metrics::default());
    let outcome = serve_until(cfg, p, stop, metrics, events, false).await;
    stopping.abort();
    outcome
}

/// A scheduler until `stop` (`dag demo` runs one in-process, `quiet`, and
/// reads its `metrics`); what its tasks do goes to `events`.
pub async fn serve_until(
    cfg: &Loaded,
    p: Pipeline,
    stop: Arc<Stop>,
    metrics: Arc<metrics::Metrics>,
    events: Arc<dyn EventSink>,
    quiet: bool,
) -> Result<Outcome, CliError> {
    let mut s = Settings::from_config(cfg);
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
    let ingest = if s.ingest
        && p.graph
            .node_weights()
            .any(|m| m.layer == jobs::spec::Layer::Bronze)
    {
        let (cfg, p, shared) = (cfg.clone(), p.clone(), metrics.ingest.clone());
        // The ingesters stop (committing what is pending) with the scheduler.
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
        Some(tokio::spawn(async move {
            let each = sources.into_iter().map(|source| {
                let (cfg, p, shared, flag) = (cfg.clone(), p.clone(), shared.clone(), flag.clone());
                async move { keep_ingesting(&cfg, &p, &source, &shared, &flag).await }
            });
            futures::future::join_all(each).await;
        }))
    } else {
        None
    };
    let mut runner = Runner::new(cfg, p);
    runner.events = events;
    let runner = Arc::new(runner);
    work(&pool, &me, &s, runner, &stop, &metrics).await;
    store::stopped(&pool, &me).await.ok();
    if let Some(i) = ingest {
        let _ = i.await;
    }
    background.abort_all();
    if !quiet {
        println!("scheduler {me}: stopped");
    }
    Ok(Outcome::Success)
}

/// Sets `stop` on the first SIGTERM/SIGINT.
fn stop_on_signals(stop: Arc<Stop>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("draining: no new tasks; in-flight ones finish or are handed back");
        stop.set();
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

/// Fires one schedule: a run at each fire time (once, whichever scheduler
/// gets there first), or a skipped run while the previous one still goes.
async fn fire(pool: PgPool, p: Pipeline, load: bool, sch: Schedule, s: Settings, stop: Arc<Stop>) {
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

/// Claims and runs tasks until `stop`, then drains.
async fn work(
    pool: &PgPool,
    me: &str,
    s: &Settings,
    runner: Arc<Runner>,
    stop: &Stop,
    metrics: &Arc<metrics::Metrics>,
) {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(mut l) => match l.listen(store::CHANNEL).await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!("LISTEN failed ({e}); polling every {:?}", s.poll_interval);
                None
            }
        },
        Err(e) => {
            tracing::warn!("LISTEN failed ({e}); polling every {:?}", s.poll_interval);
            None
        }
    };
    let running = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    // Set when the drain's grace period is over: no task commits after.
    let stopping = Cancel::default();
    while !stop.is_set() {
        // Claim while there is room here (the global limit is the claim's).
        while running.load(Ordering::SeqCst) < s.max_concurrency as usize {
            match store::claim(pool, me, s.lease, s.max_concurrency).await {
                Ok(Some(c)) => {
                    running.fetch_add(1, Ordering::SeqCst);
                    let (pool, me, s, runner, running, metrics, cancel) = (
                        pool.clone(),
                        me.to_string(),
                        s.clone(),
                        runner.clone(),
                        running.clone(),
                        metrics.clone(),
                        stopping.child(),
                    );
                    tasks.spawn(async move {
                        run_claim(&pool, &me, &s, runner, &c, &metrics, cancel).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("claiming: {e}");
                    break;
                }
            }
        }
        // Wait for a notification, a finished task, the next retry that
        // falls due, or the poll interval.
        let due = store::next_retry_in(pool).await.ok().flatten();
        let tick = tokio::time::sleep(
            // (at least 50 ms: a due retry may wait for a slot)
            due.map_or(s.poll_interval, |d| {
                d.clamp(Duration::from_millis(50), s.poll_interval)
            }),
        );
        tokio::select! {
            _ = tick => {}
            _ = stop.wait() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            n = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = n {
                    tracing::warn!("notifications: {e}; polling");
                    listener = None;
                }
            }
        }
    }
    // Drain: in-flight tasks get the grace period, then go back.
    if !tasks.is_empty() {
        if !s.quiet {
            println!(
                "draining {} task(s) (up to {:?})",
                running.load(Ordering::SeqCst),
                s.grace_period
            );
        }
        let drained = tokio::time::timeout(s.grace_period, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // Tasks still going may not commit any more, and are waited
            // for: a task handed back while its thread still ran could be
            // claimed and run a second time at once.
            stopping.cancel();
            while tasks.join_next().await.is_some() {}
        }
    }
    match store::hand_back(pool, me).await {
        Ok(0) => {}
        Ok(n) => println!("handed back {n} unfinished task(s)"),
        Err(e) => tracing::error!("handing back tasks: {e}"),
    }
}

/// Runs one claimed task under its timeout, renewing the lease, and
/// records the outcome.
async fn run_claim(
    pool: &PgPool,
    me: &str,
    s: &Settings,
    runner: Arc<Runner>,
    c: &Claim,
    metrics: &metrics::Metrics,
    cancel: Cancel,
) {
    let nodes = match store::run_nodes(pool, c.run_id).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("run {}: {e}", c.run_id);
            return;
        }
    };
    // The task runs on the blocking pool: a model's CPU-bound stretches
    // must not hold up this loop's lease renewals (nor the heartbeat) on
    // the async workers, or a live scheduler would lose its claim.
    let audited = if c.node == crate::pipeline::LOAD_NODE {
        match store::run_versions(pool, c.run_id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("run {}: {e}", c.run_id);
                return;
            }
        }
    } else {
        Default::default()
    };
    let work = {
        let (runner, node, run_id) = (runner.clone(), c.node.clone(), c.run_id);
        let rt = tokio::runtime::Handle::current();
        let cancel = cancel.clone();
        let job = tokio::task::spawn_blocking(move || {
            rt.block_on(async move { runner.execute(run_id, &nodes, &node, cancel, audited).await })
        });
        async move {
            job.await
                .unwrap_or_else(|e| Err(format!("the task panicked or was cancelled: {e}")))
        }
    };
    tokio::pin!(work);
    let renew_every = s.lease / 3;
    let outcome = tokio::time::timeout(s.task_timeout, async {
        loop {
            tokio::select! {
                r = &mut work => break Some(r),
                _ = tokio::time::sleep(renew_every) => {
                    match store::renew(pool, me, c, s.lease).await {
                        Ok(true) => {}
                        Ok(false) => break None,
                        Err(e) => tracing::warn!("renewing the lease of {}: {e}", c.node),
                    }
                }
            }
        }
    })
    .await;
    // A task given up is cancelled (it cannot commit any more) and joined
    // before its retry can be claimed: never two executions at once.
    let outcome = match outcome {
        Ok(Some(r)) if !cancel.is_cancelled() => r,
        Ok(Some(_)) => {
            // The scheduler is stopping: the task is handed back.
            return;
        }
        Ok(None) => {
            cancel.cancel();
            let _ = (&mut work).await;
            tracing::warn!("run {} {}: claim lost, result dropped", c.run_id, c.node);
            return;
        }
        Err(_) => {
            cancel.cancel();
            let _ = (&mut work).await;
            Err(format!(
                "timed out after {:?} (nothing committed after that)",
                s.task_timeout
            ))
        }
    };
    let layer = runner
        .p
        .model(&c.node)
        .map_or("warehouse", |m| m.layer.as_str());
    metrics.record(&c.node, layer, &outcome);
    let (state, error) = match &outcome {
        Ok(_) => (NodeState::Success, None),
        Err(e) if c.attempt < c.max_attempts => (NodeState::Retrying, Some(e.clone())),
        Err(e) => (NodeState::Failed, Some(e.clone())),
    };
    let d = outcome.as_ref().ok().cloned().unwrap_or_default();
    let event = NodeFinished {
        attempt: u32::try_from(c.attempt).unwrap_or(0),
        max_attempts: u32::try_from(c.max_attempts).unwrap_or(0),
        rows_in: u64::try_from(d.rows_in.unwrap_or(0)).unwrap_or(0),
        rows_out: u64::try_from(d.rows_out.unwrap_or(0)).unwrap_or(0),
        quarantined: d.quarantined,
        duplicates: d.duplicates,
        version: d.version,
        seconds: d.seconds,
        note: d.note,
        ..NodeFinished::of(&c.run_id.to_string(), &c.node, state, error)
    };
    runner.events.emit(&Event::NodeFinished(event));
    match store::finish(pool, me, c, outcome, s.retry_backoff).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "run {} {}: claim lost before the result was written",
            c.run_id,
            c.node
        ),
        Err(e) => tracing::error!("run {} {}: recording the outcome: {e}", c.run_id, c.node),
    }
}

pub mod metrics;
