//! Getting alerts out, at least once: each alert is recorded in
//! `dag.alerts` before its first try (when a database is configured), sent
//! with a few retries, and marked delivered. One a process could not get
//! through (or died while sending) stays pending, and a scheduler sends it
//! again ([`resend_pending`]). Within a rule's cooldown a repeat of the
//! same kind and subject is recorded as suppressed, not sent.

use super::alert::Alert;
use super::rule::Rule;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Tries per alert within one process, and the first pause between them
/// (doubled each time): about 15 s in all.
const TRIES: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// Sends alerts to their rules' webhooks and records them.
pub struct Courier {
    rules: Vec<Rule>,
    client: reqwest::Client,
    /// None: nothing recorded (no database configured or reachable).
    pool: Option<PgPool>,
    /// The cooldown without a database: (rule, kind, subject) -> last sent.
    recent: BTreeMap<(String, &'static str, String), Instant>,
}

impl Courier {
    pub fn new(rules: Vec<Rule>, pool: Option<PgPool>) -> Courier {
        Courier {
            rules,
            client: client(),
            pool,
            recent: BTreeMap::new(),
        }
    }

    /// Sends `alert` to every rule that wants its kind.
    pub async fn send(&mut self, alert: &Alert) {
        let rules: Vec<Rule> = self
            .rules
            .iter()
            .filter(|r| r.on.contains(&alert.kind))
            .cloned()
            .collect();
        for rule in rules {
            self.send_to(&rule, alert).await;
        }
    }

    async fn send_to(&mut self, rule: &Rule, alert: &Alert) {
        let body = alert.body(&rule.name, rule.format);
        let id = match &self.pool {
            Some(pool) => match record(pool, rule, alert, &body).await {
                Ok(Some(id)) => Some(id),
                // Held back by the cooldown (and recorded so).
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("alert {}: recording it: {e}; sending anyway", rule.name);
                    None
                }
            },
            None => {
                let key = (
                    rule.name.clone(),
                    alert.kind.as_str(),
                    alert.subject.clone(),
                );
                if self
                    .recent
                    .get(&key)
                    .is_some_and(|t| t.elapsed() < rule.cooldown)
                {
                    return;
                }
                self.recent.insert(key, Instant::now());
                None
            }
        };
        let mut pause = FIRST_PAUSE;
        for attempt in 1..=TRIES {
            let outcome = post(&self.client, rule, &body).await;
            if let (Some(pool), Some(id)) = (&self.pool, id)
                && let Err(e) = mark(pool, id, &outcome).await
            {
                tracing::warn!("alert {}: recording its delivery: {e}", rule.name);
            }
            match outcome {
                Ok(()) => return,
                Err(e) if attempt == TRIES => {
                    tracing::error!(
                        "alert {} to {}: not delivered after {TRIES} tries: {e}{}",
                        rule.name,
                        rule.target(),
                        if id.is_some() {
                            " (kept pending: a scheduler sends it again)"
                        } else {
                            ""
                        }
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        "alert {} to {}: {e}; trying again in {pause:?}",
                        rule.name,
                        rule.target()
                    );
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
    }
}

/// The HTTP client of webhooks: a webhook that does not answer within
/// 10 s is a failed try.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// One POST of `body` to the rule's webhook; a 2xx answer delivers it.
async fn post(
    client: &reqwest::Client,
    rule: &Rule,
    body: &serde_json::Value,
) -> Result<(), String> {
    match client.post(rule.url.clone()).json(body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the webhook answered {}", r.status())),
        // Without the address: reqwest's errors name the URL, token and all.
        Err(e) => Err(if e.is_timeout() {
            "no answer within 10s".to_string()
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            "the request failed".to_string()
        }),
    }
}

/// Records a new alert: its id, or None when the rule's cooldown holds it
/// back (recorded as suppressed).
async fn record(
    pool: &PgPool,
    rule: &Rule,
    alert: &Alert,
    body: &serde_json::Value,
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // One decision at a time per rule, kind and subject, across processes.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!(
            "{}|{}|{}",
            rule.name,
            alert.kind.as_str(),
            alert.subject
        ))
        .execute(&mut *tx)
        .await?;
    let recent: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM dag.alerts WHERE rule = $1 AND kind = $2 AND subject = $3 \
         AND state IN ('pending', 'delivered') \
         AND created_at > now() - make_interval(secs => $4))",
    )
    .bind(&rule.name)
    .bind(alert.kind.as_str())
    .bind(&alert.subject)
    .bind(rule.cooldown.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO dag.alerts (rule, kind, subject, run, payload, state) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(&rule.name)
    .bind(alert.kind.as_str())
    .bind(&alert.subject)
    .bind(&alert.run)
    .bind(body)
    .bind(if recent { "suppressed" } else { "pending" })
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((!recent).then_some(id))
}

/// Records one try of alert `id` (through `db`: the pool, or the
/// transaction that holds the alert's row).
async fn mark<'e>(
    db: impl sqlx::PgExecutor<'e>,
    id: i64,
    outcome: &Result<(), String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dag.alerts SET attempts = attempts + 1, last_error = $2, \
           state = CASE WHEN $2 IS NULL THEN 'delivered' ELSE state END, \
           delivered_at = CASE WHEN $2 IS NULL THEN now() END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(outcome.as_ref().err())
    .execute(db)
    .await?;
    Ok(())
}

/// Sends again the alerts left pending for over a minute (their process
/// gave up or died), one try each; after a day one is marked failed.
/// Returns how many got through.
pub async fn resend_pending(pool: &PgPool, rules: &[Rule], client: &reqwest::Client) -> u64 {
    let _ = sqlx::query(
        "UPDATE dag.alerts SET state = 'failed' \
         WHERE state = 'pending' AND created_at < now() - interval '1 day'",
    )
    .execute(pool)
    .await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM dag.alerts WHERE state = 'pending' \
         AND created_at < now() - interval '1 minute' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let mut sent = 0;
    for id in ids {
        // Taken under a row lock that other schedulers skip.
        let Ok(mut tx) = pool.begin().await else {
            return sent;
        };
        let row: Option<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT rule, payload FROM dag.alerts WHERE id = $1 AND state = 'pending' \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .ok()
        .flatten();
        let Some((name, body)) = row else {
            continue;
        };
        let outcome = match rules.iter().find(|r| r.name == name) {
            Some(rule) => post(client, rule, &body).await,
            None => Err(format!("no [[alerts]] named {name} in dag.toml any more")),
        };
        let _ = mark(&mut *tx, id, &outcome).await;
        let _ = tx.commit().await;
        if outcome.is_ok() {
            sent += 1;
        }
    }
    sent
}
