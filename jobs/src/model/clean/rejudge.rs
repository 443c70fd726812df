//! A backfill over a range of dates re-judges the quarantine.

use super::columns::COORDS;
use crate::model::ModelError;
use crate::model::frame::{anti_join, semi_join};
use polars::prelude::*;

/// A backfill over a range re-judges the quarantine: every bronze row is
/// judged again, but only the silver rows in the range are replaced, so
/// only what lands in the range may leave the quarantine.
#[derive(Default)]
pub(super) struct Rejudged {
    /// The quarantine rows the fixed rules produce (all of bronze).
    quarantined: Vec<DataFrame>,
    /// Coordinates of the bronze rows that now pass into the range.
    in_range: Vec<DataFrame>,
}

impl Rejudged {
    pub(super) fn add(&mut self, quarantined: DataFrame, in_range: DataFrame) {
        self.quarantined.push(quarantined);
        self.in_range.push(in_range);
    }

    /// The quarantine after the backfill, from the one before it: rows
    /// quarantined again carry the fixed rules' reason; rows that now pass
    /// into the range leave; rows that now pass outside the range stay
    /// (their dates are not being replaced). Also the note saying so.
    pub(super) fn apply(self, before: DataFrame) -> Result<(DataFrame, String), ModelError> {
        let stack = |frames: Vec<DataFrame>| -> Result<Option<DataFrame>, ModelError> {
            let mut frames = frames.into_iter();
            let Some(mut acc) = frames.next() else {
                return Ok(None);
            };
            for f in frames {
                acc.vstack_mut_owned(f)?;
            }
            Ok(Some(acc))
        };
        let (Some(judged), Some(in_range)) = (stack(self.quarantined)?, stack(self.in_range)?)
        else {
            return Ok((before, "no bronze rows to judge".into()));
        };
        let on: Vec<String> = COORDS.iter().map(|c| c.to_string()).collect();
        let before = crate::model::write::conform(before, &judged)?;
        let released = semi_join(before.clone(), in_range.clone(), &on)?.height();
        let added = anti_join(judged.clone(), before.select(COORDS)?, &on)?.height();
        let mut gone = in_range;
        gone.vstack_mut_owned(judged.select(COORDS)?)?;
        let kept = anti_join(before, gone, &on)?;
        let note = format!(
            "quarantine re-judged: {released} row(s) now pass into the range and left it, \
             {added} newly quarantined, {} that now pass outside the range stay until a \
             backfill covers their dates",
            kept.height()
        );
        let mut after = judged;
        after.vstack_mut_owned(kept)?;
        Ok((after, note))
    }
}
