//! A pending batch into the table with its offsets, in one Delta commit
//! (its files written while the ingester reads on, or at once):
//! retries of an unreachable store, fencing when another writer moved a
//! partition, repositioning the consumer where the table says, the
//! informational group offsets, and upkeep (checkpoints, compaction)
//! between batches.

use super::error::IngestError;
use super::state::{Ctx, InFlight, State};
use crate::bronze::batch::Span;
use crate::bronze::table::{BatchCommit, Moved, write_files};
use arrow::array::RecordBatch;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

impl State {
    /// Commits the batch in flight, then the pending batch, each with its
    /// offsets, retrying an unreachable store with backoff. Never skips: an
    /// error leaves the offsets uncommitted, so the messages are read
    /// again.
    pub(super) fn flush(
        &mut self,
        rt: &Handle,
        consumer: &BaseConsumer<Ctx>,
    ) -> Result<(), IngestError> {
        self.settle(rt, consumer)?;
        match self.cut() {
            Some((batch, spans, payload)) => self.commit_batch(rt, consumer, batch, spans, payload),
            None => Ok(()),
        }
    }

    /// Like [`Self::flush`], but the pending batch's files are written on
    /// the runtime while the caller goes on polling (encoding is most of a
    /// commit's time, and the poll loop has a core of its own); its commit
    /// follows in [`Self::settle`]. The batch before it is committed first,
    /// so batches commit in order and at most two are held in memory.
    pub(super) fn flush_behind(
        &mut self,
        rt: &Handle,
        consumer: &BaseConsumer<Ctx>,
    ) -> Result<(), IngestError> {
        self.settle(rt, consumer)?;
        let Some((batch, spans, payload)) = self.cut() else {
            return Ok(());
        };
        let Ok(writer) = self.table.file_writer() else {
            // The commit writes (and retries) the files itself.
            return self.commit_batch(rt, consumer, batch, spans, payload);
        };
        let files = rt.spawn(write_files(writer, batch.clone()));
        self.in_flight = Some(InFlight {
            batch,
            spans,
            payload,
            files,
        });
        Ok(())
    }

    /// Takes the pending rows as a batch (with its offsets and payload
    /// bytes) and restarts the batch clock; `None` if there are none.
    fn cut(&mut self) -> Option<(RecordBatch, BTreeMap<i32, Span>, u64)> {
        self.pending_since = None;
        self.interval_passed = false;
        if self.pending.is_empty() {
            return None;
        }
        let payload = self.pending.payload_bytes() as u64;
        let (batch, spans) = self.pending.finish();
        Some((batch, spans, payload))
    }

