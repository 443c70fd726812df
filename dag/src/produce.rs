//! `dag produce`: the telematics simulator, or a JSONL replay, into Kafka.

use crate::config::Loaded;
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use jobs::decl::Source;
use jobs::produce::sim::{Fleet, Kind, SimSettings, Simulator};
use jobs::produce::{PumpError, Sink, pump, replay};
use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::cli::ProduceArgs;

/// The topic of a bronze source of the pipeline, by model name.
pub(crate) fn topic_of(p: &Pipeline, model: &str, default: &str) -> String {
    p.graph
        .node_weights()
        .find_map(|m| match &m.source {
            Source::Kafka { topic } if m.name == model => Some(topic.clone()),
            _ => None,
        })
        .unwrap_or_else(|| default.to_string())
}

/// The first event time that makes `events` simulated events end about
/// now (so none is in the future).
pub fn default_start(events: u64, fleet: &Fleet) -> chrono::DateTime<chrono::Utc> {
    let span = SimSettings::default().report_every.as_secs_f64() * events.min(10_000_000) as f64
        / fleet.vehicles.len().max(1) as f64;
    chrono::Utc::now() - chrono::Duration::milliseconds((span * 1000.0) as i64)
}

/// The simulator `args` ask for (none when a file is replayed).
fn simulator(
    cfg: &Loaded,
    p: &Pipeline,
    args: &ProduceArgs,
) -> Result<Option<Simulator>, CliError> {
    let bad = |m: String| CliError::Other(anyhow::anyhow!(m));
    Ok(match &args.file {
        Some(_) => None,
        None => {
            let fleet = Fleet::from_data_dir(&cfg.data_dir()).map_err(bad)?;
            let events = args.events.unwrap_or(if args.rate.is_some() {
                u64::MAX
            } else {
                10_000
            });
            let defaults = SimSettings::default();
            let start = match &args.start {
                Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|e| {
                        CliError::Selector(format!("--start `{t}` is not an RFC 3339 instant: {e}"))
                    })?
                    .with_timezone(&chrono::Utc),
                // Ending about now, so that event times are not in the future.
                None => default_start(events, &fleet),
            };
            Some(Simulator::new(
                SimSettings {
                    seed: args.seed,
                    telemetry_topic: topic_of(p, "bronze_vehicle_telemetry", "vehicle-telemetry"),
                    fines_topic: topic_of(p, "bronze_traffic_fines", "traffic-fines"),
                    events,
                    start,
                    bad_share: args.bad_share,
                    ..defaults
                },
                &fleet,
            ))
        }
    })
}

pub async fn run(
    cfg: &Loaded,
    p: &Pipeline,
    args: ProduceArgs,
) -> Result<CommandOutcome, CliError> {
    let bootstrap = cfg.config.kafka.bootstrap_servers.clone();
    let stop = crate::ingest::stop_on_signals();
    if !(0.0..=1.0).contains(&args.bad_share) {
        return Err(CliError::Selector(format!(
            "--bad-share must be in [0, 1], found {}",
            args.bad_share
        )));
    }
    let sim = simulator(cfg, p, &args)?;
    if let Some(path) = &args.file {
        // Check every line first: a broken file sends nothing.
        let records = replay::read_file(path).map_err(|e| CliError::Selector(e.to_string()))?;
        for r in records {
            r.map_err(|e| CliError::Selector(format!("{e}; nothing was sent")))?;
        }
    }
    let file = args.file.clone();
    let rate = args.rate;
    let work = tokio::task::spawn_blocking(
        move || -> Result<(jobs::produce::ProduceReport, Option<BTreeMap<Kind, u64>>), CliError> {
            // 50 ms of messages per request instead of librdkafka's 5 ms:
            // a tenth of the requests and of the broker's message sets
            // (librdkafka's mock broker, the demo's and the benchmarks',
            // searches its sets one by one on every fetch: a quarter of
            // the demo's CPU at 5,000 events/s with 5 ms; an unpaced
            // replay of 1M messages over 64 partitions made ~13-message
            // sets and the ingester waited on fetches), for at most 50 ms
            // more on the way in.
            let props = BTreeMap::from([("linger.ms".to_string(), "50".to_string())]);
            let mut sink = Sink::connect(&bootstrap, &props)
                .map_err(|e| CliError::Other(anyhow::anyhow!("kafka {bootstrap}: {e}")))?;
            let kinds = match (file, sim) {
                (Some(path), _) => {
                    let records =
                        replay::read_file(&path).map_err(|e| CliError::Selector(e.to_string()))?;
                    pump(&mut sink, records, rate, &stop).map_err(|e| match e {
                        PumpError::Input(e) => CliError::Selector(e.to_string()),
                        PumpError::Kafka(e) => CliError::Other(anyhow::anyhow!("kafka: {e}")),
                    })?;
                    None
                }
                (None, Some(mut sim)) => {
                    let records = sim
                        .by_ref()
                        .map(|(_, r)| Ok::<_, std::convert::Infallible>(r));
                    pump(&mut sink, records, rate, &stop).map_err(|e| match e {
                        PumpError::Input(e) => match e {},
                        PumpError::Kafka(e) => CliError::Other(anyhow::anyhow!("kafka: {e}")),
                    })?;
                    Some(sim.counts.clone())
                }
                (None, None) => None,
            };
            let report = sink.finish(Duration::from_secs(120)).map_err(|e| {
                CliError::Other(anyhow::anyhow!(
                    "kafka: not every message was acknowledged: {e}"
                ))
            })?;
            Ok((report, kinds))
        },
    );
    let (report, kinds) = work
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("producer thread failed: {e}")))??;
    let per_topic: Vec<String> = report
        .per_topic
        .iter()
        .map(|(t, n)| format!("{t}: {n}"))
        .collect();
    println!(
        "produced {} messages ({}) in {:.1} s ({:.0} msg/s), {} acknowledged",
        report.sent,
        per_topic.join(", "),
        report.seconds,
        report.sent as f64 / report.seconds.max(1e-9),
        report.delivered
    );
    if let Some(kinds) = kinds {
        let k: Vec<String> = kinds
            .iter()
            .map(|(k, n)| {
                format!(
                    "{}: {n}",
                    serde_json::to_string(k)
                        .unwrap_or_default()
                        .trim_matches('"')
                )
            })
            .collect();
        println!("kinds: {}", k.join(", "));
    }
    if report.failed > 0 {
        return Err(CliError::Other(anyhow::anyhow!(
            "{} of {} messages were not delivered: {}",
            report.failed,
            report.sent,
            report.first_error.unwrap_or_default()
        )));
    }
    Ok(CommandOutcome::Success)
}
