//! A data test's options as written (`{to: m, field: c}`), before its kind
//! reads them: any YAML value, with its place, and plain scalars kept as
//! the text the user wrote.
//!
//! Test options are read by the kind (each kind in its own file under
//! `datatest/kinds/`), so the YAML layer cannot know their types. A YAML
//! reader asked for "anything" types a plain scalar by its look: `01`
//! becomes the number 1 and `yes` true, which would change the values of
//! an `accepted_values` list. So a scalar the reader typed keeps its text
//! from the source instead ([`Opt::text`]), which is what a string-typed
//! field of a derived struct would have read.

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

type S<T> = serde_saphyr::Spanned<T>;

/// One option value of a data test.
#[derive(Debug)]
pub enum Opt {
    /// A string, as the reader gave it (quoted or plain).
    Text(String),
    /// A plain scalar the reader typed (number, boolean); its text is read
    /// from the source by position, this is the fallback.
    Typed(String),
    Null,
    List(Vec<S<Opt>>),
    Map(BTreeMap<String, S<Opt>>),
}

/// The options of one test, by key.
pub type Options = BTreeMap<String, S<Opt>>;

impl Opt {
    /// The scalar's text as written, `None` for a list, map or null.
    pub fn text(node: &S<Opt>, source: &str) -> Option<String> {
        match &node.value {
            Opt::Text(s) => Some(s.clone()),
            Opt::Typed(fallback) => {
                let span = node.referenced.span();
                let written = span.byte_offset().zip(span.byte_len()).and_then(|(o, l)| {
                    let (o, l) = (usize::try_from(o).ok()?, usize::try_from(l).ok()?);
                    source.get(o..o.checked_add(l)?)
                });
                // An alias (`*a`) points at itself, not at a scalar's text.
                Some(match written {
                    Some(w) if !w.is_empty() && !w.starts_with('*') => w.trim().to_string(),
                    _ => fallback.clone(),
                })
            }
            Opt::Null | Opt::List(_) | Opt::Map(_) => None,
        }
    }

    /// What the value is, for a message about a wrong one.
    pub fn shape(&self) -> &'static str {
        match self {
            Opt::Text(_) | Opt::Typed(_) => "a scalar",
            Opt::Null => "empty",
            Opt::List(_) => "a list",
            Opt::Map(_) => "a map",
        }
    }
}

impl<'de> Deserialize<'de> for Opt {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OptVisitor)
    }
}

struct OptVisitor;

impl<'de> Visitor<'de> for OptVisitor {
    type Value = Opt;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value, a list or a map")
    }
    fn visit_str<E>(self, v: &str) -> Result<Opt, E> {
        Ok(Opt::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Opt, E> {
        Ok(Opt::Text(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Opt, E> {
        Ok(Opt::Typed(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Opt, E> {
        Ok(Opt::Typed(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Opt, E> {
        Ok(Opt::Typed(v.to_string()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Opt, E> {
        Ok(Opt::Typed(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Opt, E> {
        Ok(Opt::Typed(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Opt, E> {
        Ok(Opt::Typed(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Opt, E> {
        Ok(Opt::Null)
    }
    fn visit_none<E>(self) -> Result<Opt, E> {
        Ok(Opt::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Opt, D::Error> {
        d.deserialize_any(OptVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Opt, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Opt::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Opt, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, S<Opt>>()? {
            entries.insert(k, v);
        }
        Ok(Opt::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_keep_their_text_and_strings_their_value() {
        let src = "values: [01, 1.50, yes, 0x1F, 'x', \"y z\", ~]\nmin: 5\neq: {model: m, where: \"a > 1\"}\n";
        let opts: Options = serde_saphyr::from_str(src).expect("parses");
        let Opt::List(values) = &opts["values"].value else {
            panic!("a list")
        };
        let texts: Vec<Option<String>> = values.iter().map(|v| Opt::text(v, src)).collect();
        let want = ["01", "1.50", "yes", "0x1F", "x", "y z"];
        for (got, want) in texts.iter().zip(want) {
            assert_eq!(got.as_deref(), Some(want));
        }
        assert_eq!(texts[6], None);
        assert_eq!(Opt::text(&opts["min"], src).as_deref(), Some("5"));
        let Opt::Map(eq) = &opts["eq"].value else {
            panic!("a map")
        };
        assert_eq!(Opt::text(&eq["where"], src).as_deref(), Some("a > 1"));
        assert_eq!(eq["model"].referenced.line(), 3);
    }
}
