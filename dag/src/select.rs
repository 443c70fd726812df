//! Selectors, as dbt users know them: `name`, `+name` (with everything it
//! reads, transitively), `name+` (with everything that reads it), a layer
//! (`bronze`, `silver`, `gold`), `tag:x`, and unions of terms separated by
//! spaces or commas. `+` works on layers and tags too (`+gold`).

use jobs::decl::Layer;
use std::fmt;

/// What a term names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Atom {
    Model(String),
    Layer(Layer),
    Tag(String),
}

/// One term: what it names, and whether everything upstream (`+x`) and
/// downstream (`x+`) of it comes along.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub atom: Atom,
    pub upstream: bool,
    pub downstream: bool,
}

/// A parsed selector: a union of terms. An empty selector selects all.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector {
    terms: Vec<Term>,
    text: String,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            f.write_str("(all)")
        } else {
            f.write_str(&self.text)
        }
    }
}

impl Selector {
    /// Parses `a +b c+ tag:x,silver`. Syntax only; names are checked by
    /// [`crate::pipeline::Pipeline::select`].
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        for raw in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
        {
            let upstream = raw.starts_with('+');
            let downstream = raw.len() > 1 && raw.ends_with('+');
            let core = raw.trim_start_matches('+').trim_end_matches('+');
            if core.is_empty() || core.contains('+') {
                return Err(format!(
                    "`{raw}` is not a selector term (forms: name, +name, name+, bronze|silver|gold, tag:x)"
                ));
            }
            let atom = if let Some(tag) = core.strip_prefix("tag:") {
                if tag.is_empty() {
                    return Err(format!(
                        "`{raw}`: a tag selector needs a tag name, as in tag:telemetry"
                    ));
                }
                Atom::Tag(tag.to_string())
            } else if let Some(layer) = Layer::parse(core) {
                Atom::Layer(layer)
            } else if core.contains(':') {
                return Err(format!(
                    "`{raw}`: unknown selector method (only tag: is supported)"
                ));
            } else {
                Atom::Model(core.to_string())
            };
            terms.push(Term {
                atom,
                upstream,
                downstream,
            });
        }
        Ok(Selector {
            terms,
            text: text.trim().to_string(),
        })
    }

    /// Parses several command-line words as one union.
    pub fn parse_args(words: &[String]) -> Result<Selector, String> {
        Selector::parse(&words.join(" "))
    }

    /// The same selection with everything downstream of each term (`x` as
    /// `x+`): what a change to the selected models makes stale.
    pub fn with_downstream(mut self) -> Selector {
        for t in &mut self.terms {
            t.downstream = true;
        }
        self
    }

    pub fn is_all(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms of the union (none: everything).
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        let s = Selector::parse("a +b c+ +d+ tag:x,silver").expect("parses");
        assert_eq!(s.terms.len(), 6);
        assert_eq!(
            s.terms[1],
            Term {
                atom: Atom::Model("b".into()),
                upstream: true,
                downstream: false
            }
        );
        assert_eq!(
            s.terms[2],
            Term {
                atom: Atom::Model("c".into()),
                upstream: false,
                downstream: true
            }
        );
        assert!(s.terms[3].upstream && s.terms[3].downstream);
        assert_eq!(s.terms[4].atom, Atom::Tag("x".into()));
        assert_eq!(s.terms[5].atom, Atom::Layer(Layer::Silver));
    }

    #[test]
    fn rejects_malformed_terms() {
        assert!(Selector::parse("+").is_err());
        assert!(Selector::parse("a+b").is_err());
        assert!(Selector::parse("tag:").is_err());
        assert!(
            Selector::parse("path:x")
                .unwrap_err()
                .contains("unknown selector method")
        );
    }

    #[test]
    fn empty_is_all() {
        assert!(Selector::parse("  ").expect("parses").is_all());
    }
}
