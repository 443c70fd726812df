//! Parsing of a silver `clean` model's block: the bronze input, the
//! quarantine, the field rules, dedupe, derived columns and record format.

use super::checks::{Declared, need};
use super::draft::{Reference, Refs};
use super::raw::{RawField, RawModel};
use super::scalars::{is_identifier, parse_duration};
use super::{
    ColumnType, Dedupe, Derived, Diagnostics, FieldKind, FieldRule, Interval, Pos, RecordFormat,
    Source,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The `clean` source of a model file; the columns its rules name must be
/// among `declared`.
pub(super) fn parse_clean(
    path: &Path,
    raw: &RawModel,
    declared: &Declared,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Source {
    let input = parse_input(path, raw, diags, refs);
    let quarantine = parse_quarantine(path, raw, diags);
    let fields = parse_fields(path, raw, declared, diags);
    let dedupe = parse_dedupe(path, raw, &input, declared, diags, refs);
    let derive = parse_derive(raw, declared, diags);
    let format = parse_record_format(path, raw, &fields, diags);
    Source::Clean {
        format,
        input,
        quarantine,
        fields,
        dedupe,
        derive,
    }
}

/// `input:`, the bronze model read (a DAG edge).
fn parse_input(path: &Path, raw: &RawModel, diags: &mut Diagnostics, refs: &mut Refs) -> String {
    match &raw.input {
        Some(i) => {
            refs.inputs.push(Reference {
                model: i.value.clone(),
                pos: Pos::at(path, &i.referenced),
            });
            i.value.clone()
        }
        None => {
            need(diags, path, "clean", "input");
            String::new()
        }
    }
}

/// `quarantine:`, the name of the table of rejected rows.
fn parse_quarantine(path: &Path, raw: &RawModel, diags: &mut Diagnostics) -> String {
    match &raw.quarantine {
        Some(q) if is_identifier(&q.value) => q.value.clone(),
        Some(q) => {
            diags.push(
                Pos::at(path, &q.referenced),
                format!(
                    "quarantine name `{}` must be a lower-case identifier",
                    q.value
                ),
            );
            String::new()
        }
        None => {
            need(diags, path, "clean", "quarantine");
            String::new()
        }
    }
}

/// `fields:`, the rules in declaration order. A rule of an unknown type is
/// left out (after its name is checked).
fn parse_fields(
    path: &Path,
    raw: &RawModel,
    declared: &Declared,
    diags: &mut Diagnostics,
) -> Vec<FieldRule> {
    let mut fields = Vec::new();
    let Some(list) = &raw.fields else {
        need(diags, path, "clean", "fields");
        return fields;
    };
    let mut seen = BTreeSet::new();
    for f in &list.value {
        if !seen.insert(f.name.value.clone()) {
            diags.push(
                Pos::at(path, &f.name.referenced),
                format!("field `{}` has two rules", f.name.value),
            );
        }
        declared.check(diags, &f.name, "field rule");
        if let Some(rule) = parse_field(path, f, declared, diags) {
            fields.push(rule);
        }
    }
    fields
}

/// One field rule, checked against its type; `None` if the type is unknown.
fn parse_field(
    path: &Path,
    f: &RawField,
    declared: &Declared,
    diags: &mut Diagnostics,
) -> Option<FieldRule> {
    let at = |loc: &serde_saphyr::Location| Pos::at(path, loc);
    let pos = at(&f.name.referenced);
    let Some(kind) = FieldKind::parse(&f.ty.value) else {
        diags.push(
            at(&f.ty.referenced),
            format!(
                "unknown field type `{}` (use string, number, integer, timestamp)",
                f.ty.value
            ),
        );
        return None;
    };
    let range = field_range(path, f, kind, diags);
    if f.max_decimals.is_some() && kind != FieldKind::Number {
        diags.push(pos.clone(), "`max_decimals` applies to number fields only");
    }
    let max_ahead = field_max_ahead(path, f, kind, diags);
    let column = field_column(path, f, kind, diags);
    if let Some(c) = declared.columns.iter().find(|c| c.name == f.name.value)
        && c.ty != column
    {
        diags.push(
            pos.clone(),
            format!(
                "field `{}` lands as {column} but its column is declared {}; add `as: {}` or fix the column",
                f.name.value, c.ty, c.ty
            ),
        );
    }
    Some(FieldRule {
        name: f.name.value.clone(),
        path: field_path(path, f, diags),
        kind,
        required: f.required.unwrap_or(false),
        range,
        max_decimals: f.max_decimals,
        max_ahead_of_ingest: max_ahead,
        column,
    })
}

/// `range:` of a number or integer field.
fn field_range(
    path: &Path,
    f: &RawField,
    kind: FieldKind,
    diags: &mut Diagnostics,
) -> Option<Interval> {
    let r = f.range.as_ref()?;
    let at = Pos::at(path, &r.referenced);
    if !matches!(kind, FieldKind::Number | FieldKind::Integer) {
        diags.push(at, "`range` applies to number and integer fields only");
        return None;
    }
    Interval::parse(&r.value)
        .map_err(|e| diags.push(at, e))
        .ok()
}

/// `max_ahead_of_ingest:` of a timestamp field.
fn field_max_ahead(
    path: &Path,
    f: &RawField,
    kind: FieldKind,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let d = f.max_ahead_of_ingest.as_ref()?;
    let at = Pos::at(path, &d.referenced);
    if kind != FieldKind::Timestamp {
        diags.push(at, "`max_ahead_of_ingest` applies to timestamp fields only");
        return None;
    }
    parse_duration(&d.value).map_err(|e| diags.push(at, e)).ok()
}

/// The column type the value lands as: `as:`, or the kind's default.
fn field_column(path: &Path, f: &RawField, kind: FieldKind, diags: &mut Diagnostics) -> ColumnType {
    match &f.column_type {
        None => kind.default_column(),
        Some(t) => ColumnType::parse(&t.value).unwrap_or_else(|| {
            diags.push(
                Pos::at(path, &t.referenced),
                format!(
                    "unknown column type `{}` (use {})",
                    t.value,
                    ColumnType::NAMES
                ),
            );
            kind.default_column()
        }),
    }
}

/// Where the value sits in the record: `path:` split at dots, or the name.
fn field_path(path: &Path, f: &RawField, diags: &mut Diagnostics) -> Vec<String> {
    let Some(p) = &f.path else {
        return vec![f.name.value.clone()];
    };
    let parts: Vec<String> = p.value.split('.').map(|s| s.to_string()).collect();
    if parts.iter().any(|s| s.is_empty()) {
        diags.push(
            Pos::at(path, &p.referenced),
            format!(
                "`path: {}` names members of nested objects separated by dots (`location.lat`)",
                p.value
            ),
        );
    }
    parts
}

/// `dedupe:`. The key is over the model's columns; the order over the
/// input's bronze columns (which copy arrived first), checked by the loader.
fn parse_dedupe(
    path: &Path,
    raw: &RawModel,
    input: &str,
    declared: &Declared,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Dedupe {
    let Some(d) = &raw.dedupe else {
        need(diags, path, "clean", "dedupe");
        return Dedupe {
            key: vec![],
            order: vec![],
        };
    };
    for k in &d.value.key {
        declared.check(diags, k, "`dedupe.key`");
    }
    let order: Vec<String> = match &d.value.order {
        Some(o) => o
            .iter()
            .map(|c| {
                refs.foreign_columns.push((
                    input.to_string(),
                    c.value.clone(),
                    Pos::at(path, &c.referenced),
                ));
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

/// `derive:`, columns computed by SQL over the parsed fields.
fn parse_derive(raw: &RawModel, declared: &Declared, diags: &mut Diagnostics) -> Vec<Derived> {
    let Some(list) = &raw.derive else {
        return Vec::new();
    };
    list.value
        .iter()
        .map(|d| {
            declared.check(diags, &d.name, "`derive`");
            Derived {
                name: d.name.value.clone(),
                sql: d.sql.clone(),
            }
        })
        .collect()
}

/// `format:` of the bronze values. CSV rows are flat, so no rule may have
/// a nested path then.
fn parse_record_format(
    path: &Path,
    raw: &RawModel,
    fields: &[FieldRule],
    diags: &mut Diagnostics,
) -> RecordFormat {
    let format = match &raw.format {
        None => RecordFormat::Json,
        Some(f) => match f.value.as_str() {
            "json" => RecordFormat::Json,
            "csv" => RecordFormat::Csv,
            other => {
                diags.push(
                    Pos::at(path, &f.referenced),
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
            Pos::at(path, &fmt.referenced),
            format!(
                "field `{}` has a nested `path`, but CSV rows have no nested objects",
                f.name
            ),
        );
    }
    format
}
