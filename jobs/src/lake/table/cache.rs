//! The Delta tables a catalog loaded, kept so that opening one again
//! reads only the commits made since.

use deltalake::DeltaTable;
use std::sync::Arc;

/// Delta tables this process loaded, by URL, for one catalog: opening a
/// table again applies only the commits made since (one log listing when
/// there are none), where loading it from scratch replayed its whole log
/// every time (a run with nothing new read fact_telemetry's log 29 times).
/// A table deleted and recreated under the same URL while the catalog
/// lives is not noticed; nothing here does that.
/// Clones share one cache.
#[derive(Clone, Default)]
pub struct TableCache(Arc<std::sync::Mutex<std::collections::HashMap<String, DeltaTable>>>);

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |m| m.len());
        write!(f, "TableCache({n} tables)")
    }
}

impl TableCache {
    pub(super) fn get(&self, url: &str) -> Option<DeltaTable> {
        self.0.lock().ok()?.get(url).cloned()
    }

    /// Keeps `table`'s state unless a newer one is there already.
    pub(super) fn put(&self, url: &str, table: &DeltaTable) {
        let Ok(mut map) = self.0.lock() else { return };
        let newer = map
            .get(url)
            .is_none_or(|held| held.version() <= table.version());
        if newer {
            map.insert(url.to_string(), table.clone());
        }
    }
}
