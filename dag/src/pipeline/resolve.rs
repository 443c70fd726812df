//! Checking the models of a pipeline against each other: unique names
//! (not a layer's), the quarantine models that come with cleaning models,
//! references to models and their columns, which layer may read which,
//! and cycles (each named with the whole chain). Every problem goes to the
//! diagnostics; nothing stops at the first.

use super::graph;
use jobs::decl::{
    self, Diagnostics, FileFormat, Layer, Model, ModelDraft, Pos, RecordFormat, Source,
    did_you_mean,
};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Names a model may not take: they mean something else to selectors.
const RESERVED: [&str; 3] = ["bronze", "silver", "gold"];

/// A read of one model by another (indices into the models), and where.
pub type Edge = (usize, usize, Pos);

/// The models with unique, unreserved names, by name (index into the
/// models), and the drafts kept.
pub fn unique_names<'a>(
    drafts: &'a [ModelDraft],
    diags: &mut Diagnostics,
) -> (BTreeMap<String, usize>, Vec<Model>, Vec<&'a ModelDraft>) {
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    let mut models: Vec<Model> = Vec::new();
    let mut kept: Vec<&ModelDraft> = Vec::new();
    for draft in drafts {
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
    (by_name, models, kept)
}

/// Adds the quarantine model of each cleaning model (written by it).
pub fn add_quarantines(
    models: &mut Vec<Model>,
    by_name: &mut BTreeMap<String, usize>,
    diags: &mut Diagnostics,
) {
    let mut quarantines = Vec::new();
    for m in models.iter() {
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
                materialized: decl::Materialization::Append,
                unique_key: vec!["topic".into(), "partition".into(), "offset".into()],
                partition_by: vec!["ingest_date".into()],
                columns: decl::quarantine_columns(),
                tests: vec![],
                warehouse: None,
                pos: m.pos.clone(),
            });
        }
    }
    models.extend(quarantines);
}

/// The reads between models: inputs and mentions must name models,
/// columns of other models must exist, reads must respect layers; each
/// quarantine is read from its cleaning model.
pub fn references(
    kept: &[&ModelDraft],
    models: &[Model],
    by_name: &BTreeMap<String, usize>,
    diags: &mut Diagnostics,
) -> Vec<Edge> {
    let names: Vec<&str> = by_name.keys().map(String::as_str).collect();
    // Models whose own file has a problem reported (and no draft): their
    // readers would only repeat it as "unknown model".
    let broken: BTreeSet<String> = diags
        .iter()
        .filter(|d| {
            matches!(
                d.pos.file.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml")
            )
        })
        .filter_map(|d| Some(d.pos.file.file_stem()?.to_str()?.to_string()))
        .filter(|stem| !by_name.contains_key(stem))
        .collect();
    let mut edges: Vec<(usize, usize, Pos)> = Vec::new();
    for draft in kept {
        let me = by_name[&draft.model.name];
        for r in &draft.inputs {
            match by_name.get(&r.model) {
                None if broken.contains(&r.model) => {}
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
                    check_read(&draft.model, &models[src], &r.pos, diags);
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
    edges
}

/// One diagnostic per cycle of `graph`, naming the chain and where each
/// read is declared.
pub fn report_cycles(
    graph: &DiGraph<Model, ()>,
    edge_pos: &HashMap<(NodeIndex, NodeIndex), Pos>,
    diags: &mut Diagnostics,
) {
    for cycle in graph::cycles(graph) {
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
                edge_pos
                    .get(&(w[0], w[1]))
                    .map(|p| format!("  {} reads {} at {p}", graph[w[1]].name, graph[w[0]].name))
            })
            .collect();
        diags.push(
            pos,
            format!("cycle: {}\n{}", chain.join(" -> "), wheres.join("\n")),
        );
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
