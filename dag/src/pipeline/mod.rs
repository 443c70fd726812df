//! The pipeline loader: a folder under `models/` becomes a checked DAG.
//!
//! Layout of a pipeline folder:
//! ```text
//! pipeline.yml          optional: description, schedules by selector
//! bronze/*.yml          kafka_source models
//! silver/*.yml          clean and seed models (quarantines come with clean)
//! gold/*.yml + *.sql    sql models (the SQL may be a Jinja template)
//! macros/*.sql          optional: Jinja macros every SQL model can call
//! migrations/V<n>__*.sql optional: the pipeline's own warehouse migrations
//! ```
//! Sub-folders inside a layer folder are allowed. Every problem is reported
//! at once, each with file, line and column: malformed files, duplicate
//! names, references to unknown models or columns, and cycles (naming the
//! whole chain). A loaded [`Pipeline`] is known to be consistent.

mod graph;
mod selection;

pub use graph::Cycle;

use jobs::spec::template::{Catalog, Templates};
use jobs::spec::{
    self, Diagnostics, FileFormat, Layer, Model, ModelDraft, Pos, RecordFormat, Source,
    did_you_mean, parse_model_file,
};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A schedule declared in `pipeline.yml` for a selection of models.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub select: String,
    pub cron: String,
    pub pos: Pos,
}

/// A loaded, consistent pipeline: models as nodes, "reads from" as edges
/// (input -> model).
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub name: String,
    pub root: PathBuf,
    pub description: String,
    pub schedules: Vec<Schedule>,
    pub graph: DiGraph<Model, ()>,
    index: HashMap<String, NodeIndex>,
    /// Node indices in a deterministic topological order (by layer, then
    /// name, among the nodes that are ready).
    order: Vec<NodeIndex>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    description: Option<String>,
    schedules: Option<Vec<RawSchedule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    select: Spanned<String>,
    cron: Spanned<String>,
}

/// The node that loads the warehouse at the end of a run (no model can
/// take the name: `:` is not allowed in one).
pub const LOAD_NODE: &str = "load:warehouse";

/// Names a model may not take: they mean something else to selectors.
const RESERVED: [&str; 3] = ["bronze", "silver", "gold"];

impl Pipeline {
    /// Loads and checks the pipeline folder `root`, with no template vars.
    pub fn load(root: &Path) -> Result<Pipeline, Diagnostics> {
        Self::load_with_vars(root, &BTreeMap::new())
    }

