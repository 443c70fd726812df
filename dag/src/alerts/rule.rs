//! `[[alerts]]` in dag.toml: which events raise an alert, where it goes,
//! in which form, and how often at most.
//!
//! ```toml
//! [[alerts]]
//! name = "oncall"
//! on = ["run_failed", "test_failed", "freshness", "ingester_down"]
//! url_env = "DAG_ALERT_WEBHOOK"   # or url = "http://...", not a secret
//! format = "slack"                 # or "json" (the default)
//! cooldown = "1h"
//! ```

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One `[[alerts]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRule {
    /// Names the rule in `dag.alerts` and in messages ("alert-<n>" when
    /// not given).
    pub name: String,
    /// What raises it: run_failed, test_failed, test_warned, freshness,
    /// ingester_down.
    pub on: Vec<String>,
    /// The webhook. A webhook address often holds its token: prefer
    /// `url_env`. Only its host is ever printed.
    pub url: String,
    /// The environment variable that holds the webhook address.
    pub url_env: String,
    /// "json" (dag's own fields) or "slack" (a Slack-compatible `text`).
    pub format: String,
    /// The same rule, kind and subject (a test, a run's selection, a
    /// source) alert at most once per cooldown; the others are recorded
    /// as suppressed.
    pub cooldown: String,
}

impl Default for AlertRule {
    fn default() -> Self {
        Self {
            name: String::new(),
            on: vec!["run_failed".into(), "test_failed".into()],
            url: String::new(),
            url_env: String::new(),
            format: "json".into(),
            cooldown: "1h".into(),
        }
    }
}

/// What can raise an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    RunFailed,
    TestFailed,
    TestWarned,
    Freshness,
    IngesterDown,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::RunFailed,
        Kind::TestFailed,
        Kind::TestWarned,
        Kind::Freshness,
        Kind::IngesterDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RunFailed => "run_failed",
            Kind::TestFailed => "test_failed",
            Kind::TestWarned => "test_warned",
            Kind::Freshness => "freshness",
            Kind::IngesterDown => "ingester_down",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The payload form a webhook takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Slack,
}

/// A rule, checked: what `[[alerts]]` asked for, ready to use.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub on: Vec<Kind>,
    /// The webhook address (a secret: print [`Rule::target`] instead).
    pub url: url::Url,
    pub format: Format,
    pub cooldown: Duration,
}

impl Rule {
    /// Where alerts go, safe to print: scheme, host and port only.
    pub fn target(&self) -> String {
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{}://{}{port}/...",
            self.url.scheme(),
            self.url.host_str().unwrap_or("?")
        )
    }
}

/// Checks the `[[alerts]]` entries; an error names the entry and key
/// (`alerts[1].on`) and says what is wrong.
pub fn check(
    rules: &[AlertRule],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Rule>, (String, String)> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let key = |k: &str| format!("alerts[{i}].{k}");
        let name = if r.name.is_empty() {
            format!("alert-{}", i + 1)
        } else {
            r.name.clone()
        };
        if out.iter().any(|o: &Rule| o.name == name) {
            return Err((key("name"), format!("{name} is the name of another alert")));
        }
        let mut on = Vec::new();
        for k in &r.on {
            let Some(kind) = Kind::parse(k) else {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                return Err((
                    key("on"),
                    format!(
                        "{k} is not an event of alerts (known: {})",
                        known.join(", ")
                    ),
                ));
            };
            on.push(kind);
        }
        if on.is_empty() {
            return Err((
                key("on"),
                "names no event: the alert would never fire".into(),
            ));
        }
        let raw = match (r.url.is_empty(), r.url_env.is_empty()) {
            (false, true) => r.url.clone(),
            (true, false) => env(&r.url_env).ok_or_else(|| {
                (
                    key("url_env"),
                    format!("the environment variable {} is not set", r.url_env),
                )
            })?,
            (false, false) => {
                return Err((key("url"), "give url or url_env, not both".into()));
            }
            (true, true) => {
                return Err((
                    key("url"),
                    "missing: the webhook address (url, or url_env naming an environment variable that holds it)".into(),
                ));
            }
        };
        // The address itself is never repeated: it may hold a token.
        let url = url::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                (
                    key(if r.url.is_empty() { "url_env" } else { "url" }),
                    "is not an http(s) address".to_string(),
                )
            })?;
        let format = match r.format.as_str() {
            "json" => Format::Json,
            "slack" => Format::Slack,
            other => {
                return Err((
                    key("format"),
                    format!("{other} is not a format (json or slack)"),
                ));
            }
        };
        let cooldown = jobs::decl::parse_duration(&r.cooldown).map_err(|e| (key("cooldown"), e))?;
        out.push(Rule {
            name,
            on,
            url,
            format,
            cooldown,
        });
    }
    Ok(out)
}
