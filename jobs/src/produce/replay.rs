//! JSONL replay: one message per line,
//! `{"topic": .., "partition"?: int, "key": str|null, "value": str|null}`,
//! with `key_b64` / `value_b64` (base64) instead for bytes that are not
//! UTF-8. `value: null` is a tombstone. Errors name the file and line.

use super::Record;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct ReplayError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Parses one line (1-based `line` for messages).
pub fn parse_line(path: &Path, line: usize, text: &str) -> Result<Record, ReplayError> {
    let err = |message: String| ReplayError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let obj: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| err(format!("not a JSON object: {e}")))?;
    const KNOWN: [&str; 6] = ["topic", "partition", "key", "key_b64", "value", "value_b64"];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(err(format!(
            "unknown field `{k}`{} (fields: {})",
            crate::decl::did_you_mean(k, KNOWN.iter().copied()),
            KNOWN.join(", ")
        )));
    }
    let topic = match obj.get("topic") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(other) => {
            return Err(err(format!(
                "`topic` must be a non-empty string, found {other}"
            )));
        }
        None => return Err(err("`topic` is required".into())),
    };
    let partition = match obj.get("partition") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64().and_then(|p| i32::try_from(p).ok()) {
            Some(p) if p >= 0 => Some(p),
            _ => {
                return Err(err(format!(
                    "`partition` must be a partition number, found {n}"
                )));
            }
        },
        Some(other) => {
            return Err(err(format!(
                "`partition` must be an integer, found {other}"
            )));
        }
    };
    let bytes = |name: &str| -> Result<Option<Option<Vec<u8>>>, ReplayError> {
        let b64 = format!("{name}_b64");
        match (obj.get(name), obj.get(&b64)) {
            (Some(_), Some(_)) => Err(err(format!("give `{name}` or `{b64}`, not both"))),
            (Some(Value::Null), None) | (None, Some(Value::Null)) => Ok(Some(None)),
            (Some(Value::String(s)), None) => Ok(Some(Some(s.as_bytes().to_vec()))),
            (None, Some(Value::String(s))) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(|b| Some(Some(b)))
                .map_err(|e| err(format!("`{b64}` is not base64: {e}"))),
            (Some(other), None) => Err(err(format!(
                "`{name}` must be a string (the raw message text) or null, found {other}; use `{b64}` for bytes"
            ))),
            (None, Some(other)) => Err(err(format!(
                "`{b64}` must be a base64 string or null, found {other}"
            ))),
            (None, None) => Ok(None),
        }
    };
    let key = bytes("key")?.flatten();
    let value = bytes("value")?.ok_or_else(|| {
        err("`value` (or `value_b64`) is required; null means a tombstone".into())
    })?;
    Ok(Record {
        topic,
        partition,
        key,
        value,
    })
}

/// The records of a JSONL file, lazily; blank lines are skipped.
pub fn read_file(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Record, ReplayError>>, ReplayError> {
    let file = std::fs::File::open(path).map_err(|e| ReplayError {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot open: {e}"),
    })?;
    let path = path.to_path_buf();
    Ok(std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .filter_map(move |(i, line)| match line {
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(parse_line(&path, i + 1, &l)),
            Err(e) => Some(Err(ReplayError {
                path: path.clone(),
                line: i + 1,
                message: format!("cannot read: {e}"),
            })),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Record, ReplayError> {
        parse_line(Path::new("f.jsonl"), 3, text)
    }

    #[test]
    fn raw_text_bytes_and_tombstones() {
        let r = p(r#"{"topic":"t","partition":2,"key":"V1","value":"{not json"}"#).unwrap();
        assert_eq!(r.partition, Some(2));
        assert_eq!(r.key.as_deref(), Some(&b"V1"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"{not json"[..]));
        let r = p(r#"{"topic":"t","key":null,"value":null}"#).unwrap();
        assert_eq!((r.key, r.value), (None, None));
        let r = p(r#"{"topic":"t","key_b64":"/wA=","value_b64":"gA=="}"#).unwrap();
        assert_eq!(r.key.as_deref(), Some(&[0xff, 0x00][..]));
        assert_eq!(r.value.as_deref(), Some(&[0x80][..]));
        let r = p(r#"{"topic":"t","value":""}"#).unwrap();
        assert_eq!(r.value.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = p(r#"{"topic":"t","vlue":"x"}"#).unwrap_err().to_string();
        assert!(e.starts_with("f.jsonl:3: unknown field `vlue`"), "{e}");
        assert!(e.contains("did you mean `value`"), "{e}");
        let e = p(r#"{"topic":"t"}"#).unwrap_err().to_string();
        assert!(e.contains("`value` (or `value_b64`) is required"), "{e}");
        let e = p(r#"{"topic":"t","value":{"a":1}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a string (the raw message text)"), "{e}");
        let e = p(r#"{"topic":"t","value":"x","partition":-1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("partition"), "{e}");
        assert!(
            p("not json")
                .unwrap_err()
                .to_string()
                .contains("not a JSON object")
        );
    }
}
