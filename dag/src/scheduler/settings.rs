//! The `[scheduler]` section of dag.toml, parsed into what the scheduler
//! and its state store use.

use super::clock::SchedulerClock;
use crate::config::Loaded;
use std::time::Duration;

/// The `[scheduler]` settings, parsed (validated when the config loaded).
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    pub tz: chrono_tz::Tz,
    pub max_concurrency: i64,
    pub max_attempts: i32,
    pub retry_backoff: Duration,
    pub task_timeout: Duration,
    pub lease: Duration,
    pub queue_overlaps: bool,
    pub poll_interval: Duration,
    pub grace_period: Duration,
    pub ingest: bool,
    /// A bronze commit queues a run of what reads it.
    pub continuous: bool,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub clock: SchedulerClock,
    /// No lines on stdout (an in-process scheduler).
    pub quiet: bool,
}

impl SchedulerSettings {
    pub fn from_config(cfg: &Loaded) -> SchedulerSettings {
        let c = &cfg.config.scheduler;
        let d =
            |t: &str, secs: u64| jobs::decl::parse_duration(t).unwrap_or(Duration::from_secs(secs));
        SchedulerSettings {
            tz: c.timezone.parse().unwrap_or(chrono_tz::UTC),
            max_concurrency: i64::from(c.max_concurrency.max(1)),
            max_attempts: c.retries as i32 + 1,
            retry_backoff: d(&c.retry_backoff, 10),
            task_timeout: d(&c.task_timeout, 3600),
            lease: d(&c.lease, 30),
            queue_overlaps: c.overlap == "queue",
            poll_interval: d(&c.poll_interval, 1),
            grace_period: d(&c.grace_period, 30),
            ingest: c.ingest,
            continuous: c.continuous,
            metrics_addr: c.metrics_addr.parse().ok(),
            clock: SchedulerClock::parse(&c.clock).unwrap_or(SchedulerClock::System),
            quiet: false,
        }
    }
}
