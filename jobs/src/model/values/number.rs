//! Numbers exactly: the decimal value of a JSON number token, compared
//! and scaled without rounding, and intervals over such values.

use crate::decl::{Bound, Interval};
use std::cmp::Ordering;

/// The exact value of a JSON number token: `digits` x 10^`exp`, with no
/// leading or trailing zeros in `digits` (zero has no digits).
#[derive(Clone, Debug)]
pub struct Decimal {
    negative: bool,
    digits: Digits,
    exp: i64,
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

/// Decimal digits (0-9): up to [`SMALL`] of them as one integer (every
/// number of an event: its parse, range check, scaling and float take no
/// digit-by-digit pass and no buffer), more as a list.
#[derive(Clone, Debug)]
enum Digits {
    /// The digits read as an integer, and how many there are.
    Small(u64, u8),
    Big(Vec<u8>),
}

/// Digits a u64 always holds (10^19 - 1 < 2^64).
const SMALL: u8 = 19;

/// 10^i for i up to 19.
const POW10_U64: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

impl Digits {
    fn new() -> Self {
        Digits::Small(0, 0)
    }

    fn len(&self) -> usize {
        match self {
            Digits::Small(_, n) => *n as usize,
            Digits::Big(v) => v.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th digit from the left (`i < len`).
    fn at(&self, i: usize) -> u8 {
        match self {
            Digits::Small(m, n) => ((m / POW10_U64[*n as usize - 1 - i]) % 10) as u8,
            Digits::Big(v) => v[i],
        }
    }

    fn push(&mut self, d: u8) {
        match self {
            Digits::Small(m, n) if *n < SMALL => {
                *m = *m * 10 + u64::from(d);
                *n += 1;
            }
            Digits::Small(..) => {
                let mut v: Vec<u8> = (0..self.len()).map(|i| self.at(i)).collect();
                v.push(d);
                *self = Digits::Big(v);
            }
            Digits::Big(v) => v.push(d),
        }
    }

    /// Appends digit `d` of a number, left to right, keeping no leading
    /// or trailing zeros: a zero is only counted in `zeros` until a
    /// nonzero digit follows it.
    fn push_significant(&mut self, d: u8, zeros: &mut i64) {
        if d == 0 {
            if !self.is_empty() {
                *zeros += 1;
            }
            return;
        }
        for _ in 0..*zeros {
            self.push(0);
        }
        *zeros = 0;
        self.push(d);
    }
}

impl Decimal {
    /// Parses a number token (JSON grammar, or a plain decimal such as a
    /// range bound): `-? digits (. digits)? ([eE] [+-]? digits)?`, where
    /// the integer part may have leading zeros. One pass over the bytes
    /// (every number of every event comes through here).
    pub fn parse(token: &str) -> Option<Decimal> {
        let b = token.as_bytes();
        let negative = b.first() == Some(&b'-');
        let mut i = usize::from(negative);
        let mut digits = Digits::new();
        // Zeros seen after the last nonzero digit, pushed only when a
        // nonzero digit follows (trailing zeros raise `exp` instead).
        let mut zeros: i64 = 0;
        let mut exp: i64 = 0;
        let mut int_len = 0;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            digits.push_significant(c - b'0', &mut zeros);
            int_len += 1;
            i += 1;
        }
        if int_len == 0 {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let from = i;
            // `5.` is read as 5 (a plain decimal may end so; JSON and
            // CSV tokens were matched to their grammar before).
            while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                digits.push_significant(c - b'0', &mut zeros);
                i += 1;
            }
            exp -= (i - from) as i64;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            let e = &token[i + 1..];
            let (minus, e) = match e.as_bytes().first() {
                Some(b'-') => (true, &e[1..]),
                Some(b'+') => (false, &e[1..]),
                _ => (false, e),
            };
            if e.is_empty() || !e.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Saturate absurd exponents: still compares correctly.
            let written = e.parse::<i64>().unwrap_or(1 << 40).min(1 << 40);
            exp += if minus { -written } else { written };
        } else if i != b.len() {
            return None;
        }
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exp: 0,
            });
        }
        Some(Decimal {
            negative,
            digits,
            exp: exp + zeros,
        })
    }

    fn from_f64(v: f64) -> Option<Decimal> {
        Decimal::parse(&format!("{v}"))
    }

    pub fn is_integer(&self) -> bool {
        self.exp >= 0
    }

    /// Decimal places of the exact value (`12.340` has 2, `1.2345e2` 2).
    pub fn decimal_places(&self) -> u64 {
        if self.exp >= 0 {
            0
        } else {
            self.exp.unsigned_abs()
        }
    }

    /// The value times 10^`scale` as an integer, if it is one and fits.
    pub fn scaled(&self, scale: u32) -> Option<i128> {
        let shift = self.exp + scale as i64;
        if shift < 0 || self.digits.len() as i64 + shift > 38 {
            return None;
        }
        let mut v: i128 = match &self.digits {
            Digits::Small(m, _) => i128::from(*m),
            Digits::Big(digits) => digits
                .iter()
                .try_fold(0i128, |v, d| v.checked_mul(10)?.checked_add(i128::from(*d)))?,
        };
        v = v.checked_mul(10i128.checked_pow(shift as u32)?)?;
        Some(if self.negative { -v } else { v })
    }

    /// The nearest f64, when one correctly rounded operation computes it:
    /// at most 15 digits (exact in an f64) times or over a power of ten an
    /// f64 holds exactly (up to 10^22), Clinger's fast path. `None`
    /// otherwise, and for zero (whose sign only the token keeps): the
    /// caller then parses the token. Float columns of events take this
    /// path instead of parsing every number twice.
    pub fn to_f64_fast(&self) -> Option<f64> {
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        let e = self.exp.unsigned_abs();
        let m = match self.digits {
            Digits::Small(m, n) if (1..=15).contains(&n) && e <= 22 => m as f64,
            _ => return None,
        };
        let v = if self.exp >= 0 {
            m * POW10[e as usize]
        } else {
            m / POW10[e as usize]
        };
        Some(if self.negative { -v } else { v })
    }

    fn cmp_magnitude(&self, other: &Decimal) -> Ordering {
        let (x, y) = (&self.digits, &other.digits);
        match (x.is_empty(), y.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // Position of the leading digit decides first, then the digits.
        let a = x.len() as i64 + self.exp;
        let b = y.len() as i64 + other.exp;
        a.cmp(&b).then_with(|| match (x, y) {
            // Both padded with zeros to the longer one's length: still
            // at most 19 digits, so still a u64.
            (Digits::Small(m, i), Digits::Small(k, j)) => {
                let n = (*i).max(*j);
                let pad = |v: u64, len: u8| v * POW10_U64[(n - len) as usize];
                pad(*m, *i).cmp(&pad(*k, *j))
            }
            _ => {
                let n = x.len().max(y.len());
                let at = |d: &Digits, i: usize| if i < d.len() { d.at(i) } else { 0 };
                (0..n)
                    .map(|i| at(x, i).cmp(&at(y, i)))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            }
        })
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Whether the exact value lies in the interval.
pub fn in_interval(v: &Decimal, interval: &Interval) -> bool {
    ExactInterval::of(interval).contains(v)
}

/// An interval with its bounds as exact decimals, made once per run (a
/// bound turned back into a decimal for every row was a tenth of the
/// cleaning time).
#[derive(Clone, Debug)]
pub struct ExactInterval {
    low: Option<(Decimal, bool)>,
    high: Option<(Decimal, bool)>,
}

impl ExactInterval {
    pub fn of(interval: &Interval) -> Self {
        let bound = |b: &Bound| match b {
            Bound::Unbounded => None,
            Bound::Inclusive(x) => Decimal::from_f64(*x).map(|d| (d, true)),
            Bound::Exclusive(x) => Decimal::from_f64(*x).map(|d| (d, false)),
        };
        Self {
            low: bound(&interval.low),
            high: bound(&interval.high),
        }
    }

    pub fn contains(&self, v: &Decimal) -> bool {
        let low_ok = match &self.low {
            None => true,
            Some((l, true)) => v >= l,
            Some((l, false)) => v > l,
        };
        let high_ok = match &self.high {
            None => true,
            Some((h, true)) => v <= h,
            Some((h, false)) => v < h,
        };
        low_ok && high_ok
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`: a JSON number.
pub(super) fn is_number_token(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decl::Interval;

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).expect("test value")
    }

    /// The fast path gives the very f64 the standard parser does, bit for
    /// bit, on tokens of every shape it takes (and declines the others).
    #[test]
    fn the_fast_float_is_the_parsed_float() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut fast = 0;
        for _ in 0..200_000 {
            let len = 1 + next(18) as usize;
            let digits: String = (0..len)
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            let mut token = if next(4) == 0 {
                "-".to_string()
            } else {
                String::new()
            };
            token.push_str(digits.trim_start_matches('0'));
            if token.ends_with('-') || token.is_empty() {
                token.push('0');
            }
            if next(2) == 0 {
                let tail: String = (0..1 + next(8))
                    .map(|_| char::from(b'0' + next(10) as u8))
                    .collect();
                token = format!("{token}.{tail}");
            }
            if next(3) == 0 {
                token = format!("{token}e{}", next(60) as i64 - 30);
            }
            let parsed: f64 = token.parse().expect("test token");
            if let Some(v) = dec(&token).to_f64_fast() {
                fast += 1;
                assert_eq!(v.to_bits(), parsed.to_bits(), "{token}");
            }
        }
        assert!(fast > 50_000, "the fast path took only {fast} tokens");
        for declined in ["0", "-0.0", "1234567890123456", "1e23", "1e-23"] {
            assert_eq!(dec(declined).to_f64_fast(), None, "{declined}");
        }
        assert_eq!(dec("-12.5e1").to_f64_fast(), Some(-125.0));
    }

    #[test]
    fn decimals_are_exact() {
        assert!(dec("2").is_integer() && dec("2.0").is_integer() && dec("3e3").is_integer());
        assert!(!dec("2.5").is_integer() && !dec("25e-1").is_integer());
        assert!(dec("-0.0").is_integer());
        assert_eq!(dec("12.345").decimal_places(), 3);
        assert_eq!(dec("1.2345e2").decimal_places(), 2);
        assert_eq!(dec("12.340").decimal_places(), 2);
        assert_eq!(dec("12.34").scaled(2), Some(1234));
        assert_eq!(dec("-1.5").scaled(2), Some(-150));
        assert_eq!(dec("1.2345e2").scaled(2), Some(12345));
        assert!(dec("300.00000000000000001") > dec("300"));
        assert!(dec("-90.5") < dec("-90"));
        assert!(dec("1e400") > dec("1e399"));
        assert_eq!(dec("0.000"), dec("-0"));
        // Zeros inside, leading and trailing, and exponents of every form.
        assert_eq!(dec("100.5").scaled(1), Some(1005));
        assert_eq!(dec("0.05").scaled(2), Some(5));
        assert_eq!(dec("-0.0500e2").scaled(1), Some(-50));
        assert_eq!(dec("1200").scaled(0), Some(1200));
        assert_eq!(dec("007").scaled(0), Some(7));
        assert_eq!(dec("1E+2").scaled(0), Some(100));
        assert_eq!(dec("25e-1").scaled(1), Some(25));
        for bad in [
            "", "-", "1e", "1e+", "1e--5", "1x", "+1", ".5", "1.5.2", "1e5.0",
        ] {
            assert!(Decimal::parse(bad).is_none(), "{bad:?}");
        }
        // Across 19 digits (a u64's) and 20 (a list), mixed in compares.
        let (big, small) = ("12345678901234567891", "1234567890123456789");
        assert_eq!(dec(big).scaled(0), Some(12345678901234567891));
        assert_eq!(dec(small).scaled(1), Some(12345678901234567890));
        assert!(dec(big) > dec("12345678901234567890") && dec(big) < dec("12345678901234567892"));
        assert!(dec(&format!("{small}.5")) > dec(small) && dec(&format!("-{big}")) < dec("-1e19"));
        assert_eq!(dec(&format!("{big}0e-1")), dec(big));
        assert!(dec("9999999999999999999") < dec("10000000000000000000"));
        assert!(dec("0.1") < dec("0.12") && dec("0.12") > dec("0.11999999999999999999"));
        // Beyond the inline digits: still exact, and equal when equal.
        let long = format!("1.{}1", "0".repeat(60));
        assert!(dec(&long) > dec("1") && dec(&long) < dec("1.0000001"));
        assert_eq!(dec(&format!("1.5{}", "0".repeat(60))), dec("1.5"));
        assert_eq!(dec(&format!("{}7", "0".repeat(60))).scaled(0), Some(7));
        let r = Interval::parse("[0, 300]").expect("test value");
        assert!(
            in_interval(&dec("0"), &r)
                && in_interval(&dec("300"), &r)
                && in_interval(&dec("3e2"), &r)
        );
        assert!(
            !in_interval(&dec("300.00000000000000001"), &r) && !in_interval(&dec("-0.001"), &r)
        );
        let r = Interval::parse("(0, 100000]").expect("test value");
        assert!(
            !in_interval(&dec("0"), &r)
                && in_interval(&dec("0.01"), &r)
                && in_interval(&dec("100000"), &r)
        );
    }
}
