//! What each command does, and the errors that map to exit codes.
//!
//! Exit codes: 0 success; 1 the work ran and failed (a failing run or test);
//! 2 bad input (configuration, pipeline files, selectors, arguments), or
//! (`dag test`) a test that could not run.

use crate::cli::{Cli, Command, ListFormat};
use crate::config::Loaded;
use crate::events::{self, Style};
pub use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
pub use crate::project::{load_config, load_pipeline, process_env};
use crate::render;
use crate::select::Selector;
use jobs::decl::{Layer, Source};
use std::path::PathBuf;

fn select(p: &Pipeline, words: &[String]) -> Result<Vec<petgraph::graph::NodeIndex>, CliError> {
    Selector::parse_args(words)
        .and_then(|s| p.select(&s))
        .map_err(CliError::Selector)
}

pub async fn run(cli: Cli) -> Result<CommandOutcome, CliError> {
    let explicit = cli.config.as_deref();
    let vars = cli.vars.as_deref();
    match cli.command {
        Command::Init {
            name,
            example,
            dir,
            force,
        } => init(name, example, dir, force),
        Command::Demo { events, rate, keep } => {
            crate::demo::demo(explicit, events, rate, keep).await
        }
        Command::Broker {
            bootstrap_file,
            partitions,
            topics,
        } => broker(explicit, vars, bootstrap_file, partitions, topics).await,
        Command::Ui { addr } => {
            let mut cfg = load_config(explicit, vars)?;
            if let Some(addr) = addr {
                cfg.config.ui.addr = addr;
            }
            let p = load_pipeline(&cfg)?;
            crate::ui::command(&cfg, p).await
        }
        Command::Runs { limit } => {
            let cfg = load_config(explicit, vars)?;
            crate::trigger::runs(&cfg, limit).await
        }
        Command::Status { run } => {
            let cfg = load_config(explicit, vars)?;
            crate::trigger::status(&cfg, run.as_deref()).await
        }
        command => {
            let cfg = load_config(explicit, vars)?;
            let p = load_pipeline(&cfg)?;
            on_pipeline(&cfg, p, command, cli.log_format).await
        }
    }
}

/// The commands that act on the configured pipeline.
async fn on_pipeline(
    cfg: &Loaded,
    p: Pipeline,
    command: Command,
    log_format: crate::cli::LogFormat,
) -> Result<CommandOutcome, CliError> {
    // What a run did, as lines for people or JSON lines (`--log-format`).
    let table = events::for_format(log_format, Style::Table);
    match command {
        Command::List { selector, format } => {
            let nodes = select(&p, &selector)?;
            match format {
                ListFormat::Text => print!("{}", render::list_text(&p, &nodes)),
                ListFormat::Json => println!("{}", render::list_json(&p, &nodes)),
            }
            Ok(CommandOutcome::Success)
        }
        Command::Graph { selector, format } => {
            let nodes = select(&p, &selector)?;
            print!("{}", render::graph(&p, &nodes, format));
            Ok(CommandOutcome::Success)
        }
        Command::Validate => {
            dry_runs(&p)?;
            println!("{}", summary(cfg, &p));
            Ok(CommandOutcome::Success)
        }
        Command::Compile { model } => compile(&p, &model),
        Command::Run {
            selector,
            full_refresh,
            no_load,
        } => {
            let nodes = select(&p, &selector)?;
            let load = cfg.config.warehouse.enabled && !no_load;
            run_command(cfg, &p, &nodes, full_refresh, load, &*table).await
        }
        Command::Backfill {
            selector,
            no_load,
            from,
            to,
            column,
        } => {
            let load = cfg.config.warehouse.enabled && !no_load;
            let range = match (from, to) {
                (Some(from), Some(to)) => Some(jobs::model::DateRange { column, from, to }),
                _ => None,
            };
            backfill(cfg, &p, &selector, load, range, &*table).await
        }
        Command::Trigger { selector, wait } => {
            crate::trigger::trigger(cfg, &p, &selector, wait).await
        }
        Command::Scheduler => {
            crate::scheduler::serve(cfg, p, events::for_format(log_format, Style::Log).into()).await
        }
        Command::Ingest {
            sources,
            until_caught_up,
        } => crate::ingest::run(cfg, &p, &sources, until_caught_up).await,
        Command::Produce(args) => crate::produce::run(cfg, &p, args).await,
        Command::Test {
            selector,
            junit,
            markdown,
            json,
            full,
        } => {
            let nodes = select(&p, &selector)?;
            let files = crate::datatest::ReportFiles {
                junit,
                markdown,
                json,
            };
            crate::datatest::test_command(cfg, &p, &nodes, full, &files).await
        }
        Command::Migrate { plan } => crate::warehouse::migrate_command(cfg, &p, plan).await,
        Command::Load { selector } => {
            let nodes = select(&p, &selector)?;
            crate::warehouse::load_command(
                cfg,
                &p,
                &nodes,
                &*events::for_format(log_format, Style::Log),
            )
            .await
        }
        // `run` handles these before a pipeline is loaded.
        Command::Init { .. }
        | Command::Demo { .. }
        | Command::Broker { .. }
        | Command::Runs { .. }
        | Command::Status { .. }
        | Command::Ui { .. } => Err(CliError::Other(anyhow::anyhow!(
            "internal: a command without a pipeline was dispatched as one"
        ))),
    }
}

