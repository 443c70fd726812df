//! A long-lived table state kept as cheap to update as a fresh one.
//!
//! deltalake updates a loaded state incrementally: the files it holds go
//! through the kernel's log replay again with each new commit, as one
//! record batch per commit replayed since the state was loaded, and a
//! checkpoint at the state's own version does not merge them. Every later
//! update and commit pays per batch (schema checks, projections, struct
//! rebuilding), so a process that commits to a table for hours (an
//! ingester, a continuous run's cached tables) got slower with each commit:
//! one-message commits went from 77 to 102 ms over 3,000 of them, while a
//! new process on the same table started again at 74 ms. Rebuilding the
//! state now and then from the table's latest checkpoint (a read of that
//! checkpoint and of the commits after it, what a fresh open costs) keeps
//! the batches few.

use deltalake::DeltaTable;
use deltalake::table::state::DeltaTableState;

/// How many versions a state may advance incrementally before it is
/// rebuilt (a multiple of the model tables' checkpoint interval, so a
/// writer's rebuild reads the checkpoint it just wrote).
pub const REBUILD_EVERY: i64 = 100;

/// `table`'s loaded version, -1 before its first commit is loaded.
pub fn version(table: &DeltaTable) -> i64 {
    table.version().map_or(-1, |v| v as i64)
}

/// Replaces `table`'s state with one loaded afresh at the same version.
/// A table with no state (none loaded yet) is left as it is.
pub async fn rebuild(table: &mut DeltaTable) -> deltalake::DeltaResult<()> {
    let Some(version) = table.version() else {
        return Ok(());
    };
    let fresh = DeltaTableState::try_new(table.log_store().as_ref(), Some(version)).await?;
    table.state = Some(fresh);
    Ok(())
}
