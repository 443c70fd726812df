//! The value rules of silver cleaning, exactly as the spec words them:
//! exact decimal values of JSON number tokens (integers, decimal places,
//! ranges), RFC 3339 timestamps, and the order in which a field's rules
//! pick the quarantine reason.

use super::json::{Member, Value, parse_object, parse_object_into};
use crate::spec::{Bound, ColumnType, FieldKind, FieldRule, Interval, RecordFormat};
use std::borrow::Cow;
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

/// Decimal digits (0-9), held inline up to `INLINE` of them (every value an
/// i128 holds, so every number of an event) and on the heap beyond: a row's
/// numbers are checked without allocating.
#[derive(Clone, Debug)]
enum Digits {
    Inline(u8, [u8; INLINE]),
    Heap(Vec<u8>),
}

const INLINE: usize = 40;

impl Digits {
    fn new() -> Self {
        Digits::Inline(0, [0; INLINE])
    }

    fn push(&mut self, d: u8) {
        match self {
            Digits::Inline(len, buf) if (*len as usize) < INLINE => {
                buf[*len as usize] = d;
                *len += 1;
            }
            Digits::Inline(len, buf) => {
                let mut v = buf[..*len as usize].to_vec();
                v.push(d);
                *self = Digits::Heap(v);
            }
            Digits::Heap(v) => v.push(d),
        }
    }

    fn pop(&mut self) {
        match self {
            Digits::Inline(len, _) => *len = len.saturating_sub(1),
            Digits::Heap(v) => {
                v.pop();
            }
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Digits::Inline(len, buf) => &buf[..*len as usize],
            Digits::Heap(v) => v,
        }
    }
}

impl Decimal {
    /// Parses a number token (JSON grammar, or a plain decimal such as a
    /// range bound).
    pub fn parse(token: &str) -> Option<Decimal> {
        let (negative, rest) = match token.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, token),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(at) => {
                let e = &rest[at + 1..];
                let e = e.strip_prefix('+').unwrap_or(e);
                // Saturate absurd exponents: still compares correctly.
                let exp = e.parse::<i64>().unwrap_or(if e.starts_with('-') {
                    -(1 << 40)
                } else {
                    1 << 40
                });
                (&rest[..at], exp.clamp(-(1 << 40), 1 << 40))
            }
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Leading zeros are skipped, trailing ones dropped after.
        let mut digits = Digits::new();
        for c in int.bytes().chain(frac.bytes()) {
            if c != b'0' || !digits.as_slice().is_empty() {
                digits.push(c - b'0');
            }
        }
        let mut exp = exp - frac.len() as i64;
        while digits.as_slice().last() == Some(&0) {
            digits.pop();
            exp += 1;
        }
        if digits.as_slice().is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exp: 0,
            });
        }
        Some(Decimal {
            negative,
            digits,
            exp,
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
        let digits = self.digits.as_slice();
        if shift < 0 || digits.len() as i64 + shift > 38 {
            return None;
        }
        let mut v: i128 = 0;
        for d in digits {
            v = v.checked_mul(10)?.checked_add(*d as i128)?;
        }
        v = v.checked_mul(10i128.checked_pow(shift as u32)?)?;
        Some(if self.negative { -v } else { v })
    }

    fn cmp_magnitude(&self, other: &Decimal) -> Ordering {
        let (x, y) = (self.digits.as_slice(), other.digits.as_slice());
        match (x.is_empty(), y.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // Position of the leading digit decides first, then the digits.
        let a = x.len() as i64 + self.exp;
        let b = y.len() as i64 + other.exp;
        a.cmp(&b).then_with(|| {
            let n = x.len().max(y.len());
            let at = |d: &[u8], i: usize| d.get(i).copied().unwrap_or(0);
            (0..n)
                .map(|i| at(x, i).cmp(&at(y, i)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
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

/// A checked field value, ready for its output column.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    /// Borrowed from the raw value unless it had escapes.
    Text(Cow<'a, str>),
    Float(f64),
    Int(i64),
    /// Scaled by the column's scale.
    Decimal(i128),
    /// UTC microseconds.
    Micros(i64),
}

/// Why a row is quarantined (`Display` gives the machine-readable code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    EmptyValue,
    MalformedJson,
    /// A CSV row that is not one record of the header's width.
    MalformedCsv,
    /// A file of a `file_source` that could not be read (bronze keeps one
    /// row for it, at offset -1, with the reason as its value).
    UnreadableFile,
    Missing(String),
    Type(String),
    Range(String),
    FutureEventTime,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::EmptyValue => f.write_str("empty_value"),
            Reason::MalformedJson => f.write_str("malformed_json"),
            Reason::MalformedCsv => f.write_str("malformed_csv"),
            Reason::UnreadableFile => f.write_str("unreadable_file"),
            Reason::Missing(c) => write!(f, "missing:{c}"),
            Reason::Type(c) => write!(f, "type:{c}"),
            Reason::Range(c) => write!(f, "range:{c}"),
            Reason::FutureEventTime => f.write_str("future_event_time"),
        }
    }
}

/// Checks one raw bronze value against the field rules, in order; the
/// first failing rule is the reason.
pub fn check_row<'a>(
    raw: Option<&'a [u8]>,
    ingested_at_micros: i64,
    fields: &[FieldRule],
) -> Result<Vec<Cell<'a>>, Reason> {
    RowChecker::new(fields).check(raw, ingested_at_micros)
}

/// The field rules of a model, prepared once for checking many rows.
pub struct RowChecker<'r> {
    fields: &'r [FieldRule],
    ranges: Vec<Option<ExactInterval>>,
    /// CSV cells are text: a number rule reads the text as its token.
    text_numbers: bool,
}

/// Buffers one thread reuses from row to row: checking a row allocates
/// nothing unless a string has escapes (allocation was a fifth of the
/// checking time).
pub struct Scratch<'a> {
    members: Vec<Member<'a>>,
    /// The last checked row's cells, in field order.
    pub cells: Vec<Cell<'a>>,
}

