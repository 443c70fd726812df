//! What each command does, and the errors that map to exit codes.
//!
//! Exit codes: 0 success; 1 the work ran and failed (a failing run or test);
//! 2 bad input (configuration, pipeline files, selectors, arguments), or
//! (`dag test`) a test that could not run.

use crate::cli::{Cli, Command, ListFormat};
use crate::config::{self, Loaded};
use crate::events::{self, Style};
pub use crate::outcome::{CliError, Outcome};
use crate::pipeline::Pipeline;
use crate::render;
use crate::select::Selector;
use jobs::spec::{Layer, Source};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The process environment as a map (config reads it through this).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Loads the configuration the way every command does; `vars` is `--vars`.
pub fn load_config(
    explicit: Option<&std::path::Path>,
    vars: Option<&str>,
) -> Result<Loaded, CliError> {
    let cwd = std::env::current_dir().map_err(|e| CliError::Other(e.into()))?;
    let mut cfg = config::load(explicit, &process_env(), &cwd)?;
    cfg.vars = cfg.template_vars(vars)?;
    Ok(cfg)
}

/// Loads the configured pipeline, with every problem reported at once.
pub fn load_pipeline(cfg: &Loaded) -> Result<Pipeline, CliError> {
    let root = cfg.pipeline_dir();
    Pipeline::load_with_vars(&root, &cfg.vars)
        .map_err(|diags| CliError::Pipeline { path: root, diags })
}

fn select(p: &Pipeline, words: &[String]) -> Result<Vec<petgraph::graph::NodeIndex>, CliError> {
    Selector::parse_args(words)
        .and_then(|s| p.select(&s))
        .map_err(CliError::Selector)
}

