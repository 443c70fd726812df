//! Keys and types: every key of a file or an environment override must be
//! a key of the defaults with the same type; environment values are read
//! as the key's type.

use super::origin::{ConfigError, Origin};
use std::collections::BTreeMap;

pub(super) fn env_value(raw: &str) -> toml::Value {
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return toml::Value::Float(f);
    }
    toml::Value::String(raw.to_string())
}

pub(super) fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                insert_path(t, rest, value);
            }
        }
    }
}

pub(super) fn lookup<'a>(value: &'a toml::Value, path: &[String]) -> Option<&'a toml::Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

pub(super) fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Every key of `table` must exist in `defaults` with the same type.
pub(super) fn check_keys(
    table: &toml::Table,
    defaults: &toml::Value,
    prefix: &str,
    origin: &Origin,
    origins: &mut BTreeMap<String, Origin>,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        // `[vars]` is the user's own: any keys, any values.
        if prefix.is_empty() && k == "vars" {
            let toml::Value::Table(vars) = v else {
                return Err(ConfigError::WrongType {
                    origin: origin.clone(),
                    key,
                    expected: "a table",
                    found: format!("{} ({v})", type_name(v)),
                });
            };
            for name in vars.keys() {
                origins.insert(format!("vars.{name}"), origin.clone());
            }
            continue;
        }
        let Some(expected) = defaults.get(k) else {
            let known: Vec<&str> = defaults
                .as_table()
                .map(|t| t.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let secretish = ["password", "secret", "token", "access_key", "key_id"]
                .iter()
                .any(|s| k.contains(s));
            let hint = if secretish {
                " (secrets are read only from the environment: DATABASE_URL or PGPASSWORD, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".to_string()
            } else {
                let dym = jobs::decl::did_you_mean(k, known.iter().copied());
                if dym.is_empty() {
                    format!(
                        " (known keys{}: {})",
                        if prefix.is_empty() {
                            String::new()
                        } else {
                            format!(" of [{prefix}]")
                        },
                        known.join(", ")
                    )
                } else {
                    dym
                }
            };
            return Err(ConfigError::UnknownKey {
                origin: origin.clone(),
                key,
                hint,
            });
        };
        match (v, expected) {
            (toml::Value::Table(sub), toml::Value::Table(_)) => {
                check_keys(sub, expected, &key, origin, origins)?;
            }
            (found, expected)
                if std::mem::discriminant(found) != std::mem::discriminant(expected) =>
            {
                return Err(ConfigError::WrongType {
                    origin: origin.clone(),
                    key,
                    expected: type_name(expected),
                    found: format!("{} ({found})", type_name(found)),
                });
            }
            _ => {
                origins.insert(key, origin.clone());
            }
        }
    }
    Ok(())
}
