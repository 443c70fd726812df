//! Parsing and checking one model file on its own.
//!
//! The YAML is first read into the `Raw*` structs of `raw`, then turned into
//! a typed [`Model`]. Checks that need only this file happen here and in the
//! `parse_*` files this one calls: known keys for the kind, types,
//! intervals, durations, and that every column a key, partition, rule or
//! test names is a declared column. Names of other models are returned as
//! [`Reference`](super::Reference)s for the loader to resolve.

use super::checks::{Declared, need};
use super::draft::{ModelDraft, Refs};
use super::parse_source::parse_source;
use super::parse_test::{TestFile, parse_tests};
use super::parse_warehouse::parse_warehouse;
use super::raw::{RawModel, names_of};
use super::scalars::{check_cron, is_identifier};
use super::{
    Column, ColumnType, Diagnostics, Layer, Materialization, Model, Pos, Source, SqlFile,
    bronze_columns, did_you_mean,
};
use std::collections::BTreeSet;
use std::path::Path;

/// Which top-level keys each kind accepts, besides `kind` itself.
fn allowed_keys(kind: &str) -> &'static [&'static str] {
    const COMMON: [&str; 3] = ["description", "tags", "schedule"];
    match kind {
        "kafka_source" => &["description", "tags", "schedule", "topic", "tests"],
        "file_source" => &["description", "tags", "schedule", "path", "format", "tests"],
        "clean" => &[
            "description",
            "tags",
            "schedule",
            "format",
            "input",
            "quarantine",
            "fields",
            "dedupe",
            "derive",
            "columns",
            "unique_key",
            "partition_by",
            "materialized",
            "tests",
        ],
        "seed" => &[
            "description",
            "tags",
            "schedule",
            "file",
            "columns",
            "unique_key",
            "tests",
        ],
        "sql" => &[
            "description",
            "tags",
            "schedule",
            "columns",
            "unique_key",
            "partition_by",
            "materialized",
            "tests",
            "warehouse",
            "on_schema_change",
            "asof",
            "scope",
            "scope_presence",
            "accumulate",
        ],
        _ => &COMMON,
    }
}

const KINDS: [&str; 5] = ["kafka_source", "file_source", "clean", "seed", "sql"];

/// Parses one model file. `layer` comes from the folder the file is in;
/// `sql` is the sibling `<name>.sql`, rendered if it is a template, if any.
///
/// Returns the draft whenever the file could be read as a model at all
/// (even with problems, so the loader can still check its references and
/// report everything at once), and the problems found.
pub fn parse_model_file(
    path: &Path,
    layer: Layer,
    text: &str,
    sql: Option<&SqlFile>,
) -> (Option<ModelDraft>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let name = model_name(path, &mut diags);
    let Some(raw) = read_raw(path, text, &mut diags) else {
        return (None, diags);
    };
    let Some(kind) = check_kind(path, layer, &raw, &mut diags) else {
        return (None, diags);
    };
    check_keys_apply(path, kind, &raw, &mut diags);
    let columns = parse_columns(path, kind, &raw, &mut diags);
    let declared = Declared::new(path, &name, &columns);
    check_key_columns(&raw, &declared, &mut diags);
    let materialized = parse_materialized(path, kind, &raw, &mut diags);
    if let Some(s) = &raw.schedule
        && let Err(e) = check_cron(&s.value)
    {
        diags.push(Pos::at(path, &s.referenced), format!("schedule {e}"));
    }
    let mut refs = Refs::default();
    let source = parse_source(path, kind, &raw, sql, &declared, &mut diags, &mut refs);
    let test_file = TestFile {
        path,
        source: text,
        declared: &declared,
    };
    let tests = parse_tests(&test_file, &raw, &mut diags, &mut refs);
    let unique_key = names_of(&raw.unique_key);
    let warehouse = parse_warehouse(path, &name, &raw, &unique_key, &mut diags);
    let partition_by = if is_bronze(kind) {
        vec!["ingest_date".to_string()]
    } else {
        names_of(&raw.partition_by)
    };
    let model = Model {
        name,
        layer,
        unique_key: default_unique_key(unique_key, &source),
        source,
        description: raw.description.map(|d| d.value).unwrap_or_default(),
        tags: names_of(&raw.tags),
        schedule: raw.schedule.map(|s| s.value),
        materialized,
        partition_by,
        columns,
        tests,
        warehouse,
        pos: Pos::file(path),
    };
    let draft = ModelDraft {
        model,
        inputs: refs.inputs,
        mentions: refs.mentions,
        foreign_columns: refs.foreign_columns,
    };
    (Some(draft), diags)
}

