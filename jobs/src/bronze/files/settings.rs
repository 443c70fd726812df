//! What a file source is (where its files arrive, their format, its bronze
//! table) and how it is polled and committed.

use crate::bronze::clock::IngestClock;
use crate::decl::FileFormat;
use crate::lake::TableLocation;
use std::collections::HashMap;
use std::time::Duration;
use url::Url;

/// One file source to ingest.
#[derive(Clone, Debug)]
pub struct FileSourceSpec {
    pub name: String,
    /// The folder or prefix files arrive under (`file:///...`, `s3://...`).
    pub root: Url,
    /// Options of the store `root` is on (the lake's S3 options).
    pub root_options: HashMap<String, String>,
    pub format: FileFormat,
    /// The bronze table.
    pub location: TableLocation,
}

/// How a file source is polled and committed.
#[derive(Clone, Debug)]
pub struct FileIngestSettings {
    /// A commit takes files until they hold this many bytes (at least one).
    pub batch_bytes: u64,
    /// Wait between two listings of the source when nothing was new.
    pub poll: Duration,
    pub clock: IngestClock,
    /// How long an unreachable store is retried before giving up.
    pub retry_timeout: Duration,
    /// A file in a local folder modified this recently may still be being
    /// written (`cp`, SFTP and many exporters write in place): it is taken
    /// once it has been left alone this long, never half-written.
    pub settle: Duration,
    /// One pass over what is there, then stop.
    pub until_caught_up: bool,
}

impl Default for FileIngestSettings {
    fn default() -> Self {
        Self {
            batch_bytes: 64 << 20,
            poll: Duration::from_secs(5),
            clock: IngestClock::System,
            retry_timeout: Duration::from_secs(300),
            settle: Duration::from_secs(2),
            until_caught_up: false,
        }
    }
}
