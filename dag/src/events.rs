//! Typed events of a run: what the executors did, as values, for whoever
//! shows or keeps them. `dag run` and the scheduler emit the same events
//! (a run started, a node finished with its rows and Delta version, a test
//! result, a load, a run finished); a sink decides what becomes of them:
//! [`Console`] prints today's lines, [`JsonLines`] writes one JSON object
//! per event on stdout (`--log-format json`), [`Collect`] keeps them (tests,
//! and later the UI and alerts).
//!
//! Names and fields of the JSON form are stable: `{"event": "node_finished",
//! "run": ..., "node": ..., ...}`, snake_case throughout.

pub mod record;

use crate::cli::LogFormat;
use jobs::datatest::TestResult;
use jobs::warehouse::load::LoadReport;
use serde::Serialize;
use std::io::Write;
use std::sync::Mutex;

/// How a node's execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Success,
    /// Failed, with attempts left: it runs again after a backoff.
    Retrying,
    Failed,
    /// Not run: something upstream failed.
    Skipped,
}

/// One node's execution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeFinished {
    pub run: String,
    pub node: String,
    pub state: NodeState,
    /// 1 for `dag run`; the scheduler's attempt number.
    pub attempt: u32,
    pub max_attempts: u32,
    pub rows_in: u64,
    pub rows_out: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    /// The Delta version written (None: nothing new, or not a model).
    pub version: Option<i64>,
    pub seconds: f64,
    /// Why the model did what it did (a full recompute's reason, or why
    /// nothing was written).
    pub note: Option<String>,
    /// Error-severity tests of the task that failed (its model ran).
    pub tests_failed: usize,
    pub error: Option<String>,
}

impl NodeFinished {
    /// A node's event without rows (the executor fills in what its task
    /// did): a failure, a skip, or the load node.
    pub fn of(run: &str, node: &str, state: NodeState, error: Option<String>) -> NodeFinished {
        NodeFinished {
            run: run.to_string(),
            node: node.to_string(),
            state,
            attempt: 1,
            max_attempts: 1,
            rows_in: 0,
            rows_out: 0,
            quarantined: 0,
            duplicates: 0,
            version: None,
            seconds: 0.0,
            note: None,
            tests_failed: 0,
            error,
        }
    }
}

/// A table the load moved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadedTable {
    pub model: String,
    pub from_version: Option<i64>,
    pub to_version: i64,
    /// initial, full or changes.
    pub mode: String,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub seconds: f64,
}

/// What a run did in all.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunSummary {
    pub run: String,
    /// Every model ran, no error test failed, and the load (if any) ran.
    pub success: bool,
    pub models_ran: usize,
    pub models_failed: usize,
    pub models_skipped: usize,
    pub tests: usize,
    pub tests_failed: usize,
    pub tests_warned: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run begins: the models it runs and the tests it may run.
    RunStarted {
        run: String,
        nodes: Vec<String>,
        tests: Vec<String>,
    },
    NodeFinished(NodeFinished),
    TestFinished {
        run: String,
        #[serde(flatten)]
        result: TestResult,
    },
    /// The tests due after `after` could not be evaluated at all.
    TestsNotRun {
        run: String,
        after: String,
        error: String,
    },
    /// The warehouse load: what moved, what was current, what had no gold
    /// table; `blocked` when the gate was closed (nothing loaded), and
    /// `selected` false when no model of the selection has a warehouse
    /// table.
    LoadFinished {
        run: String,
        selected: bool,
        blocked: Option<String>,
        tables: Vec<LoadedTable>,
        current: Vec<String>,
        missing: Vec<String>,
    },
    RunFinished(RunSummary),
    /// A bronze ingester stopped on an error (the scheduler starts it
    /// again after a pause).
    IngesterDown {
        source: String,
        error: String,
    },
    /// Something said in our words that has no event of its own yet (a
    /// migration applied, a warehouse table created).
    Notice {
        text: String,
    },
}

impl Event {
    pub fn load(run: &str, r: &LoadReport) -> Event {
        Event::LoadFinished {
            run: run.to_string(),
            selected: true,
            blocked: r.blocked.clone(),
            tables: r
                .tables
                .iter()
                .map(|t| LoadedTable {
                    model: t.model.clone(),
                    from_version: t.from,
                    to_version: t.to,
                    mode: t.mode.as_str().to_string(),
                    inserted: t.inserted,
                    updated: t.updated,
                    deleted: t.deleted,
                    seconds: t.seconds,
                })
                .collect(),
            current: r.current.clone(),
            missing: r.missing.clone(),
        }
    }
}

