//! The commit being assembled: the records of the files taken so far, in
//! record batches of the bronze schema, each file at its sequence number.

use super::listing::Arrived;
use super::records::Records;
use crate::bronze::batch::{BatchBuilder, RawMessage};
use arrow::array::RecordBatch;

/// A file's records go into record batches of about this many bytes (an
/// Arrow string column holds at most 2 GiB); one commit still takes the
/// whole file.
const CHUNK_BYTES: usize = 256 << 20;

/// A file taken into the batch being committed.
pub(super) struct Chosen {
    pub(super) name: String,
    pub(super) unreadable: bool,
}

/// The files taken into one commit so far.
pub(super) struct Taking {
    builder: BatchBuilder,
    batches: Vec<RecordBatch>,
    /// Key and value bytes of the finished batches.
    payload: u64,
    /// `ingested_at` of every row of this commit.
    now: i64,
    /// Bytes of the files taken (their size as listed).
    pub(super) bytes: u64,
    pub(super) chosen: Vec<Chosen>,
    /// The next file's sequence number (its `partition`).
    sequence: i64,
}

/// A commit, assembled: its record batches, their key and value bytes,
/// the files it takes, and the file count once it is committed.
pub(super) struct Assembled {
    pub(super) batches: Vec<RecordBatch>,
    pub(super) payload: u64,
    pub(super) chosen: Vec<Chosen>,
    pub(super) sequence: i64,
}

impl Taking {
    /// Nothing taken yet; the first file gets number `sequence`.
    pub(super) fn new(now: i64, sequence: i64) -> Self {
        Taking {
            builder: BatchBuilder::new(""),
            batches: Vec::new(),
            payload: 0,
            now,
            bytes: 0,
            chosen: Vec::new(),
            sequence,
        }
    }

    /// Takes one file: its records, or the one row that says why it cannot
    /// be read.
    pub(super) fn add(&mut self, source: &str, file: Arrived, records: Records) {
        self.bytes += file.size;
        self.builder.set_topic(&file.name);
        let partition = i32::try_from(self.sequence).unwrap_or(i32::MAX);
        let timestamp_ms = Some(file.modified_micros / 1000);
        match &records {
            Records::Rows(rows) => {
                for r in rows {
                    let m = RawMessage {
                        partition,
                        offset: r.offset,
                        key: r.key.as_deref(),
                        value: Some(&r.value),
                        timestamp_ms,
                    };
                    self.builder.push(&m, self.now);
                    if self.builder.bytes() >= CHUNK_BYTES {
                        self.payload += self.builder.payload_bytes() as u64;
                        self.batches.push(self.builder.finish().0);
                    }
                }
            }
            Records::Unreadable(reason) => {
                tracing::warn!(source = %source, file = %file.name, %reason, "file source: unreadable file quarantined");
                let m = RawMessage {
                    partition,
                    offset: -1,
                    key: None,
                    value: Some(reason.as_bytes()),
                    timestamp_ms,
                };
                self.builder.push(&m, self.now);
            }
        }
        self.sequence += 1;
        self.chosen.push(Chosen {
            unreadable: matches!(records, Records::Unreadable(_)),
            name: file.name,
        });
    }

    /// The last, partly filled record batch finished too.
    pub(super) fn finish(mut self) -> Assembled {
        if !self.builder.is_empty() {
            self.payload += self.builder.payload_bytes() as u64;
            self.batches.push(self.builder.finish().0);
        }
        Assembled {
            batches: self.batches,
            payload: self.payload,
            chosen: self.chosen,
            sequence: self.sequence,
        }
    }
}
