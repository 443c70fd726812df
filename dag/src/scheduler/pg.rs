//! The scheduler's [`StateStore`]: every run in PostgreSQL ([`store`]),
//! shared by several schedulers. A claim holds a lease its scheduler
//! renews; new work is announced with `NOTIFY dag_work`, and a scheduler
//! that cannot LISTEN polls.

use super::settings::SchedulerSettings;
use super::store;
use crate::executor::{Claim, Recorder, RunView, Settled, StateStore, TaskOutcome};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::Mutex;

/// Runs in PostgreSQL as one scheduler (`me`) sees them.
pub struct PgStore {
    pool: PgPool,
    me: String,
    s: SchedulerSettings,
    /// None when LISTEN failed: poll instead.
    listener: Mutex<Option<PgListener>>,
}

impl PgStore {
    pub async fn new(pool: PgPool, me: &str, s: SchedulerSettings) -> PgStore {
        let listener = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(store::CHANNEL).await {
                Ok(()) => Some(l),
                Err(e) => {
                    tracing::warn!("LISTEN failed ({e}); polling every {:?}", s.poll_interval);
                    None
                }
            },
            Err(e) => {
                tracing::warn!("LISTEN failed ({e}); polling every {:?}", s.poll_interval);
                None
            }
        };
        PgStore {
            pool,
            me: me.to_string(),
            s,
            listener: Mutex::new(listener),
        }
    }
}

impl StateStore for PgStore {
    async fn claim(&self) -> anyhow::Result<Option<Claim>> {
        Ok(store::claim(&self.pool, &self.me, self.s.lease, self.s.max_concurrency).await?)
    }

    async fn view(&self, c: &Claim) -> anyhow::Result<RunView> {
        Ok(store::run_view(&self.pool, c.run_id).await?)
    }

    async fn renew(&self, c: &Claim) -> anyhow::Result<bool> {
        Ok(store::renew(&self.pool, &self.me, c, self.s.lease).await?)
    }

    async fn finish(
        &self,
        c: &Claim,
        outcome: &TaskOutcome,
        retry: bool,
    ) -> anyhow::Result<Option<Settled>> {
        Ok(store::finish(
            &self.pool,
            &self.me,
            c,
            outcome,
            retry,
            self.s.retry_backoff,
        )
        .await?)
    }

    /// A notification, the next retry that falls due, or the poll interval.
    async fn wake(&self) {
        let due = store::next_retry_in(&self.pool).await.ok().flatten();
        // (at least 50 ms: a due retry may wait for a slot)
        let tick = due.map_or(self.s.poll_interval, |d| {
            d.clamp(Duration::from_millis(50), self.s.poll_interval)
        });
        let mut listener = self.listener.lock().await;
        let Some(l) = listener.as_mut() else {
            tokio::time::sleep(tick).await;
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            n = l.recv() => {
                if let Err(e) = n {
                    tracing::warn!("notifications: {e}; polling");
                    *listener = None;
                }
            }
        }
    }

    fn ends_when_idle(&self) -> bool {
        false
    }

    async fn hand_back(&self) -> anyhow::Result<u64> {
        Ok(store::hand_back(&self.pool, &self.me).await?)
    }

    async fn record_results<'a>(
        &'a self,
        run_id: i64,
        record: Recorder<'a>,
    ) -> anyhow::Result<usize> {
        super::kept_results::record_results(&self.pool, run_id, record).await
    }
}
