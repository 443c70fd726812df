//! One field's rules over its value, in the order that picks the
//! quarantine reason.

use super::cell::{Cell, Reason};
use super::number::{Decimal, ExactInterval, is_number_token};
use super::timestamp::parse_rfc3339;
use crate::decl::{ColumnType, FieldKind, FieldRule};
use crate::model::json::{Value, parse_object};

/// The value at the rule's nested `path` inside `value` (the top member):
/// `None` when a member on the way is missing or null; a member on the way
/// that is not an object is a type error of the rule's field.
pub(super) fn nested<'a>(value: &Value<'a>, rule: &FieldRule) -> Result<Option<Value<'a>>, Reason> {
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

/// The cell `value` makes under `rule`, or the first failing rule's reason.
pub(super) fn check_field<'a>(
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
                _ => dec
                    .to_f64_fast()
                    .or_else(|| token.parse::<f64>().ok())
                    .filter(|f| f.is_finite())
                    .map(Cell::Float),
            }
            .ok_or_else(|| Reason::Type(name()))
        }
    }
}
