//! Parsing of a model's data tests: those declared under a column and
//! those at model level, each checked against the model's columns and
//! named `<kind>_<model>[_<columns>]`.

use super::checks::Declared;
use super::draft::{Reference, Refs};
use super::raw::{RawModel, RawTest, RawTestArgs, S};
use super::scalars::parse_duration;
use super::{
    Allowed, CountOf, DataTest, Diagnostics, Interval, Pos, Severity, TestKind, Threshold,
    did_you_mean,
};
use std::collections::BTreeMap;
use std::path::Path;

const TEST_KINDS: [&str; 7] = [
    "not_null",
    "unique",
    "relationships",
    "accepted_values",
    "expression",
    "row_count",
    "freshness",
];

/// Every test of the model: column-level then model-level, all checked the
/// same way. A test with a problem is reported and left out.
pub(super) fn parse_tests(
    path: &Path,
    raw: &RawModel,
    declared: &Declared,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Vec<DataTest> {
    let mut tests = Vec::new();
    if let Some(list) = &raw.columns {
        for c in &list.value {
            for t in c.tests.iter().flatten() {
                let site = Site::new(path, declared, Some(&c.name.value), t);
                if let Some(test) = parse_test(&site, &t.value.args, diags, refs) {
                    tests.push(test);
                }
            }
        }
    }
    if let Some(list) = &raw.tests {
        for t in &list.value {
            let site = Site::new(path, declared, None, t);
            if let Some(test) = parse_test(&site, &t.value.args, diags, refs) {
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
    tests
}

/// Where a test is declared: the model, the column it sits under (for a
/// column-level test), its kind as written and its place.
struct Site<'a> {
    path: &'a Path,
    declared: &'a Declared<'a>,
    column: Option<&'a str>,
    kind: &'a str,
    pos: Pos,
}

impl<'a> Site<'a> {
    fn new(
        path: &'a Path,
        declared: &'a Declared<'a>,
        column: Option<&'a str>,
        t: &'a S<RawTest>,
    ) -> Self {
        Site {
            path,
            declared,
            column,
            kind: t.value.kind.as_str(),
            pos: Pos::at(path, &t.referenced),
        }
    }

    /// A problem of the test as a whole, reported at the test.
    fn fail(&self, diags: &mut Diagnostics, msg: String) {
        diags.push(self.pos.clone(), msg);
    }

    /// Reports column `c`, named at `p`, if the model does not declare it.
    fn check_column(&self, diags: &mut Diagnostics, c: &str, p: Pos) {
        let names = &self.declared.names;
        if !names.contains(&c) {
            diags.push(
                p,
                format!(
                    "test `{}` names column `{c}`, which `{}` does not declare{}",
                    self.kind,
                    self.declared.model,
                    did_you_mean(c, names.iter().copied())
                ),
            );
        }
    }

    /// The column a single-column test is about: the column it is declared
    /// under, or `column:` at model level.
    fn subject(&self, diags: &mut Diagnostics, args: &RawTestArgs) -> Option<String> {
        match (self.column, &args.column) {
            (Some(c), None) => Some(c.to_string()),
            (None, Some(c)) => {
                self.check_column(diags, &c.value, Pos::at(self.path, &c.referenced));
                Some(c.value.clone())
            }
            (Some(_), Some(c)) => {
                diags.push(Pos::at(self.path, &c.referenced), "a column-level test takes its column from where it is declared; drop `column:`");
                None
            }
            (None, None) => {
                diags.push(
                    self.pos.clone(),
                    format!("a model-level `{}` test needs `column:`", self.kind),
                );
                None
            }
        }
    }
}

/// One test; `None` (with the problems reported) if anything about it is
/// wrong, its options included.
fn parse_test(
    site: &Site,
    args: &RawTestArgs,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Option<DataTest> {
    let before = diags.len();
    let kind = test_kind(site, args, diags, refs);
    let severity = parse_severity(site, args, diags);
    let warn_if = parse_threshold(site, diags, "warn_if", &args.warn_if);
    let error_if = parse_threshold(site, diags, "error_if", &args.error_if);
    let kind = kind?;
    if diags.len() > before {
        return None;
    }
    Some(DataTest {
        name: test_name(site, &kind),
        kind,
        severity,
        filter: args.filter.clone(),
        warn_if,
        error_if,
        pos: site.pos.clone(),
    })
}

/// What the test checks, from its kind and the options of that kind.
fn test_kind(
    site: &Site,
    args: &RawTestArgs,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Option<TestKind> {
    match site.kind {
        "not_null" => site
            .subject(diags, args)
            .map(|column| TestKind::NotNull { column }),
        "unique" => Some(TestKind::Unique {
            columns: unique_columns(site, args, diags),
        }),
        "relationships" => relationships(site, args, diags, refs),
        "accepted_values" => accepted_values(site, args, diags),
        "expression" => match &args.sql {
            Some(sql) if !sql.trim().is_empty() => Some(TestKind::Expression { sql: sql.clone() }),
            _ => {
                site.fail(
                    diags,
                    "an `expression` test needs `sql:` (a boolean every row must satisfy)".into(),
                );
                None
            }
        },
        "row_count" => Some(row_count(site, args, diags, refs)),
        "freshness" => freshness(site, args, diags),
        other => {
            site.fail(
                diags,
                format!(
                    "unknown test `{other}`{}: use one of {}",
                    did_you_mean(other, TEST_KINDS),
                    TEST_KINDS.join(", ")
                ),
            );
            None
        }
    }
}

/// `unique`: the column it is declared under, or `columns:` at model level.
fn unique_columns(site: &Site, args: &RawTestArgs, diags: &mut Diagnostics) -> Vec<String> {
    match (&args.columns, site.column) {
        (Some(cols), None) => cols
            .iter()
            .map(|c| {
                site.check_column(diags, &c.value, Pos::at(site.path, &c.referenced));
                c.value.clone()
            })
            .collect(),
        (None, Some(c)) => vec![c.to_string()],
        (None, None) => {
            site.fail(
                diags,
                "a model-level `unique` test needs `columns: [..]`".into(),
            );
            vec![]
        }
        (Some(_), Some(_)) => {
            site.fail(diags, "a column-level `unique` test takes its column from where it is declared; drop `columns:`".into());
            vec![]
        }
    }
}

/// `relationships`: the target model is mentioned (not read) and its field
/// is a column of that model, both for the loader to check.
fn relationships(
    site: &Site,
    args: &RawTestArgs,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> Option<TestKind> {
    let col = site.subject(diags, args);
    match (&args.to, &args.field, col) {
        (Some(to), Some(field), Some(column)) => {
            refs.mentions.push(Reference {
                model: to.value.clone(),
                pos: Pos::at(site.path, &to.referenced),
            });
            refs.foreign_columns.push((
                to.value.clone(),
                field.value.clone(),
                Pos::at(site.path, &field.referenced),
            ));
            Some(TestKind::Relationships {
                column,
                to: to.value.clone(),
                field: field.value.clone(),
            })
        }
        (to, field, _) => {
            if to.is_none() || field.is_none() {
                site.fail(
                    diags,
                    "a `relationships` test needs `to:` (a model) and `field:` (its column)".into(),
                );
            }
            None
        }
    }
}

/// `accepted_values`: a list of values or a range.
fn accepted_values(site: &Site, args: &RawTestArgs, diags: &mut Diagnostics) -> Option<TestKind> {
    let col = site.subject(diags, args);
    let allowed = match (&args.values, &args.range) {
        (Some(v), None) if !v.is_empty() => Some(Allowed::Values(v.clone())),
        (None, Some(r)) => Interval::parse(r)
            .map(Allowed::Range)
            .map_err(|e| site.fail(diags, e))
            .ok(),
        _ => {
            site.fail(
                diags,
                "an `accepted_values` test needs either `values: [..]` or `range: \"[low, high]\"`"
                    .into(),
            );
            None
        }
    };
    col.zip(allowed)
        .map(|(column, allowed)| TestKind::AcceptedValues { column, allowed })
}

/// `row_count`: bounds, or the count of another model (mentioned, not read).
fn row_count(
    site: &Site,
    args: &RawTestArgs,
    diags: &mut Diagnostics,
    refs: &mut Refs,
) -> TestKind {
    if args.min.is_none() && args.max.is_none() && args.equal_to.is_none() {
        site.fail(
            diags,
            "a `row_count` test needs `min:`, `max:` or `equal_to:`".into(),
        );
    }
    if let (Some(lo), Some(hi)) = (args.min, args.max)
        && lo > hi
    {
        site.fail(diags, format!("`row_count` min {lo} is above max {hi}"));
    }
    let equal_to = args.equal_to.as_ref().map(|e| {
        refs.mentions.push(Reference {
            model: e.model.value.clone(),
            pos: Pos::at(site.path, &e.model.referenced),
        });
        CountOf {
            model: e.model.value.clone(),
            filter: e.filter.clone(),
        }
    });
    TestKind::RowCount {
        min: args.min,
        max: args.max,
        equal_to,
    }
}

/// `freshness`: a timestamp column and the lag it may have.
fn freshness(site: &Site, args: &RawTestArgs, diags: &mut Diagnostics) -> Option<TestKind> {
    let col = site.subject(diags, args);
    let lag = match &args.max_lag {
        Some(l) => parse_duration(l).map_err(|e| site.fail(diags, e)).ok(),
        None => {
            site.fail(
                diags,
                "a `freshness` test needs `max_lag:` (e.g. `1h`)".into(),
            );
            None
        }
    };
    col.zip(lag)
        .map(|(column, max_lag)| TestKind::Freshness { column, max_lag })
}

/// `severity:`, `error` unless it says `warn`.
fn parse_severity(site: &Site, args: &RawTestArgs, diags: &mut Diagnostics) -> Severity {
    match args.severity.as_deref() {
        None | Some("error") => Severity::Error,
        Some("warn") => Severity::Warn,
        Some(other) => {
            site.fail(
                diags,
                format!("unknown severity `{other}` (use error or warn)"),
            );
            Severity::Error
        }
    }
}

/// `warn_if:` or `error_if:` (named by `key`), if given.
fn parse_threshold(
    site: &Site,
    diags: &mut Diagnostics,
    key: &str,
    v: &Option<String>,
) -> Option<Threshold> {
    let s = v.as_ref()?;
    let t = Threshold::parse(s);
    if t.is_none() {
        diags.push(
            site.pos.clone(),
            format!("`{key}: {s}` must be a comparison such as `> 10` or `>= 1`"),
        );
    }
    t
}

/// `<kind>_<model>` and what tells tests of one kind apart: their columns,
/// or for tests without any, the line they are declared on.
fn test_name(site: &Site, kind: &TestKind) -> String {
    let suffix = match kind {
        TestKind::NotNull { column }
        | TestKind::Relationships { column, .. }
        | TestKind::AcceptedValues { column, .. }
        | TestKind::Freshness { column, .. } => format!("_{column}"),
        TestKind::Unique { columns } => format!("_{}", columns.join("_")),
        TestKind::Expression { .. } | TestKind::RowCount { .. } => format!("_{}", site.pos.line),
    };
    format!("{}_{}{suffix}", kind.name(), site.declared.model)
}