impl Default for Scratch<'_> {
    fn default() -> Self {
        Self {
            members: Vec::with_capacity(16),
            cells: Vec::with_capacity(16),
        }
    }
}

impl<'r> RowChecker<'r> {
    pub fn new(fields: &'r [FieldRule]) -> Self {
        Self {
            fields,
            ranges: fields
                .iter()
                .map(|f| f.range.as_ref().map(ExactInterval::of))
                .collect(),
            text_numbers: false,
        }
    }

    /// A checker of values written in `format`.
    pub fn for_format(fields: &'r [FieldRule], format: RecordFormat) -> Self {
        Self {
            text_numbers: format == RecordFormat::Csv,
            ..Self::new(fields)
        }
    }

    /// One row's cells in field order, or the first failing rule's reason.
    pub fn check<'a>(
        &self,
        raw: Option<&'a [u8]>,
        ingested_at_micros: i64,
    ) -> Result<Vec<Cell<'a>>, Reason> {
        let mut scratch = Scratch::default();
        self.check_into(raw, ingested_at_micros, &mut scratch)?;
        Ok(scratch.cells)
    }

    /// [`RowChecker::check`] into `scratch.cells`.
    pub fn check_into<'a>(
        &self,
        raw: Option<&'a [u8]>,
        ingested_at_micros: i64,
        scratch: &mut Scratch<'a>,
    ) -> Result<(), Reason> {
        scratch.cells.clear();
        let raw = match raw {
            None | Some([]) => return Err(Reason::EmptyValue),
            Some(r) => r,
        };
        parse_object_into(raw, &mut scratch.members).ok_or(Reason::MalformedJson)?;
        self.check_members(ingested_at_micros, scratch)
    }

    /// One CSV row (`raw`) under its file's `header` (column names, in
    /// order): empty cells are nulls, number rules read the cell's text.
    pub fn check_csv_into<'a>(
        &self,
        header: &[String],
        raw: Option<&'a [u8]>,
        ingested_at_micros: i64,
        scratch: &mut Scratch<'a>,
    ) -> Result<(), Reason> {
        scratch.cells.clear();
        scratch.members.clear();
        let raw = match raw {
            None | Some([]) => return Err(Reason::EmptyValue),
            Some(r) => r,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(raw);
        let mut record = csv::StringRecord::new();
        match reader.read_record(&mut record) {
            Ok(true) if record.len() == header.len() => {}
            _ => return Err(Reason::MalformedCsv),
        }
        // One record per row: anything after it is not this row's.
        if reader
            .read_record(&mut csv::StringRecord::new())
            .unwrap_or(true)
        {
            return Err(Reason::MalformedCsv);
        }
        for (name, cell) in header.iter().zip(record.iter()) {
            let value = if cell.is_empty() {
                Value::Null
            } else {
                Value::String(Cow::Owned(cell.to_string()))
            };
            scratch.members.push((Cow::Owned(name.clone()), value));
        }
        self.check_members(ingested_at_micros, scratch)
    }

    /// The rules over a row's members (`scratch.members`), into
    /// `scratch.cells`.
    fn check_members<'a>(
        &self,
        ingested_at_micros: i64,
        scratch: &mut Scratch<'a>,
    ) -> Result<(), Reason> {
        let members = &mut scratch.members;
        // Members usually come in the order of the fields: each search
        // starts after the member found last, so it is mostly one compare.
        let mut next = 0;
        for (rule, range) in self.fields.iter().zip(&self.ranges) {
            let n = members.len();
            let top = rule.path.first().unwrap_or(&rule.name);
            let found = (0..n)
                .map(|k| (next + k) % n)
                .find(|&at| members[at].0 == top.as_str());
            let value = match found {
                None => None,
                // A member of a nested object: the object stays for the
                // other rules that read into it.
                Some(at) if rule.path.len() > 1 => nested(&members[at].1, rule)?,
                // Copied, not taken: two rules may read one member (a
                // `path` alias, a nested rule under a plain one). A
                // borrowed value copies two words.
                Some(at) => {
                    next = at + 1;
                    Some(members[at].1.clone())
                }
            };
            scratch.cells.push(check_field(
                rule,
                range.as_ref(),
                value,
                ingested_at_micros,
                self.text_numbers,
            )?);
        }
        Ok(())
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`: a JSON number.
fn is_number_token(s: &str) -> bool {
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

/// The value at the rule's nested `path` inside `value` (the top member):
/// `None` when a member on the way is missing or null; a member on the way
/// that is not an object is a type error of the rule's field.
fn nested<'a>(value: &Value<'a>, rule: &FieldRule) -> Result<Option<Value<'a>>, Reason> {
    let mut current = value.clone();
    for name in &rule.path[1..] {
        let raw = match current {
            Value::Object(raw) => raw,
            Value::Null => return Ok(None),
            _ => return Err(Reason::Type(rule.name.clone())),
        };
        // The whole value was validated already: a failure here cannot
        // happen, but says malformed rather than panicking if it did.
        let members = parse_object(raw.as_bytes()).ok_or(Reason::MalformedJson)?;
        match members.into_iter().find(|(k, _)| k == name.as_str()) {
            Some((_, v)) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

fn check_field<'a>(
    rule: &FieldRule,
    range: Option<&ExactInterval>,
    value: Option<Value<'a>>,
    ingested_at: i64,
    text_numbers: bool,
) -> Result<Cell<'a>, Reason> {
    let name = || rule.name.clone();
    let value = match value {
        None | Some(Value::Null) => {
            return if rule.required {
                Err(Reason::Missing(name()))
            } else {
                Ok(Cell::Null)
            };
        }
        Some(Value::String(s)) if rule.required && s.chars().all(char::is_whitespace) => {
            return Err(Reason::Missing(name()));
        }
        Some(v) => v,
    };
    match rule.kind {
        FieldKind::String => match value {
            Value::String(s) => Ok(Cell::Text(s)),
            _ => Err(Reason::Type(name())),
        },
        FieldKind::Timestamp => {
            let Value::String(s) = value else {
                return Err(Reason::Type(name()));
            };
            let micros = parse_rfc3339(&s).ok_or_else(|| Reason::Type(name()))?;
            if let Some(ahead) = rule.max_ahead_of_ingest
                && micros - ingested_at > ahead.as_micros() as i64
            {
                return Err(Reason::FutureEventTime);
            }
            Ok(Cell::Micros(micros))
        }
        FieldKind::Number | FieldKind::Integer => {
            let token: &str = match &value {
                Value::Number(token) => token,
                // A CSV cell must be a number as JSON writes one.
                Value::String(text) if text_numbers && is_number_token(text.trim()) => text.trim(),
                _ => return Err(Reason::Type(name())),
            };
            let dec = Decimal::parse(token).ok_or_else(|| Reason::Type(name()))?;
            if rule.kind == FieldKind::Integer && !dec.is_integer() {
                return Err(Reason::Type(name()));
            }
            if rule
                .max_decimals
                .is_some_and(|m| dec.decimal_places() > m as u64)
            {
                return Err(Reason::Type(name()));
            }
            if let Some(range) = range
                && !range.contains(&dec)
            {
                return Err(Reason::Range(name()));
            }
            // A value the output column cannot hold is a type error too.
            match rule.column {
                ColumnType::Decimal { scale, .. } => dec.scaled(scale as u32).map(Cell::Decimal),
                ColumnType::Int | ColumnType::BigInt => {
                    let limit = if rule.column == ColumnType::Int {
                        i32::MAX as i128
                    } else {
                        i64::MAX as i128
                    };
                    dec.scaled(0)
                        .filter(|v| v.abs() <= limit)
                        .map(|v| Cell::Int(v as i64))
                }
                _ => token
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Cell::Float),
            }
            .ok_or_else(|| Reason::Type(name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).expect("test value")
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

    fn rule(name: &str, path: &str, kind: FieldKind, required: bool) -> FieldRule {
        FieldRule {
            name: name.into(),
            path: path.split('.').map(str::to_string).collect(),
            kind,
            required,
            range: None,
            max_decimals: None,
            max_ahead_of_ingest: None,
            column: kind.default_column(),
        }
    }

    #[test]
    fn nested_members_are_read_by_path_and_judged_by_their_rule() {
        let fields = [
            rule("id", "id", FieldKind::String, true),
            rule("lat", "location.lat", FieldKind::Number, true),
            rule("lon", "location.lon", FieldKind::Number, false),
            rule("deep", "a.b.c", FieldKind::String, false),
        ];
        let c = RowChecker::new(&fields);
        let cells = c
            .check(
                Some(br#"{"id":"x","location":{"lon":2.5,"lat":-1},"a":{"b":{"c":"d"}}}"#),
                0,
            )
            .expect("test value");
        assert_eq!(
            cells,
            vec![
                Cell::Text("x".into()),
                Cell::Float(-1.0),
                Cell::Float(2.5),
                Cell::Text("d".into())
            ]
        );
        // Missing on the way, null on the way, not an object on the way.
        let reason = |raw: &[u8]| c.check(Some(raw), 0).expect_err("test value").to_string();
        assert_eq!(reason(br#"{"id":"x","location":{}}"#), "missing:lat");
        assert_eq!(reason(br#"{"id":"x","location":null}"#), "missing:lat");
        assert_eq!(reason(br#"{"id":"x","location":[1]}"#), "type:lat");
        assert_eq!(reason(br#"{"id":"x","location":{"lat":"1"}}"#), "type:lat");
        // Two rules may read one member.
        let alias = [
            rule("loc", "location", FieldKind::String, false),
            rule("raw", "id", FieldKind::String, true),
            rule("id", "id", FieldKind::String, true),
        ];
        let cells = RowChecker::new(&alias)
            .check(Some(br#"{"id":"x","location":"here"}"#), 0)
            .expect("test value");
        assert_eq!(
            cells,
            vec![
                Cell::Text("here".into()),
                Cell::Text("x".into()),
                Cell::Text("x".into())
            ]
        );
        // Strictness still covers nested objects.
        assert_eq!(
            reason(br#"{"id":"x","location":{"lat":1,"lat":2}}"#),
            "malformed_json"
        );
    }

    #[test]
    fn csv_cells_are_text_read_by_their_rules() {
        let fields = [
            rule("id", "id", FieldKind::String, true),
            rule("n", "n", FieldKind::Integer, true),
            rule("note", "note", FieldKind::String, false),
        ];
        let c = RowChecker::for_format(&fields, RecordFormat::Csv);
        let header: Vec<String> = ["n", "id", "note"].map(String::from).to_vec();
        let check = |raw: &'static [u8]| {
            let mut scratch = Scratch::default();
            c.check_csv_into(&header, Some(raw), 0, &mut scratch)
                .map(|()| scratch.cells)
                .map_err(|r| r.to_string())
        };
        assert_eq!(
            check(b" 42 ,a,\"x, \"\"y\"\"\"").expect("test value"),
            vec![
                Cell::Text("a".into()),
                Cell::Int(42),
                Cell::Text("x, \"y\"".into())
            ]
        );
        assert_eq!(check(b"7,b,").expect("test value")[2], Cell::Null);
        assert_eq!(check(b"x,a,").expect_err("test value"), "type:n");
        assert_eq!(check(b"1.5,a,").expect_err("test value"), "type:n");
        for bad in ["0e", "0eabc", "5e", "01", "1.", ".5", "+1", "1e+"] {
            let row = format!("{bad},a,");
            let row: &'static [u8] = Box::leak(row.into_bytes().into_boxed_slice());
            assert_eq!(check(row).expect_err("test value"), "type:n", "{bad}");
        }
        assert_eq!(check(b"-0,a,").expect("test value")[1], Cell::Int(0));
        assert_eq!(check(b"2E+1,a,").expect("test value")[1], Cell::Int(20));
        assert_eq!(check(b"1,,z").expect_err("test value"), "missing:id");
        assert_eq!(check(b"1,a").expect_err("test value"), "malformed_csv");
        assert_eq!(
            check(b"1,a,b\n2,c,d").expect_err("test value"),
            "malformed_csv"
        );
    }

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
