//! The Delta tables a catalog loaded, kept so that opening one again
//! reads only the commits made since.

use crate::lake::state::{REBUILD_EVERY, rebuild, version};
use deltalake::logstore::commit_uri_from_version;
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStoreExt as _;
use std::sync::Arc;

/// Delta tables this process loaded, by URL, for one catalog: opening a
/// table again applies only the commits made since (one log listing when
/// there are none), where loading it from scratch replayed its whole log
/// every time (a run with nothing new read fact_telemetry's log 29 times).
/// A table deleted and recreated under the same URL while the catalog
/// lives is not noticed; nothing here does that.
/// Clones share one cache.
///
/// Each state remembers the version it was last loaded afresh at: one
/// updated incrementally for [`REBUILD_EVERY`] versions is rebuilt (see
/// `lake::state`). The kernel rebuilds a state itself when an update meets
/// a checkpoint newer than the state, but not one at the state's own
/// version (a reader that caught the writer's commit before its
/// checkpoint): without this, such a state would pay on every update for
/// every commit replayed since. A table that never checkpoints replays its
/// whole log at each such rebuild.
#[derive(Clone, Default)]
pub struct TableCache(Arc<std::sync::Mutex<std::collections::HashMap<String, Cached>>>);

#[derive(Clone)]
struct Cached {
    table: DeltaTable,
    fresh_at: i64,
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |m| m.len());
        write!(f, "TableCache({n} tables)")
    }
}

impl TableCache {
    /// The table at `url` updated to its latest version: from the state
    /// held here when there is one, else loaded from scratch.
    pub(super) async fn load(
        &self,
        url: &str,
        build: impl FnOnce() -> Result<DeltaTable, DeltaTableError>,
    ) -> Result<DeltaTable, DeltaTableError> {
        let held = self.0.lock().ok().and_then(|m| m.get(url).cloned());
        let (mut table, held_fresh_at) = match held {
            Some(c) => (c.table, Some(c.fresh_at)),
            None => (build()?, None),
        };
        if held_fresh_at.is_some() && still_latest(&table).await {
            return Ok(table);
        }
        table.load().await?;
        let loaded = version(&table);
        let fresh_at = match held_fresh_at {
            Some(at) if loaded - at >= REBUILD_EVERY => match rebuild(&mut table).await {
                Ok(()) => loaded,
                // Costs only speed; tried again at the next open.
                Err(e) => {
                    tracing::debug!(url, "state not rebuilt: {e}");
                    at
                }
            },
            Some(at) => at,
            None => loaded,
        };
        self.put(url, &table, fresh_at);
        Ok(table)
    }

    /// Keeps `table`'s state unless a newer one is there already.
    fn put(&self, url: &str, table: &DeltaTable, fresh_at: i64) {
        let Ok(mut map) = self.0.lock() else { return };
        let newer = map
            .get(url)
            .is_none_or(|held| version(&held.table) <= version(table));
        if newer {
            let table = table.clone();
            map.insert(url.to_string(), Cached { table, fresh_at });
        }
    }
}

/// Whether `table`'s loaded version is still the table's latest: the
/// next commit's file is not there (versions are consecutive) while the
/// loaded version's is (so no cleanup of expired log files has passed it,
/// which could have taken newer commits too). Two existence checks where
/// an update lists the log and, as measured, replayed the commits since
/// the last checkpoint even when none was new (a run with nothing to do
/// replayed fact_telemetry's log a dozen times). Any doubt (an error other
/// than "not found") answers no: the caller then updates as before.
async fn still_latest(table: &DeltaTable) -> bool {
    let Some(v) = table.version() else {
        return false;
    };
    let store = table.log_store().object_store(None);
    let next = store.head(&commit_uri_from_version(Some(v + 1))).await;
    if !matches!(next, Err(object_store::Error::NotFound { .. })) {
        return false;
    }
    store.head(&commit_uri_from_version(Some(v))).await.is_ok()
}