pub async fn run(cli: Cli) -> Result<Outcome, CliError> {
    let explicit = cli.config.as_deref();
    let vars = cli.vars.as_deref();
    // What a run did, as lines for people or JSON lines (`--log-format`).
    let table = events::for_format(cli.log_format, Style::Table);
    match cli.command {
        Command::List { selector, format } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            let nodes = select(&p, &selector)?;
            match format {
                ListFormat::Text => print!("{}", render::list_text(&p, &nodes)),
                ListFormat::Json => println!("{}", render::list_json(&p, &nodes)),
            }
            Ok(Outcome::Success)
        }
        Command::Graph { selector, format } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            let nodes = select(&p, &selector)?;
            print!("{}", render::graph(&p, &nodes, format));
            Ok(Outcome::Success)
        }
        Command::Validate => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            println!("{}", summary(&cfg, &p));
            Ok(Outcome::Success)
        }
        Command::Init {
            name: Some(name),
            example: None,
            dir,
            force,
        } => {
            let dest = dir.unwrap_or_else(|| PathBuf::from(&name));
            let w = crate::scaffold::write(&name, &dest, force)?;
            println!(
                "wrote the new pipeline {name} to {} ({} files)\n\
                 next: cd {} && dag validate && dag run    (DATABASE_URL says where the warehouse is)\n\
                 then: drop more CSV files into landing/orders and `dag run` again",
                dest.display(),
                w.files.len(),
                dest.display()
            );
            Ok(Outcome::Success)
        }
        Command::Init {
            example: Some(example),
            dir,
            force,
            ..
        } => {
            let dest = dir.unwrap_or_else(|| PathBuf::from(&example));
            let w = crate::examples::write(&example, &dest, force)?;
            // The demo drives the flagship pipeline's simulator; other
            // examples say in their README how to feed them.
            let next = if example == "telematics" {
                "dag validate && dag demo".to_string()
            } else {
                format!("dag validate, then models/{example}/README.md says how to feed and run it")
            };
            println!(
                "wrote the {example} pipeline to {} ({} files)\nnext: cd {} && {next}",
                dest.display(),
                w.files,
                dest.display()
            );
            Ok(Outcome::Success)
        }
        Command::Init { .. } => Err(CliError::Usage(
            "dag init takes a new pipeline's NAME or --example NAME, not both".into(),
        )),
        Command::Compile { model } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            let Some(m) = p.model(&model) else {
                return Err(CliError::Usage(format!(
                    "unknown model `{model}`{}",
                    jobs::spec::did_you_mean(&model, p.names())
                )));
            };
            let Source::Sql { sql, .. } = &m.source else {
                return Err(CliError::Usage(format!(
                    "`{model}` is a `{}` model: only `sql` models have SQL to compile",
                    m.source.kind_name()
                )));
            };
            println!("{}", sql.trim_end());
            Ok(Outcome::Success)
        }
        Command::Demo { events, rate, keep } => {
            crate::demo::demo(explicit, events, rate, keep).await
        }
        Command::Broker {
            bootstrap_file,
            partitions,
            topics,
        } => {
            // The pipeline's topics, when a pipeline is at hand; the broker
            // is also useful without one.
            let mut all = topics;
            if let Ok(cfg) = load_config(explicit, vars)
                && let Ok(p) = load_pipeline(&cfg)
            {
                for m in p.graph.node_weights() {
                    if let Source::Kafka { topic } = &m.source {
                        all.push(topic.clone());
                    }
                }
            }
            // A topic named twice is created once.
            let mut seen = std::collections::BTreeSet::new();
            all.retain(|t| seen.insert(t.clone()));
            crate::broker::serve(bootstrap_file.as_deref(), partitions, &all).await?;
            Ok(Outcome::Success)
        }
        Command::Run {
            selector,
            full_refresh,
            no_load,
        } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            let nodes = select(&p, &selector)?;
            let load = cfg.config.warehouse.enabled && !no_load;
            let recorder = events::record::open(&cfg, &*table).await;
            let alerts = crate::alerts::Alerts::start(&cfg);
            let mut sinks: Vec<&dyn events::EventSink> = vec![&*table];
            if let Some(r) = &recorder {
                sinks.push(r);
            }
            if let Some(a) = &alerts {
                sinks.push(a);
            }
            let outcome = crate::run::run(
                &cfg,
                &p,
                &nodes,
                full_refresh,
                None,
                load,
                &events::Fanout(sinks),
            )
            .await;
            if let Some(r) = recorder {
                r.finish().await;
            }
            if let Some(a) = alerts {
                a.finish().await;
            }
            outcome
        }
        Command::Backfill {
            selector,
            no_load,
            from,
            to,
            column,
        } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            let nodes = Selector::parse_args(&selector)
                .map(Selector::with_downstream)
                .and_then(|s| p.select(&s))
                .map_err(CliError::Selector)?;
            // Bronze is what a backfill rebuilds from, not what it takes in.
            let nodes: Vec<_> = nodes
                .into_iter()
                .filter(|n| !p.graph[*n].source.is_bronze_source())
                .collect();
            let names: Vec<&str> = crate::run::runnable(&p, &nodes)
                .iter()
                .map(|n| p.graph[*n].name.as_str())
                .collect();
            let load = cfg.config.warehouse.enabled && !no_load;
            let range = match (from, to) {
                (Some(from), Some(to)) if from > to => {
                    return Err(CliError::Usage(format!(
                        "backfill: --from {from} is after --to {to}"
                    )));
                }
                (Some(from), Some(to)) => Some(jobs::model::DateRange { column, from, to }),
                _ => None,
            };
            let Some(range) = range else {
                println!(
                    "backfill: rebuilding {} model(s) from their inputs: {}\n",
                    names.len(),
                    names.join(", ")
                );
                return crate::run::run(&cfg, &p, &nodes, true, None, load, &*table).await;
            };
            // The partitions outside the range are kept as they are: they
            // must first hold everything the inputs have.
            println!(
                "backfill: bringing {} model(s) up to date first\n",
                names.len()
            );
            if crate::run::run(&cfg, &p, &nodes, false, None, false, &*table).await?
                != Outcome::Success
            {
                return Ok(Outcome::Failed);
            }
            println!(
                "\nbackfill: replacing {range} in {} model(s): {}\n",
                names.len(),
                names.join(", ")
            );
            crate::run::run(&cfg, &p, &nodes, true, Some(range), load, &*table).await
        }
        Command::Trigger { selector, wait } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            crate::trigger::trigger(&cfg, &p, &selector, wait).await
        }
        Command::Ui { addr } => {
            let mut cfg = load_config(explicit, vars)?;
            if let Some(addr) = addr {
                cfg.config.ui.addr = addr;
            }
            let p = load_pipeline(&cfg)?;
            crate::ui::command(&cfg, p).await
        }
        Command::Scheduler => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            crate::scheduler::serve(
                &cfg,
                p,
                events::for_format(cli.log_format, Style::Log).into(),
            )
            .await
        }
        Command::Ingest {
            sources,
            until_caught_up,
        } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            crate::ingest::run(&cfg, &p, &sources, until_caught_up).await
        }
        Command::Produce(args) => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            crate::produce::run(&cfg, &p, args).await
        }
        Command::Test {
            selector,
            junit,
            markdown,
            json,
            full,
        } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            let nodes = select(&p, &selector)?;
            let files = crate::datatest::ReportFiles {
                junit,
                markdown,
                json,
            };
            crate::datatest::test_command(&cfg, &p, &nodes, full, &files).await
        }
        Command::Runs { limit } => {
            let cfg = load_config(explicit, vars)?;
            crate::trigger::runs(&cfg, limit).await
        }
        Command::Status { run } => {
            let cfg = load_config(explicit, vars)?;
            crate::trigger::status(&cfg, run.as_deref()).await
        }
        Command::Migrate { plan } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            crate::warehouse::migrate_command(&cfg, &p, plan).await
        }
        Command::Load { selector } => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            let nodes = select(&p, &selector)?;
            crate::warehouse::load_command(
                &cfg,
                &p,
                &nodes,
                &*events::for_format(cli.log_format, Style::Log),
            )
            .await
        }
    }
}

/// A few lines about a loaded pipeline.
fn summary(cfg: &Loaded, p: &Pipeline) -> String {
    let per_layer: Vec<String> = Layer::ALL
        .iter()
        .map(|l| {
            format!(
                "{} {l}",
                p.graph.node_weights().filter(|m| m.layer == *l).count()
            )
        })
        .collect();
    let tests: usize = p.graph.node_weights().map(|m| m.tests.len()).sum();
    format!(
        "pipeline `{}` ({}): {} models ({}), {} edges, {} data tests, {} schedules\nconfig: {}\nlake: {}",
        p.name,
        p.root.display(),
        p.node_count(),
        per_layer.join(", "),
        p.edge_count(),
        tests,
        p.schedules.len(),
        cfg.file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "built-in defaults".into()),
        cfg.lake_url(),
    )
}
