//! Where a configuration value came from, and the errors that name the
//! key and that origin.

use std::fmt;
use std::path::PathBuf;

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    File(PathBuf),
    Env(String),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(flag) => write!(f, "{flag}"),
        }
    }
}

impl Origin {
    /// Where `key` (dotted: `ingest.file_settle`) was set: for a file, its
    /// path and the line of the key when one line sets it (`path:12`).
    pub fn place(&self, key: &str) -> String {
        match self {
            Origin::File(p) => match std::fs::read_to_string(p)
                .ok()
                .and_then(|text| line_of(&text, key))
            {
                Some(line) => format!("{}:{line}", p.display()),
                None => p.display().to_string(),
            },
            other => other.to_string(),
        }
    }
}

/// The line (from 1) that sets `key` in TOML `text`: `leaf = ...` under
/// the `[section]` the key's other parts name, or `section.leaf = ...`
/// above any section. `None` for forms it does not follow (inline tables).
fn line_of(text: &str, key: &str) -> Option<usize> {
    let (section, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let sets = |line: &str, name: &str| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            continue;
        }
        if (current == section && sets(line, leaf)) || (current.is_empty() && sets(line, key)) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn a_key_is_found_at_its_line_under_its_section() {
        let text = "pipeline = \"p\"\n\n[ingest]\nbatch_rows = 5\nfile_settle = \"2 parsecs\"\n[lake]\nuri = \"x\"\nlake.other = 1\n";
        assert_eq!(line_of(text, "pipeline"), Some(1));
        assert_eq!(line_of(text, "ingest.file_settle"), Some(5));
        assert_eq!(line_of(text, "lake.uri"), Some(7));
        // Not `batch_rows_x`, not in another section.
        assert_eq!(line_of(text, "ingest.batch"), None);
        assert_eq!(line_of(text, "lake.batch_rows"), None);
        // A dotted key above any section.
        assert_eq!(line_of("warehouse.url = \"u\"\n", "warehouse.url"), Some(1));
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: malformed TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}: unknown key `{key}`{hint}", .origin.place(.key))]
    UnknownKey {
        origin: Origin,
        key: String,
        hint: String,
    },
    #[error("{}: key `{key}` must be {expected}, found {found}", .origin.place(.key))]
    WrongType {
        origin: Origin,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("{}: key `{key}`: {message}", .origin.place(.key))]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
}
