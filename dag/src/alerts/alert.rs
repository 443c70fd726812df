//! What an alert says: built from the executor's events (a run that
//! failed, a data test that failed or warned, a freshness test over its
//! threshold, an ingester that stopped), and the body each webhook format
//! sends.

use super::rule::{Format, Kind};
use crate::events::Event;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One alert, before it goes to the rules that want it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub kind: Kind,
    /// What it is about: the cooldown holds per rule, kind and subject.
    pub subject: String,
    pub title: String,
    pub text: String,
    pub run: Option<String>,
    pub model: Option<String>,
    pub test: Option<String>,
    pub status: Option<String>,
    pub failing: Option<u64>,
    /// Its page in the UI.
    pub link: String,
    pub at: DateTime<Utc>,
}

impl Alert {
    fn new(kind: Kind, subject: &str, title: String, text: String, link: String) -> Alert {
        Alert {
            kind,
            subject: subject.to_string(),
            title,
            text,
            run: None,
            model: None,
            test: None,
            status: None,
            failing: None,
            link,
            at: Utc::now(),
        }
    }

    /// The alert `event` raises, if any. `selection` is what the run of a
    /// `run_finished` ran (from its `run_started`); `ui` the UI's address.
    pub fn of(event: &Event, selection: Option<&str>, ui: &str) -> Option<Alert> {
        match event {
            Event::TestFinished { run, result: r } => {
                use jobs::datatest::Status;
                let freshness = r.kind == "freshness";
                let kind = match (r.status, freshness) {
                    (Status::Pass, _) => return None,
                    (_, true) => Kind::Freshness,
                    (Status::Warn, false) => Kind::TestWarned,
                    (Status::Fail | Status::Error, false) => Kind::TestFailed,
                };
                let verdict = match r.status {
                    Status::Warn => "warned",
                    Status::Error => "could not run",
                    _ => "failed",
                };
                let title = format!(
                    "dag: test {} on {} {verdict}: {} failing row(s)",
                    r.test, r.model, r.failing
                );
                let text = format!(
                    "{} ({} test, severity {}) on {} version {}: {}",
                    r.test, r.kind, r.severity, r.model, r.version, r.message
                );
                let link = format!("{ui}/tests/{}", r.test);
                Some(Alert {
                    run: Some(run.clone()),
                    model: Some(r.model.clone()),
                    test: Some(r.test.clone()),
                    status: Some(r.status.as_str().to_string()),
                    failing: Some(r.failing),
                    ..Alert::new(kind, &r.test, title, text, link)
                })
            }
            Event::RunFinished(s) if !s.success => {
                let selection = selection.unwrap_or("the pipeline");
                let title = format!("dag: run {} failed", s.run);
                let text = format!(
                    "run {} of {selection}: {} model(s) ran, {} failed, {} skipped; {} test(s), {} failed",
                    s.run, s.models_ran, s.models_failed, s.models_skipped, s.tests, s.tests_failed
                );
                Some(Alert {
                    run: Some(s.run.clone()),
                    status: Some("failed".into()),
                    ..Alert::new(
                        Kind::RunFailed,
                        selection,
                        title,
                        text,
                        format!("{ui}/runs/{}", s.run),
                    )
                })
            }
            Event::IngesterDown { source, error } => Some(Alert::new(
                Kind::IngesterDown,
                source,
                format!("dag: the ingester of {source} stopped"),
                format!("{source}: {error} (it is restarted after a pause)"),
                format!("{ui}/freshness"),
            )),
            _ => None,
        }
    }

    /// The request body for a webhook of `format`, from rule `rule`.
    pub fn body(&self, rule: &str, format: Format) -> serde_json::Value {
        match format {
            Format::Json => {
                let mut v = serde_json::to_value(self).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("alert".into(), rule.into());
                }
                v
            }
            // Slack's incoming webhooks (and Mattermost, Rocket.Chat,
            // Discord's /slack endpoint) read `text` in mrkdwn.
            Format::Slack => serde_json::json!({
                "text": format!("*{}*\n{}\n<{}|Open in dag>", self.title, self.text, self.link),
            }),
        }
    }
}
