//! `dag demo [--events N] [--keep]`: the whole pipeline on embedded
//! defaults, with nothing running beforehand. librdkafka's mock cluster is
//! the broker (in this process), the lake is `./demo/lake`, PostgreSQL is
//! `DATABASE_URL` or a private server ([`postgres`]). N simulated events
//! (every bad kind of the spec among them) are produced at a steady rate
//! while an in-process scheduler streams them into bronze and runs
//! silver, gold, the data tests and the load every 5 seconds; then a final
//! `trigger gold`. It ends with a summary checked against what the
//! simulator sent: counts per layer, quarantine reasons, tests, warehouse
//! rows, produce-to-PostgreSQL freshness, where things are.

pub mod postgres;

use crate::executor::Stop;
use crate::outcome::{CliError, Outcome};
use crate::pipeline::Schedule;
use crate::project::{load_pipeline, process_env};
use crate::scheduler::metrics::Metrics;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jobs::datatest::Options;
use jobs::datatest::report::{Meta, Summary};
use jobs::model::Catalog;
use jobs::produce::sim::{Fleet, Kind, SimSettings, Simulator};
use jobs::spec::{Pos, Source};
use rdkafka::mocking::MockCluster;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What the simulator sends for the demo's settings.
struct Expected {
    messages: u64,
    valid_events: u64,
    valid_fines: u64,
    kinds: BTreeMap<Kind, u64>,
}

fn expected(settings: &SimSettings, fleet: &Fleet) -> Expected {
    let mut events = HashSet::new();
    let mut fines = HashSet::new();
    let mut messages = 0;
    let mut sim = Simulator::new(settings.clone(), fleet);
    for (kind, record) in sim.by_ref() {
        messages += 1;
        let field = match kind {
            Kind::Telemetry => "event_id",
            Kind::Fine => "fine_id",
            _ => continue,
        };
        let id = record
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| v[field].as_str().map(str::to_string));
        if let Some(id) = id {
            if kind == Kind::Telemetry {
                events.insert(id);
            } else {
                fines.insert(id);
            }
        }
    }
    Expected {
        messages,
        valid_events: events.len() as u64,
        valid_fines: fines.len() as u64,
        kinds: sim.counts.clone(),
    }
}

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

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM gold.{table}"
    )))
    .fetch_one(pool)
    .await
    .unwrap_or(0)
}

