//! The value rules of silver cleaning, exactly as the spec words them:
//! exact decimal values of JSON number tokens (integers, decimal places,
//! ranges), RFC 3339 timestamps, and the order in which a field's rules
//! pick the quarantine reason.
//!
//! By kind: `number` (exact decimals and intervals), `timestamp`
//! (RFC 3339), `cell` (checked cells and quarantine reasons), `field` (one
//! field's rules), `row` (a row's fields), under `values/`.

mod cell;
mod field;
mod number;
mod row;
mod timestamp;

pub use cell::{Cell, Reason};
pub use number::{Decimal, ExactInterval, in_interval};
pub use row::{RowChecker, Scratch, check_row};
pub use timestamp::parse_rfc3339;
