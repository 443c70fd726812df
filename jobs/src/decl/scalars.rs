//! Single values written in model files (and pipeline.yml): identifiers,
//! cron schedules and durations, each with the message that says what the
//! value should look like.

use std::time::Duration;

/// Model and column names: lower-case identifiers, safe as Delta folder and
/// PostgreSQL names without quoting surprises.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && s.len() <= 63
}

/// Checks the shape of a schedule: a cron expression with seconds, as
/// tokio-cron-scheduler reads it. One rule for model files and pipeline.yml.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if (6..=7).contains(&fields) {
        Ok(())
    } else {
        Err(format!(
            "`{expr}` must be a cron expression with seconds: `sec min hour day month weekday [year]` (got {fields} fields)"
        ))
    }
}

/// Parses a duration such as `5m`, `300s`, `1h30m`, `2d`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "duration `{text}` must look like `5m`, `300s`, `1h30m`"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86400),
            _ => {
                return Err(format!(
                    "duration `{text}` must look like `5m`, `300s`, `1h30m` (units ms, s, m, h, d; no spaces)"
                ));
            }
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}