/// Where events go.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);
}

/// The sink `--log-format` asks for: lines for people, or JSON lines.
pub fn for_format(format: LogFormat, style: Style) -> Box<dyn EventSink> {
    match format {
        LogFormat::Text => Box::new(Console::new(style)),
        LogFormat::Json => Box::new(JsonLines),
    }
}

/// How the console lays events out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// One run at a time (`dag run`): aligned columns, a model's tests
    /// under it, a summary at the end.
    Table,
    /// Many runs interleaved (the scheduler): each line says its run.
    Log,
    /// Nothing (a caller that reports in its own words).
    Quiet,
}

/// Events as lines of text on stdout.
pub struct Console {
    style: Style,
    /// Model-name and test-name column widths of the current run.
    widths: Mutex<(usize, usize)>,
    /// In a run's table, the line of a load that will not run: printed
    /// with the run's end, after the models still running when it was
    /// decided (it came before their lines).
    held: Mutex<Option<String>>,
}

impl Console {
    pub fn new(style: Style) -> Console {
        Console {
            style,
            widths: Mutex::new((10, 10)),
            held: Mutex::new(None),
        }
    }

    fn widths(&self) -> (usize, usize) {
        *self.widths.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The text of `event`, if it shows as any (without the newline).
    pub fn text(&self, event: &Event) -> Option<String> {
        let text = self.lines(event)?;
        // In a run's table, the load stands apart from the models.
        Some(
            if self.style == Style::Table && matches!(event, Event::LoadFinished { .. }) {
                format!("\n{text}")
            } else {
                text
            },
        )
    }

    fn lines(&self, event: &Event) -> Option<String> {
        let (w, tw) = self.widths();
        match (self.style, event) {
            (Style::Quiet, _) => None,
            (_, Event::RunStarted { nodes, tests, .. }) => {
                let width = |v: &[String]| v.iter().map(String::len).max().unwrap_or(10);
                *self.widths.lock().unwrap_or_else(|e| e.into_inner()) =
                    (width(nodes), width(tests));
                None
            }
            // A load that did not run kept the warehouse as it was.
            (_, Event::NodeFinished(n))
                if n.node == crate::pipeline::LOAD_NODE && n.state == NodeState::Skipped =>
            {
                Some(format!(
                    "{}load: BLOCKED ({}); the warehouse keeps its previous state",
                    if self.style == Style::Table { "\n" } else { "" },
                    n.error.as_deref().unwrap_or("something upstream failed")
                ))
            }
            // In a run's table the load's own lines say what it did.
            (Style::Table, Event::NodeFinished(n)) if n.node == crate::pipeline::LOAD_NODE => None,
            (Style::Table, Event::NodeFinished(n)) => Some(model_line(n, w)),
            (Style::Log, Event::NodeFinished(n)) => Some(match n.state {
                NodeState::Success => {
                    format!("run {} {}: success in {:.2}s", n.run, n.node, n.seconds)
                }
                NodeState::Skipped => format!(
                    "run {} {}: skipped ({})",
                    n.run,
                    n.node,
                    n.error.as_deref().unwrap_or("upstream failed")
                ),
                NodeState::Retrying | NodeState::Failed => format!(
                    "run {} {} (attempt {}/{}): failed: {}",
                    n.run,
                    n.node,
                    n.attempt,
                    n.max_attempts,
                    n.error.as_deref().unwrap_or("")
                ),
            }),
            (Style::Table, Event::TestFinished { result, .. }) => {
                Some(crate::datatest::line(result, tw))
            }
            (Style::Log, Event::TestFinished { run, result }) => Some(format!(
                "run {run} {}",
                crate::datatest::line(result, tw).trim_start()
            )),
            (_, Event::Notice { text }) => Some(text.clone()),
            (_, Event::IngesterDown { source, error }) => {
                Some(format!("ingester {source} stopped: {error}"))
            }
            (_, Event::TestsNotRun { after, error, .. }) => {
                Some(format!("  tests after {after}: {error}"))
            }
            (
                _,
                Event::LoadFinished {
                    selected: false, ..
                },
            ) => Some("load: the selection holds no model with a warehouse table".into()),
            (
                _,
                Event::LoadFinished {
                    blocked: Some(why), ..
                },
            ) => Some(format!(
                "load: BLOCKED ({why}); the warehouse keeps its previous state"
            )),
            (
                _,
                Event::LoadFinished {
                    tables,
                    current,
                    missing,
                    ..
                },
            ) => {
                let text = load_lines(tables, current, missing);
                (!text.is_empty()).then(|| text.trim_end().to_string())
            }
            (Style::Table, Event::RunFinished(s)) => Some(format!(
                "\n{} model(s) ran, {} failed, {} skipped; {} test(s), {} failed, {} warned",
                s.models_ran,
                s.models_failed,
                s.models_skipped,
                s.tests,
                s.tests_failed,
                s.tests_warned
            )),
            (Style::Log, Event::RunFinished(_)) => None,
        }
    }
}

impl EventSink for Console {
    fn emit(&self, event: &Event) {
        let Some(line) = self.text(event) else {
            return;
        };
        if self.style == Style::Table {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Event::NodeFinished(n) if n.node == crate::pipeline::LOAD_NODE => {
                    *held = Some(line);
                    return;
                }
                Event::RunFinished(_) => {
                    if let Some(blocked) = held.take() {
                        println!("{blocked}");
                    }
                }
                _ => {}
            }
        }
        println!("{line}");
    }
}

