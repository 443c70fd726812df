//! The clock that stamps `ingested_at`: the system clock, or an instant
//! pinned by configuration so that a rerun stamps the same times (silver's
//! `future_event_time` rule compares event times with it).

use chrono::{DateTime, NaiveDate, Utc};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestClock {
    System,
    /// Every message is stamped with this instant.
    Pinned(DateTime<Utc>),
}

impl IngestClock {
    /// `""` is the system clock; anything else must be an RFC 3339 instant.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("system") {
            return Ok(IngestClock::System);
        }
        DateTime::parse_from_rfc3339(text)
            .map(|t| IngestClock::Pinned(t.with_timezone(&Utc)))
            .map_err(|e| {
                format!("`{text}` is not an RFC 3339 instant like 2026-11-21T08:00:00Z ({e})")
            })
    }

    /// Microseconds since the epoch, UTC.
    pub fn now_micros(&self) -> i64 {
        match self {
            // Read per message: the system time without chrono's calendar
            // arithmetic (same value as `Utc::now().timestamp_micros()`).
            IngestClock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64),
            IngestClock::Pinned(t) => t.timestamp_micros(),
        }
    }

    /// Today's UTC date by this clock.
    pub fn today(&self) -> NaiveDate {
        match self {
            IngestClock::System => Utc::now().date_naive(),
            IngestClock::Pinned(t) => t.date_naive(),
        }
    }
}

/// Days since the epoch of a UTC instant in microseconds (Arrow `Date32`).
pub fn epoch_day(micros: i64) -> i32 {
    // div_euclid: instants before 1970 fall on the previous day, not day 0.
    micros.div_euclid(86_400_000_000) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_clock_is_stable_and_parses_offsets() {
        let c = IngestClock::parse("2026-11-21T09:15:30.5+01:00").unwrap();
        assert_eq!(c.now_micros(), c.now_micros());
        assert_eq!(
            c.now_micros(),
            DateTime::parse_from_rfc3339("2026-11-21T08:15:30.5Z")
                .unwrap()
                .timestamp_micros()
        );
        assert_eq!(c.today(), NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
        assert_eq!(IngestClock::parse("").unwrap(), IngestClock::System);
        assert!(
            IngestClock::parse("2026-11-21")
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn epoch_days_round_down() {
        assert_eq!(epoch_day(0), 0);
        assert_eq!(epoch_day(86_400_000_000 - 1), 0);
        assert_eq!(epoch_day(86_400_000_000), 1);
        assert_eq!(epoch_day(-1), -1);
    }
}