    /// Whether the batch in flight has its files written: [`Self::settle`]
    /// would not wait.
    pub(super) fn landed(&self) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|f| f.files.is_finished())
    }

    /// Commits the batch in flight, if any, once its files are written.
    /// Files that could not be written are written again by the commit,
    /// with its retries.
    pub(super) fn settle(
        &mut self,
        rt: &Handle,
        consumer: &BaseConsumer<Ctx>,
    ) -> Result<(), IngestError> {
        let Some(f) = self.in_flight.take() else {
            return Ok(());
        };
        match rt.block_on(f.files) {
            Ok(Ok(adds)) => self.table.stage(adds),
            Ok(Err(e)) => {
                warn!(table = %self.table.name, error = %e, "writing a batch's files failed; the commit writes them again");
            }
            Err(e) => {
                warn!(table = %self.table.name, error = %e, "the task writing a batch's files failed; the commit writes them again");
            }
        }
        let result = self.commit_batch(rt, consumer, f.batch, f.spans, f.payload);
        if result.is_err() {
            // The rows read since were one batch with these before the cut:
            // read them again too, as a failed `flush` of that one batch would.
            let rewind: Moved = (self.pending.spans().iter())
                .map(|(p, s)| (*p, Some(s.first - 1)))
                .collect();
            self.reposition(rewind, consumer);
            self.pending_since = None;
        }
        result
    }

    /// Commits one batch with its offsets (and the files staged for it),
    /// retrying an unreachable store until `retry_timeout`.
    fn commit_batch(
        &mut self,
        rt: &Handle,
        consumer: &BaseConsumer<Ctx>,
        batch: RecordBatch,
        spans: BTreeMap<i32, Span>,
        payload: u64,
    ) -> Result<(), IngestError> {
        let deadline = Instant::now() + self.settings.retry_timeout;
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = match rt.block_on(self.table.commit(&batch, &spans)) {
                Ok(outcome) => Ok(Some(outcome)),
                Err(e) => {
                    warn!(
                        table = %self.table.name,
                        offsets = %describe(&spans),
                        attempt,
                        error = %e,
                        "commit failed; checking what the table recorded"
                    );
                    rt.block_on(self.table.resolve(&spans))
                }
            };
            match result {
                Ok(Some(BatchCommit::Committed { version, moved })) => {
                    self.committed(version, &batch, payload, &spans, consumer);
                    self.reposition(moved, consumer);
                    self.upkeep(rt);
                    return Ok(());
                }
                Ok(Some(BatchCommit::Fenced { moved })) => {
                    warn!(
                        table = %self.table.name,
                        offsets = %describe(&spans),
                        recorded = ?moved,
                        "another writer committed these partitions; dropping this batch and re-reading from the table's offsets"
                    );
                    self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    self.reposition(after_fence(&spans, moved), consumer);
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(table = %self.table.name, error = %e, "cannot read the table back");
                }
            }
            if Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) {
                self.table.discard_staged();
                // Rewind, so that a caller that carries on re-reads them.
                let rewind: Moved = spans.iter().map(|(p, s)| (*p, Some(s.first - 1))).collect();
                self.reposition(rewind, consumer);
                return Err(self.table_error(format!(
                    "gave up committing offsets {} after {attempt} attempts; nothing was skipped: they will be read again",
                    describe(&spans)
                )));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// Counts a committed batch and tells the group its offsets (for lag
    /// tools only).
    fn committed(
        &mut self,
        version: i64,
        batch: &RecordBatch,
        payload: u64,
        spans: &BTreeMap<i32, Span>,
        consumer: &BaseConsumer<Ctx>,
    ) {
        let rows = batch.num_rows() as u64;
        self.stats.committed_rows.fetch_add(rows, Ordering::Relaxed);
        self.stats
            .committed_bytes
            .fetch_add(payload, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        debug!(table = %self.table.name, version, rows, offsets = %describe(spans), "committed");
        // Informational only (lag tools); the table is the checkpoint.
        let mut tpl = TopicPartitionList::new();
        for (p, s) in spans {
            if self.next.contains_key(p) {
                let _ =
                    tpl.add_partition_offset(&self.source.topic, *p, Offset::Offset(s.last + 1));
            }
        }
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            debug!(error = %e, "group offset commit failed (informational only)");
        }
        self.commits_since_checkpoint += 1;
    }

    /// Moves partitions whose recorded offsets changed under us to just
    /// after what the table now records.
    fn reposition(&mut self, moved: Moved, consumer: &BaseConsumer<Ctx>) {
        if moved.is_empty() {
            return;
        }
        // Whatever we hold of those partitions is stale too.
        self.pending.retain_partitions(|p| !moved.contains_key(&p));
        for (p, recorded) in moved {
            let Some(next) = self.next.get_mut(&p) else {
                continue;
            };
            let n = recorded.map_or(-1, |v| v + 1);
            *next = n;
            self.unsought.insert(p, n);
        }
        self.retry_seeks(consumer);
    }

    /// Seeks the partitions that must be read from elsewhere; one that
    /// fails stays in `unsought` (its messages dropped) and is tried again
    /// on the next poll.
    pub(super) fn retry_seeks(&mut self, consumer: &BaseConsumer<Ctx>) {
        let todo: Vec<(i32, i64)> = self.unsought.iter().map(|(p, n)| (*p, *n)).collect();
        for (p, n) in todo {
            let offset = if n >= 0 {
                Offset::Offset(n)
            } else {
                Offset::Beginning
            };
            match consumer.seek(&self.source.topic, p, offset, Duration::from_secs(10)) {
                Ok(()) => {
                    self.unsought.remove(&p);
                }
                Err(e) => {
                    warn!(partition = p, next = n, error = %e, "seek failed; its messages wait until a retried seek succeeds");
                }
            }
        }
    }

    /// Checkpoints and compaction, between batches so they never race this
    /// writer; failures are logged and retried next time.
    fn upkeep(&mut self, rt: &Handle) {
        let every = self.settings.checkpoint_every;
        if every > 0 && self.commits_since_checkpoint >= every {
            match rt.block_on(self.table.checkpoint()) {
                Ok(()) => {
                    self.commits_since_checkpoint = 0;
                    info!(table = %self.table.name, version = self.table.version(), "checkpoint written");
                }
                Err(e) => warn!(table = %self.table.name, error = %e, "checkpoint failed"),
            }
        }
        if let Some(every) = self.settings.compact_every
            && self.last_compaction.elapsed() >= every
        {
            self.last_compaction = Instant::now();
            match rt.block_on(self.table.compact(
                &self.settings.clock,
                self.settings.compact_min_files,
                self.settings.target_file_bytes,
            )) {
                Ok((dates, removed)) if !dates.is_empty() => {
                    info!(table = %self.table.name, ?dates, files_removed = removed, "compacted small files");
                }
                Ok(_) => {}
                Err(e) => warn!(table = %self.table.name, error = %e, "compaction failed"),
            }
        }
    }
}

/// The offsets of a batch, per partition, for log lines.
fn describe(spans: &BTreeMap<i32, Span>) -> String {
    spans
        .iter()
        .map(|(p, s)| format!("p{p}:{}..={}", s.first, s.last))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where each partition of a dropped (fenced) batch reads next. A partition
/// another writer moved goes to just after what that writer recorded; every
/// other partition of the batch goes back to the batch's first offset: its
/// rows were dropped with the batch, and the consumer's position is past
/// them, so without the rewind they would never be read again.
fn after_fence(spans: &BTreeMap<i32, Span>, moved: Moved) -> Moved {
    let mut next: Moved = spans.iter().map(|(p, s)| (*p, Some(s.first - 1))).collect();
    next.extend(moved);
    next
}

#[cfg(test)]
mod fence_tests {
    use super::*;

    #[test]
    fn a_fenced_batch_rewinds_the_partitions_nobody_moved() {
        let spans: BTreeMap<i32, Span> = [
            (
                0,
                Span {
                    first: 10,
                    last: 19,
                    rows: 10,
                },
            ),
            (
                1,
                Span {
                    first: 0,
                    last: 4,
                    rows: 5,
                },
            ),
        ]
        .into();
        // Another writer took partition 0 and recorded up to 25.
        let next = after_fence(&spans, [(0, Some(25))].into());
        assert_eq!(next, [(0, Some(25)), (1, Some(-1))].into());
        // A partition moved to "nothing recorded" starts from the beginning.
        let next = after_fence(&spans, [(1, None)].into());
        assert_eq!(next, [(0, Some(9)), (1, None)].into());
    }
}
