//! One file source's ingester between passes, and one pass: list what is
//! new, read the oldest files, and commit their rows with the source's new
//! file count in one Delta commit.

use super::assemble::{Assembled, Taking};
use super::listing::{Arrived, list, settled};
use super::records::{Records, records};
use super::settings::{FileIngestSettings, FileSourceSpec};
use super::taken::taken_files;
use crate::bronze::ingest::{IngestReport, IngestStats};
use crate::bronze::table::BronzeTable;
use object_store::{ObjectStore, ObjectStoreExt, path::Path as StorePath};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What one pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    /// Files were committed (there may be more).
    Committed,
    /// Nothing new.
    Nothing,
    /// Only files still being written (changed within the settle time,
    /// `ingest.file_settle`).
    Settling,
}

/// A checkpoint every this many commits of a file source's table.
const CHECKPOINT_EVERY: u64 = 100;

/// The state of one source's ingester between passes.
pub(super) struct Source<'s> {
    spec: &'s FileSourceSpec,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// The bronze table (`None`: open it, and read what it holds, again).
    pub(super) table: Option<BronzeTable>,
    /// Paths the table holds.
    taken: HashSet<String>,
    /// The file count the table records.
    files: Option<i64>,
    /// Commits since the last checkpoint.
    commits: u64,
}

impl<'s> Source<'s> {
    /// The source's files under `prefix` of `store`; its table is opened by
    /// the first pass.
    pub(super) fn new(
        spec: &'s FileSourceSpec,
        store: Arc<dyn ObjectStore>,
        prefix: StorePath,
    ) -> Self {
        Source {
            spec,
            store,
            prefix,
            table: None,
            taken: HashSet::new(),
            files: None,
            commits: 0,
        }
    }

    /// One listing and, if files are new, one commit of the oldest of them.
    pub(super) async fn pass(
        &mut self,
        settings: &FileIngestSettings,
        stats: &IngestStats,
        report: &mut IngestReport,
    ) -> Result<Pass, String> {
        if self.table.is_none() {
            self.open().await?;
        }
        let (new, young) = self.new_files(settings).await?;
        if new.is_empty() {
            return Ok(if young { Pass::Settling } else { Pass::Nothing });
        }
        let taking = self.read(new, settings).await?;
        if taking.chosen.is_empty() {
            return Ok(Pass::Nothing);
        }
        self.commit(taking.finish(), stats, report).await?;
        Ok(Pass::Committed)
    }

    /// The files not taken yet, in arrival order up to the first one still
    /// settling, and whether there is one.
    async fn new_files(
        &self,
        settings: &FileIngestSettings,
    ) -> Result<(Vec<Arrived>, bool), String> {
        let mut new = list(&*self.store, &self.prefix, self.spec).await?;
        new.retain(|f| !self.taken.contains(&f.name));
        // Object stores show an object only once its upload is whole; a
        // folder shows files while they are written.
        let settle = if self.spec.root.scheme() == "file" {
            settings.settle
        } else {
            Duration::ZERO
        };
        let young = settled(&mut new, settle);
        Ok((new, young))
    }

    /// Reads the oldest of `new` into one commit, until the files hold
    /// `batch_bytes` (at least one file); a file with no records yet is
    /// passed over.
    async fn read(
        &self,
        new: Vec<Arrived>,
        settings: &FileIngestSettings,
    ) -> Result<Taking, String> {
        let mut taking = Taking::new(settings.clock.now_micros(), self.files.unwrap_or(0));
        for file in new {
            if !taking.chosen.is_empty() && taking.bytes + file.size > settings.batch_bytes {
                break;
            }
            let data = self
                .store
                .get(&file.location)
                .await
                .map_err(|e| format!("reading {}: {e}", file.name))?
                .bytes()
                .await
                .map_err(|e| format!("reading {}: {e}", file.name))?;
            let records = match records(self.spec.format, &data) {
                Records::Rows(rows) if rows.is_empty() => {
                    tracing::debug!(source = %self.spec.name, file = %file.name, "no records yet: passed over");
                    continue;
                }
                other => other,
            };
            taking.add(&self.spec.name, file, records);
        }
        Ok(taking)
    }

    /// Commits the files' rows with the new file count, then counts them
    /// (a checkpoint every [`CHECKPOINT_EVERY`] commits).
    async fn commit(
        &mut self,
        assembled: Assembled,
        stats: &IngestStats,
        report: &mut IngestReport,
    ) -> Result<(), String> {
        let Assembled {
            batches,
            payload,
            chosen,
            sequence,
        } = assembled;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let unreadable = chosen.iter().filter(|f| f.unreadable).count() as u64;
        let table = self.table.as_mut().ok_or("bronze table not open")?;
        let version = table
            .commit_files(&batches, sequence)
            .await
            .map_err(|e| format!("committing {} file(s): {e}", chosen.len()))?;
        stats.consumed.fetch_add(rows, Ordering::Relaxed);
        report.unreadable += unreadable;
        self.commits += 1;
        if self.commits.is_multiple_of(CHECKPOINT_EVERY)
            && let Err(e) = table.checkpoint().await
        {
            tracing::warn!(source = %self.spec.name, error = %e, "checkpoint failed");
        }
        self.files = Some(sequence);
        self.taken.extend(chosen.iter().map(|f| f.name.clone()));
        stats.committed_rows.fetch_add(rows, Ordering::Relaxed);
        stats.committed_bytes.fetch_add(payload, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        report.rows += rows;
        report.bytes += payload;
        report.commits += 1;
        report.files += chosen.len() as u64;
        report.version = version;
        tracing::info!(source = %self.spec.name, files = chosen.len(), rows, version, "file source: committed");
        Ok(())
    }

    /// Opens the bronze table and reads which files it holds.
    async fn open(&mut self) -> Result<(), String> {
        let spec = self.spec;
        let table = BronzeTable::open_or_create_with(
            &spec.name,
            spec.root.as_str(),
            spec.location.clone(),
            format!(
                "bronze: every record of the {} files under {}",
                spec.format.name(),
                spec.root
            ),
        )
        .await
        .map_err(|e| format!("opening {}: {e}", spec.location.url))?;
        self.files = table
            .files_recorded()
            .await
            .map_err(|e| format!("reading {}: {e}", spec.location.url))?;
        self.taken = taken_files(&spec.name, &spec.location)
            .await
            .map_err(|e| format!("reading {}: {e}", spec.location.url))?;
        self.table = Some(table);
        Ok(())
    }
}
