//! The lake: where Delta tables live (a local folder or S3), the wiring
//! deltalake needs for both, and the table layer every model, data test and
//! load sits on:
//! - [`table`]: one Delta table: open, read (pruned, a chunk at a time),
//!   look up keys, what commits changed, commit with its `txn` actions;
//! - [`bridge`]: polars <-> arrow-rs; [`bloom`]: the key bloom filters;
//! - [`local`]: the store of `file://` lakes (a faster log listing);
//! - [`state`]: long-lived table states rebuilt now and then, so that
//!   updating one stays as cheap as loading it afresh.
//!
//! S3 goes through object_store's own client, not deltalake's `s3`
//! feature (which brings the AWS SDK for DynamoDB locking we do not use).
//! [`register_stores`] tells deltalake how to open `s3://` URLs and to commit
//! through its default log store: a commit is a create-only put of
//! `_delta_log/N.json` (`If-None-Match: *`), so of two writers of the same
//! version exactly one wins, on any S3 that honours conditional puts (AWS
//! S3, MinIO, SeaweedFS; tested in tests/it/lake.rs).

pub mod bloom;
pub mod bridge;
mod local;
pub mod state;
pub mod table;

use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use deltalake::{DeltaResult, DeltaTableBuilder, DeltaTableError, Path};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Once};
use url::Url;

struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        // new(), not from_env(): options come from our config only.
        let mut builder = AmazonS3Builder::new().with_url(url.as_str());
        for (key, value) in config.raw() {
            if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value.clone());
            }
        }
        let store = builder.build()?;
        let path = Path::parse(url.path()).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
        Ok((Arc::new(store), path))
    }
}

struct S3Logs;

impl LogStoreFactory for S3Logs {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        // Must stay the DefaultLogStore: deltalake commits through a
        // create-only put only for that store (others rename, which S3 lacks).
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// Registers `s3://` (and `s3a://`) with deltalake, and our store for
/// `file://` ([`local`]). Idempotent; call before opening any table.
pub fn register_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let stores: Arc<dyn ObjectStoreFactory> = Arc::new(S3Stores);
        let logs: Arc<dyn LogStoreFactory> = Arc::new(S3Logs);
        for scheme in ["s3://", "s3a://"] {
            if let Ok(url) = Url::parse(scheme) {
                object_store_factories().insert(url.clone(), stores.clone());
                logstore_factories().insert(url, logs.clone());
            }
        }
        if let Ok(url) = Url::parse("file://") {
            object_store_factories().insert(url, Arc::new(local::LocalStores));
        }
    });
}

/// Connection options of an S3 lake; secrets are filled in by the caller
/// from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Options {
    pub endpoint: String,
    pub region: String,
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl S3Options {
    /// The storage options deltalake passes to [`register_stores`]'s factory.
    pub fn storage_options(&self) -> HashMap<String, String> {
        let mut o = HashMap::from([
            ("aws_endpoint".to_string(), self.endpoint.clone()),
            ("aws_region".to_string(), self.region.clone()),
            ("aws_allow_http".to_string(), self.allow_http.to_string()),
            // Path-style requests: MinIO and SeaweedFS without DNS tricks.
            (
                "aws_virtual_hosted_style_request".to_string(),
                "false".to_string(),
            ),
            ("aws_conditional_put".to_string(), "etag".to_string()),
        ]);
        if let Some(k) = &self.access_key_id {
            o.insert("aws_access_key_id".into(), k.clone());
        }
        if let Some(s) = &self.secret_access_key {
            o.insert("aws_secret_access_key".into(), s.clone());
        }
        o
    }
}

/// How long a table created here keeps the tombstones of removed files
/// in its checkpoints (`delta.deletedFileRetentionDuration`; Delta's
/// default is a week). Every checkpoint writes them all and every snapshot
/// rebuilt from a checkpoint reads them all, and a table compacted every
/// few minutes (a streaming bronze table, a model in continuous mode)
/// removes hundreds of files an hour: a week of them is hundreds of
/// thousands, which every checkpoint and every commit after one would pay
/// for. dag never reads a tombstone (changes come from the log's commits,
/// which are kept `delta.logRetentionDuration`, 30 days), but it does read
/// removed files: a load reads the keys of files removed since it last
/// ran and a scoped model the old rows of its affected keys (both fall
/// back to reading everything when a file is gone), and a load whose
/// tested version is no longer the latest reads that version's files
/// (it fails when they are gone). dag never deletes a data file; a VACUUM
/// by another tool uses this retention by default, so one that runs more
/// often than the loads should set the property longer (a table's own
/// property wins; dag sets it only on the tables it creates).
pub const TOMBSTONE_RETENTION: &str = "interval 1 hours";

/// Where a table lives and how to reach it.
#[derive(Clone, Debug)]
pub struct TableLocation {
    pub url: Url,
    pub storage_options: HashMap<String, String>,
    /// Delta table properties a table created here starts with.
    pub properties: BTreeMap<String, String>,
}

impl TableLocation {
    /// `<lake>/<layer>/<name>` under a lake URL (`file://...` or `s3://...`).
    pub fn in_lake(
        lake: &str,
        layer: &str,
        name: &str,
        storage_options: HashMap<String, String>,
    ) -> Result<Self, DeltaTableError> {
        let base = lake.trim_end_matches('/');
        let url = Url::parse(&format!("{base}/{layer}/{name}/"))
            .map_err(|e| DeltaTableError::InvalidTableLocation(format!("{base}: {e}")))?;
        Ok(Self {
            url,
            storage_options,
            properties: BTreeMap::from([(
                "delta.deletedFileRetentionDuration".to_string(),
                TOMBSTONE_RETENTION.to_string(),
            )]),
        })
    }

    /// The table property `key` = `value` for a table created here.
    pub fn with_property(mut self, key: &str, value: &str) -> Self {
        self.properties.insert(key.to_string(), value.to_string());
        self
    }

    /// [`Self::properties`] as deltalake's create takes them.
    pub(crate) fn configuration(&self) -> impl Iterator<Item = (String, Option<String>)> + '_ {
        self.properties
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
    }

    pub(crate) fn builder(&self) -> Result<DeltaTableBuilder, DeltaTableError> {
        crate::lake::register_stores();
        if self.url.scheme() == "file"
            && let Ok(path) = self.url.to_file_path()
        {
            std::fs::create_dir_all(&path).map_err(|e| {
                DeltaTableError::InvalidTableLocation(format!("{}: {e}", path.display()))
            })?;
        }
        Ok(DeltaTableBuilder::from_url(self.url.clone())?
            .with_storage_options(self.storage_options.clone()))
    }
}