pub async fn demo(
    explicit: Option<&Path>,
    events: u64,
    rate: Option<u64>,
    keep: bool,
) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let cwd = std::env::current_dir().map_err(|e| CliError::Other(e.into()))?;
    let dir = cwd.join("demo");
    for sub in ["lake", "report"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    std::fs::create_dir_all(dir.join("report")).map_err(|e| CliError::Other(e.into()))?;
    let say = |s: String| println!("{s}");

    // The broker, in this process.
    let cluster: MockCluster<'static, _> = MockCluster::new(1)
        .map_err(|e| anyhow::anyhow!("cannot start librdkafka's mock cluster: {e}"))?;
    let bootstrap = cluster.bootstrap_servers();
    // PostgreSQL: DATABASE_URL, else a private server with a fresh database.
    let (url, private) = match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(u) => (u, None),
        None => {
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
            (url, Some(pg))
        }
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut env = process_env();
    for (k, v) in [
        ("DAG_LAKE__URI", format!("file://{}/lake", dir.display())),
        ("DAG_KAFKA__BOOTSTRAP_SERVERS", bootstrap.clone()),
        ("DAG_KAFKA__GROUP_ID", format!("dag-demo-{suffix}")),
        ("DAG_KAFKA__SESSION_TIMEOUT", "6s".into()),
        ("DAG_INGEST__BATCH_INTERVAL", "1s".into()),
        ("DAG_INGEST__CLOCK", "system".into()),
        ("DAG_WAREHOUSE__ENABLED", "true".into()),
        ("DAG_SCHEDULER__INGEST", "true".into()),
        ("DAG_SCHEDULER__METRICS_ADDR", "off".into()),
        ("DAG_SCHEDULER__POLL_INTERVAL", "1s".into()),
        ("DAG_SCHEDULER__CLOCK", "system".into()),
        ("DATABASE_URL", url.clone()),
    ] {
        env.insert(k.to_string(), v);
    }
    // The binary alone is enough: with no project here, the pipeline it
    // ships is written under demo/ and used.
    let shipped;
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
    let cfg = crate::config::load(explicit, &env, &cwd)?;
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
    // Silver and gold every 5 seconds while events arrive.
    p.schedules = vec![Schedule {
        select: "silver gold".into(),
        cron: "*/5 * * * * *".into(),
        pos: Pos::new("dag demo", 0, 0),
    }];
    for idx in p.graph.node_indices() {
        p.graph[idx].schedule = None;
    }

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

    // The scheduler, in this process, quiet.
    let stop = Arc::new(Stop::default());
    let metrics = Arc::new(Metrics::default());
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
    let pool = crate::warehouse::ready_warehouse(
        &cfg,
        &p,
        &crate::events::Console::new(crate::events::Style::Log),
    )
    .await?;

    // Progress: bronze (from the ingesters), the warehouse (its fact rows).
    let multi = MultiProgress::with_draw_target(if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stdout()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bronze_bar = bar(&multi, want.messages, "bronze");
    let wh_bar = bar(&multi, want.valid_events, "warehouse");
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
        let w = count(&pool, "fact_telemetry").await as u64;
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
            break;
        }
        if Instant::now() > deadline || scheduler.is_finished() {
            return Err(CliError::Other(anyhow::anyhow!(
                "bronze stopped at {b} of {} messages",
                want.messages
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bronze_bar.finish_with_message("every message committed");
    // The final run: gold and everything upstream, tests, load.
    let gold = crate::select::Selector::parse("gold")
        .and_then(|sel| p.select(&sel))
        .map_err(CliError::Selector)?;
    let nodes = crate::trigger::with_upstream(&p, &gold);
    let (run, _) = crate::trigger::queue(&pool, &cfg, &p, &nodes, "gold").await?;
    let state = loop {
        let state: String = sqlx::query_scalar("SELECT state FROM dag.runs WHERE id = $1")
            .bind(run)
            .fetch_one(&pool)
            .await
            .map_err(anyhow::Error::from)?;
        wh_bar.set_position(count(&pool, "fact_telemetry").await as u64);
        if matches!(state.as_str(), "success" | "failed" | "skipped") {
            break state;
        }
        // The in-process scheduler runs it: if it died, nothing will.
        if scheduler.is_finished() {
            return Err(CliError::Other(anyhow::anyhow!(
                "the scheduler stopped before the final run {run} ended (state {state})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    wh_bar.finish_with_message(format!("final run {run}: {state}"));
    let mut scheduler = Some(scheduler);
    if !keep {
        stop.set();
        if let Some(h) = scheduler.take() {
            let _ = h.await;
        }
    }
    let _ = producer.await;

    // The data-quality report (every row).
    let opts = Options {
        full: true,
        ..Options::default()
    };
    let clock = opts.clock;
    let id = format!("demo-{suffix}");
    let every: Vec<_> = p.graph.node_indices().collect();
    let results = crate::datatest::run_on_current(&cfg, &p, &every, opts, &id, false).await?;
    let meta = Meta {
        run_id: id,
        generated_at: clock,
        full: true,
    };
    let report_dir = dir.join("report");
    let files = crate::datatest::ReportFiles {
        junit: Some(report_dir.join("junit.xml")),
        markdown: Some(report_dir.join("data-quality.md")),
        json: Some(report_dir.join("data-quality.json")),
    };
    crate::datatest::write_reports(&meta, &results, &files, false)?;
    let tests = Summary::of(&results);
    let catalog = Catalog::new(p.graph.node_weights().cloned());
    let settings = cfg.model_settings(false);
    // The warehouse tables: the models marked for it.
    let warehouse: Vec<String> = p
        .graph
        .node_weights()
        .filter(|m| m.warehouse.is_some())
        .map(|m| m.name.clone())
        .collect();
    let summary = summarize(&catalog, &settings, &pool, &want, &warehouse).await?;
    let fresh = freshness(&catalog, &settings, &pool).await?;
    say(String::new());
    say(format!(
        "dag demo: {events} events through broker -> bronze -> silver -> gold -> tests -> PostgreSQL in {:.1} s (final run {state})",
        started.elapsed().as_secs_f64()
    ));
    for line in summary.lines {
        say(line);
    }
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
            "  freshness   produce -> row in PostgreSQL: p50 {p50:.1} s, p99 {p99:.1} s over {n} events (loads every ~5 s)"
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
        if keep || private.is_none() {
            "       "
        } else {
            " (--keep) "
        }
    ));
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
        // The UI on ui.addr, or any free port when that one is taken.
        let bound = match crate::ui::bind(&cfg).await {
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
            if private.is_some() {
                ": /var/tmp/dag-demo-postgres"
            } else {
                ""
            }
        ));
        let _ = tokio::signal::ctrl_c().await;
        stop.set();
        if let Some(h) = scheduler.take() {
            let _ = h.await;
        }
    } else if let Some(pg) = private {
        pg.stop().map_err(CliError::Other)?;
    }
    drop(cluster);
    Ok(if consistent {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

struct SummaryLines {
    lines: Vec<String>,
    consistent: bool,
}

async fn rows(catalog: &Catalog, s: &jobs::model::Settings, name: &str) -> Result<u64, CliError> {
    let t = catalog
        .open_input(name, s)
        .await
        .map_err(anyhow::Error::from)?;
    let first = t.schema().field(0).name().clone();
    Ok(t.read_all(Some(&[first.as_str()]))
        .await
        .map_err(anyhow::Error::from)?
        .height() as u64)
}

async fn summarize(
    catalog: &Catalog,
    s: &jobs::model::Settings,
    pool: &PgPool,
    want: &Expected,
    tables: &[String],
) -> Result<SummaryLines, CliError> {
    let mut lines = Vec::new();
    let mut ok = true;
    let mut check = |good: bool| {
        ok &= good;
        if good { "" } else { "  !" }
    };
    let bt = rows(catalog, s, "bronze_vehicle_telemetry").await?;
    let bf = rows(catalog, s, "bronze_traffic_fines").await?;
    lines.push(format!(
        "  bronze      {} messages (telemetry {bt}, fines {bf}); produced {}{}",
        bt + bf,
        want.messages,
        check(bt + bf == want.messages)
    ));
    let st = rows(catalog, s, "silver_telemetry").await?;
    let sf = rows(catalog, s, "silver_fines").await?;
    lines.push(format!(
        "  silver      {st} events, {sf} fines; distinct valid sent: {}, {}{}",
        want.valid_events,
        want.valid_fines,
        check(st == want.valid_events && sf == want.valid_fines)
    ));
    let mut quarantined = 0;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for q in ["quarantine_telemetry", "quarantine_fines"] {
        let t = catalog
            .open_input(q, s)
            .await
            .map_err(anyhow::Error::from)?;
        let df = t
            .read_all(Some(&["reason"]))
            .await
            .map_err(anyhow::Error::from)?;
        quarantined += df.height() as u64;
        if let Ok(col) = df.column("reason").and_then(|c| c.str().cloned()) {
            for r in col.iter().flatten() {
                // `missing:<field>` and the like: by kind of reason.
                let kind = r.split(':').next().unwrap_or(r);
                *reasons.entry(kind.to_string()).or_default() += 1;
            }
        }
    }
    let duplicates = (bt + bf).saturating_sub(st + sf + quarantined);
    lines.push(format!(
        "  duplicates  {duplicates} (bronze - silver - quarantined; the simulator re-sent {})",
        want.kinds.get(&Kind::Duplicate).copied().unwrap_or(0)
    ));
    let by_reason: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
    lines.push(format!(
        "  quarantined {quarantined}: {}",
        by_reason.join(", ")
    ));
    let mut gold = Vec::new();
    let mut warehouse = Vec::new();
    let (mut wh_ok, mut fact_ok) = (true, false);
    for t in tables.iter().map(String::as_str) {
        let g = rows(catalog, s, t).await?;
        let w = count(pool, t).await as u64;
        wh_ok &= g == w;
        if t == "fact_telemetry" {
            fact_ok = g == want.valid_events;
        }
        gold.push(format!("{t} {g}"));
        warehouse.push(format!("{t} {w}"));
    }
    lines.push(format!(
        "  gold        {}{}",
        gold.join(", "),
        check(fact_ok)
    ));
    lines.push(format!(
        "  warehouse   {} (= gold){}",
        warehouse.join(", "),
        check(wh_ok)
    ));
    Ok(SummaryLines {
        lines,
        consistent: ok,
    })
}

/// p50 and p99 of produce -> PostgreSQL: each loaded event's Kafka
/// timestamp (when it was produced) to the commit of the first load that
/// carried the fact version it was added in.
async fn freshness(
    catalog: &Catalog,
    s: &jobs::model::Settings,
    pool: &PgPool,
) -> Result<Option<(f64, f64, usize)>, CliError> {
    let err = |e: jobs::model::table::TableError| CliError::Other(e.into());
    let loads: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT to_version, extract(epoch FROM loaded_at)::float8 FROM dag.load_history \
         WHERE model = 'fact_telemetry' ORDER BY loaded_at",
    )
    .fetch_all(pool)
    .await
    .map_err(anyhow::Error::from)?;
    // When each event was produced (its first copy in bronze).
    let bronze = catalog
        .open_input("bronze_vehicle_telemetry", s)
        .await
        .map_err(anyhow::Error::from)?;
    let df = bronze
        .read_all(Some(&["value", "kafka_timestamp"]))
        .await
        .map_err(err)?;
    let mut produced: HashMap<String, i64> = HashMap::new();
    let values = df
        .column("value")
        .map_err(anyhow::Error::from)?
        .binary()
        .map_err(anyhow::Error::from)?
        .clone();
    let ts = df
        .column("kafka_timestamp")
        .map_err(anyhow::Error::from)?
        .cast(&polars::prelude::DataType::Int64)
        .map_err(anyhow::Error::from)?;
    let ts = ts.i64().map_err(anyhow::Error::from)?.clone();
    for (v, t) in values.iter().zip(ts.iter()) {
        let (Some(v), Some(t)) = (v, t) else { continue };
        if let Some(id) = serde_json::from_slice::<serde_json::Value>(v)
            .ok()
            .and_then(|j| j["event_id"].as_str().map(str::to_string))
        {
            let e = produced.entry(id).or_insert(t);
            *e = (*e).min(t);
        }
    }
    // The fact version each event was first added in.
    let fact = catalog
        .open_input("fact_telemetry", s)
        .await
        .map_err(anyhow::Error::from)?;
    let mut latencies = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for v in 0..=fact.version() {
        let Some(load) = loads.iter().find(|(to, _)| *to >= v).map(|l| l.1) else {
            continue;
        };
        let added = fact.commit_changes(v).await.map_err(err)?.added;
        if added.is_empty() {
            continue;
        }
        let ids = fact.read(&added, Some(&["event_id"])).await.map_err(err)?;
        let ids = ids
            .column("event_id")
            .map_err(anyhow::Error::from)?
            .str()
            .map_err(anyhow::Error::from)?
            .clone();
        for id in ids.iter().flatten() {
            // A merge may rewrite a row later: its first version counts.
            if seen.insert(id.to_string())
                && let Some(t) = produced.get(id)
            {
                latencies.push(load - *t as f64 / 1e6);
            }
        }
    }
    if latencies.is_empty() {
        return Ok(None);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Some((pick(0.5), pick(0.99), latencies.len())))
}
