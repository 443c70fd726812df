//! The data test kinds, one file each: its options, how they are read
//! from YAML, what it checks and how it reads its rows. [`KINDS`] lists
//! them; the loader finds a test's kind there by name and the evaluation
//! runs its check.
//!
//! - [`not_null`], [`accepted_values`], [`expression`]: one SQL condition a
//!   failing row satisfies, over the rows since the test's base.
//! - [`unique`]: the new keys against themselves and the rest of the table.
//! - [`relationships`]: the new values against another model's field.
//! - [`row_count`], [`freshness`]: the whole table, from the statistics
//!   when they answer.
//! - [`common`]: what several kinds share: the scope of files, chunked
//!   reading, the `where` filter, the sample of failing rows.
//!
//! A new kind is a new file here with a `KIND` (name, option keys, parser,
//! check, see [`kind`]) and its line in [`KINDS`], and its section in
//! docs/models.md.

pub mod accepted_values;
pub mod common;
pub mod expression;
pub mod freshness;
pub mod not_null;
pub mod relationships;
pub mod row_count;
pub mod unique;

pub(crate) mod kind;

pub(crate) use kind::KindDef;

/// Every data test kind, in the order the docs list them.
pub(crate) const KINDS: &[KindDef] = &[
    not_null::KIND,
    unique::KIND,
    relationships::KIND,
    accepted_values::KIND,
    expression::KIND,
    row_count::KIND,
    freshness::KIND,
];

/// The kind called `name`.
pub(crate) fn find(name: &str) -> Option<&'static KindDef> {
    KINDS.iter().find(|k| k.name == name)
}