/// The model's name: the file's, which must be an identifier.
fn model_name(path: &Path, diags: &mut Diagnostics) -> String {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if !is_identifier(&name) {
        diags.push(
            Pos::file(path),
            format!(
                "model name `{name}` (the file name) must be a lower-case identifier: a-z, 0-9, _, not starting with a digit"
            ),
        );
    }
    name
}

/// The file read as YAML; `None` if it is empty or not a model's YAML.
fn read_raw(path: &Path, text: &str, diags: &mut Diagnostics) -> Option<RawModel> {
    if text.trim().is_empty() {
        diags.push(
            Pos::file(path),
            "empty model file: it needs at least `kind:`",
        );
        return None;
    }
    match serde_saphyr::from_str(text) {
        Ok(raw) => Some(raw),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos::at(path, &l))
                .unwrap_or_else(|| Pos::file(path));
            diags.push(
                pos,
                format!("malformed model file: {}", parser_message(&e.to_string())),
            );
            None
        }
    }
}

/// The model's kind, one of [`KINDS`], and whether the file sits in the
/// layer folder the kind belongs to; `None` if the kind is missing or
/// unknown (nothing else can be checked then).
fn check_kind(
    path: &Path,
    layer: Layer,
    raw: &RawModel,
    diags: &mut Diagnostics,
) -> Option<&'static str> {
    let at = |loc: &serde_saphyr::Location| Pos::at(path, loc);
    let Some(kind) = raw.kind.as_ref() else {
        diags.push(
            Pos::file(path),
            format!("missing `kind:` (one of {})", KINDS.join(", ")),
        );
        return None;
    };
    let Some(kind_name) = KINDS.into_iter().find(|k| *k == kind.value) else {
        let kind_name = kind.value.as_str();
        diags.push(
            at(&kind.referenced),
            format!(
                "unknown kind `{kind_name}`{}: use one of {}",
                did_you_mean(kind_name, KINDS),
                KINDS.join(", ")
            ),
        );
        return None;
    };
    let expected_layer = match kind_name {
        "kafka_source" | "file_source" => Some(Layer::Bronze),
        "clean" | "seed" => Some(Layer::Silver),
        _ => None,
    };
    if let Some(expected) = expected_layer
        && expected != layer
    {
        diags.push(
            at(&kind.referenced),
            format!("a `{kind_name}` model belongs in the `{expected}/` folder, not `{layer}/`"),
        );
    }
    if kind_name == "sql" && layer == Layer::Bronze {
        diags.push(
            at(&kind.referenced),
            "a `sql` model cannot be in `bronze/`: bronze only lands Kafka topics and files",
        );
    }
    Some(kind_name)
}

/// Reports keys that exist in the format but not for this kind.
fn check_keys_apply(path: &Path, kind: &str, raw: &RawModel, diags: &mut Diagnostics) {
    let allowed = allowed_keys(kind);
    for (key, loc) in raw.present_keys() {
        if let Some(loc) = loc
            && !allowed.contains(&key)
        {
            diags.push(
                Pos::at(path, loc),
                format!(
                    "`{key}` does not apply to a `{kind}` model (it accepts: {})",
                    allowed.join(", ")
                ),
            );
        }
    }
}

/// Bronze kinds land raw records: their table's columns are fixed.
fn is_bronze(kind: &str) -> bool {
    matches!(kind, "kafka_source" | "file_source")
}

