//! The scheduler's clock and when schedules fire.
//!
//! The clock is the system's, or a virtual one that starts at a given
//! instant and runs N times faster (`scheduler.clock = "<RFC 3339> x<N>"`),
//! so that tests and replays see schedules fire across days and DST
//! changes in seconds. Fire times come from croner (the cron engine
//! tokio-cron-scheduler uses) in the configured time zone: we compute them
//! ourselves rather than through tokio-cron-scheduler's job runner because
//! that runner reads the system clock, and a schedule must be testable
//! against an injected one.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub enum SchedulerClock {
    System,
    /// `start` at the moment the clock was made, running `speed` times
    /// faster than real time.
    Virtual {
        start: DateTime<Utc>,
        origin: Instant,
        speed: f64,
    },
}

impl SchedulerClock {
    /// `system`, or `<RFC 3339 instant> x<speed>` (`x1` when omitted).
    pub fn parse(text: &str) -> Result<SchedulerClock, String> {
        let text = text.trim();
        // As `ingest.clock`: empty or `system` is the system clock.
        if text.is_empty() || text.eq_ignore_ascii_case("system") {
            return Ok(SchedulerClock::System);
        }
        let (at, speed) = match text.split_once(char::is_whitespace) {
            Some((at, speed)) => (at, speed.trim()),
            None => (text, "x1"),
        };
        let start = DateTime::parse_from_rfc3339(at)
            .map_err(|e| format!("`{at}` is not an RFC 3339 instant ({e}); use \"system\" or \"<instant> x<speed>\""))?
            .with_timezone(&Utc);
        let speed: f64 = speed
            .strip_prefix('x')
            .and_then(|s| s.parse().ok())
            .filter(|s: &f64| s.is_finite() && *s > 0.0)
            .ok_or_else(|| format!("`{speed}` must be a speed such as x60"))?;
        Ok(SchedulerClock::Virtual {
            start,
            origin: Instant::now(),
            speed,
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            SchedulerClock::System => Utc::now(),
            SchedulerClock::Virtual {
                start,
                origin,
                speed,
            } => {
                let real = origin.elapsed().as_secs_f64() * speed;
                *start + TimeDelta::microseconds((real * 1e6) as i64)
            }
        }
    }

    /// The real time until the clock shows `at` (zero if past).
    pub fn until(&self, at: DateTime<Utc>) -> Duration {
        let ahead = (at - self.now()).to_std().unwrap_or_default();
        match self {
            SchedulerClock::System => ahead,
            SchedulerClock::Virtual { speed, .. } => ahead.div_f64(*speed),
        }
    }
}

/// A parsed schedule: which selection, and when (cron with seconds, in a
/// time zone).
#[derive(Clone, Debug)]
pub struct Schedule {
    pub select: String,
    pub cron_text: String,
    cron: croner::Cron,
    tz: Tz,
}

impl Schedule {
    pub fn new(select: &str, cron: &str, tz: Tz) -> Result<Schedule, String> {
        let parsed: croner::Cron = cron
            .parse()
            .map_err(|e| format!("schedule `{select}`: cron `{cron}`: {e}"))?;
        Ok(Schedule {
            select: select.to_string(),
            cron_text: cron.to_string(),
            cron: parsed,
            tz,
        })
    }

    /// How runs of this schedule are named in `dag.runs.schedule`.
    pub fn key(&self) -> String {
        format!("{} @ {}", self.select, self.cron_text)
    }

    /// The first fire time strictly after `after`. DST as croner (and
    /// Vixie cron) does it: a fixed local time inside a spring-forward gap
    /// fires right after the gap; one inside a fall-back overlap fires
    /// once; wildcard fields skip the gap and fire in both overlaps.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t)
            .unwrap_or_default()
            .with_timezone(&Utc)
    }

    fn fires(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(next) = s.next_after(t) else { break };
            out.push(next.to_rfc3339());
            t = next;
        }
        out
    }

    #[test]
    fn a_daily_local_time_keeps_its_wall_clock_across_spring_forward() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        let s = Schedule::new("gold", "0 0 9 * * *", berlin).unwrap_or_else(|e| panic!("{e}"));
        // 2026-03-29: CET (+01) -> CEST (+02) at 02:00 local.
        assert_eq!(
            fires(&s, "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T08:00:00+00:00",
                "2026-03-29T07:00:00+00:00",
                "2026-03-30T07:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_time_inside_the_gap_fires_right_after_it_and_an_overlap_once() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        let s = Schedule::new("gold", "0 30 2 * * *", berlin).unwrap_or_else(|e| panic!("{e}"));
        // 02:30 does not exist on 2026-03-29: 03:00 CEST = 01:00Z.
        assert_eq!(
            fires(&s, "2026-03-28T12:00:00Z", 1),
            ["2026-03-29T01:00:00+00:00"]
        );
        // 02:30 happens twice on 2026-10-25 (CEST then CET): once, the first.
        assert_eq!(
            fires(&s, "2026-10-24T12:00:00Z", 1),
            ["2026-10-25T00:30:00+00:00"]
        );
    }

    #[test]
    fn a_virtual_clock_runs_at_its_speed() {
        let c =
            SchedulerClock::parse("2026-03-29T00:00:00Z x3600").unwrap_or(SchedulerClock::System);
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(50));
        let moved = (c.now() - t0).num_seconds();
        assert!((150..600).contains(&moved), "{moved}");
        assert!(SchedulerClock::parse("yesterday").is_err());
        assert!(SchedulerClock::parse("2026-03-29T00:00:00Z fast").is_err());
        let wait = c.until(c.now() + TimeDelta::hours(1));
        assert!(wait <= Duration::from_millis(1001), "{wait:?}");
    }
}
