//! Reports of a set of test results, for CI and for people:
//! - JSON ([`json`]): the stable document described by
//!   `docs/data-test-report.schema.json` (`report_version` 1).
//! - JUnit XML ([`junit`]): one `<testsuite>` per model, one `<testcase>`
//!   per test; failing error tests are `<failure>`, tests that could not
//!   run are `<error>`, warnings pass with the warning in `<system-out>`.
//! - Markdown ([`markdown`]): a summary table and the failing samples, for
//!   a CI job summary.

use super::{Status, TestResult};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The version of the JSON document's schema; bumped on any change that
/// is not a new optional field.
pub const REPORT_VERSION: u32 = 1;

/// What a report is about.
#[derive(Clone, Debug)]
pub struct Meta {
    pub run_id: String,
    pub generated_at: DateTime<Utc>,
    /// Whether every row was checked (`--full`).
    pub full: bool,
}

/// Counts per status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub total: usize,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub error: usize,
}

impl Summary {
    pub fn of<'a>(results: impl IntoIterator<Item = &'a TestResult>) -> Summary {
        let mut s = Summary::default();
        for r in results {
            s.total += 1;
            match r.status {
                Status::Pass => s.pass += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
                Status::Error => s.error += 1,
            }
        }
        s
    }

    /// `dag test`'s exit code: 2 when a test could not run, 1 when an
    /// error-severity test failed, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.error > 0 {
            2
        } else if self.fail > 0 {
            1
        } else {
            0
        }
    }

    /// The overall status: the worst of the results.
    pub fn status(&self) -> Status {
        if self.error > 0 {
            Status::Error
        } else if self.fail > 0 {
            Status::Fail
        } else if self.warn > 0 {
            Status::Warn
        } else {
            Status::Pass
        }
    }
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    report_version: u32,
    tool: String,
    run_id: &'a str,
    generated_at: String,
    full: bool,
    status: Status,
    exit_code: i32,
    summary: Summary,
    results: &'a [TestResult],
}

