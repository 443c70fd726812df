//! Parsing and checking one model file on its own.
//!
//! A YAML file is first read into flat `Raw*` structs (`deny_unknown_fields`
//! everywhere, every value `Spanned` so errors can point at it), then turned
//! into a typed [`Model`]. Checks that need only this file happen here:
//! known keys for the kind, types, intervals, durations, and that every
//! column a key, partition, rule or test names is a declared column. Names of
//! other models are returned as [`Reference`]s for the loader to resolve.

use super::*;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// A parsed model and what it says about other models, for the loader.
#[derive(Clone, Debug)]
pub struct ModelDraft {
    pub model: Model,
    /// Models this one reads (DAG edges), with where they are named.
    pub inputs: Vec<Reference>,
    /// Other models named without being read (tests' targets).
    pub mentions: Vec<Reference>,
    /// Columns of other models named here: (model, column, where).
    pub foreign_columns: Vec<(String, String, Pos)>,
}

/// A model name used in a file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub model: String,
    pub pos: Pos,
}

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    kind: Option<S<String>>,
    description: Option<S<String>>,
    tags: Option<S<Vec<S<String>>>>,
    schedule: Option<S<String>>,
    materialized: Option<S<String>>,
    unique_key: Option<S<Vec<S<String>>>>,
    partition_by: Option<S<Vec<S<String>>>>,
    columns: Option<S<Vec<RawColumn>>>,
    tests: Option<S<Vec<S<RawTest>>>>,
    warehouse: Option<S<RawWarehouse>>,
    on_schema_change: Option<S<String>>,
    topic: Option<S<String>>,
    input: Option<S<String>>,
    quarantine: Option<S<String>>,
    fields: Option<S<Vec<RawField>>>,
    dedupe: Option<S<RawDedupe>>,
    derive: Option<S<Vec<RawDerive>>>,
    file: Option<S<String>>,
    path: Option<S<String>>,
    format: Option<S<String>>,
    asof: Option<S<Vec<RawAsof>>>,
    scope: Option<S<BTreeMap<String, BTreeMap<String, String>>>>,
    scope_presence: Option<S<Vec<S<String>>>>,
    accumulate: Option<S<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: S<String>,
    #[serde(rename = "type")]
    ty: S<String>,
    description: Option<String>,
    nullable: Option<bool>,
    tests: Option<Vec<S<RawTest>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: S<String>,
    #[serde(rename = "type")]
    ty: S<String>,
    required: Option<bool>,
    range: Option<S<String>>,
    max_decimals: Option<u32>,
    max_ahead_of_ingest: Option<S<String>>,
    path: Option<S<String>>,
    #[serde(rename = "as")]
    column_type: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDedupe {
    key: Vec<S<String>>,
    order: Option<Vec<S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDerive {
    name: S<String>,
    sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsof {
    name: S<String>,
    left: S<String>,
    right: S<String>,
    left_on: S<String>,
    right_on: S<String>,
    by: Vec<S<String>>,
    tie_break: Option<S<String>>,
    select: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawWarehouse {
    Flag(bool),
    Target {
        #[serde(default)]
        table: Option<String>,
    },
}

/// A test entry: `not_null` or `{relationships: {to: m, field: c}}`.
struct RawTest {
    kind: String,
    args: RawTestArgs,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTestArgs {
    severity: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    warn_if: Option<String>,
    error_if: Option<String>,
    // relationships
    to: Option<S<String>>,
    field: Option<S<String>>,
    // accepted_values
    values: Option<Vec<String>>,
    range: Option<String>,
    // unique
    columns: Option<Vec<S<String>>>,
    // not_null / freshness at model level
    column: Option<S<String>>,
    // expression
    sql: Option<String>,
    // row_count
    min: Option<u64>,
    max: Option<u64>,
    equal_to: Option<RawCountOf>,
    // freshness
    max_lag: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCountOf {
    model: S<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
}

impl<'de> Deserialize<'de> for RawTest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawTest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a test name (e.g. `not_null`) or a one-key map such as `relationships: {to: m, field: c}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTest, E> {
                Ok(RawTest {
                    kind: v.to_string(),
                    args: RawTestArgs::default(),
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawTest, A::Error> {
                let Some((kind, args)) = map.next_entry::<String, Option<RawTestArgs>>()? else {
                    return Err(serde::de::Error::custom(
                        "a test map needs one key: the test kind",
                    ));
                };
                if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "a test map has exactly one key, the test kind; put `{kind}`'s options under it"
                    )));
                }
                Ok(RawTest {
                    kind,
                    args: args.unwrap_or_default(),
                })
            }
        }
        d.deserialize_any(V)
    }
}

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

/// Model and column names: lower-case identifiers, safe as Delta folder and
/// PostgreSQL names without quoting surprises.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && s.len() <= 63
}

/// Checks the shape of a schedule: a cron expression with seconds, as
/// tokio-cron-scheduler reads it. One rule for model files and pipeline.yml.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if (6..=7).contains(&fields) {
        Ok(())
    } else {
        Err(format!(
            "`{expr}` must be a cron expression with seconds: `sec min hour day month weekday [year]` (got {fields} fields)"
        ))
    }
}

/// Parses a duration such as `5m`, `300s`, `1h30m`, `2d`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "duration `{text}` must look like `5m`, `300s`, `1h30m`"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86400),
            _ => {
                return Err(format!(
                    "duration `{text}` must look like `5m`, `300s`, `1h30m` (units ms, s, m, h, d; no spaces)"
                ));
            }
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The `Line: l, Column: c` sqlparser puts at the end of its messages.
fn sql_error_position(message: &str) -> (Option<u64>, u64) {
    let num = |key: &str| {
        let at = message.rfind(key)? + key.len();
        let digits: String = message[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u64>().ok()
    };
    (num("Line:"), num("Column:").unwrap_or(0))
}

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
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let file_pos = Pos::file(path);
    if !is_identifier(&name) {
        diags.push(
            file_pos.clone(),
            format!(
                "model name `{name}` (the file name) must be a lower-case identifier: a-z, 0-9, _, not starting with a digit"
            ),
        );
    }
    if text.trim().is_empty() {
        diags.push(file_pos, "empty model file: it needs at least `kind:`");
        return (None, diags);
    }
    let raw: RawModel = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos::at(path, &l))
                .unwrap_or_else(|| Pos::file(path));
            diags.push(
                pos,
                format!("malformed model file: {}", parser_message(&e.to_string())),
            );
            return (None, diags);
        }
    };
    let at = |loc: &serde_saphyr::Location| Pos::at(path, loc);

    let Some(kind) = raw.kind.as_ref() else {
        diags.push(
            Pos::file(path),
            format!("missing `kind:` (one of {})", KINDS.join(", ")),
        );
        return (None, diags);
    };
    let kind_name = kind.value.as_str();
    if !KINDS.contains(&kind_name) {
        diags.push(
            at(&kind.referenced),
            format!(
                "unknown kind `{kind_name}`{}: use one of {}",
                did_you_mean(kind_name, KINDS),
                KINDS.join(", ")
            ),
        );
        return (None, diags);
    }
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

    // Keys that exist in the format but not for this kind.
    let allowed = allowed_keys(kind_name);
    let present: [(&str, Option<&serde_saphyr::Location>); 23] = [
        (
            "description",
            raw.description.as_ref().map(|s| &s.referenced),
        ),
        ("tags", raw.tags.as_ref().map(|s| &s.referenced)),
        ("schedule", raw.schedule.as_ref().map(|s| &s.referenced)),
        (
            "materialized",
            raw.materialized.as_ref().map(|s| &s.referenced),
        ),
        ("unique_key", raw.unique_key.as_ref().map(|s| &s.referenced)),
        (
            "partition_by",
            raw.partition_by.as_ref().map(|s| &s.referenced),
        ),
        ("columns", raw.columns.as_ref().map(|s| &s.referenced)),
        ("tests", raw.tests.as_ref().map(|s| &s.referenced)),
        ("warehouse", raw.warehouse.as_ref().map(|s| &s.referenced)),
        (
            "on_schema_change",
            raw.on_schema_change.as_ref().map(|s| &s.referenced),
        ),
        ("topic", raw.topic.as_ref().map(|s| &s.referenced)),
        ("input", raw.input.as_ref().map(|s| &s.referenced)),
        ("quarantine", raw.quarantine.as_ref().map(|s| &s.referenced)),
        ("fields", raw.fields.as_ref().map(|s| &s.referenced)),
        ("dedupe", raw.dedupe.as_ref().map(|s| &s.referenced)),
        ("derive", raw.derive.as_ref().map(|s| &s.referenced)),
        ("file", raw.file.as_ref().map(|s| &s.referenced)),
        ("path", raw.path.as_ref().map(|s| &s.referenced)),
        ("format", raw.format.as_ref().map(|s| &s.referenced)),
        ("asof", raw.asof.as_ref().map(|s| &s.referenced)),
        ("scope", raw.scope.as_ref().map(|s| &s.referenced)),
        (
            "scope_presence",
            raw.scope_presence.as_ref().map(|s| &s.referenced),
        ),
        ("accumulate", raw.accumulate.as_ref().map(|s| &s.referenced)),
    ];
    for (key, loc) in present {
        if let Some(loc) = loc
            && !allowed.contains(&key)
        {
            diags.push(
                at(loc),
                format!(
                    "`{key}` does not apply to a `{kind_name}` model (it accepts: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    let mut inputs = Vec::new();
    let mut mentions = Vec::new();
    let mut foreign_columns = Vec::new();
    let need = |diags: &mut Diagnostics, key: &str| {
        diags.push(
            Pos::file(path),
            format!("a `{kind_name}` model needs `{key}:`"),
        );
    };

    // Columns: fixed for bronze, declared otherwise.
    let bronze_kind = matches!(kind_name, "kafka_source" | "file_source");
    let columns: Vec<Column> = if bronze_kind {
        bronze_columns()
    } else {
        let mut cols = Vec::new();
        let mut seen = BTreeSet::new();
        match &raw.columns {
            None => need(&mut diags, "columns"),
            Some(list) => {
                for c in &list.value {
                    let pos = at(&c.name.referenced);
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
                            at(&c.ty.referenced),
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
            }
        }
        cols
    };
    let col_names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let check_column = |diags: &mut Diagnostics, col: &S<String>, what: &str| {
        if !col_names.contains(&col.value.as_str()) {
            diags.push(
                at(&col.referenced),
                format!(
                    "{what} names column `{}`, which `{name}` does not declare{}",
                    col.value,
                    did_you_mean(&col.value, col_names.iter().copied())
                ),
            );
        }
    };
    let names_of = |list: &Option<S<Vec<S<String>>>>| -> Vec<String> {
        list.as_ref()
            .map(|l| l.value.iter().map(|s| s.value.clone()).collect())
            .unwrap_or_default()
    };

    if let Some(keys) = &raw.unique_key {
        for k in &keys.value {
            check_column(&mut diags, k, "`unique_key`");
        }
    }
    if let Some(parts) = &raw.partition_by {
        for p in &parts.value {
            check_column(&mut diags, p, "`partition_by`");
        }
    }
    let materialized = match &raw.materialized {
        None => match kind_name {
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
                    at(&m.referenced),
                    format!("unknown materialization `{other}` (use table, incremental or append)"),
                );
                Materialization::Table
            }
        },
    };
    let unique_key = names_of(&raw.unique_key);
    if materialized == Materialization::Incremental && unique_key.is_empty() && kind_name == "sql" {
        diags.push(
            raw.materialized
                .as_ref()
                .map(|m| at(&m.referenced))
                .unwrap_or_else(|| Pos::file(path)),
            "an `incremental` model needs `unique_key:` to merge on",
        );
    }
    if let Some(s) = &raw.schedule
        && let Err(e) = check_cron(&s.value)
    {
        diags.push(at(&s.referenced), format!("schedule {e}"));
    }

    let source = match kind_name {
        "kafka_source" => match &raw.topic {
            Some(t) if !t.value.trim().is_empty() => Source::Kafka {
                topic: t.value.clone(),
            },
            _ => {
                need(&mut diags, "topic");
                Source::Kafka {
                    topic: String::new(),
                }
            }
        },
        "file_source" => parse_file_source(path, &raw, &mut diags),
        "seed" => match &raw.file {
            Some(f) => {
                if f.value.contains("..") || Path::new(&f.value).is_absolute() {
                    diags.push(
                        at(&f.referenced),
                        "a seed `file` is a path inside the data folder",
                    );
                }
                if raw.unique_key.is_none() {
                    need(&mut diags, "unique_key");
                }
                Source::Seed {
                    file: f.value.clone(),
                }
            }
            None => {
                need(&mut diags, "file");
                Source::Seed {
                    file: String::new(),
                }
            }
        },
        "clean" => parse_clean(
            path,
            &raw,
            &columns,
            &mut diags,
            &mut inputs,
            &mut foreign_columns,
            &check_column,
        ),
        _ => match sql {
            None => {
                diags.push(
                    Pos::file(path),
                    format!("a `sql` model needs its query in `{name}.sql` beside this file"),
                );
                Source::Sql {
                    sql: String::new(),
                    asof: vec![],
                    scope: vec![],
                    accumulate: vec![],
                }
            }
            Some(file) => {
                let asof = parse_asof(path, &raw, &mut diags, &mut inputs, &mut foreign_columns);
                match sql_relations(&file.rendered) {
                    Err(e) => {
                        let (line, column) = sql_error_position(&e);
                        let pos = match line {
                            Some(l) => file.pos(l, column),
                            None => Pos::file(&file.path),
                        };
                        let hint = line
                            .map(|l| file.rendered_hint(&name, l))
                            .unwrap_or_default();
                        diags.push(pos, format!("malformed SQL: {e}{hint}"));
                    }
                    Ok(rels) => {
                        for r in rels {
                            if asof.iter().any(|a| a.name == r.name) {
                                continue;
                            }
                            inputs.push(Reference {
                                model: r.name,
                                pos: file.pos(r.line, r.column),
                            });
                        }
                    }
                }
                let scope = parse_scope(
                    path,
                    &raw,
                    &mut diags,
                    &col_names,
                    &inputs,
                    &asof,
                    &mut foreign_columns,
                );
                let accumulate =
                    parse_accumulate(path, &raw, &mut diags, &col_names, &inputs, &asof);
                Source::Sql {
                    sql: file.rendered.clone(),
                    asof,
                    scope,
                    accumulate,
                }
            }
        },
    };

    // Tests: column-level then model-level, all checked the same way.
    let mut tests = Vec::new();
    if let Some(list) = &raw.columns {
        for c in &list.value {
            for t in c.tests.iter().flatten() {
                if let Some(test) = parse_test(
                    path,
                    &name,
                    Some(&c.name.value),
                    t,
                    &col_names,
                    &mut diags,
                    &mut mentions,
                    &mut foreign_columns,
                ) {
                    tests.push(test);
                }
            }
        }
    }
    if let Some(list) = &raw.tests {
        for t in &list.value {
            if let Some(test) = parse_test(
                path,
                &name,
                None,
                t,
                &col_names,
                &mut diags,
                &mut mentions,
                &mut foreign_columns,
            ) {
                tests.push(test);
            }
        }
    }
    let mut test_names: BTreeMap<String, Pos> = BTreeMap::new();
    for t in &tests {
        if let Some(first) = test_names.insert(t.name.clone(), t.pos.clone()) {
            diags.push(
                t.pos.clone(),
                format!("test `{}` is declared twice (first at {first})", t.name),
            );
        }
    }

    let on_schema_change = match &raw.on_schema_change {
        None => OnSchemaChange::default(),
        Some(v) => OnSchemaChange::parse(&v.value).unwrap_or_else(|| {
            diags.push(
                at(&v.referenced),
                format!(
                    "on_schema_change `{}` is not one of: fail, append_new_columns, sync_all_columns",
                    v.value
                ),
            );
            OnSchemaChange::default()
        }),
    };
    let warehouse = match &raw.warehouse {
        None
        | Some(Spanned {
            value: RawWarehouse::Flag(false),
            ..
        }) => None,
        Some(Spanned {
            value: RawWarehouse::Flag(true),
            ..
        }) => Some(WarehouseTarget {
            schema: "gold".into(),
            table: name.clone(),
            on_schema_change,
        }),
        Some(Spanned {
            value: RawWarehouse::Target { table },
            referenced,
            ..
        }) => {
            let full = table.clone().unwrap_or_else(|| format!("gold.{name}"));
            let (schema, table) = full.split_once('.').unwrap_or(("gold", full.as_str()));
            if !is_identifier(schema) || !is_identifier(table) {
                diags.push(at(referenced), format!("warehouse table `{full}` must be `schema.table` with lower-case identifiers"));
            }
            Some(WarehouseTarget {
                schema: schema.into(),
                table: table.into(),
                on_schema_change,
            })
        }
    };
    if let Some(v) = &raw.on_schema_change
        && warehouse.is_none()
    {
        diags.push(
            at(&v.referenced),
            "`on_schema_change` says what happens to this model's warehouse table when its columns change: the model has no `warehouse:`",
        );
    }
    if warehouse.is_some() && unique_key.is_empty() {
        diags.push(
            raw.warehouse
                .as_ref()
                .map(|w| at(&w.referenced))
                .unwrap_or_else(|| Pos::file(path)),
            "a model loaded into the warehouse needs `unique_key:` (the table's primary key)",
        );
    }

    let partition_by = if bronze_kind {
        vec!["ingest_date".to_string()]
    } else {
        names_of(&raw.partition_by)
    };
    let unique_key = if unique_key.is_empty() {
        match &source {
            Source::Clean { dedupe, .. } => dedupe.key.clone(),
            Source::Kafka { .. } => vec!["partition".into(), "offset".into()],
            // A file's path is its `topic`, a record's place its `offset`.
            Source::Files { .. } => vec!["topic".into(), "offset".into()],
            _ => unique_key,
        }
    } else {
        unique_key
    };
    let model = Model {
        name,
        layer,
        source,
        description: raw.description.map(|d| d.value).unwrap_or_default(),
        tags: names_of(&raw.tags),
        schedule: raw.schedule.map(|s| s.value),
        materialized,
        unique_key,
        partition_by,
        columns,
        tests,
        warehouse,
        pos: Pos::file(path),
    };
    let draft = ModelDraft {
        model,
        inputs,
        mentions,
        foreign_columns,
    };
    (Some(draft), diags)
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

#[allow(clippy::too_many_arguments)]
/// `file_source`: where the files arrive and their format.
fn parse_file_source(path: &Path, raw: &RawModel, diags: &mut Diagnostics) -> Source {
    let at = |loc: &serde_saphyr::Location| Pos::at(path, loc);
    let folder = match &raw.path {
        Some(p) if !p.value.trim().is_empty() => p.value.clone(),
        _ => {
            diags.push(
                Pos::file(path),
                "a `file_source` model needs `path:` (a folder, or a URL such as s3://bucket/prefix)",
            );
            String::new()
        }
    };
    let format = match &raw.format {
        Some(f) => FileFormat::parse(&f.value).unwrap_or_else(|| {
            diags.push(
                at(&f.referenced),
                format!(
                    "unknown file format `{}`{} (use {})",
                    f.value,
                    did_you_mean(&f.value, ["csv", "json", "parquet"]),
                    FileFormat::NAMES
                ),
            );
            FileFormat::Json
        }),
        None => {
            diags.push(
                Pos::file(path),
                format!(
                    "a `file_source` model needs `format:` ({})",
                    FileFormat::NAMES
                ),
            );
            FileFormat::Json
        }
    };
    Source::Files {
        path: folder,
        format,
    }
}

fn parse_clean(
    path: &Path,
    raw: &RawModel,
    columns: &[Column],
    diags: &mut Diagnostics,
    inputs: &mut Vec<Reference>,
    foreign_columns: &mut Vec<(String, String, Pos)>,
    check_column: &dyn Fn(&mut Diagnostics, &S<String>, &str),
) -> Source {
    let at = |loc: &serde_saphyr::Location| Pos::at(path, loc);
    let need = |diags: &mut Diagnostics, key: &str| {
        diags.push(Pos::file(path), format!("a `clean` model needs `{key}:`"));
    };
    let input = match &raw.input {
        Some(i) => {
            inputs.push(Reference {
                model: i.value.clone(),
                pos: at(&i.referenced),
            });
            i.value.clone()
        }
        None => {
            need(diags, "input");
            String::new()
        }
    };
    let quarantine = match &raw.quarantine {
        Some(q) if is_identifier(&q.value) => q.value.clone(),
        Some(q) => {
            diags.push(
                at(&q.referenced),
                format!(
                    "quarantine name `{}` must be a lower-case identifier",
                    q.value
                ),
            );
            String::new()
        }
        None => {
            need(diags, "quarantine");
            String::new()
        }
    };
    let mut fields = Vec::new();
    match &raw.fields {
        None => need(diags, "fields"),
        Some(list) => {
            let mut seen = BTreeSet::new();
            for f in &list.value {
                let pos = at(&f.name.referenced);
                if !seen.insert(f.name.value.clone()) {
                    diags.push(
                        pos.clone(),
                        format!("field `{}` has two rules", f.name.value),
                    );
                }
                check_column(diags, &f.name, "field rule");
                let Some(kind) = FieldKind::parse(&f.ty.value) else {
                    diags.push(
                        at(&f.ty.referenced),
                        format!(
                            "unknown field type `{}` (use string, number, integer, timestamp)",
                            f.ty.value
                        ),
                    );
                    continue;
                };
                let range = f.range.as_ref().and_then(|r| {
                    if !matches!(kind, FieldKind::Number | FieldKind::Integer) {
                        diags.push(
                            at(&r.referenced),
                            "`range` applies to number and integer fields only",
                        );
                        return None;
                    }
                    Interval::parse(&r.value)
                        .map_err(|e| diags.push(at(&r.referenced), e))
                        .ok()
                });
                if f.max_decimals.is_some() && kind != FieldKind::Number {
                    diags.push(pos.clone(), "`max_decimals` applies to number fields only");
                }
                let max_ahead = f.max_ahead_of_ingest.as_ref().and_then(|d| {
                    if kind != FieldKind::Timestamp {
                        diags.push(
                            at(&d.referenced),
                            "`max_ahead_of_ingest` applies to timestamp fields only",
                        );
                        return None;
                    }
                    parse_duration(&d.value)
                        .map_err(|e| diags.push(at(&d.referenced), e))
                        .ok()
                });
                let column = match &f.column_type {
                    None => kind.default_column(),
                    Some(t) => ColumnType::parse(&t.value).unwrap_or_else(|| {
                        diags.push(
                            at(&t.referenced),
                            format!(
                                "unknown column type `{}` (use {})",
                                t.value,
                                ColumnType::NAMES
                            ),
                        );
                        kind.default_column()
                    }),
                };
                if let Some(declared) = columns.iter().find(|c| c.name == f.name.value)
                    && declared.ty != column
                {
                    diags.push(
                        pos.clone(),
                        format!(
                            "field `{}` lands as {column} but its column is declared {}; add `as: {}` or fix the column",
                            f.name.value, declared.ty, declared.ty
                        ),
                    );
                }
                let field_path: Vec<String> = match &f.path {
                    None => vec![f.name.value.clone()],
                    Some(p) => {
                        let parts: Vec<String> =
                            p.value.split('.').map(|s| s.to_string()).collect();
                        if parts.iter().any(|s| s.is_empty()) {
                            diags.push(
                                at(&p.referenced),
                                format!(
                                    "`path: {}` names members of nested objects separated by dots (`location.lat`)",
                                    p.value
                                ),
                            );
                        }
                        parts
                    }
                };
                fields.push(FieldRule {
                    name: f.name.value.clone(),
                    path: field_path,
                    kind,
                    required: f.required.unwrap_or(false),
                    range,
                    max_decimals: f.max_decimals,
                    max_ahead_of_ingest: max_ahead,
                    column,
                });
            }
        }
    }
    let dedupe = match &raw.dedupe {
        None => {
            need(diags, "dedupe");
            Dedupe {
                key: vec![],
                order: vec![],
            }
        }
        Some(d) => {
            for k in &d.value.key {
                check_column(diags, k, "`dedupe.key`");
            }
            // The order is over bronze columns (which copy arrived first).
            let order: Vec<String> = match &d.value.order {
                Some(o) => o
                    .iter()
                    .map(|c| {
                        foreign_columns.push((input.clone(), c.value.clone(), at(&c.referenced)));
                        c.value.clone()
                    })
                    .collect(),
                None => vec!["ingested_at".into(), "partition".into(), "offset".into()],
            };
            Dedupe {
                key: d.value.key.iter().map(|k| k.value.clone()).collect(),
                order,
            }
        }
    };
    let derive = raw
        .derive
        .as_ref()
        .map(|list| {
            list.value
                .iter()
                .map(|d| {
                    check_column(diags, &d.name, "`derive`");
                    Derived {
                        name: d.name.value.clone(),
                        sql: d.sql.clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let format = match &raw.format {
        None => RecordFormat::Json,
        Some(f) => match f.value.as_str() {
            "json" => RecordFormat::Json,
            "csv" => RecordFormat::Csv,
            other => {
                diags.push(
                    at(&f.referenced),
                    format!("unknown record format `{other}` (use json or csv)"),
                );
                RecordFormat::Json
            }
        },
    };
    if format == RecordFormat::Csv
        && let Some(f) = fields.iter().find(|f| f.path.len() > 1)
        && let Some(fmt) = &raw.format
    {
        diags.push(
            at(&fmt.referenced),
            format!(
                "field `{}` has a nested `path`, but CSV rows have no nested objects",
                f.name
            ),
        );
    }
    Source::Clean {
        format,
        input,
        quarantine,
        fields,
        dedupe,
        derive,
    }
}

/// The `scope` block of an incremental SQL model: input -> {output column:
/// SQL expression over the input}. Every input maps the same output
/// columns; a bare column name is checked against the input's columns.
#[allow(clippy::too_many_arguments)]
fn parse_scope(
    path: &Path,
    raw: &RawModel,
    diags: &mut Diagnostics,
    columns: &[&str],
    inputs: &[Reference],
    asof: &[AsofJoin],
    foreign_columns: &mut Vec<(String, String, Pos)>,
) -> Vec<ScopeInput> {
    let presence: Vec<&S<String>> = raw
        .scope_presence
        .as_ref()
        .map(|l| l.value.iter().collect())
        .unwrap_or_default();
    let Some(block) = &raw.scope else {
        if let Some(list) = &raw.scope_presence {
            diags.push(
                Pos::at(path, &list.referenced),
                "`scope_presence` needs `scope` (it names inputs of the scope)",
            );
        }
        return vec![];
    };
    for p in &presence {
        if !block.value.contains_key(&p.value) {
            diags.push(
                Pos::at(path, &p.referenced),
                format!(
                    "`scope_presence` names `{}`, which `scope` does not map{}",
                    p.value,
                    did_you_mean(&p.value, block.value.keys().map(String::as_str))
                ),
            );
        }
    }
    let pos = Pos::at(path, &block.referenced);
    needs_incremental(raw, "scope", &pos, diags);
    let mut first: Option<Vec<&String>> = None;
    let mut out = Vec::new();
    for (input, map) in &block.value {
        let reads = inputs.iter().any(|r| &r.model == input)
            || asof.iter().any(|a| &a.left == input || &a.right == input);
        if !reads {
            diags.push(
                pos.clone(),
                format!("`scope` names `{input}`, which the model's query does not read"),
            );
        }
        let outs: Vec<&String> = map.keys().collect();
        if map.is_empty() {
            diags.push(pos.clone(), format!("`scope.{input}` maps no column"));
        }
        for c in &outs {
            if !columns.contains(&c.as_str()) {
                diags.push(
                    pos.clone(),
                    format!(
                        "`scope.{input}` names output column `{c}`, which the model does not declare{}",
                        did_you_mean(c, columns.iter().copied())
                    ),
                );
            }
        }
        match &first {
            Some(f) if *f != outs => diags.push(
                pos.clone(),
                format!(
                    "`scope.{input}` maps columns {outs:?}; every input must map the same output columns ({f:?})"
                ),
            ),
            Some(_) => {}
            None => first = Some(outs),
        }
        for expr in map.values() {
            if is_identifier(expr) {
                foreign_columns.push((input.clone(), expr.clone(), pos.clone()));
            }
        }
        out.push(ScopeInput {
            input: input.clone(),
            columns: map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            presence: presence.iter().any(|p| &p.value == input),
        });
    }
    out
}

/// `key` (a block saying how a run is incremental) on a model that is not.
fn needs_incremental(raw: &RawModel, key: &str, pos: &Pos, diags: &mut Diagnostics) {
    if raw.materialized.as_ref().map(|m| m.value.as_str()) != Some("incremental") {
        diags.push(
            pos.clone(),
            format!("`{key}` needs `materialized: incremental`"),
        );
    }
}

/// The `accumulate` block of an incremental SQL model: output column ->
/// how it folds (`sum`, `min`, `max`). Every column outside the unique key
/// needs one, the query reads one input and no as-of join, and `scope` is
/// not declared beside it (both say how a run is incremental).
fn parse_accumulate(
    path: &Path,
    raw: &RawModel,
    diags: &mut Diagnostics,
    columns: &[&str],
    inputs: &[Reference],
    asof: &[AsofJoin],
) -> Vec<(String, Fold)> {
    let Some(block) = &raw.accumulate else {
        return vec![];
    };
    let pos = Pos::at(path, &block.referenced);
    needs_incremental(raw, "accumulate", &pos, diags);
    if raw.scope.is_some() {
        diags.push(
            pos.clone(),
            "`accumulate` and `scope` both say how a run is incremental: declare one",
        );
    }
    let mut read: Vec<&str> = inputs.iter().map(|r| r.model.as_str()).collect();
    read.sort_unstable();
    read.dedup();
    if read.len() != 1 || !asof.is_empty() {
        diags.push(
            pos.clone(),
            format!(
                "`accumulate` needs a query over one input and no as-of join (this one reads {})",
                read.join(", ")
            ),
        );
    }
    let key: Vec<&str> = raw
        .unique_key
        .as_ref()
        .map(|k| k.value.iter().map(|c| c.value.as_str()).collect())
        .unwrap_or_default();
    if key.is_empty() {
        diags.push(
            pos.clone(),
            "`accumulate` needs a `unique_key` (the rows it folds into)",
        );
    }
    let mut out = Vec::new();
    for (column, how) in &block.value {
        if !columns.contains(&column.as_str()) {
            diags.push(
                pos.clone(),
                format!(
                    "`accumulate` names column `{column}`, which the model does not declare{}",
                    did_you_mean(column, columns.iter().copied())
                ),
            );
            continue;
        }
        if key.contains(&column.as_str()) {
            diags.push(
                pos.clone(),
                format!("`accumulate.{column}`: a unique-key column is not folded"),
            );
            continue;
        }
        let fold = match how.as_str() {
            "sum" => Fold::Sum,
            "min" => Fold::Min,
            "max" => Fold::Max,
            other => {
                diags.push(
                    pos.clone(),
                    format!("`accumulate.{column}` is `{other}`; expected sum, min or max"),
                );
                continue;
            }
        };
        out.push((column.clone(), fold));
    }
    for c in columns {
        if !key.contains(c) && !block.value.contains_key(*c) {
            diags.push(
                pos.clone(),
                format!("`accumulate` does not say how column `{c}` folds (sum, min or max)"),
            );
        }
    }
    out
}

fn parse_asof(
    path: &Path,
    raw: &RawModel,
    diags: &mut Diagnostics,
    inputs: &mut Vec<Reference>,
    foreign_columns: &mut Vec<(String, String, Pos)>,
) -> Vec<AsofJoin> {
    let at = |loc: &serde_saphyr::Location| Pos::at(path, loc);
    let Some(list) = &raw.asof else { return vec![] };
    list.value
        .iter()
        .map(|a| {
            if !is_identifier(&a.name.value) {
                diags.push(
                    at(&a.name.referenced),
                    format!(
                        "as-of relation name `{}` must be a lower-case identifier",
                        a.name.value
                    ),
                );
            }
            for side in [&a.left, &a.right] {
                inputs.push(Reference {
                    model: side.value.clone(),
                    pos: at(&side.referenced),
                });
            }
            let mut on = |model: &S<String>, col: &S<String>| {
                foreign_columns.push((model.value.clone(), col.value.clone(), at(&col.referenced)));
            };
            on(&a.left, &a.left_on);
            on(&a.right, &a.right_on);
            for b in &a.by {
                on(&a.left, b);
                on(&a.right, b);
            }
            if let Some(t) = &a.tie_break {
                on(&a.right, t);
            }
            for s in &a.select {
                on(&a.right, s);
            }
            AsofJoin {
                name: a.name.value.clone(),
                left: a.left.value.clone(),
                right: a.right.value.clone(),
                left_on: a.left_on.value.clone(),
                right_on: a.right_on.value.clone(),
                by: a.by.iter().map(|b| b.value.clone()).collect(),
                tie_break: a.tie_break.as_ref().map(|t| t.value.clone()),
                select: a.select.iter().map(|s| s.value.clone()).collect(),
            }
        })
        .collect()
}

const TEST_KINDS: [&str; 7] = [
    "not_null",
    "unique",
    "relationships",
    "accepted_values",
    "expression",
    "row_count",
    "freshness",
];

#[allow(clippy::too_many_arguments)]
fn parse_test(
    path: &Path,
    model: &str,
    column: Option<&str>,
    t: &S<RawTest>,
    col_names: &[&str],
    diags: &mut Diagnostics,
    mentions: &mut Vec<Reference>,
    foreign_columns: &mut Vec<(String, String, Pos)>,
) -> Option<DataTest> {
    let pos = Pos::at(path, &t.referenced);
    let args = &t.value.args;
    let kind_name = t.value.kind.as_str();
    let before = diags.len();
    let fail = |diags: &mut Diagnostics, msg: String| diags.push(pos.clone(), msg);
    let mut col_check = |diags: &mut Diagnostics, c: &str, p: Pos| {
        if !col_names.contains(&c) {
            diags.push(
                p,
                format!(
                    "test `{kind_name}` names column `{c}`, which `{model}` does not declare{}",
                    did_you_mean(c, col_names.iter().copied())
                ),
            );
        }
    };
    // The column a single-column test is about: the column it is declared
    // under, or `column:` at model level.
    let subject = |diags: &mut Diagnostics,
                   col_check: &mut dyn FnMut(&mut Diagnostics, &str, Pos)|
     -> Option<String> {
        match (column, &args.column) {
            (Some(c), None) => Some(c.to_string()),
            (None, Some(c)) => {
                col_check(diags, &c.value, Pos::at(path, &c.referenced));
                Some(c.value.clone())
            }
            (Some(_), Some(c)) => {
                diags.push(Pos::at(path, &c.referenced), "a column-level test takes its column from where it is declared; drop `column:`");
                None
            }
            (None, None) => {
                diags.push(
                    pos.clone(),
                    format!("a model-level `{kind_name}` test needs `column:`"),
                );
                None
            }
        }
    };
    let kind = match kind_name {
        "not_null" => subject(diags, &mut col_check).map(|column| TestKind::NotNull { column }),
        "unique" => {
            let columns: Vec<String> = match (&args.columns, column) {
                (Some(cols), None) => cols
                    .iter()
                    .map(|c| {
                        col_check(diags, &c.value, Pos::at(path, &c.referenced));
                        c.value.clone()
                    })
                    .collect(),
                (None, Some(c)) => vec![c.to_string()],
                (None, None) => {
                    fail(
                        diags,
                        "a model-level `unique` test needs `columns: [..]`".into(),
                    );
                    vec![]
                }
                (Some(_), Some(_)) => {
                    fail(diags, "a column-level `unique` test takes its column from where it is declared; drop `columns:`".into());
                    vec![]
                }
            };
            Some(TestKind::Unique { columns })
        }
        "relationships" => {
            let col = subject(diags, &mut col_check);
            match (&args.to, &args.field, col) {
                (Some(to), Some(field), Some(column)) => {
                    mentions.push(Reference {
                        model: to.value.clone(),
                        pos: Pos::at(path, &to.referenced),
                    });
                    foreign_columns.push((
                        to.value.clone(),
                        field.value.clone(),
                        Pos::at(path, &field.referenced),
                    ));
                    Some(TestKind::Relationships {
                        column,
                        to: to.value.clone(),
                        field: field.value.clone(),
                    })
                }
                (to, field, _) => {
                    if to.is_none() || field.is_none() {
                        fail(diags, "a `relationships` test needs `to:` (a model) and `field:` (its column)".into());
                    }
                    None
                }
            }
        }
        "accepted_values" => {
            let col = subject(diags, &mut col_check);
            let allowed = match (&args.values, &args.range) {
                (Some(v), None) if !v.is_empty() => Some(Allowed::Values(v.clone())),
                (None, Some(r)) => Interval::parse(r)
                    .map(Allowed::Range)
                    .map_err(|e| fail(diags, e))
                    .ok(),
                _ => {
                    fail(diags, "an `accepted_values` test needs either `values: [..]` or `range: \"[low, high]\"`".into());
                    None
                }
            };
            col.zip(allowed)
                .map(|(column, allowed)| TestKind::AcceptedValues { column, allowed })
        }
        "expression" => match &args.sql {
            Some(sql) if !sql.trim().is_empty() => Some(TestKind::Expression { sql: sql.clone() }),
            _ => {
                fail(
                    diags,
                    "an `expression` test needs `sql:` (a boolean every row must satisfy)".into(),
                );
                None
            }
        },
        "row_count" => {
            if args.min.is_none() && args.max.is_none() && args.equal_to.is_none() {
                fail(
                    diags,
                    "a `row_count` test needs `min:`, `max:` or `equal_to:`".into(),
                );
            }
            if let (Some(lo), Some(hi)) = (args.min, args.max)
                && lo > hi
            {
                fail(diags, format!("`row_count` min {lo} is above max {hi}"));
            }
            let equal_to = args.equal_to.as_ref().map(|e| {
                mentions.push(Reference {
                    model: e.model.value.clone(),
                    pos: Pos::at(path, &e.model.referenced),
                });
                CountOf {
                    model: e.model.value.clone(),
                    filter: e.filter.clone(),
                }
            });
            Some(TestKind::RowCount {
                min: args.min,
                max: args.max,
                equal_to,
            })
        }
        "freshness" => {
            let col = subject(diags, &mut col_check);
            let lag = match &args.max_lag {
                Some(l) => parse_duration(l).map_err(|e| fail(diags, e)).ok(),
                None => {
                    fail(
                        diags,
                        "a `freshness` test needs `max_lag:` (e.g. `1h`)".into(),
                    );
                    None
                }
            };
            col.zip(lag)
                .map(|(column, max_lag)| TestKind::Freshness { column, max_lag })
        }
        other => {
            fail(
                diags,
                format!(
                    "unknown test `{other}`{}: use one of {}",
                    did_you_mean(other, TEST_KINDS),
                    TEST_KINDS.join(", ")
                ),
            );
            None
        }
    };
    let severity = match args.severity.as_deref() {
        None | Some("error") => Severity::Error,
        Some("warn") => Severity::Warn,
        Some(other) => {
            fail(
                diags,
                format!("unknown severity `{other}` (use error or warn)"),
            );
            Severity::Error
        }
    };
    let threshold = |diags: &mut Diagnostics, key: &str, v: &Option<String>| {
        v.as_ref().and_then(|s| {
            let t = Threshold::parse(s);
            if t.is_none() {
                diags.push(
                    pos.clone(),
                    format!("`{key}: {s}` must be a comparison such as `> 10` or `>= 1`"),
                );
            }
            t
        })
    };
    let warn_if = threshold(diags, "warn_if", &args.warn_if);
    let error_if = threshold(diags, "error_if", &args.error_if);
    let kind = kind?;
    if diags.len() > before {
        return None;
    }
    let suffix = match &kind {
        TestKind::NotNull { column }
        | TestKind::Relationships { column, .. }
        | TestKind::AcceptedValues { column, .. }
        | TestKind::Freshness { column, .. } => format!("_{column}"),
        TestKind::Unique { columns } => format!("_{}", columns.join("_")),
        TestKind::Expression { .. } | TestKind::RowCount { .. } => format!("_{}", pos.line),
    };
    Some(DataTest {
        name: format!("{}_{model}{suffix}", kind.name()),
        kind,
        severity,
        filter: args.filter.clone(),
        warn_if,
        error_if,
        pos,
    })
}