/// `dag init NAME` (a new pipeline from the scaffold) or `dag init
/// --example NAME` (a shipped example).
fn init(
    name: Option<String>,
    example: Option<String>,
    dir: Option<PathBuf>,
    force: bool,
) -> Result<CommandOutcome, CliError> {
    match (name, example) {
        (Some(name), None) => {
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
            Ok(CommandOutcome::Success)
        }
        (None, Some(example)) => {
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
            Ok(CommandOutcome::Success)
        }
        _ => Err(CliError::Usage(
            "dag init takes a new pipeline's NAME or --example NAME, not both".into(),
        )),
    }
}

/// `dag compile MODEL`: the model's SQL, rendered.
fn compile(p: &Pipeline, model: &str) -> Result<CommandOutcome, CliError> {
    let Some(m) = p.model(model) else {
        return Err(CliError::Usage(format!(
            "unknown model `{model}`{}",
            jobs::decl::did_you_mean(model, p.names())
        )));
    };
    let Source::Sql { sql, .. } = &m.source else {
        return Err(CliError::Usage(format!(
            "`{model}` is a `{}` model: only `sql` models have SQL to compile",
            m.source.kind_name()
        )));
    };
    println!("{}", sql.trim_end());
    Ok(CommandOutcome::Success)
}

/// `dag broker`: a local Kafka-protocol broker with the pipeline's topics
/// (when a pipeline is at hand; it is also useful without one) and
/// `topics`.
async fn broker(
    explicit: Option<&std::path::Path>,
    vars: Option<&str>,
    bootstrap_file: Option<PathBuf>,
    partitions: i32,
    topics: Vec<String>,
) -> Result<CommandOutcome, CliError> {
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
    Ok(CommandOutcome::Success)
}

/// `dag run`: the selection through the executor, its events to the
/// console, to PostgreSQL (when a database is configured) and to alerts.
async fn run_command(
    cfg: &Loaded,
    p: &Pipeline,
    nodes: &[petgraph::graph::NodeIndex],
    full_refresh: bool,
    load: bool,
    table: &dyn events::EventSink,
) -> Result<CommandOutcome, CliError> {
    let recorder = events::record::open(cfg, table).await;
    let alerts = crate::alerts::Alerts::start(cfg);
    let mut sinks: Vec<&dyn events::EventSink> = vec![table];
    if let Some(r) = &recorder {
        sinks.push(r);
    }
    if let Some(a) = &alerts {
        sinks.push(a);
    }
    let outcome = crate::run::run(
        cfg,
        p,
        nodes,
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

/// `dag backfill`: rebuilds the selection and its downstream from their
/// inputs, or (with a date range) only that range of each.
async fn backfill(
    cfg: &Loaded,
    p: &Pipeline,
    selector: &[String],
    load: bool,
    range: Option<jobs::model::DateRange>,
    table: &dyn events::EventSink,
) -> Result<CommandOutcome, CliError> {
    let nodes = Selector::parse_args(selector)
        .map(Selector::with_downstream)
        .and_then(|s| p.select(&s))
        .map_err(CliError::Selector)?;
    // Bronze is what a backfill rebuilds from, not what it takes in.
    let nodes: Vec<_> = nodes
        .into_iter()
        .filter(|n| !p.graph[*n].source.is_bronze_source())
        .collect();
    let names: Vec<&str> = crate::run::runnable(p, &nodes)
        .iter()
        .map(|n| p.graph[*n].name.as_str())
        .collect();
    if let Some(r) = &range
        && r.from > r.to
    {
        return Err(CliError::Usage(format!(
            "backfill: --from {} is after --to {}",
            r.from, r.to
        )));
    }
    let Some(range) = range else {
        println!(
            "backfill: rebuilding {} model(s) from their inputs: {}\n",
            names.len(),
            names.join(", ")
        );
        return crate::run::run(cfg, p, &nodes, true, None, load, table).await;
    };
    // The partitions outside the range are kept as they are: they must
    // first hold everything the inputs have.
    println!(
        "backfill: bringing {} model(s) up to date first\n",
        names.len()
    );
    if crate::run::run(cfg, p, &nodes, false, None, false, table).await? != CommandOutcome::Success
    {
        return Ok(CommandOutcome::Failed);
    }
    println!(
        "\nbackfill: replacing {range} in {} model(s): {}\n",
        names.len(),
        names.join(", ")
    );
    crate::run::run(cfg, p, &nodes, true, Some(range), load, table).await
}

/// A few lines about a loaded pipeline.
/// Each SQL model's query on empty inputs with their declared columns:
/// a column no input declares, or a declared one the query does not
/// return, is reported at the model's SQL file (a column it returns and
/// does not declare is a warning: a run drops it).
fn dry_runs(p: &Pipeline) -> Result<(), CliError> {
    let catalog = jobs::model::Catalog::new(p.graph.node_weights().cloned());
    let mut diags = jobs::decl::Diagnostics::default();
    for m in p.graph.node_weights() {
        let sql = m.pos.file.with_extension("sql");
        let at = if sql.is_file() {
            sql
        } else {
            m.pos.file.clone()
        };
        let found = jobs::model::dry_run::dry_run(m, &catalog);
        if let Some(problem) = found.problem {
            diags.push(jobs::decl::Pos::file(at), problem);
            continue;
        }
        let extra = found.undeclared;
        if !extra.is_empty() {
            eprintln!(
                "warning: {}: model {}'s query returns column(s) it does not declare, which are not written: {}",
                at.display(),
                m.name,
                extra.join(", ")
            );
        }
    }
    if diags.is_empty() {
        return Ok(());
    }
    Err(CliError::Pipeline {
        path: p.root.clone(),
        diags,
    })
}

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
