//! How a pipeline is shown: `dag list` (text or JSON) and `dag graph` (DOT
//! for Graphviz, Mermaid for Markdown renderers such as GitHub's).

use crate::pipeline::Pipeline;
use jobs::decl::{Layer, Model};
use petgraph::graph::NodeIndex;
use std::collections::HashSet;
use std::fmt::Write;

/// Output format of `dag graph`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// One line per model: name, layer, kind, materialization, inputs, tags,
/// schedule, tests and warehouse target, aligned in columns.
pub fn list_text(p: &Pipeline, nodes: &[NodeIndex]) -> String {
    let rows: Vec<[String; 8]> = nodes
        .iter()
        .map(|&n| {
            let m = &p.graph[n];
            let inputs: Vec<&str> = p.inputs(n).iter().map(|i| i.name.as_str()).collect();
            [
                m.name.clone(),
                m.layer.to_string(),
                m.source.label(),
                m.materialized.as_str().to_string(),
                if inputs.is_empty() {
                    "-".into()
                } else {
                    inputs.join(",")
                },
                if m.tags.is_empty() {
                    "-".into()
                } else {
                    m.tags.join(",")
                },
                m.tests.len().to_string(),
                m.warehouse
                    .as_ref()
                    .map(|w| format!("{}.{}", w.schema, w.table))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "MODEL",
        "LAYER",
        "KIND",
        "MATERIALIZED",
        "INPUTS",
        "TAGS",
        "TESTS",
        "WAREHOUSE",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

/// The selection as JSON: an array of models with their inputs.
pub fn list_json(p: &Pipeline, nodes: &[NodeIndex]) -> String {
    let items: Vec<serde_json::Value> = nodes
        .iter()
        .map(|&n| {
            let m = &p.graph[n];
            serde_json::json!({
                "name": m.name,
                "layer": m.layer.as_str(),
                "kind": m.source.kind_name(),
                "materialized": m.materialized.as_str(),
                "inputs": p.inputs(n).iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
                "tags": m.tags,
                "schedule": m.schedule,
                "unique_key": m.unique_key,
                "partition_by": m.partition_by,
                "columns": m.columns.iter().map(|c| serde_json::json!({"name": c.name, "type": c.ty.to_string()})).collect::<Vec<_>>(),
                "tests": m.tests.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                "warehouse": m.warehouse.as_ref().map(|w| format!("{}.{}", w.schema, w.table)),
                "file": m.pos.file.display().to_string(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap_or_default()
}

fn layer_color(l: Layer) -> &'static str {
    match l {
        Layer::Bronze => "#cd7f32",
        Layer::Silver => "#c0c0c0",
        Layer::Gold => "#ffd700",
    }
}

/// The selected models of each layer that has any, in selection order.
fn by_layer<'a>(p: &'a Pipeline, nodes: &[NodeIndex]) -> Vec<(Layer, Vec<&'a Model>)> {
    Layer::ALL
        .into_iter()
        .map(|layer| {
            let members: Vec<&Model> = nodes
                .iter()
                .map(|n| &p.graph[*n])
                .filter(|m| m.layer == layer)
                .collect();
            (layer, members)
        })
        .filter(|(_, members)| !members.is_empty())
        .collect()
}

/// The selection and the edges among it, clustered by layer.
pub fn graph(p: &Pipeline, nodes: &[NodeIndex], format: GraphFormat) -> String {
    let selected: HashSet<NodeIndex> = nodes.iter().copied().collect();
    let edges: Vec<(NodeIndex, NodeIndex)> = nodes
        .iter()
        .flat_map(|&n| {
            p.inputs_idx(n)
                .into_iter()
                .filter(|i| selected.contains(i))
                .map(move |i| (i, n))
        })
        .collect();
    let mut out = String::new();
    match format {
        GraphFormat::Dot => {
            let _ = writeln!(out, "digraph \"{}\" {{", p.name);
            out.push_str("  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
            for (layer, members) in by_layer(p, nodes) {
                let _ = writeln!(out, "  subgraph cluster_{layer} {{\n    label=\"{layer}\";");
                for m in members {
                    let _ = writeln!(
                        out,
                        "    \"{}\" [fillcolor=\"{}\", tooltip=\"{}\"];",
                        m.name,
                        layer_color(layer),
                        m.source.label().replace('"', "'")
                    );
                }
                out.push_str("  }\n");
            }
            for (a, b) in edges {
                let _ = writeln!(out, "  \"{}\" -> \"{}\";", p.graph[a].name, p.graph[b].name);
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (layer, members) in by_layer(p, nodes) {
                let _ = writeln!(out, "  subgraph {layer}");
                for m in members {
                    let _ = writeln!(
                        out,
                        "    {}[\"{}<br/><small>{}</small>\"]",
                        m.name,
                        m.name,
                        m.source.label().replace('"', "'")
                    );
                }
                out.push_str("  end\n");
            }
            for (a, b) in edges {
                let _ = writeln!(out, "  {} --> {}", p.graph[a].name, p.graph[b].name);
            }
            for layer in Layer::ALL {
                let _ = writeln!(out, "  classDef {layer} fill:{}", layer_color(layer));
            }
            for n in nodes {
                let m = &p.graph[*n];
                let _ = writeln!(out, "  class {} {}", m.name, m.layer);
            }
        }
    }
    out
}
