//! The data test kinds, one file each: what the kind checks and how it
//! reads its rows. [`super::eval`] dispatches a test to its kind.
//!
//! - [`not_null`], [`accepted_values`], [`expression`]: one SQL condition a
//!   failing row satisfies, over the rows since the test's base.
//! - [`unique`]: the new keys against themselves and the rest of the table.
//! - [`relationships`]: the new values against another model's field.
//! - [`row_count`], [`freshness`]: the whole table, from the statistics
//!   when they answer.
//! - [`common`]: what several kinds share: the scope of files, chunked
//!   reading, the `where` filter, the sample of failing rows.

pub mod accepted_values;
pub mod common;
pub mod expression;
pub mod freshness;
pub mod not_null;
pub mod relationships;
pub mod row_count;
pub mod unique;
