//! Continuous mode (`scheduler.continuous`): a bronze commit wakes what
//! reads it. The scheduler's own ingesters count the rows they commit;
//! when a source's count moves, a run of that source's downstream (its
//! runnable models, their tests, the load; until one such run succeeded,
//! also everything they read) is queued, unless a continuous
//! run is still queued or running: then the sources wait, and the next run
//! takes every commit that arrived meanwhile (micro-batches that grow with
//! the load instead of piling up). The run is a normal run in
//! `dag.runs` (schedule `continuous`), so several schedulers share the
//! work and a UI shows it; a scheduler only sees its own ingesters'
//! commits. A scheduler starting queues one run of what reads the sources
//! whose bronze tables exist: bronze may hold commits no run took (its
//! predecessor was killed between a commit and the run it would queue).

use super::settings::SchedulerSettings;
use super::store::{self, Trigger};
use crate::executor::Stop;
use crate::executor::task;
use crate::ingest::SharedStats;
use crate::pipeline::Pipeline;
use jobs::decl::Source;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The schedule key continuous runs are recorded under.
pub const KEY: &str = "continuous";

/// How often the ingesters' counters are looked at: a bound on the delay
/// it adds to freshness.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// What the ingesters had committed when last looked at: per source, its
/// counters (an ingester restarted gets new ones) and their row count.
#[derive(Default)]
struct Seen(BTreeMap<String, (usize, u64)>);

impl Seen {
    /// The sources whose committed rows moved since the last look.
    fn moved(&mut self, shared: &SharedStats) -> Vec<String> {
        let Ok(list) = shared.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, stats) in list.iter() {
            let id = Arc::as_ptr(stats) as usize;
            let rows = stats.committed_rows.load(Ordering::Relaxed);
            let before = self.0.insert(name.clone(), (id, rows));
            let grew = match before {
                Some((old, r)) if old == id => rows > r,
                _ => rows > 0,
            };
            if grew {
                out.push(name.clone());
            }
        }
        out
    }
}

/// Until `stop`: queues a run of the downstream of the sources that
/// committed, one continuous run at a time.
pub async fn wake_on_commits(
    pool: PgPool,
    p: Pipeline,
    cfg: crate::config::Loaded,
    shared: SharedStats,
    s: SchedulerSettings,
    stop: Arc<Stop>,
) {
    let load = cfg.config.warehouse.enabled;
    let mut seen = Seen::default();
    let mut waiting = with_tables(&p, &cfg.model_settings(false)).await;
    while !stop.is_set() {
        waiting.extend(seen.moved(&shared));
        if !waiting.is_empty() {
            // Until a continuous run succeeded, what the woken models read
            // (seeds, other sources' silver) may not exist yet: it comes
            // along. After, only what the commits changed runs (a seed
            // left unchanged still costs a task per run); a changed seed
            // comes with a schedule or `dag trigger`.
            let last = store::last_run_state(&pool, KEY).await;
            let upstream = !matches!(last.as_ref().map(|s| s.as_deref()), Ok(Some("success")));
            match queue(&pool, &p, load, &waiting, upstream, &s).await {
                Ok(true) => waiting.clear(),
                Ok(false) => {}
                Err(e) => tracing::warn!("continuous: {e:#}"),
            }
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// The sources whose bronze table exists already: a scheduler starting
/// (after a crash, too) queues one run of what reads them, which catches
/// up the commits no run took yet (those of a scheduler killed before it
/// queued their run; with nothing new, the run writes nothing).
async fn with_tables(p: &Pipeline, lake: &jobs::model::RunSettings) -> BTreeSet<String> {
    let catalog = jobs::model::Catalog::new(p.graph.node_weights().cloned());
    let mut out = BTreeSet::new();
    for m in p.graph.node_weights() {
        let source = matches!(m.source, Source::Kafka { .. } | Source::Files { .. });
        if source && catalog.open_input(&m.name, lake).await.is_ok() {
            out.insert(m.name.clone());
        }
    }
    out
}

/// Queues a run of `sources`' downstream unless a continuous run is still
/// open; whether one was queued.
async fn queue(
    pool: &PgPool,
    p: &Pipeline,
    load: bool,
    sources: &BTreeSet<String>,
    upstream: bool,
    s: &SchedulerSettings,
) -> anyhow::Result<bool> {
    if store::open_run_of(pool, KEY).await?.is_some() {
        return Ok(false);
    }
    let selector: Vec<String> = sources.iter().map(|n| format!("{n}+")).collect();
    let nodes = crate::select::Selector::parse_args(&selector)
        .and_then(|sel| p.select(&sel))
        .map_err(|e| anyhow::anyhow!(e))?;
    let nodes = if upstream {
        crate::trigger::with_upstream(p, &nodes)
    } else {
        nodes
    };
    let nodes = crate::run::runnable(p, &nodes);
    if nodes.is_empty() {
        // Nothing reads these sources: nothing to wake.
        return Ok(true);
    }
    let tasks = task::plan(p, &nodes, load);
    let trigger = Trigger::Schedule {
        key: KEY.to_string(),
        at: s.clock.now(),
    };
    let label = selector.join(" ");
    if let Some(id) = store::create_run(pool, &label, &trigger, &tasks, s.max_attempts).await? {
        tracing::info!("continuous: {label}: run {id} queued");
    }
    Ok(true)
}
