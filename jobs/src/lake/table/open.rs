//! Opening a model's table (or creating it from the declared columns),
//! checking its columns against the model's, and what its loaded version
//! says: version, transactions, data files.

use super::cache::TableCache;
use super::cancel::Cancel;
use super::data_file::DataFile;
use super::error::TableError;
use crate::lake::TableLocation;
use arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::{Action, StructType};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;

pub struct ModelTable {
    pub name: String,
    pub(super) table: DeltaTable,
    pub(super) schema: SchemaRef,
    pub(super) partition_by: Vec<String>,
    /// Columns whose files get a parquet bloom filter (the table's key).
    pub(super) bloom: Vec<String>,
    /// Once set, [`ModelTable::commit`] refuses.
    pub(super) cancel: Cancel,
}

impl ModelTable {
    /// Opens an existing table (`None` when there is none yet), reading it
    /// with `schema` (partition columns included).
    pub async fn open(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
    ) -> Result<Option<Self>, TableError> {
        Self::open_cached(name, location, schema, None).await
    }

    /// [`ModelTable::open`], starting from the state `cache` holds for the
    /// table (only the commits since are read) and leaving the new state
    /// there.
    pub async fn open_cached(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
        cache: Option<&TableCache>,
    ) -> Result<Option<Self>, TableError> {
        let key = location.url.as_str();
        let loaded = match cache {
            Some(c) => c.load(key, || location.builder()?.build()).await,
            None => {
                let mut t = location.builder()?.build()?;
                t.load().await.map(|()| t)
            }
        };
        let table = match loaded {
            Ok(t) => t,
            Err(DeltaTableError::NotATable(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let partition_by: Vec<String> = table.snapshot()?.metadata().partition_columns().to_vec();
        let this = Self {
            name: name.to_string(),
            table,
            schema,
            partition_by,
            bloom: Vec::new(),
            cancel: Cancel::default(),
        };
        this.check_schema()?;
        Ok(Some(this))
    }

    /// The table as it was at `version` (time travel): a load publishes
    /// exactly the version its data tests judged.
    pub async fn at_version(mut self, version: i64) -> Result<Self, TableError> {
        let v = version
            .try_into()
            .map_err(|_| TableError::Schema(format!("no version {version}")))?;
        self.table.load_version(v).await?;
        Ok(self)
    }

    /// Opens the table, creating it with `schema` and `partition_by` if
    /// there is none yet.
    pub async fn open_or_create(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
        partition_by: &[String],
        comment: &str,
    ) -> Result<Self, TableError> {
        Self::open_or_create_cached(name, location, schema, partition_by, comment, None).await
    }

    /// [`ModelTable::open_or_create`] through `cache` (see
    /// [`ModelTable::open_cached`]).
    pub async fn open_or_create_cached(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
        partition_by: &[String],
        comment: &str,
        cache: Option<&TableCache>,
    ) -> Result<Self, TableError> {
        if let Some(t) = Self::open_cached(name, location, schema.clone(), cache).await? {
            return Ok(t);
        }
        let kernel: StructType = schema.as_ref().try_into_kernel()?;
        let created = location
            .builder()?
            .build()?
            .create()
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(partition_by.iter().cloned())
            .with_table_name(name)
            .with_comment(comment)
            .with_configuration(location.configuration())
            .with_save_mode(SaveMode::Ignore)
            .await;
        let table = match created {
            Ok(t) => t,
            // Created meanwhile, by another run or by this attempt whose
            // answer was lost: open what is there (its schema is checked).
            Err(e) => match Self::open_cached(name, location, schema.clone(), cache).await {
                Ok(Some(t)) => return Ok(t),
                _ => return Err(e.into()),
            },
        };
        let this = Self {
            name: name.to_string(),
            table,
            schema,
            partition_by: partition_by.to_vec(),
            bloom: Vec::new(),
            cancel: Cancel::default(),
        };
        this.check_schema()?;
        Ok(this)
    }

    fn check_schema(&self) -> Result<(), TableError> {
        let have: Vec<String> = self
            .table
            .snapshot()?
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        let want: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (mut h, mut w) = (have.clone(), want.clone());
        h.sort();
        w.sort();
        if h != w {
            return Err(TableError::Schema(format!(
                "table {} at {} has columns {have:?}, the model declares {want:?}; \
                 a changed model needs its table rebuilt (delete the folder, then run)",
                self.name,
                self.table.table_url()
            )));
        }
        Ok(())
    }

    /// Commits refuse once `cancel` is set.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Files written from now on carry a parquet bloom filter on each of
    /// `columns` (those that are in the files, not partition columns), so
    /// that [`Self::lookup`] reads only the row groups that may hold a key.
    pub fn with_bloom_filters(mut self, columns: &[String]) -> Self {
        self.bloom = columns
            .iter()
            .filter(|c| !self.partition_by.contains(c))
            .cloned()
            .collect();
        self
    }

    /// The table's partition columns.
    pub fn partition_by(&self) -> &[String] {
        &self.partition_by
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// When the table was created (epoch milliseconds), as its metadata
    /// records it: a table deleted and rebuilt under the same name has a
    /// new one.
    pub fn created_at(&self) -> Option<i64> {
        let metadata = self.table.snapshot().ok()?.metadata().clone();
        serde_json::to_value(metadata)
            .ok()?
            .get("createdTime")?
            .as_i64()
    }

    pub fn version(&self) -> i64 {
        crate::lake::state::version(&self.table)
    }

    pub fn delta(&self) -> &DeltaTable {
        &self.table
    }

    /// The version recorded for `app_id` by a `txn` action, if any.
    pub async fn txn(&self, app_id: &str) -> Result<Option<i64>, TableError> {
        Ok(self
            .table
            .snapshot()?
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await?)
    }

    /// Every data file at the loaded version.
    pub async fn files(&self) -> Result<Vec<DataFile>, TableError> {
        let log = self.table.log_store();
        let files = self
            .table
            .snapshot()?
            .snapshot()
            .file_views(log.as_ref(), None);
        let out: Vec<DataFile> = files
            .map_ok(|f| DataFile {
                path: f.path().to_string(),
                partition_values: f.partition_values_map().into_iter().collect(),
                size: f.size(),
                stats: f.stats(),
            })
            .try_collect()
            .await?;
        Ok(out)
    }

    /// When commit `version` was made (epoch milliseconds), from its
    /// `commitInfo`; `None` when the log no longer holds the commit or its
    /// writer recorded no time.
    pub async fn committed_at(&self, version: i64) -> Result<Option<i64>, TableError> {
        if version < 0 {
            return Ok(None);
        }
        let log = self.table.log_store();
        let Some(bytes) = log.read_commit_entry(version as u64).await? else {
            return Ok(None);
        };
        Ok(deltalake::logstore::get_actions(version as u64, &bytes)?
            .into_iter()
            .find_map(|a| match a {
                Action::CommitInfo(info) => info.timestamp,
                _ => None,
            }))
    }
}
