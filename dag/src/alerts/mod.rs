//! Alerts: `[[alerts]]` in dag.toml turn some of the executor's events
//! into webhook calls (generic JSON or Slack-compatible), delivered at
//! least once and recorded in `dag.alerts`.
//!
//! - [`rule`]: the `[[alerts]]` entries and their checks.
//! - [`alert`]: which events raise which alert, and the bodies sent.
//! - [`deliver`]: recording, the cooldown, sending with retries, and
//!   sending again what a process left pending.
//!
//! [`Alerts`] is an event sink: `dag run` and the scheduler add it beside
//! the console, so the same events that print a line raise the alert.

pub mod alert;
pub mod deliver;
pub mod rule;

use crate::config::Loaded;
use crate::events::{Event, EventSink};
use alert::Alert;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a command waits at its end for its alerts to go out.
const FLUSH_WITHIN: Duration = Duration::from_secs(60);

/// The rules of `cfg`, checked (the config's own check already named any
/// bad key, so this only fails on an environment changed since).
pub fn rules(cfg: &Loaded) -> Vec<rule::Rule> {
    match rule::check(&cfg.config.alerts, &|k| std::env::var(k).ok()) {
        Ok(r) => r,
        Err((key, message)) => {
            tracing::error!("{key}: {message}; no alerts are sent");
            Vec::new()
        }
    }
}

/// The address alerts link to: `ui.url`, else the UI's own address.
pub fn ui_base(cfg: &Loaded) -> String {
    let ui = &cfg.config.ui;
    let base = if ui.url.is_empty() {
        format!("http://{}", ui.addr)
    } else {
        ui.url.clone()
    };
    base.trim_end_matches('/').to_string()
}

/// The database alerts are recorded in, when one is configured: connected
/// on first use (a database that is down does not hold a command up) and
/// migrated then.
async fn database(cfg: &Loaded) -> Option<sqlx::PgPool> {
    let pool = crate::warehouse::lazy_pool(cfg, 2)?;
    match jobs::warehouse::migrate::migrate(&pool).await {
        Ok(_) => Some(pool),
        Err(e) => {
            tracing::warn!("alerts are sent but not recorded: {e}");
            None
        }
    }
}

/// The sink that raises alerts; None when `[[alerts]]` is empty.
pub struct Alerts {
    /// Taken (closed) by [`Alerts::finish`].
    queue: Mutex<Option<mpsc::UnboundedSender<Alert>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Run -> what it runs (from its run_started): a failed run's subject.
    selections: Mutex<BTreeMap<String, String>>,
    ui: String,
}

impl Alerts {
    pub fn start(cfg: &Loaded) -> Option<Alerts> {
        let rules = rules(cfg);
        if rules.is_empty() {
            return None;
        }
        let cfg2 = cfg.clone();
        let (queue, mut rx) = mpsc::unbounded_channel::<Alert>();
        let worker = tokio::spawn(async move {
            let mut courier = None;
            while let Some(alert) = rx.recv().await {
                // The database is opened at the first alert: most runs
                // raise none.
                if courier.is_none() {
                    courier = Some(deliver::Courier::new(rules.clone(), database(&cfg2).await));
                }
                if let Some(c) = courier.as_mut() {
                    c.send(&alert).await;
                }
            }
        });
        Some(Alerts {
            queue: Mutex::new(Some(queue)),
            worker: Mutex::new(Some(worker)),
            selections: Mutex::new(BTreeMap::new()),
            ui: ui_base(cfg),
        })
    }

    /// Waits (a minute at most) until every alert raised so far went out
    /// or was given up on.
    pub async fn finish(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(worker) = worker else {
            return;
        };
        if tokio::time::timeout(FLUSH_WITHIN, worker).await.is_err() {
            tracing::warn!("alerts still being sent after {FLUSH_WITHIN:?}: left to the scheduler");
        }
    }
}

impl EventSink for Alerts {
    fn emit(&self, event: &Event) {
        let mut selections = self.selections.lock().unwrap_or_else(|e| e.into_inner());
        if let Event::RunStarted { run, nodes, .. } = event {
            selections.insert(run.clone(), nodes.join(" "));
        }
        let run = match event {
            Event::RunFinished(s) => selections.remove(&s.run),
            _ => None,
        };
        if let Some(alert) = Alert::of(event, run.as_deref(), &self.ui)
            && let Some(q) = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
        {
            let _ = q.send(alert);
        }
    }
}

/// The scheduler's part: every minute, alerts that an earlier process left
/// pending are sent again, until `stop`.
pub async fn resend_until(cfg: Loaded, stop: std::sync::Arc<crate::executor::Stop>) {
    let rules = rules(&cfg);
    if rules.is_empty() {
        return;
    }
    let Some(pool) = database(&cfg).await else {
        return;
    };
    let client = deliver::client();
    while !stop.is_set() {
        let sent = deliver::resend_pending(&pool, &rules, &client).await;
        if sent > 0 {
            tracing::info!("{sent} pending alert(s) delivered");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.wait() => {}
        }
    }
}