    /// Loads and checks the pipeline folder `root`; `vars` are what
    /// `var()` reads in SQL templates (`[vars]` and `--vars`).
    pub fn load_with_vars(
        root: &Path,
        vars: &BTreeMap<String, serde_json::Value>,
    ) -> Result<Pipeline, Diagnostics> {
        let mut diags = Diagnostics::default();
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("pipeline")
            .to_string();
        if !root.is_dir() {
            diags.push(Pos::file(root), "pipeline folder does not exist");
            return Err(diags);
        }
        let (description, raw_schedules) = read_pipeline_yml(root, &mut diags);
        let (templates, problems) =
            Templates::new(&root.join("macros"), catalog(root), vars.clone());
        diags.extend(problems);
        let drafts = read_models(root, &templates, &mut diags);

        // Names: unique across files, not reserved.
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        let mut models: Vec<Model> = Vec::new();
        let mut kept: Vec<&ModelDraft> = Vec::new();
        for draft in &drafts {
            let m = &draft.model;
            if RESERVED.contains(&m.name.as_str()) {
                diags.push(
                    m.pos.clone(),
                    format!("`{}` is a layer name and cannot name a model", m.name),
                );
                continue;
            }
            if let Some(&first) = by_name.get(&m.name) {
                diags.push(
                    m.pos.clone(),
                    format!(
                        "duplicate model name `{}`: also declared by {}",
                        m.name,
                        models[first].pos.file.display()
                    ),
                );
                continue;
            }
            by_name.insert(m.name.clone(), models.len());
            models.push(m.clone());
            kept.push(draft);
        }
        // Quarantine outputs are models too, written by their clean model.
        let mut quarantines = Vec::new();
        for m in &models {
            if let Source::Clean { quarantine, .. } = &m.source {
                if let Some(&other) = by_name.get(quarantine) {
                    diags.push(
                        m.pos.clone(),
                        format!(
                            "quarantine `{quarantine}` has the name of model {}",
                            models[other].pos.file.display()
                        ),
                    );
                    continue;
                }
                by_name.insert(quarantine.clone(), models.len() + quarantines.len());
                quarantines.push(Model {
                    name: quarantine.clone(),
                    layer: Layer::Silver,
                    source: Source::Quarantine { of: m.name.clone() },
                    description: format!("rows of {} that failed a rule, with the reason", m.name),
                    tags: m.tags.clone(),
                    schedule: None,
                    materialized: spec::Materialization::Append,
                    unique_key: vec!["topic".into(), "partition".into(), "offset".into()],
                    partition_by: vec!["ingest_date".into()],
                    columns: spec::quarantine_columns(),
                    tests: vec![],
                    warehouse: None,
                    pos: m.pos.clone(),
                });
            }
        }
        models.extend(quarantines);
        let names: Vec<&str> = by_name.keys().map(String::as_str).collect();

        // References: inputs and mentions must name models; columns of other
        // models must exist; reads must respect layers.
        let mut edges: Vec<(usize, usize, Pos)> = Vec::new();
        for draft in &kept {
            let me = by_name[&draft.model.name];
            for r in &draft.inputs {
                match by_name.get(&r.model) {
                    None => diags.push(
                        r.pos.clone(),
                        format!(
                            "`{}` reads unknown model `{}`{}",
                            draft.model.name,
                            r.model,
                            did_you_mean(&r.model, names.iter().copied())
                        ),
                    ),
                    Some(&src) => {
                        check_read(&draft.model, &models[src], &r.pos, &mut diags);
                        if !edges.iter().any(|(s, d, _)| *s == src && *d == me) {
                            edges.push((src, me, r.pos.clone()));
                        }
                    }
                }
            }
            for r in &draft.mentions {
                if !by_name.contains_key(&r.model) {
                    diags.push(
                        r.pos.clone(),
                        format!(
                            "unknown model `{}`{}",
                            r.model,
                            did_you_mean(&r.model, names.iter().copied())
                        ),
                    );
                }
            }
            for (model, column, pos) in &draft.foreign_columns {
                let Some(&i) = by_name.get(model) else {
                    continue;
                };
                let target = &models[i];
                if target.column(column).is_none() {
                    let cols: Vec<&str> = target.columns.iter().map(|c| c.name.as_str()).collect();
                    diags.push(
                        pos.clone(),
                        format!(
                            "model `{model}` has no column `{column}`{}",
                            did_you_mean(column, cols)
                        ),
                    );
                }
            }
        }
        for (i, m) in models.iter().enumerate() {
            if let Source::Quarantine { of } = &m.source {
                edges.push((by_name[of], i, m.pos.clone()));
            }
        }

        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = models.into_iter().map(|m| graph.add_node(m)).collect();
        let edge_pos: HashMap<(NodeIndex, NodeIndex), Pos> = edges
            .iter()
            .map(|(s, d, p)| ((nodes[*s], nodes[*d]), p.clone()))
            .collect();
        for (s, d, _) in &edges {
            graph.add_edge(nodes[*s], nodes[*d], ());
        }
        for cycle in graph::cycles(&graph) {
            let chain: Vec<&str> = cycle
                .nodes
                .iter()
                .map(|n| graph[*n].name.as_str())
                .collect();
            let first = cycle.nodes[0];
            let second = cycle.nodes.get(1).copied().unwrap_or(first);
            let pos = edge_pos
                .get(&(first, second))
                .cloned()
                .unwrap_or_else(|| graph[second].pos.clone());
            let wheres: Vec<String> = cycle
                .nodes
                .windows(2)
                .filter_map(|w| {
                    edge_pos.get(&(w[0], w[1])).map(|p| {
                        format!("  {} reads {} at {p}", graph[w[1]].name, graph[w[0]].name)
                    })
                })
                .collect();
            diags.push(
                pos,
                format!("cycle: {}\n{}", chain.join(" -> "), wheres.join("\n")),
            );
        }
        let index: HashMap<String, NodeIndex> = graph
            .node_indices()
            .map(|n| (graph[n].name.clone(), n))
            .collect();
        let mut pipeline = Pipeline {
            name,
            root: root.to_path_buf(),
            description,
            schedules: vec![],
            order: vec![],
            graph,
            index,
        };
        if !diags.is_empty() {
            return diags.into_result(pipeline);
        }
        pipeline.order = graph::stable_topo_order(&pipeline.graph);
        for s in raw_schedules {
            let pos = Pos::at(&root.join("pipeline.yml"), &s.select.referenced);
            match crate::select::Selector::parse(&s.select.value)
                .and_then(|sel| pipeline.select(&sel))
            {
                Err(e) => diags.push(pos, format!("schedule selector: {e}")),
                Ok(_) => {
                    if let Err(e) = jobs::spec::check_cron(&s.cron.value) {
                        diags.push(Pos::at(&root.join("pipeline.yml"), &s.cron.referenced), e);
                    }
                    pipeline.schedules.push(Schedule {
                        select: s.select.value,
                        cron: s.cron.value,
                        pos,
                    });
                }
            }
        }
        diags.into_result(pipeline)
    }

