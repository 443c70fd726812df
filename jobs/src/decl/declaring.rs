//! What a data test kind's parser is handed: the test's place (model,
//! column it sits under, file and line), its options, and the means to
//! report a problem at the right line or to name another model.
//!
//! A kind reads its options through [`Declaring`] (`text`, `texts`,
//! `count`, `fields`) and says what is wrong with `fail`/`fail_at`; the
//! loader has already checked that every option key is one the kind
//! declares and read the keys every test shares (`severity`, `where`,
//! `warn_if`, `error_if`).

use super::checks::Declared;
use super::draft::{Reference, Refs};
use super::options::{Opt, Options};
use super::raw::S;
use super::{Diagnostics, Pos, did_you_mean};
use std::collections::BTreeMap;
use std::path::Path;

/// One declared test being read by its kind.
pub struct Declaring<'a> {
    pub(super) path: &'a Path,
    pub(super) source: &'a str,
    pub(super) declared: &'a Declared<'a>,
    pub(super) column: Option<&'a str>,
    pub(super) kind: &'a str,
    pub(super) pos: Pos,
    pub(super) options: &'a Options,
    pub(super) diags: &'a mut Diagnostics,
    pub(super) refs: &'a mut Refs,
}

impl Declaring<'_> {
    /// The model the test is declared on.
    pub fn model(&self) -> &str {
        self.declared.model
    }

    /// The column a column-level test is declared under.
    pub fn column_under(&self) -> Option<&str> {
        self.column
    }

    /// Whether the test gives option `key`.
    pub fn has(&self, key: &str) -> bool {
        self.options.contains_key(key)
    }

    /// Where option `key` is written (the test's place when it is not).
    pub fn pos(&self, key: &str) -> Pos {
        self.options
            .get(key)
            .map_or_else(|| self.pos.clone(), |o| self.at(o))
    }

    /// A problem of the test as a whole, reported at the test.
    pub fn fail(&mut self, msg: impl Into<String>) {
        self.diags.push(self.pos.clone(), msg.into());
    }

    /// A problem of option `key`, reported where it is written.
    pub fn fail_at(&mut self, key: &str, msg: impl Into<String>) {
        let pos = self.pos(key);
        self.diags.push(pos, msg.into());
    }

    /// Option `key` as text (a string or any plain scalar as written).
    pub fn text(&mut self, key: &str) -> Option<String> {
        let node = self.options.get(key)?;
        let text = Opt::text(node, self.source);
        if text.is_none() {
            self.wrong(key, node, "a value");
        }
        text
    }

    /// Option `key` as a list of values, each with its place; a single
    /// value is not a list.
    pub fn texts(&mut self, key: &str) -> Option<Vec<(String, Pos)>> {
        let node = self.options.get(key)?;
        let Opt::List(items) = &node.value else {
            self.wrong(key, node, "a list such as `[a, b]`");
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            match Opt::text(item, self.source) {
                Some(t) => out.push((t, self.at(item))),
                None => {
                    let msg = format!(
                        "`{key}:` of {} test lists values; this item is {}",
                        the_kind(self.kind),
                        item.value.shape()
                    );
                    self.diags.push(self.at(item), msg);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Option `key` as a whole number at least 0.
    pub fn count(&mut self, key: &str) -> Option<u64> {
        let node = self.options.get(key)?;
        let parsed = Opt::text(node, self.source).and_then(|t| t.parse::<u64>().ok());
        if parsed.is_none() {
            self.wrong(key, node, "a whole number, 0 or more");
        }
        parsed
    }

    /// Option `key` as a map of values (`{model: m, where: "..."}`), each
    /// with its place; a key not in `known` is reported.
    pub fn fields(&mut self, key: &str, known: &[&str]) -> Option<BTreeMap<String, (String, Pos)>> {
        let node = self.options.get(key)?;
        let Opt::Map(entries) = &node.value else {
            self.wrong(key, node, "a map");
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, v) in entries {
            if !known.contains(&k.as_str()) {
                let msg = format!(
                    "`{key}:` has no key `{k}`{}: it takes {}",
                    did_you_mean(k, known.iter().copied()),
                    known.join(", ")
                );
                self.diags.push(self.at(v), msg);
                ok = false;
                continue;
            }
            match Opt::text(v, self.source) {
                Some(t) => {
                    out.insert(k.clone(), (t, self.at(v)));
                }
                None => {
                    let msg = format!("`{key}.{k}:` must be a value, not {}", v.value.shape());
                    self.diags.push(self.at(v), msg);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// The column a single-column test is about: the column it is
    /// declared under, or `column:` at model level (checked to exist).
    pub fn subject(&mut self) -> Option<String> {
        match (self.column, self.has("column")) {
            (Some(c), false) => Some(c.to_string()),
            (None, true) => {
                let pos = self.pos("column");
                let c = self.text("column")?;
                self.check_column(&c, pos);
                Some(c)
            }
            (Some(_), true) => {
                self.fail_at(
                    "column",
                    "a column-level test takes its column from where it is declared; drop `column:`",
                );
                None
            }
            (None, false) => {
                let msg = format!("a model-level `{}` test needs `column:`", self.kind);
                self.fail(msg);
                None
            }
        }
    }

    /// Reports column `c`, named at `pos`, if the model does not declare it.
    pub fn check_column(&mut self, c: &str, pos: Pos) {
        let names = &self.declared.names;
        if !names.contains(&c) {
            let msg = format!(
                "test `{}` names column `{c}`, which `{}` does not declare{}",
                self.kind,
                self.declared.model,
                did_you_mean(c, names.iter().copied())
            );
            self.diags.push(pos, msg);
        }
    }

    /// The test reads another model (named at `pos`): the loader checks it
    /// exists and runs the test after it.
    pub fn mention(&mut self, model: &str, pos: Pos) {
        self.refs.mentions.push(Reference {
            model: model.to_string(),
            pos,
        });
    }

    /// The test names a column of another model: the loader checks it.
    pub fn foreign_column(&mut self, model: &str, column: &str, pos: Pos) {
        self.refs
            .foreign_columns
            .push((model.to_string(), column.to_string(), pos));
    }

    fn at(&self, node: &S<Opt>) -> Pos {
        Pos::at(self.path, &node.referenced)
    }

    fn wrong(&mut self, key: &str, node: &S<Opt>, wanted: &str) {
        let was = match Opt::text(node, self.source) {
            Some(t) => format!("`{t}`"),
            None => node.value.shape().to_string(),
        };
        let msg = format!(
            "`{key}:` of {} test must be {wanted}, not {was}",
            the_kind(self.kind)
        );
        self.diags.push(self.at(node), msg);
    }
}

/// "the `unique`": a test's kind in a message (no article to get wrong).
pub(super) fn the_kind(kind: &str) -> String {
    format!("the `{kind}`")
}
