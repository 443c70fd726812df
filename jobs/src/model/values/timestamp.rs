//! Timestamps exactly as RFC 3339 writes them.

/// An RFC 3339 timestamp with a required offset, as UTC microseconds:
/// `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`, `t`/`z` in either case,
/// fractions beyond microseconds truncated. Anything else is `None`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0u32, |acc, d| acc * 10 + (d - b'0') as u32)
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let mut i = 19;
    let mut micros: i64 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_seconds: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = (oh * 3600 + om * 60) as i64;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let local = date
        .and_hms_opt(hour, minute, second)?
        .and_utc()
        .timestamp();
    Some((local - offset_seconds) * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_exactly() {
        let t = parse_rfc3339("2026-11-21T08:15:30.123Z").expect("test value");
        assert_eq!(t, 1_795_248_930_123_000);
        assert_eq!(parse_rfc3339("2026-11-21t10:15:30.123+02:00"), Some(t));
        assert_eq!(
            parse_rfc3339("2026-11-21T08:15:30.123456789z"),
            Some(t + 456)
        );
        assert_eq!(parse_rfc3339("2026-11-21T03:45:30.123-04:30"), Some(t));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z").map(|v| v % 1_000_000),
            Some(0)
        );
        for bad in [
            "2026-11-21 08:15:30Z",
            "2026-11-21T08:15:30",
            "2026-11-21T08:15:30+0200",
            "2026-11-21T24:00:00Z",
            "2026-11-21T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-21",
            "1763712930",
            "2026-11-21T08:15:30.Z",
            "2026-11-21T08:15Z",
            "2026-11-21T08:15:30Z ",
            "+2026-11-21T08:15:30Z",
            "2026-11-21T08:15:30+24:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
