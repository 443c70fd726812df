//! The local lake's object store: object_store's `LocalFileSystem` in every
//! respect but one, the listing after an offset.
//!
//! deltalake finds the commits after the ones it has by listing `_delta_log`
//! after the last version it read, after every commit and every refresh.
//! S3 starts such a listing at the offset. The local backend walks the whole
//! directory and turns each entry into an object path (URL parsing and
//! percent-encoding, about a microsecond each) before it compares it with
//! the offset, so on a table whose log holds 20,000 commits every commit paid
//! tens of milliseconds for names it then dropped.
//!
//! Here a listing of a log from a version (the kernel's offset is the bare
//! `{version:020}`) does not read the directory at all: commits are
//! contiguous, so from a commit that exists, `{v}.checkpoint.parquet`,
//! `{v}.crc` and `{v}.json` for each version until the first missing commit
//! are the log's files by name (a few `stat`s, whatever the log's length;
//! [`probe_log`]). When that cannot be known by name (the first commit is
//! gone, the last checkpoint is multi-part or UUID-named, more than
//! [`PROBE_MAX`] versions to walk), the directory is read and its names
//! compared with the offset before any path is built ([`names_after`]);
//! anything unusual (a subdirectory, a name that needs encoding, an offset
//! outside the listed folder) goes to `LocalFileSystem`. What a probe
//! leaves out (another engine's multi-part or compacted files after the
//! last checkpoint, `_last_checkpoint`, staged commits) costs a reader only
//! speed: it replays those versions' commits instead. A gap a running log
//! cleanup is making (it deletes below a checkpoint, in no order) shows as
//! a last checkpoint at or past the probe's end, and sends the listing to
//! the directory too.

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::logstore::{ObjectStoreFactory, ObjectStoreRef, StorageConfig};
use deltalake::{DeltaResult, DeltaTableError};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use url::Url;

/// deltalake's store factory for `file://` URLs: a [`LocalLake`] at the
/// filesystem root and the table's path in it, as deltalake's own does.
pub(crate) struct LocalStores;

impl ObjectStoreFactory for LocalStores {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let path = Path::from_url_path(url.path())
            .map_err(|e| DeltaTableError::InvalidTableLocation(format!("{url}: {e}")))?;
        Ok((Arc::new(LocalLake::default()), path))
    }
}

/// `LocalFileSystem` with a listing after an offset that reads names before
/// it builds paths (module docs).
#[derive(Debug, Default)]
pub(crate) struct LocalLake {
    fs: Arc<LocalFileSystem>,
}

impl fmt::Display for LocalLake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalLake({})", self.fs)
    }
}

/// The longest run of versions a probe walks (three `stat`s each) before
/// reading the directory is the cheaper way.
const PROBE_MAX: u64 = 2_000;

/// Whether `dir/name` is a file (`None`: something else is there, or the
/// filesystem said something other than "not found").
fn is_file(dir: &std::path::Path, name: &str) -> Option<bool> {
    match std::fs::metadata(dir.join(name)) {
        Ok(meta) => meta.is_file().then_some(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
        Err(_) => None,
    }
}

/// The log's last checkpoint hint: its version and whether it names a
/// classic single-file checkpoint (`{v}.checkpoint.parquet`, which a probe
/// finds by name; any `parts`, even 1, or a V2 checkpoint has other names).
/// `Some(None)`: no hint; `None`: it cannot be read.
fn last_checkpoint(dir: &std::path::Path) -> Option<Option<(u64, bool)>> {
    let bytes = match std::fs::read(dir.join("_last_checkpoint")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(None),
        Err(_) => return None,
    };
    let hint: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let version = hint.get("version")?.as_u64()?;
    let classic = hint.get("parts").is_none_or(serde_json::Value::is_null)
        && hint.get("v2Checkpoint").is_none();
    Some(Some((version, classic)))
}

/// The log's files from version `after` (a bare `{version:020}` offset) on,
/// found by name (module docs); `None` when the directory must be read.
fn probe_log(dir: &std::path::Path, after: &str) -> Option<Vec<String>> {
    if after.len() != 20 || !after.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let from: u64 = after.parse().ok()?;
    let commit = |v: u64| format!("{v:020}.json");
    let checkpoint = |v: u64| format!("{v:020}.checkpoint.parquet");
    // A long run of versions is cheaper to read as a directory.
    if is_file(dir, &commit(from + PROBE_MAX))? {
        return None;
    }
    let mut names = Vec::new();
    let mut end = from;
    if is_file(dir, &commit(from))? {
        while is_file(dir, &commit(end))? {
            // In name order, as a listing gives them.
            for name in [checkpoint(end), format!("{end:020}.crc")] {
                if is_file(dir, &name)? {
                    names.push(name);
                }
            }
            names.push(commit(end));
            end += 1;
        }
    } else if from == 0 || !is_file(dir, &commit(from - 1))? {
        // Not the end of the log: cleaned up to a later checkpoint.
        return None;
    }
    // `end` is the first missing commit. A cleanup deletes only versions
    // below a checkpoint, in no order, so a gap it is making lies below
    // the last checkpoint: a hint at or past `end` (read after the walk)
    // means the walk may have met such a gap (or a checkpoint written
    // meanwhile), and a hinted checkpoint the walk did not see has other
    // names or came late. Either way the directory tells.
    match last_checkpoint(dir)? {
        Some((hint, _)) if hint >= end => None,
        Some((hint, classic))
            if hint >= from && !(classic && names.contains(&checkpoint(hint))) =>
        {
            None
        }
        _ => Some(names),
    }
}

/// What the directory holds after the offset, by name; `None` when the
/// listing must go to `LocalFileSystem` (module docs).
fn names_after(dir: &std::path::Path, after: &str) -> Option<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A table with no log yet: nothing to list, as LocalFileSystem says.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.ok()?;
        let name = entry.file_name().into_string().ok()?;
        if PathPart::from(name.as_str()).as_ref() != name {
            return None;
        }
        if name.as_str() <= after {
            continue;
        }
        let file_type = entry.file_type().ok()?;
        if !file_type.is_file() {
            return None;
        }
        // LocalFileSystem's own in-progress uploads (`name#123`) are not objects.
        if let Some((_, suffix)) = name.split_once('#')
            && !suffix.is_empty()
            && suffix.bytes().all(|b| b.is_ascii_digit())
        {
            continue;
        }
        names.push(name);
    }
    Some(names)
}

