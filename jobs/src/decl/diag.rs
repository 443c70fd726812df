//! Diagnostics that point at a place in a pipeline file.
//!
//! Every error about a model file says which file, which line and column,
//! and what is wrong, so an editor or CI log can jump straight to it. The
//! loader collects them all instead of stopping at the first, so one run
//! shows every problem of a pipeline.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a source file (1-based line and column; 0 when unknown).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub fn new(file: impl Into<PathBuf>, line: u64, column: u64) -> Self {
        Self {
            file: file.into(),
            line,
            column,
        }
    }

    /// The start of a file, for problems that belong to the file as a whole.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Self::new(file, 1, 1)
    }

    /// The position of a YAML node parsed by serde-saphyr.
    pub fn at(file: &Path, loc: &serde_saphyr::Location) -> Self {
        Self::new(file, loc.line(), loc.column())
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.file.display()),
            (l, 0) => write!(f, "{}:{l}", self.file.display()),
            (l, c) => write!(f, "{}:{l}:{c}", self.file.display()),
        }
    }
}

/// One problem found in a pipeline, at a place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// All the problems of one load, in file order. Displayed one per line.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, pos: Pos, message: impl Into<String>) {
        self.0.push(Diagnostic::new(pos, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// `Ok(value)` when nothing was found, else the diagnostics sorted by place.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            self.0.sort_by(|a, b| {
                (&a.pos.file, a.pos.line, a.pos.column).cmp(&(
                    &b.pos.file,
                    b.pos.line,
                    b.pos.column,
                ))
            });
            Err(self)
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// "did you mean ...?" for a misspelt name, when one known name is close.
pub fn did_you_mean<'a>(wrong: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let best = known
        .into_iter()
        .map(|k| (edit_distance(wrong, k), k))
        // Close enough to be a typo, and not a rewrite of a short word.
        .filter(|(d, k)| *d <= 1.max(k.chars().count() / 3) && *d < k.chars().count())
        .min();
    match best {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("partiton_by", ["partition_by", "tags"]),
            " (did you mean `partition_by`?)"
        );
        assert_eq!(did_you_mean("zzz", ["partition_by", "tags"]), "");
    }

    #[test]
    fn positions_print_as_file_line_column() {
        assert_eq!(Pos::new("a/b.yml", 3, 7).to_string(), "a/b.yml:3:7");
        assert_eq!(Pos::new("a/b.yml", 3, 0).to_string(), "a/b.yml:3");
    }
}
