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

mod files;
mod graph;
mod resolve;
mod selection;

pub use graph::Cycle;

use jobs::decl::template::Templates;
use jobs::decl::{Diagnostics, Model, Pos};
use petgraph::graph::{DiGraph, NodeIndex};
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

/// The node that loads the warehouse at the end of a run (no model can
/// take the name: `:` is not allowed in one).
pub const LOAD_NODE: &str = "load:warehouse";

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
        let (description, raw_schedules) = files::read_pipeline_yml(root, &mut diags);
        let (templates, problems) =
            Templates::new(&root.join("macros"), files::catalog(root), vars.clone());
        diags.extend(problems);
        let drafts = files::read_models(root, &templates, &mut diags);

        let (mut by_name, mut models, kept) = resolve::unique_names(&drafts, &mut diags);
        resolve::add_quarantines(&mut models, &mut by_name, &mut diags);
        let edges = resolve::references(&kept, &models, &by_name, &mut diags);

        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = models.into_iter().map(|m| graph.add_node(m)).collect();
        let edge_pos: HashMap<(NodeIndex, NodeIndex), Pos> = edges
            .iter()
            .map(|(s, d, p)| ((nodes[*s], nodes[*d]), p.clone()))
            .collect();
        for (s, d, _) in &edges {
            graph.add_edge(nodes[*s], nodes[*d], ());
        }
        resolve::report_cycles(&graph, &edge_pos, &mut diags);
        for m in graph.node_weights() {
            for (pos, problem) in jobs::datatest::conditions::problems(m) {
                diags.push(pos, problem);
            }
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
                    if let Err(e) = jobs::decl::check_cron(&s.cron.value) {
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