/// The JSON report (pretty-printed).
pub fn json(meta: &Meta, results: &[TestResult]) -> String {
    let summary = Summary::of(results);
    let doc = JsonReport {
        report_version: REPORT_VERSION,
        tool: format!("dag {}", env!("CARGO_PKG_VERSION")),
        run_id: &meta.run_id,
        generated_at: meta
            .generated_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        full: meta.full,
        status: summary.status(),
        exit_code: summary.exit_code(),
        summary,
        results,
    };
    // Serializing plain data with string keys cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A result's details as text: message, where declared, the sample.
fn details(r: &TestResult) -> String {
    let mut s = format!(
        "{}\nmodel {} at version {}{}; declared at {}\n",
        r.message,
        r.model,
        r.version,
        match r.since_version {
            Some(v) => format!(" (rows since version {v})"),
            None => String::new(),
        },
        r.declared_at
    );
    if !r.sample.is_empty() {
        s += "failing rows (sample):\n";
        for row in &r.sample {
            s += &serde_json::Value::Object(row.clone()).to_string();
            s.push('\n');
        }
    }
    s
}

/// The JUnit XML report: the Jenkins/Ant form most CI systems read
/// (GitHub, GitLab, Jenkins, Azure), valid against the `junit-10.xsd`
/// schema kept in `tests/fixtures/`.
pub fn junit(meta: &Meta, results: &[TestResult]) -> String {
    let mut by_model: BTreeMap<&str, Vec<&TestResult>> = BTreeMap::new();
    for r in results {
        by_model.entry(&r.model).or_default().push(r);
    }
    let timestamp = meta.generated_at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let all = Summary::of(results);
    let total_time: f64 = results.iter().map(|r| r.seconds).sum();
    let host = xml(&hostname());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"dag data tests\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">",
        all.total, all.fail, all.error, total_time
    );
    for (id, (model, tests)) in by_model.iter().enumerate() {
        let s = Summary::of(tests.iter().copied());
        let time: f64 = tests.iter().map(|r| r.seconds).sum();
        let _ = writeln!(
            out,
            "  <testsuite id=\"{id}\" name=\"{}\" package=\"dag\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{time:.3}\" timestamp=\"{timestamp}\" hostname=\"{}\">",
            xml(model),
            s.total,
            s.fail,
            s.error,
            host,
        );
        let _ = writeln!(
            out,
            "    <properties>\n      <property name=\"run_id\" value=\"{}\"/>\n      <property name=\"full\" value=\"{}\"/>\n    </properties>",
            xml(&meta.run_id),
            meta.full
        );
        for r in tests {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"dag.{}\" time=\"{:.3}\"",
                xml(&r.test),
                xml(model),
                r.seconds
            );
            let body = match r.status {
                Status::Pass => None,
                Status::Warn => Some(format!(
                    "      <system-out>WARN: {}</system-out>\n",
                    xml(&details(r))
                )),
                Status::Fail => Some(format!(
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>\n",
                    xml(&format!("{} failing row(s): {}", r.failing, r.message)),
                    xml(&r.kind),
                    xml(&details(r))
                )),
                Status::Error => Some(format!(
                    "      <error message=\"{}\" type=\"{}\">{}</error>\n",
                    xml(&r.message),
                    xml(&r.kind),
                    xml(&details(r))
                )),
            };
            match body {
                None => out.push_str("/>\n"),
                Some(b) => {
                    out.push_str(">\n");
                    out.push_str(&b);
                    out.push_str("    </testcase>\n");
                }
            }
        }
        out.push_str("    <system-out/>\n    <system-err/>\n  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// This machine's name (JUnit's `hostname`, scheduler ids).
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown summary: counts, one table row per test (failures first),
/// then each failing or warning test's sample rows.
pub fn markdown(meta: &Meta, results: &[TestResult]) -> String {
    let s = Summary::of(results);
    let icon = |st: Status| match st {
        Status::Pass => "✅ pass",
        Status::Warn => "⚠️ warn",
        Status::Fail => "❌ fail",
        Status::Error => "💥 error",
    };
    let mut out = format!(
        "## Data tests: {}\n\n{} test(s): {} passed, {} warned, {} failed, {} could not run{}. Run `{}`.\n\n",
        icon(s.status()),
        s.total,
        s.pass,
        s.warn,
        s.fail,
        s.error,
        if meta.full {
            " (every row checked)"
        } else {
            ""
        },
        meta.run_id
    );
    let rank = |st: Status| match st {
        Status::Error => 0,
        Status::Fail => 1,
        Status::Warn => 2,
        Status::Pass => 3,
    };
    let mut sorted: Vec<&TestResult> = results.iter().collect();
    sorted.sort_by_key(|r| (rank(r.status), r.model.clone(), r.test.clone()));
    out += "| status | test | model | version | failing | rows checked | seconds | message |\n";
    out += "| --- | --- | --- | --- | ---: | ---: | ---: | --- |\n";
    for r in &sorted {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {}{} | {} | {} | {:.2} | {} |",
            icon(r.status),
            r.test,
            r.model,
            r.version,
            r.since_version
                .map(|v| format!(" (since {v})"))
                .unwrap_or_default(),
            r.failing,
            r.rows_checked,
            r.seconds,
            md(&r.message)
        );
    }
    for r in sorted.iter().filter(|r| !r.sample.is_empty()) {
        let _ = write!(
            out,
            "\n### {} `{}` ({} failing row(s), declared at {})\n\n",
            icon(r.status),
            r.test,
            r.failing,
            r.declared_at
        );
        let cols: Vec<&String> = r.sample[0].keys().collect();
        let _ = writeln!(
            out,
            "| {} |",
            cols.iter().map(|c| md(c)).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(out, "|{}", " --- |".repeat(cols.len()));
        for row in &r.sample {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| match row.get(*c) {
                    Some(serde_json::Value::String(s)) => md(s),
                    Some(serde_json::Value::Null) | None => "*null*".to_string(),
                    Some(v) => md(&v.to_string()),
                })
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        if r.failing as usize > r.sample.len() {
            let _ = writeln!(out, "\n… and {} more.", r.failing as usize - r.sample.len());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(test: &str, status: Status, failing: u64) -> TestResult {
        TestResult {
            test: test.into(),
            model: "orders".into(),
            kind: "unique".into(),
            severity: "error".into(),
            columns: vec!["id".into()],
            version: 7,
            since_version: Some(5),
            compared_version: None,
            rows_checked: 100,
            status,
            failing,
            seconds: 0.25,
            message: "1 row(s) share <id> & \"more\"".into(),
            sample: vec![
                serde_json::json!({"id": "e|1", "n": 2})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ],
            declared_at: "models/x.yml:3".into(),
        }
    }

    fn meta() -> Meta {
        Meta {
            run_id: "r1".into(),
            generated_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
            full: false,
        }
    }

    #[test]
    fn exit_codes_follow_the_worst_result() {
        let pass = result("a", Status::Pass, 0);
        let warn = result("b", Status::Warn, 1);
        let fail = result("c", Status::Fail, 1);
        let error = result("d", Status::Error, 0);
        assert_eq!(Summary::of(&[pass.clone(), warn.clone()]).exit_code(), 0);
        assert_eq!(Summary::of(&[pass.clone(), fail.clone()]).exit_code(), 1);
        assert_eq!(Summary::of(&[fail, error]).exit_code(), 2);
        assert_eq!(Summary::of(&[]).exit_code(), 0);
    }

    #[test]
    fn junit_escapes_and_marks_failures() {
        let x = junit(&meta(), &[result("unique_x", Status::Fail, 1)]);
        assert!(x.contains("<failure message=\"1 failing row(s): 1 row(s) share &lt;id&gt; &amp; &quot;more&quot;\" type=\"unique\">"), "{x}");
        assert!(x.contains("tests=\"1\" failures=\"1\" errors=\"0\""), "{x}");
    }

    #[test]
    fn markdown_escapes_pipes_and_lists_samples() {
        let m = markdown(&meta(), &[result("unique_x", Status::Fail, 3)]);
        assert!(m.contains("| e\\|1 | 2 |"), "{m}");
        assert!(m.contains("… and 2 more."), "{m}");
    }
}
