//! Parsing of a gold `sql` model: the inputs its query reads, its as-of
//! joins, and the `scope` or `accumulate` block of an incremental run.

use super::checks::Declared;
use super::draft::{Reference, Refs};
use super::raw::{RawModel, S};
use super::scalars::is_identifier;
use super::{
    AsofJoin, Diagnostics, Fold, Pos, ScopeInput, Source, SqlFile, did_you_mean, sql_relations,
};
use std::path::Path;

/// The `sql` source of model `name`; `sql` is its `.sql` file, rendered.
pub(super) fn parse_sql_source(
    path: &Path,
    name: &str,
    raw: &RawModel,
    sql: Option<&SqlFile>,
    declared: &Declared,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Source {
    let Some(file) = sql else {
        diags.push(
            Pos::file(path),
            format!("a `sql` model needs its query in `{name}.sql` beside this file"),
        );
        return Source::Sql {
            sql: String::new(),
            asof: vec![],
            scope: vec![],
            accumulate: vec![],
        };
    };
    let asof = parse_asof(path, raw, diags, refs);
    // Checks against the query: not against a stand-in for a template
    // that did not render (its error is reported; these would be noise).
    let mut unheard = Diagnostics::default();
    let diags = if file.stand_in { &mut unheard } else { diags };
    query_inputs(name, file, &asof, diags, refs);
    let scope = parse_scope(
        path,
        raw,
        diags,
        &declared.names,
        &refs.inputs,
        &asof,
        &mut refs.foreign_columns,
    );
    let accumulate = parse_accumulate(path, raw, diags, &declared.names, &refs.inputs, &asof);
    Source::Sql {
        sql: file.rendered.clone(),
        asof,
        scope,
        accumulate,
    }
}

/// The models the query reads, as inputs at their place in the file; an
/// as-of relation is the model's own name, not an input.
fn query_inputs(
    name: &str,
    file: &SqlFile,
    asof: &[AsofJoin],
    diags: &mut Diagnostics,
    refs: &mut Refs,
) {
    match sql_relations(&file.rendered) {
        Err(e) => {
            let (line, column) = match sql_error_position(&e) {
                // sqlparser gives no place for a query that ends too soon
                // (a trailing comma): the end of its text is the place.
                (None, _) if e.contains("found: EOF") => end_of(&file.rendered),
                at => at,
            };
            let pos = match line {
                Some(l) => file.pos(l, column),
                None => Pos::file(&file.path),
            };
            let hint = line
                .map(|l| file.rendered_hint(name, l))
                .unwrap_or_default();
            diags.push(pos, format!("malformed SQL: {e}{hint}"));
        }
        Ok(rels) => {
            for r in rels {
                if asof.iter().any(|a| a.name == r.name) {
                    continue;
                }
                refs.inputs.push(Reference {
                    model: r.name,
                    pos: file.pos(r.line, r.column),
                });
            }
        }
    }
}

/// The line and column just after the last text of `sql` (comments count
/// as text: a query ending in one is rare).
fn end_of(sql: &str) -> (Option<u64>, u64) {
    sql.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .last()
        .map_or((None, 0), |(i, l)| {
            (Some(i as u64 + 1), l.trim_end().chars().count() as u64 + 1)
        })
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

/// `asof:`, each join's sides as inputs and the columns it names as
/// columns of those models.
fn parse_asof(
    path: &Path,
    raw: &RawModel,
    diags: &mut Diagnostics,
    refs: &mut Refs,
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
                refs.inputs.push(Reference {
                    model: side.value.clone(),
                    pos: at(&side.referenced),
                });
            }
            let mut on = |model: &S<String>, col: &S<String>| {
                refs.foreign_columns.push((
                    model.value.clone(),
                    col.value.clone(),
                    at(&col.referenced),
                ));
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

/// The `scope` block of an incremental SQL model: input -> {output column:
/// SQL expression over the input}. Every input maps the same output
/// columns; a bare column name is checked against the input's columns.
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
