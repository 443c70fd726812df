//! A JSON Schema (2020-12) checker for the keywords our documented schemas
//! use, so that tests can hold reports to them. Any other keyword is an
//! error, not ignored: a schema cannot grow beyond what is checked here.
//!
//! (The `jsonschema` and `boon` crates turn on features of crates shared
//! with polars and arrow, which rebuilds most of the tree; this is ~100
//! lines.)

use serde_json::Value;

const KNOWN: [&str; 16] = [
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "required",
    "additionalProperties",
    "properties",
    "items",
    "enum",
    "const",
    "minimum",
    "format",
    "default",
];

/// Every way `doc` breaks `schema`, as `path: problem` lines.
pub fn errors(schema: &Value, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, schema, doc, "$", &mut out);
    out
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    for k in s.keys() {
        if !KNOWN.contains(&k.as_str()) {
            out.push(format!(
                "{path}: schema keyword `{k}` is not supported by this checker"
            ));
        }
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        match r
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs")?.get(name))
        {
            Some(target) => check(root, target, v, path, out),
            None => out.push(format!("{path}: unresolvable $ref {r}")),
        }
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| is_type(v, t)) {
            out.push(format!("{path}: {v} is not of type {types:?}"));
        }
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        out.push(format!("{path}: {v} is not {c}"));
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(v)
    {
        out.push(format!("{path}: {v} is not one of {allowed:?}"));
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        out.push(format!("{path}: {n} is below the minimum {min}"));
    }
    if s.get("format").and_then(Value::as_str) == Some("date-time")
        && let Some(text) = v.as_str()
        && chrono::DateTime::parse_from_rfc3339(text).is_err()
    {
        out.push(format!("{path}: `{text}` is not an RFC 3339 date-time"));
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for req in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(req) {
                out.push(format!("{path}: missing required `{req}`"));
            }
        }
        for (k, child) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(root, sub, child, &format!("{path}.{k}"), out),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{path}: `{k}` is not allowed"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, child) in arr.iter().enumerate() {
            check(root, items, child, &format!("{path}[{i}]"), out);
        }
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        _ => false,
    }
}

#[test]
fn the_checker_catches_what_it_claims_to() {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["a", "b"],
        "additionalProperties": false,
        "properties": {
            "a": {"$ref": "#/$defs/small"},
            "b": {"type": ["string", "null"], "format": "date-time"},
            "c": {"type": "array", "items": {"enum": ["x", "y"]}}
        },
        "$defs": {"small": {"type": "integer", "minimum": 0}}
    });
    let good = serde_json::json!({"a": 1, "b": "2026-11-24T00:00:00Z", "c": ["x"]});
    assert!(
        errors(&schema, &good).is_empty(),
        "{:?}",
        errors(&schema, &good)
    );
    let bad = serde_json::json!({"a": -1, "b": "yesterday", "c": ["z"], "d": 1});
    let e = errors(&schema, &bad);
    assert_eq!(e.len(), 4, "{e:#?}");
    let missing = serde_json::json!({"a": 1.5});
    assert_eq!(errors(&schema, &missing).len(), 2);
    let unknown = serde_json::json!({"pattern": "x"});
    assert_eq!(errors(&unknown, &Value::Null).len(), 1);
}
