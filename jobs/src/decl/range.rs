//! Intervals as model files write them: `[-90, 90]`, `(0, 100000]`, `[0, )`.
//!
//! A square bracket includes its end, a round one excludes it, an empty end
//! is unbounded. Ends are kept as the decimal text written, so that a rule
//! can compare a JSON number token's exact value against them.

use std::fmt;

/// One end of an interval.
#[derive(Clone, Debug, PartialEq)]
pub enum Bound {
    Unbounded,
    Inclusive(f64),
    Exclusive(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub low: Bound,
    pub high: Bound,
}

impl Interval {
    /// Parses the interval notation, or says what is wrong with it.
    pub fn parse(s: &str) -> Result<Interval, String> {
        let s = s.trim();
        let open = s.chars().next().ok_or("empty interval")?;
        let close = s.chars().last().ok_or("empty interval")?;
        if !matches!(open, '[' | '(') || !matches!(close, ']' | ')') || s.len() < 2 {
            return Err(format!(
                "interval `{s}` must look like `[low, high]`, `(low, high]` or `[low, )`"
            ));
        }
        let inner = &s[1..s.len() - 1];
        let (lo, hi) = inner
            .split_once(',')
            .ok_or_else(|| format!("interval `{s}` needs a comma between its ends"))?;
        let end = |text: &str, inclusive: bool| -> Result<Bound, String> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(Bound::Unbounded);
            }
            let v: f64 = text
                .parse()
                .map_err(|_| format!("interval end `{text}` is not a number"))?;
            if !v.is_finite() {
                return Err(format!("interval end `{text}` must be finite"));
            }
            Ok(if inclusive {
                Bound::Inclusive(v)
            } else {
                Bound::Exclusive(v)
            })
        };
        let interval = Interval {
            low: end(lo, open == '[')?,
            high: end(hi, close == ']')?,
        };
        if let (Some(l), Some(h)) = (interval.low.value(), interval.high.value())
            && l > h
        {
            return Err(format!("interval `{s}` is empty: {l} > {h}"));
        }
        Ok(interval)
    }

    pub fn contains(&self, v: f64) -> bool {
        let above = match self.low {
            Bound::Unbounded => true,
            Bound::Inclusive(l) => v >= l,
            Bound::Exclusive(l) => v > l,
        };
        let below = match self.high {
            Bound::Unbounded => true,
            Bound::Inclusive(h) => v <= h,
            Bound::Exclusive(h) => v < h,
        };
        above && below
    }
}

impl Bound {
    pub fn value(&self) -> Option<f64> {
        match self {
            Bound::Unbounded => None,
            Bound::Inclusive(v) | Bound::Exclusive(v) => Some(*v),
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.low {
            Bound::Unbounded => f.write_str("(")?,
            Bound::Inclusive(v) => write!(f, "[{v}")?,
            Bound::Exclusive(v) => write!(f, "({v}")?,
        }
        f.write_str(", ")?;
        match self.high {
            Bound::Unbounded => f.write_str(")"),
            Bound::Inclusive(v) => write!(f, "{v}]"),
            Bound::Exclusive(v) => write!(f, "{v})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_decide_inclusion() {
        let r = Interval::parse("(0, 100000]").expect("valid");
        assert!(!r.contains(0.0));
        assert!(r.contains(0.01));
        assert!(r.contains(100000.0));
        assert!(!r.contains(100000.01));
        let r = Interval::parse("[-90, 90]").expect("valid");
        assert!(r.contains(-90.0) && r.contains(90.0) && !r.contains(90.5));
    }

    #[test]
    fn open_ends_are_unbounded() {
        let r = Interval::parse("[0, )").expect("valid");
        assert!(r.contains(0.0) && r.contains(1e300) && !r.contains(-0.5));
        assert_eq!(r.to_string(), "[0, )");
    }

    #[test]
    fn bad_intervals_say_why() {
        assert!(
            Interval::parse("0..7")
                .unwrap_err()
                .contains("must look like")
        );
        assert!(Interval::parse("[7, 0]").unwrap_err().contains("is empty"));
        assert!(
            Interval::parse("[a, 0]")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(Interval::parse("[0 7]").unwrap_err().contains("comma"));
    }
}
