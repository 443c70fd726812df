//! Parsing of a model's data tests: those declared under a column and
//! those at model level. The keys every test shares (`severity`, `where`,
//! `warn_if`, `error_if`) are read here; the rest belong to the test's
//! kind, found by name in `datatest::kinds`, which reads and checks them.
//! A test is named `<kind>_<model>[_<columns>]`.

use super::checks::Declared;
use super::declaring::{Declaring, the_kind};
use super::draft::Refs;
use super::raw::{RawModel, RawTest, S};
use super::{DataTest, Diagnostics, Pos, Severity, Threshold, did_you_mean};
use crate::datatest::kinds::{self, KINDS};
use std::collections::BTreeMap;
use std::path::Path;

/// The keys every test takes, whatever its kind.
const SHARED: [&str; 4] = ["severity", "where", "warn_if", "error_if"];

/// The file being parsed: its path and text (option values are read as
/// written), and the model's columns.
pub(super) struct TestFile<'a> {
    pub(super) path: &'a Path,
    pub(super) source: &'a str,
    pub(super) declared: &'a Declared<'a>,
}

/// Every test of the model: column-level then model-level, all checked the
/// same way. A test with a problem is reported and left out.
pub(super) fn parse_tests(
    file: &TestFile,
    raw: &RawModel,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Vec<DataTest> {
    let mut tests = Vec::new();
    if let Some(list) = &raw.columns {
        for c in &list.value {
            for t in c.tests.iter().flatten() {
                tests.extend(parse_test(file, Some(&c.name.value), t, diags, refs));
            }
        }
    }
    if let Some(list) = &raw.tests {
        for t in &list.value {
            tests.extend(parse_test(file, None, t, diags, refs));
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
    tests
}

/// One test, declared under `column` (or at model level); `None` (with
/// the problems reported) if anything about it is wrong.
fn parse_test(
    file: &TestFile,
    column: Option<&str>,
    t: &S<RawTest>,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Option<DataTest> {
    let pos = Pos::at(file.path, &t.referenced);
    let name = t.value.kind.as_str();
    let Some(def) = kinds::find(name) else {
        let names = KINDS.iter().map(|k| k.name);
        diags.push(
            pos,
            format!(
                "unknown test `{name}`{}: use one of {}",
                did_you_mean(name, names.clone()),
                names.collect::<Vec<_>>().join(", ")
            ),
        );
        return None;
    };
    let options = &t.value.args;
    let before = diags.len();
    for (key, value) in options {
        if !SHARED.contains(&key.as_str()) && !def.options.contains(&key.as_str()) {
            let known: Vec<&str> = def.options.iter().chain(&SHARED).copied().collect();
            diags.push(
                Pos::at(file.path, &value.referenced),
                format!(
                    "{} test has no option `{key}`{}: it takes {}",
                    the_kind(name),
                    did_you_mean(key, known.iter().copied()),
                    known.join(", ")
                ),
            );
        }
    }
    let mut d = Declaring {
        path: file.path,
        source: file.source,
        declared: file.declared,
        column,
        kind: name,
        pos: pos.clone(),
        options,
        diags: &mut *diags,
        refs: &mut *refs,
    };
    let kind = (def.parse)(&mut d);
    let severity = parse_severity(&mut d);
    let filter = d.text("where");
    let warn_if = parse_threshold(&mut d, "warn_if");
    let error_if = parse_threshold(&mut d, "error_if");
    let kind = kind?;
    if diags.len() > before {
        return None;
    }
    // `<kind>_<model>` and what tells tests of one kind apart: their
    // columns, or for tests without any, the line they are declared on.
    let columns = kind.columns();
    let suffix = if columns.is_empty() {
        pos.line.to_string()
    } else {
        columns.join("_")
    };
    Some(DataTest {
        name: format!("{name}_{}_{suffix}", file.declared.model),
        kind,
        severity,
        filter,
        warn_if,
        error_if,
        pos,
    })
}

/// `severity:`, `error` unless it says `warn`.
fn parse_severity(d: &mut Declaring) -> Severity {
    match d.text("severity").as_deref() {
        None | Some("error") => Severity::Error,
        Some("warn") => Severity::Warn,
        Some(other) => {
            d.fail_at(
                "severity",
                format!("unknown severity `{other}` (use error or warn)"),
            );
            Severity::Error
        }
    }
}

/// `warn_if:` or `error_if:` (named by `key`), if given.
fn parse_threshold(d: &mut Declaring, key: &str) -> Option<Threshold> {
    let s = d.text(key)?;
    let t = Threshold::parse(&s);
    if t.is_none() {
        d.fail_at(
            key,
            format!("`{key}: {s}` must be a comparison such as `> 10` or `>= 1`"),
        );
    }
    t
}
