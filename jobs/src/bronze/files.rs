//! Bronze from files: the records of files arriving under a folder or an
//! object-store prefix (`kind: file_source`), each file taken exactly once.
//!
//! A file's records land in the bronze schema as a Kafka message would:
//! `topic` is the file's path under the source's root, `partition` the
//! file's sequence number in the table (the order files were taken in),
//! `offset` where the record sits (its first line for CSV and JSON lines,
//! its row number for Parquet), `key` the CSV header line (CSV only), `value`
//! the record's raw bytes (a Parquet row as a JSON object), `kafka_timestamp`
//! the file's last-modified time.
//!
//! Exactly once: a file's rows and the source's new file count (txn
//! `dag.files`) are one Delta commit, so the table says which files it
//! holds (the distinct `topic`s). Two writers that commit from the same
//! snapshot conflict on the txn and one of them plans again; a commit whose
//! answer was lost is settled by reading the table back. Files are taken
//! in arrival order (last-modified time, then path); a file is taken once,
//! so a file rewritten in place is not read again: land new data as new
//! files.
//!
//! A file in a local folder is taken once it has not changed for
//! `ingest.file_settle`
//! (`cp` and SFTP write in place: never half a file); a file that cannot be
//! read as its format (a broken Parquet file) lands
//! as one row at offset -1 whose value is the reason: its cleaning model
//! quarantines it (`unreadable_file`) and nothing else is held up. A file
//! with no records yet (empty, or a header only) is passed over until it
//! has some. Names starting with `.` or `_` (temporary files, `_SUCCESS`)
//! and files whose extension is not the format's are ignored.
//!
//! Its parts, under `files/`: `settings` (what a file source is and how it
//! is polled), `listing` (which files are there, in arrival order),
//! `records` (a file's bytes into records, by format), `assemble` (files
//! into the record batches of one commit), `taken` (which files the table
//! already holds), `source` (one pass: list, read, commit) and `run` (the
//! passes, with retries of an unreachable store, until stopped).

mod assemble;
mod listing;
mod records;
mod run;
mod settings;
mod source;
mod taken;

pub use run::run;
pub use settings::{FileIngestSettings, FileSourceSpec};
