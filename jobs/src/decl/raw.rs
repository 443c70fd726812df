//! A model file as written: flat `Raw*` structs read straight from the
//! YAML. `deny_unknown_fields` everywhere so a misspelt key is an error, and
//! every value the checks may point at is `Spanned` so its diagnostic
//! carries the value's line and column.

use super::options::Options;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeMap;

pub(super) type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) kind: Option<S<String>>,
    pub(super) description: Option<S<String>>,
    pub(super) tags: Option<S<Vec<S<String>>>>,
    pub(super) schedule: Option<S<String>>,
    pub(super) materialized: Option<S<String>>,
    pub(super) unique_key: Option<S<Vec<S<String>>>>,
    pub(super) partition_by: Option<S<Vec<S<String>>>>,
    pub(super) columns: Option<S<Vec<RawColumn>>>,
    pub(super) tests: Option<S<Vec<S<RawTest>>>>,
    pub(super) warehouse: Option<S<RawWarehouse>>,
    pub(super) on_schema_change: Option<S<String>>,
    pub(super) topic: Option<S<String>>,
    pub(super) input: Option<S<String>>,
    pub(super) quarantine: Option<S<String>>,
    pub(super) fields: Option<S<Vec<RawField>>>,
    pub(super) dedupe: Option<S<RawDedupe>>,
    pub(super) derive: Option<S<Vec<RawDerive>>>,
    pub(super) file: Option<S<String>>,
    pub(super) path: Option<S<String>>,
    pub(super) format: Option<S<String>>,
    pub(super) asof: Option<S<Vec<RawAsof>>>,
    pub(super) scope: Option<S<BTreeMap<String, BTreeMap<String, String>>>>,
    pub(super) scope_presence: Option<S<Vec<S<String>>>>,
    pub(super) accumulate: Option<S<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColumn {
    pub(super) name: S<String>,
    #[serde(rename = "type")]
    pub(super) ty: S<String>,
    pub(super) description: Option<String>,
    pub(super) nullable: Option<bool>,
    pub(super) tests: Option<Vec<S<RawTest>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawField {
    pub(super) name: S<String>,
    #[serde(rename = "type")]
    pub(super) ty: S<String>,
    pub(super) required: Option<bool>,
    pub(super) range: Option<S<String>>,
    pub(super) max_decimals: Option<u32>,
    pub(super) max_ahead_of_ingest: Option<S<String>>,
    pub(super) path: Option<S<String>>,
    #[serde(rename = "as")]
    pub(super) column_type: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDedupe {
    pub(super) key: Vec<S<String>>,
    pub(super) order: Option<Vec<S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDerive {
    pub(super) name: S<String>,
    pub(super) sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAsof {
    pub(super) name: S<String>,
    pub(super) left: S<String>,
    pub(super) right: S<String>,
    pub(super) left_on: S<String>,
    pub(super) right_on: S<String>,
    pub(super) by: Vec<S<String>>,
    pub(super) tie_break: Option<S<String>>,
    pub(super) select: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawWarehouse {
    Flag(bool),
    Target {
        #[serde(default)]
        table: Option<String>,
    },
}

/// A test entry: `not_null` or `{relationships: {to: m, field: c}}`.
pub(super) struct RawTest {
    pub(super) kind: String,
    pub(super) args: RawTestArgs,
}

/// A test's options by key (its kind reads them; `severity`, `where`,
/// `warn_if` and `error_if` are every test's).
pub(super) type RawTestArgs = Options;

impl<'de> Deserialize<'de> for RawTest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawTest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a test name (e.g. `not_null`) or a one-key map such as `relationships: {to: m, field: c}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTest, E> {
                Ok(RawTest {
                    kind: v.to_string(),
                    args: RawTestArgs::default(),
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawTest, A::Error> {
                let Some((kind, args)) = map.next_entry::<String, Option<RawTestArgs>>()? else {
                    return Err(serde::de::Error::custom(
                        "a test map needs one key: the test kind",
                    ));
                };
                if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "a test map has exactly one key, the test kind; put `{kind}`'s options under it"
                    )));
                }
                Ok(RawTest {
                    kind,
                    args: args.unwrap_or_default(),
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl RawModel {
    /// Every top-level key but `kind`, with where it is written if it is:
    /// a key the model's kind does not accept is reported at its place.
    pub(super) fn present_keys(&self) -> [(&'static str, Option<&Location>); 23] {
        [
            (
                "description",
                self.description.as_ref().map(|s| &s.referenced),
            ),
            ("tags", self.tags.as_ref().map(|s| &s.referenced)),
            ("schedule", self.schedule.as_ref().map(|s| &s.referenced)),
            (
                "materialized",
                self.materialized.as_ref().map(|s| &s.referenced),
            ),
            (
                "unique_key",
                self.unique_key.as_ref().map(|s| &s.referenced),
            ),
            (
                "partition_by",
                self.partition_by.as_ref().map(|s| &s.referenced),
            ),
            ("columns", self.columns.as_ref().map(|s| &s.referenced)),
            ("tests", self.tests.as_ref().map(|s| &s.referenced)),
            ("warehouse", self.warehouse.as_ref().map(|s| &s.referenced)),
            (
                "on_schema_change",
                self.on_schema_change.as_ref().map(|s| &s.referenced),
            ),
            ("topic", self.topic.as_ref().map(|s| &s.referenced)),
            ("input", self.input.as_ref().map(|s| &s.referenced)),
            (
                "quarantine",
                self.quarantine.as_ref().map(|s| &s.referenced),
            ),
            ("fields", self.fields.as_ref().map(|s| &s.referenced)),
            ("dedupe", self.dedupe.as_ref().map(|s| &s.referenced)),
            ("derive", self.derive.as_ref().map(|s| &s.referenced)),
            ("file", self.file.as_ref().map(|s| &s.referenced)),
            ("path", self.path.as_ref().map(|s| &s.referenced)),
            ("format", self.format.as_ref().map(|s| &s.referenced)),
            ("asof", self.asof.as_ref().map(|s| &s.referenced)),
            ("scope", self.scope.as_ref().map(|s| &s.referenced)),
            (
                "scope_presence",
                self.scope_presence.as_ref().map(|s| &s.referenced),
            ),
            (
                "accumulate",
                self.accumulate.as_ref().map(|s| &s.referenced),
            ),
        ]
    }
}

/// The values of an optional list of names (empty when the key is absent).
pub(super) fn names_of(list: &Option<S<Vec<S<String>>>>) -> Vec<String> {
    list.as_ref()
        .map(|l| l.value.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default()
}