/// The model's columns: fixed for bronze, declared otherwise.
fn parse_columns(path: &Path, kind: &str, raw: &RawModel, diags: &mut Diagnostics) -> Vec<Column> {
    if is_bronze(kind) {
        return bronze_columns();
    }
    let mut cols = Vec::new();
    let Some(list) = &raw.columns else {
        need(diags, path, kind, "columns");
        return cols;
    };
    let mut seen = BTreeSet::new();
    for c in &list.value {
        let pos = Pos::at(path, &c.name.referenced);
        if !is_identifier(&c.name.value) {
            diags.push(
                pos.clone(),
                format!(
                    "column name `{}` must be a lower-case identifier",
                    c.name.value
                ),
            );
        }
        if !seen.insert(c.name.value.clone()) {
            diags.push(
                pos.clone(),
                format!("column `{}` is declared twice", c.name.value),
            );
        }
        let ty = ColumnType::parse(&c.ty.value).unwrap_or_else(|| {
            diags.push(
                Pos::at(path, &c.ty.referenced),
                format!(
                    "unknown column type `{}` (use {})",
                    c.ty.value,
                    ColumnType::NAMES
                ),
            );
            ColumnType::String
        });
        cols.push(Column {
            name: c.name.value.clone(),
            ty,
            description: c.description.clone().unwrap_or_default(),
            nullable: c.nullable.unwrap_or(true),
        });
    }
    cols
}

/// Reports `unique_key` and `partition_by` columns the model does not declare.
fn check_key_columns(raw: &RawModel, declared: &Declared, diags: &mut Diagnostics) {
    if let Some(keys) = &raw.unique_key {
        for k in &keys.value {
            declared.check(diags, k, "`unique_key`");
        }
    }
    if let Some(parts) = &raw.partition_by {
        for p in &parts.value {
            declared.check(diags, p, "`partition_by`");
        }
    }
}

/// `materialized:`, or the kind's default. An incremental `sql` model
/// merges, so it needs a key to merge on.
fn parse_materialized(
    path: &Path,
    kind: &str,
    raw: &RawModel,
    diags: &mut Diagnostics,
) -> Materialization {
    let materialized = match &raw.materialized {
        None => match kind {
            "kafka_source" | "file_source" => Materialization::Append,
            "clean" => Materialization::Incremental,
            _ => Materialization::Table,
        },
        Some(m) => match m.value.as_str() {
            "table" => Materialization::Table,
            "incremental" => Materialization::Incremental,
            "append" => Materialization::Append,
            other => {
                diags.push(
                    Pos::at(path, &m.referenced),
                    format!("unknown materialization `{other}` (use table, incremental or append)"),
                );
                Materialization::Table
            }
        },
    };
    if materialized == Materialization::Incremental
        && names_of(&raw.unique_key).is_empty()
        && kind == "sql"
    {
        diags.push(
            raw.materialized
                .as_ref()
                .map(|m| Pos::at(path, &m.referenced))
                .unwrap_or_else(|| Pos::file(path)),
            "an `incremental` model needs `unique_key:` to merge on",
        );
    }
    materialized
}

/// The declared unique key, or the key the source implies when none is.
fn default_unique_key(declared: Vec<String>, source: &Source) -> Vec<String> {
    if !declared.is_empty() {
        return declared;
    }
    match source {
        Source::Clean { dedupe, .. } => dedupe.key.clone(),
        Source::Kafka { .. } => vec!["partition".into(), "offset".into()],
        // A file's path is its `topic`, a record's place its `offset`.
        Source::Files { .. } => vec!["topic".into(), "offset".into()],
        _ => declared,
    }
}

/// The first line of a parser message, without the parser's own
/// "error: line N column M: " prefix (the diagnostic carries the place).
pub fn parser_message(s: &str) -> &str {
    let line = s.lines().next().unwrap_or(s);
    let rest = line.strip_prefix("error: ").unwrap_or(line);
    match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((place, msg)) if place.contains("column") => msg,
        _ => rest,
    }
}
