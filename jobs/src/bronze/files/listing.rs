//! Which files of a source are there: every file of its format under its
//! root (hidden and temporary names left out), and which of the new ones
//! may be taken now, in arrival order.

use super::settings::FileSourceSpec;
use crate::decl::FileFormat;
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore, path::Path as StorePath};
use std::time::Duration;

/// A file of the source, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Arrived {
    /// Path under the source's root (`topic` in bronze).
    pub(super) name: String,
    pub(super) location: StorePath,
    pub(super) modified_micros: i64,
    pub(super) size: u64,
}

/// Every file of the source's format under its root. An entry that
/// cannot be listed (a name that is not UTF-8, a folder not readable)
/// is skipped with a warning: the rest of the source goes on.
pub(super) async fn list(
    store: &dyn ObjectStore,
    prefix: &StorePath,
    spec: &FileSourceSpec,
) -> Result<Vec<Arrived>, String> {
    let mut stream = store.list(Some(prefix));
    let mut listed: Vec<ObjectMeta> = Vec::new();
    let mut errors = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok(meta) => listed.push(meta),
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    tracing::warn!(source = %spec.name, error = %e, "file source: an entry cannot be listed; skipped");
                }
            }
        }
    }
    // Nothing listed and only errors: the source itself is unreachable.
    if listed.is_empty() && errors > 0 {
        return Err(format!("listing {}: every entry failed", spec.root));
    }
    let prefix: Vec<String> = prefix.parts().map(|p| p.as_ref().to_string()).collect();
    Ok(listed
        .into_iter()
        .filter_map(|meta| {
            let parts: Vec<String> = meta
                .location
                .parts()
                .map(|p| p.as_ref().to_string())
                .collect();
            let rel = parts.get(prefix.len()..)?;
            let hidden = rel.iter().any(|p| p.starts_with('.') || p.starts_with('_'));
            let name = rel.join("/");
            (!hidden && !name.is_empty() && has_extension(spec.format, &name)).then(|| Arrived {
                name,
                modified_micros: meta.last_modified.timestamp_micros(),
                size: meta.size,
                location: meta.location,
            })
        })
        .collect())
}

/// Sorts `new` into arrival order and cuts it at the first file still
/// settling (modified within `settle`); true when a file was cut.
pub(super) fn settled(new: &mut Vec<Arrived>, settle: Duration) -> bool {
    new.sort_by(|a, b| (a.modified_micros, &a.name).cmp(&(b.modified_micros, &b.name)));
    // Arrival order: a file still settling holds back the ones after it.
    let settled_before = chrono::Utc::now().timestamp_micros() - settle.as_micros() as i64;
    let settling = new
        .iter()
        .position(|f| f.modified_micros > settled_before)
        .unwrap_or(new.len());
    let young = settling < new.len();
    new.truncate(settling);
    young
}

/// Whether `name` is a file of `format` by its extension.
fn has_extension(format: FileFormat, name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match format {
        FileFormat::Csv => ext == "csv",
        FileFormat::Json => matches!(ext, "json" | "jsonl" | "ndjson"),
        FileFormat::Parquet => ext == "parquet",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_pick_the_formats_files() {
        assert!(has_extension(FileFormat::Csv, "a/b/orders.CSV"));
        assert!(!has_extension(FileFormat::Csv, "orders.csv.tmp"));
        assert!(has_extension(FileFormat::Json, "x.ndjson"));
        assert!(!has_extension(FileFormat::Parquet, "x"));
    }
}