/// One model's line in a `dag run`.
fn model_line(n: &NodeFinished, width: usize) -> String {
    let name = &n.node;
    let failed = matches!(n.state, NodeState::Failed | NodeState::Retrying);
    match (n.state, n.version) {
        (NodeState::Skipped, _) => format!("{name:<width$}  skipped: upstream failed"),
        // The model ran; its tests (on the lines below) failed.
        _ if failed && n.tests_failed > 0 => {
            format!("{}  FAILED: {} test(s)", ran_line(n, width), n.tests_failed)
        }
        (NodeState::Failed | NodeState::Retrying, _) => {
            format!(
                "{name:<width$}  FAILED: {}",
                n.error.as_deref().unwrap_or("")
            )
        }
        (NodeState::Success, _) => ran_line(n, width),
    }
}

/// What a model that ran read and wrote.
fn ran_line(n: &NodeFinished, width: usize) -> String {
    let name = &n.node;
    let Some(v) = n.version else {
        return format!(
            "{name:<width$}  up to date ({}) {:>7.2}s",
            n.note.as_deref().unwrap_or("nothing new"),
            n.seconds
        );
    };
    let mut s = format!("{name:<width$}  in {:>9}  out {:>9}", n.rows_in, n.rows_out);
    if n.quarantined > 0 || n.duplicates > 0 {
        s += &format!(
            "  quarantined {}  duplicates {}",
            n.quarantined, n.duplicates
        );
    }
    s += &format!("  -> v{v} {:>7.2}s", n.seconds);
    // Why a run did more (or less) than its inputs' changes: a full
    // recompute says so, with the reason.
    if let Some(note) = &n.note {
        s += &format!("  ({note})");
    }
    s
}

/// The load's lines: a table each.
fn load_lines(tables: &[LoadedTable], current: &[String], missing: &[String]) -> String {
    let width = tables
        .iter()
        .map(|t| t.model.len())
        .chain(current.iter().map(String::len))
        .max()
        .unwrap_or(10);
    let mut out = String::new();
    for t in tables {
        let from = t.from_version.map_or("-".to_string(), |v| format!("v{v}"));
        out += &format!(
            "load {:<width$}  {from} -> v{} ({})  inserted {}  updated {}  deleted {}  {:.2}s\n",
            t.model, t.to_version, t.mode, t.inserted, t.updated, t.deleted, t.seconds
        );
    }
    for m in current {
        out += &format!("load {m:<width$}  up to date\n");
    }
    for m in missing {
        out += &format!("load {m:<width$}  no gold table yet (run its model first)\n");
    }
    out
}

/// One JSON object per event on stdout, flushed at once (a reader
/// following the stream sees each event as it happens).
pub struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, event: &Event) {
        if let Ok(text) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }
}

/// Keeps every event, in order.
#[derive(Default)]
pub struct Collect {
    events: Mutex<Vec<Event>>,
}

impl Collect {
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl EventSink for Collect {
    fn emit(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// Every event to each of several shared sinks, in order (a sink that
/// outlives its caller: the scheduler's).
pub struct Tee(pub Vec<std::sync::Arc<dyn EventSink>>);

impl EventSink for Tee {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }
}

/// Every event to each of several sinks, in order.
pub struct Fanout<'a>(pub Vec<&'a dyn EventSink>);

impl EventSink for Fanout<'_> {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }
}