#[async_trait]
impl ObjectStore for LocalLake {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.fs.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.fs.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.fs.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.fs.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.fs.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.fs.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let fallback = || self.fs.list_with_offset(prefix, offset);
        let Some(prefix) = prefix else {
            return fallback();
        };
        // The fast path: the offset names an entry of the listed folder.
        let after = match offset
            .prefix_match(prefix)
            .map(|rest| rest.collect::<Vec<_>>())
        {
            Some(rest) if rest.len() == 1 => rest[0].as_ref().to_string(),
            _ => return fallback(),
        };
        let Ok(dir) = self.fs.path_to_filesystem(prefix) else {
            return fallback();
        };
        let fs = self.fs.clone();
        let prefix = prefix.clone();
        let offset = offset.clone();
        stream::once(async move {
            let names = tokio::task::spawn_blocking(move || {
                probe_log(&dir, &after).or_else(|| names_after(&dir, &after))
            })
            .await
            .ok()
            .flatten();
            let Some(names) = names else {
                return fs.list_with_offset(Some(&prefix), &offset);
            };
            stream::iter(names)
                .then(move |name| {
                    let fs = fs.clone();
                    let location = prefix.clone().join(name.as_str());
                    async move {
                        match fs.head(&location).await {
                            Ok(meta) => Ok(Some(meta)),
                            // Removed since the directory was read (log cleanup).
                            Err(object_store::Error::NotFound { .. }) => Ok(None),
                            Err(e) => Err(e),
                        }
                    }
                })
                .try_filter_map(|meta| async move { Ok(meta) })
                .boxed()
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.fs.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.fs.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.fs.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists `prefix` after `offset` through both stores, sorted.
    async fn both(
        root: &std::path::Path,
        prefix: &str,
        offset: &str,
    ) -> (Vec<String>, Vec<String>) {
        let base = Path::from_absolute_path(root).expect("root path");
        let prefix = Path::from(format!("{base}/{prefix}"));
        let offset = Path::from(format!("{base}/{offset}"));
        let names = |metas: Vec<ObjectMeta>| {
            let mut v: Vec<String> = metas
                .into_iter()
                .map(|m| format!("{}:{}", m.location, m.size))
                .collect();
            v.sort();
            v
        };
        let ours: Vec<ObjectMeta> = LocalLake::default()
            .list_with_offset(Some(&prefix), &offset)
            .try_collect()
            .await
            .expect("our listing");
        let theirs: Vec<ObjectMeta> = LocalFileSystem::new()
            .list_with_offset(Some(&prefix), &offset)
            .try_collect()
            .await
            .expect("LocalFileSystem's listing");
        (names(ours), names(theirs))
    }

    #[tokio::test]
    async fn lists_after_an_offset_as_local_file_system_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("_delta_log");
        std::fs::create_dir_all(&log).expect("log dir");
        for v in 0..30u32 {
            std::fs::write(log.join(format!("{v:020}.json")), vec![b'x'; v as usize])
                .expect("commit file");
        }
        std::fs::write(log.join("00000000000000000020.checkpoint.parquet"), b"cp").expect("cp");
        std::fs::write(log.join("_last_checkpoint"), b"{}").expect("last");
        std::fs::write(log.join("00000000000000000031.json#12"), b"partial").expect("staged");

        let (ours, theirs) = both(
            dir.path(),
            "_delta_log",
            "_delta_log/00000000000000000010.json",
        )
        .await;
        assert_eq!(ours, theirs);
        // 11..29 json, 20's checkpoint and _last_checkpoint; not the upload part.
        assert_eq!(ours.len(), 21, "{ours:?}");
        assert!(ours.iter().all(|n| !n.contains('#')), "{ours:?}");

        // A subdirectory and a name that needs encoding take the old path, same answer.
        std::fs::create_dir_all(log.join("_commits")).expect("subdir");
        std::fs::write(log.join("_commits/00000000000000000040.uuid.json"), b"c")
            .expect("staged commit");
        std::fs::write(log.join("odd%name"), b"o").expect("odd");
        let (ours, theirs) = both(
            dir.path(),
            "_delta_log",
            "_delta_log/00000000000000000025.json",
        )
        .await;
        assert_eq!(ours, theirs);
        assert!(ours.iter().any(|n| n.contains("_commits/")), "{ours:?}");

        // A folder that does not exist lists as empty.
        let (ours, theirs) = both(dir.path(), "missing", "missing/0.json").await;
        assert_eq!((ours.len(), theirs.len()), (0, 0));
    }

    /// A log of versions 0..30, a checkpoint at 20 named by
    /// `_last_checkpoint`, a checksum at 25 and a compacted commit file
    /// only a directory read finds.
    fn a_log(root: &std::path::Path) -> std::path::PathBuf {
        let log = root.join("_delta_log");
        std::fs::create_dir_all(&log).expect("log dir");
        for v in 0..30u32 {
            std::fs::write(log.join(format!("{v:020}.json")), vec![b'x'; v as usize])
                .expect("commit file");
        }
        std::fs::write(log.join(format!("{:020}.checkpoint.parquet", 20)), b"cp").expect("cp");
        std::fs::write(log.join(format!("{:020}.crc", 25)), b"crc").expect("crc");
        let compacted = format!("{:020}.{:020}.compacted.json", 26, 27);
        std::fs::write(log.join(compacted), b"cc").expect("compacted");
        std::fs::write(log.join("_last_checkpoint"), br#"{"version":20,"size":3}"#).expect("last");
        log
    }

    #[tokio::test]
    async fn a_listing_from_a_version_finds_the_logs_files_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        a_log(dir.path());
        let from = |v: u32| format!("_delta_log/{v:020}");
        let (ours, theirs) = both(dir.path(), "_delta_log", &from(15)).await;
        // Versions 15..29, the checkpoint and the checksum, in name order;
        // not what only a directory read finds (the compacted file and the
        // hint, which a reader does not need).
        let only_listed = |n: &String| n.contains("compacted") || n.contains("_last_checkpoint");
        let expected: Vec<String> = theirs.iter().filter(|n| !only_listed(n)).cloned().collect();
        assert_eq!(ours, expected);
        assert_eq!(ours.len(), 15 + 2, "{ours:?}");
        assert!(theirs.iter().any(only_listed), "{theirs:?}");

        // From the version after the last: nothing, as the log says.
        let (ours, _) = both(dir.path(), "_delta_log", &from(30)).await;
        assert!(ours.is_empty(), "{ours:?}");
    }

    #[tokio::test]
    async fn a_listing_reads_the_directory_when_names_cannot_tell() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = a_log(dir.path());
        let from = |v: u32| format!("_delta_log/{v:020}");
        // The log cleaned up to the checkpoint: a listing from 0 must
        // find what is left, not stop at the missing first commit.
        for v in 0..20u32 {
            std::fs::remove_file(log.join(format!("{v:020}.json"))).expect("clean up");
        }
        let (ours, theirs) = both(dir.path(), "_delta_log", &from(0)).await;
        assert_eq!(ours, theirs);
        assert!(
            ours.iter().any(|n| n.contains("checkpoint.parquet")),
            "{ours:?}"
        );
        // A version past the end with the commit before it gone too.
        let (ours, theirs) = both(dir.path(), "_delta_log", &from(10)).await;
        assert_eq!(ours, theirs);
        assert!(!ours.is_empty());

        // A multi-part last checkpoint, of two parts or of one: its parts
        // have no fixed name.
        for parts in [2, 1] {
            for part in 1..=parts {
                let name = format!("{:020}.checkpoint.{part:010}.{parts:010}.parquet", 25);
                std::fs::write(log.join(name), b"part").expect("part");
            }
            let hint = format!(r#"{{"version":25,"size":3,"parts":{parts}}}"#);
            std::fs::write(log.join("_last_checkpoint"), hint).expect("last");
            let (ours, theirs) = both(dir.path(), "_delta_log", &from(25)).await;
            assert_eq!(ours, theirs);
            let name = format!(".{parts:010}.parquet");
            assert!(ours.iter().any(|n| n.contains(&name)), "{ours:?}");
        }
    }

    #[tokio::test]
    async fn a_listing_does_not_stop_at_a_gap_a_cleanup_is_making() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = a_log(dir.path());
        // A cleanup below the checkpoint at 20 deletes in no order: 12 is
        // gone, 10 and 11 are still there.
        std::fs::remove_file(log.join(format!("{:020}.json", 12))).expect("delete");
        let from = format!("_delta_log/{:020}", 10);
        let (ours, theirs) = both(dir.path(), "_delta_log", &from).await;
        assert_eq!(ours, theirs);
        let last = format!("{:020}.json", 29);
        assert!(ours.iter().any(|n| n.contains(&last)), "{ours:?}");
    }
}