    pub fn node(&self, name: &str) -> Option<NodeIndex> {
        self.index.get(name).copied()
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.node(name).map(|n| &self.graph[n])
    }

    /// All model names, for suggestions.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.graph.node_weights().map(|m| m.name.as_str())
    }

    /// Models in dependency order (inputs before readers).
    pub fn topo_order(&self) -> &[NodeIndex] {
        &self.order
    }

    /// The models `n` reads, sorted by name.
    pub fn inputs(&self, n: NodeIndex) -> Vec<&Model> {
        self.inputs_idx(n)
            .into_iter()
            .map(|i| &self.graph[i])
            .collect()
    }

    /// The nodes `n` reads, sorted by name.
    pub fn inputs_idx(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(n, petgraph::Direction::Incoming)
            .collect();
        v.sort_by(|a, b| self.graph[*a].name.cmp(&self.graph[*b].name));
        v
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }
}

/// Which layer may read which: data flows bronze -> silver -> gold.
fn check_read(reader: &Model, input: &Model, pos: &Pos, diags: &mut Diagnostics) {
    // A cleaning model reads its source's records in their format: CSV
    // rows only come from a CSV file source, and need `format: csv`.
    if let Source::Clean { format, .. } = &reader.source {
        let csv_source = matches!(
            input.source,
            Source::Files {
                format: FileFormat::Csv,
                ..
            }
        );
        let csv_clean = *format == RecordFormat::Csv;
        if input.source.is_bronze_source() && csv_source != csv_clean {
            let why = if csv_clean {
                format!(
                    "`format: csv` reads the rows of a CSV file_source, and `{}` is a {}",
                    input.name,
                    input.source.label()
                )
            } else {
                format!(
                    "`{}` is a CSV file_source: its rows need `format: csv` here",
                    input.name
                )
            };
            diags.push(
                pos.clone(),
                format!("`{}` cannot read `{}`: {why}", reader.name, input.name),
            );
        }
    }
    let ok = match (&reader.source, &input.source) {
        (Source::Clean { .. }, i) if i.is_bronze_source() => true,
        (Source::Clean { .. }, _) => false,
        (_, i) if i.is_bronze_source() => false,
        _ => input.layer <= reader.layer,
    };
    if !ok {
        let why = match (&reader.source, &input.source) {
            (Source::Clean { .. }, _) => {
                "a clean model reads a bronze kafka_source or file_source".to_string()
            }
            (_, i) if i.is_bronze_source() => {
                "bronze holds raw bytes: read its clean silver model instead".to_string()
            }
            _ => format!(
                "a {} model cannot read the {} layer",
                reader.layer, input.layer
            ),
        };
        diags.push(
            pos.clone(),
            format!("`{}` cannot read `{}`: {why}", reader.name, input.name),
        );
    }
}

fn read_pipeline_yml(root: &Path, diags: &mut Diagnostics) -> (String, Vec<RawSchedule>) {
    let path = root.join("pipeline.yml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return (String::new(), vec![]);
    };
    match serde_saphyr::from_str::<Option<RawPipeline>>(&text) {
        Ok(Some(raw)) => (
            raw.description.unwrap_or_default(),
            raw.schedules.unwrap_or_default(),
        ),
        Ok(None) => (String::new(), vec![]),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos::at(&path, &l))
                .unwrap_or_else(|| Pos::file(&path));
            diags.push(
                pos,
                format!(
                    "malformed pipeline.yml: {}",
                    jobs::spec::parser_message(&e.to_string())
                ),
            );
            (String::new(), vec![])
        }
    }
}

