//! Checks every part of a model file shares: that a key the kind requires
//! is there, and that a column the file names is one it declares.

use super::raw::S;
use super::{Column, Diagnostics, Pos, did_you_mean};
use std::path::Path;

/// Reports a missing key the model's kind requires. At the file, not at a
/// line: there is no line to point at for a key that is not written.
pub(super) fn need(diags: &mut Diagnostics, path: &Path, kind: &str, key: &str) {
    diags.push(Pos::file(path), format!("a `{kind}` model needs `{key}:`"));
}

/// The columns a model declares, to check the names its keys, rules and
/// blocks use against.
pub(super) struct Declared<'a> {
    path: &'a Path,
    pub(super) model: &'a str,
    pub(super) columns: &'a [Column],
    pub(super) names: Vec<&'a str>,
}

impl<'a> Declared<'a> {
    pub(super) fn new(path: &'a Path, model: &'a str, columns: &'a [Column]) -> Self {
        Declared {
            path,
            model,
            columns,
            names: columns.iter().map(|c| c.name.as_str()).collect(),
        }
    }

    /// Reports `col` (named by `what`) at its place if the model does not
    /// declare it, with the nearest declared name as a suggestion.
    pub(super) fn check(&self, diags: &mut Diagnostics, col: &S<String>, what: &str) {
        if !self.names.contains(&col.value.as_str()) {
            diags.push(
                Pos::at(self.path, &col.referenced),
                format!(
                    "{what} names column `{}`, which `{}` does not declare{}",
                    col.value,
                    self.model,
                    did_you_mean(&col.value, self.names.iter().copied())
                ),
            );
        }
    }
}
