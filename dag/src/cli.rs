//! The command line: every command of DESIGN.md, parsed with clap derive.
//! Parsing only; `commands` does the work.

use crate::render::GraphFormat;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dag",
    version,
    about = "Run a medallion lakehouse pipeline end to end: Kafka -> bronze -> silver -> gold -> data tests -> PostgreSQL",
    after_help = "Selectors: name, +name (with upstream), name+ (with downstream), bronze|silver|gold, tag:x; several terms make a union.\nConfiguration: dag.toml (or --config / DAG_CONFIG), overridden by DAG_<SECTION>__<KEY> environment variables."
)]
pub struct Cli {
    /// Configuration file (default: ./dag.toml when present, else built-in defaults).
    #[arg(long, global = true, env = "DAG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Values for `var()` in SQL templates, as YAML or JSON
    /// ('{cutoff: 2024-01-01}'); they override `[vars]` of dag.toml.
    #[arg(long, global = true, value_name = "YAML")]
    pub vars: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

/// What `dag produce` sends.
#[derive(Clone, Debug, clap::Args)]
pub struct ProduceArgs {
    /// Replay lines {"topic", "partition"?, "key", "value"} from this file.
    #[arg(long, value_name = "F.jsonl")]
    pub file: Option<PathBuf>,
    /// Number of simulated telemetry messages (fines come on top).
    #[arg(long)]
    pub events: Option<u64>,
    /// Messages per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seed of the simulator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Event time of the first simulated event (RFC 3339). Default: so
    /// that the last event is about now. Give it to reproduce a run byte
    /// for byte.
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Share of simulated telemetry messages that are bad (every kind
    /// the spec names) or exact duplicates.
    #[arg(long, default_value_t = 0.02)]
    pub bad_share: f64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole pipeline on embedded defaults: broker, lake, warehouse, events, summary.
    Demo {
        /// Simulated events to produce.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Events per second (default: all of them in about 10 s, at
        /// least 1,000/s); a steady rate for a freshness measurement.
        #[arg(long)]
        rate: Option<u64>,
        /// Leave the services running afterwards, for exploring.
        #[arg(long)]
        keep: bool,
    },
    /// Run the selected models once, in dependency order, then their tests and the load.
    Run {
        /// Models to run (default: all).
        selector: Vec<String>,
        /// Rebuild incremental models from scratch.
        #[arg(long)]
        full_refresh: bool,
        /// Do not load the warehouse afterwards (see also warehouse.enabled).
        #[arg(long)]
        no_load: bool,
    },
    /// Rebuild the selected models and everything downstream of them from
    /// their inputs (silver from bronze), each in one exactly-once commit,
    /// then their tests and the load: after a rule or SQL fix, the lake,
    /// the quarantine and the warehouse end as a fresh full run would.
    ///
    /// With --from and --to, each model is still recomputed from all of its
    /// inputs, but only its partitions of a date partition column in that
    /// range (ends included) are replaced; models not partitioned by a date
    /// are rebuilt whole.
    Backfill {
        /// Models to rebuild, with their downstream (default: all).
        selector: Vec<String>,
        /// First date of the range to replace (YYYY-MM-DD).
        #[arg(long, requires = "to", value_name = "DATE")]
        from: Option<chrono::NaiveDate>,
        /// Last date of the range to replace (YYYY-MM-DD), included.
        #[arg(long, requires = "from", value_name = "DATE")]
        to: Option<chrono::NaiveDate>,
        /// The date partition column the range applies to (default: each
        /// model's first partition column of type date).
        #[arg(long, requires = "from", value_name = "COLUMN")]
        column: Option<String>,
        /// Do not load the warehouse afterwards (see also warehouse.enabled).
        #[arg(long)]
        no_load: bool,
    },
    /// Ask the running scheduler to run a selection now.
    Trigger {
        #[arg(required = true)]
        selector: Vec<String>,
        /// Follow the run and exit with its status.
        #[arg(long)]
        wait: bool,
    },
    /// Keep ingesters streaming, fire schedules and pick up triggers.
    Scheduler,
    /// Serve the web UI: the pipeline, runs, data quality (`ui.addr`).
    Ui {
        /// Listen here instead of `ui.addr` (host:port; port 0: any free one).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Stream Kafka topics into their bronze tables.
    Ingest {
        /// Bronze models to ingest (default: all).
        sources: Vec<String>,
        /// Stop after every partition reached the high watermark seen at start.
        #[arg(long)]
        until_caught_up: bool,
    },
    /// Produce simulated events, or replay a JSONL file of raw messages.
    Produce(ProduceArgs),
    /// Run the data tests of the selected models on the current tables.
    Test {
        selector: Vec<String>,
        /// Write JUnit XML here.
        #[arg(long, value_name = "F")]
        junit: Option<PathBuf>,
        /// Write a Markdown summary here.
        #[arg(long, value_name = "F")]
        markdown: Option<PathBuf>,
        /// Write a JSON report here.
        #[arg(long, value_name = "F")]
        json: Option<PathBuf>,
        /// Check every row, not only the new ones.
        #[arg(long)]
        full: bool,
    },
    /// List the selected models.
    List {
        selector: Vec<String>,
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Draw the selected part of the DAG.
    Graph {
        selector: Vec<String>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Write a project to start from: `dag init NAME` a new pipeline (a
    /// file source, a seed, a cleaning and a gold model with tests) that
    /// `dag run` runs at once; `--example NAME` a pipeline shipped in the
    /// binary (dag.toml, models/, data/).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["name", "example"])))]
    Init {
        /// The new pipeline's name (a lower-case identifier).
        name: Option<String>,
        /// A pipeline the binary ships (`telematics`, `retail`) instead.
        #[arg(long, value_name = "NAME")]
        example: Option<String>,
        /// Where to write the project (default: ./NAME).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
    /// Check the configuration and the pipeline, and report every problem.
    Validate,
    /// Print the SQL a model runs: its template rendered (ref, source, var,
    /// macros), or its plain SQL as written.
    Compile {
        /// A SQL model.
        model: String,
    },
    /// Recent runs.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Per-node state of a run (default: the latest).
    Status { run: Option<String> },
    /// Bring the warehouse to what the pipeline needs: dag's metadata
    /// migrations, a table per warehouse model (created, or changed as its
    /// `on_schema_change` allows), the pipeline's own migrations/.
    Migrate {
        /// Print the SQL it would run, run nothing.
        #[arg(long)]
        plan: bool,
    },
    /// Load the selected gold models into the warehouse (default: all).
    Load { selector: Vec<String> },
    /// A Kafka-protocol broker in this process (librdkafka's in-memory mock
    /// cluster), for development and tests without Kafka.
    Broker {
        /// Write the bootstrap address here once ready.
        #[arg(long, value_name = "FILE")]
        bootstrap_file: Option<PathBuf>,
        /// Partitions of the topics created at start.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Topics to create at start (besides the pipeline's sources).
        #[arg(long = "topic", value_name = "NAME")]
        topics: Vec<String>,
    },
}