/// Reads every model file under the layer folders, in path order.
fn read_models(root: &Path, templates: &Templates, diags: &mut Diagnostics) -> Vec<ModelDraft> {
    let mut drafts = Vec::new();
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            diags.push(Pos::file(root), format!("cannot read pipeline folder: {e}"));
            return drafts;
        }
    };
    entries.sort();
    for path in entries {
        let fname = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() {
            match Layer::parse(&fname) {
                Some(layer) => read_layer(&path, layer, templates, diags, &mut drafts),
                None if fname.starts_with('.') => {}
                // Read (and checked) by `Templates::new`.
                None if fname == "macros" => {}
                // Sample files a shipped pipeline's file sources read:
                // `dag init --example` writes them to the project's landing/.
                None if fname == "landing" => {}
                // The pipeline's own warehouse migrations: checked here so
                // `dag validate` names a bad file before `dag migrate` runs.
                None if fname == "migrations" => {
                    if let Err(e) = jobs::warehouse::migrate::pipeline_migrations(&path) {
                        diags.push(e.pos, e.message);
                    }
                }
                None => diags.push(
                    Pos::file(&path),
                    format!(
                        "unknown folder `{fname}`: models go in bronze/, silver/ or gold/ (Jinja macros in macros/, warehouse migrations in migrations/)"
                    ),
                ),
            }
        } else if is_model_file(&path) && fname != "pipeline.yml" {
            diags.push(
                Pos::file(&path),
                "model files go in bronze/, silver/ or gold/, not the pipeline's top folder",
            );
        }
    }
    drafts
}

fn is_model_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml" | "sql")
    )
}

fn read_layer(
    dir: &Path,
    layer: Layer,
    templates: &Templates,
    diags: &mut Diagnostics,
    drafts: &mut Vec<ModelDraft>,
) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            diags.push(Pos::file(dir), format!("cannot read folder: {e}"));
            return;
        }
    };
    files.sort();
    for path in &files {
        if path.is_dir() {
            read_layer(path, layer, templates, diags, drafts);
            continue;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        match ext {
            "yml" | "yaml" => {
                let text = match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(e) => {
                        diags.push(Pos::file(path), format!("cannot read: {e}"));
                        continue;
                    }
                };
                let sql_path = path.with_extension("sql");
                let sql_text = std::fs::read_to_string(&sql_path).ok();
                let model = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let sql = match &sql_text {
                    None => None,
                    Some(t) => match templates.render(model, &sql_path, t) {
                        Ok(f) => Some(f),
                        Err((pos, message)) => {
                            diags.push(pos, message);
                            // Parsed as is, so the YAML's own problems are
                            // reported too; its SQL problems would be noise.
                            Some(spec::SqlFile::plain(&sql_path, "select 1"))
                        }
                    },
                };
                let (draft, problems) = parse_model_file(path, layer, &text, sql.as_ref());
                diags.extend(problems);
                if let Some(d) = draft {
                    if sql_text.is_some() && !matches!(d.model.source, Source::Sql { .. }) {
                        diags.push(
                            Pos::file(&sql_path),
                            format!("`{}` is a `{}` model: it has no SQL, so this file would be ignored", d.model.name, d.model.source.kind_name()),
                        );
                    }
                    drafts.push(d);
                }
            }
            "sql" => {
                let yml = path.with_extension("yml");
                if !yml.exists() && !path.with_extension("yaml").exists() {
                    diags.push(
                        Pos::file(path),
                        format!(
                            "SQL without a model file: add {} with `kind: sql` and its columns",
                            yml.display()
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// What SQL templates may name, read off the model files before they are
/// parsed (a file that does not parse is reported by the real pass).
fn catalog(root: &Path) -> Catalog {
    #[derive(Deserialize)]
    struct Light {
        kind: Option<String>,
        topic: Option<String>,
        input: Option<String>,
        quarantine: Option<String>,
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for layer in ["bronze", "silver", "gold"] {
        walk(&root.join(layer), &mut files);
    }
    let mut cat = Catalog::default();
    for path in files {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let light = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_saphyr::from_str::<Light>(&t).ok());
        cat.models.insert(name.to_string());
        let Some(light) = light else { continue };
        match light.kind.as_deref() {
            Some("kafka_source") => {
                cat.sources.insert(name.to_string(), light.topic);
            }
            Some("file_source") => {
                cat.sources.insert(name.to_string(), None);
            }
            Some("clean") => {
                if let Some(input) = light.input {
                    cat.cleans.insert(name.to_string(), input);
                }
                if let Some(q) = light.quarantine {
                    cat.models.insert(q);
                }
            }
            _ => {}
        }
    }
    cat
}
