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
    /// A rebuild's new columns or partitioning (see
    /// [`ModelTable::open_for_rebuild`]): written by its own writer and
    /// committed with the overwrite that replaces every file.
    pub(super) replacing: Option<Replacing>,
}

/// What a rebuild of a table whose declared columns changed writes with.
pub(super) struct Replacing {
    pub(super) metadata: deltalake::kernel::Metadata,
    /// The table's URL and storage options, for a writer of the new
    /// columns (deltalake's writer of a table writes the old ones).
    pub(super) url: String,
    pub(super) storage_options: std::collections::HashMap<String, String>,
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
        let Some(this) = Self::load(name, location, schema, cache).await? else {
            return Ok(None);
        };
        this.check_schema()?;
        Ok(Some(this))
    }

    /// The table as it is (`None` when there is none yet), its columns not
    /// checked against `schema`.
    async fn load(
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
            replacing: None,
        };
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
            replacing: None,
        };
        this.check_schema()?;
        Ok(this)
    }

    /// [`ModelTable::open_or_create_cached`] for a rebuild that replaces
    /// every row (a full refresh): a table whose columns, their types or
    /// its partition columns differ from the declared ones is rebuilt with
    /// the declared ones, in the same atomic commit as its rows (a Delta
    /// schema overwrite: earlier versions stay readable), instead of
    /// refusing to open.
    pub async fn open_for_rebuild(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
        partition_by: &[String],
        comment: &str,
        cache: Option<&TableCache>,
    ) -> Result<Self, TableError> {
        let Some(mut this) = Self::load(name, location, schema.clone(), cache).await? else {
            return Self::open_or_create_cached(
                name,
                location,
                schema,
                partition_by,
                comment,
                cache,
            )
            .await;
        };
        let change = match this.check_schema() {
            Ok(()) if this.partition_by == partition_by => return Ok(this),
            Ok(()) => format!(
                "partitioned by {:?}, the model declares {partition_by:?}",
                this.partition_by
            ),
            Err(TableError::Changed(change)) => change,
            Err(e) => return Err(e),
        };
        let kernel: StructType = schema.as_ref().try_into_kernel()?;
        let old = this.table.snapshot()?.metadata().clone();
        let fresh = deltalake::kernel::new_metadata(
            &kernel,
            partition_by.iter(),
            old.configuration().clone(),
        )
        .map_err(|e| TableError::Schema(format!("{name}: new metadata: {e}")))?;
        // The same table, rebuilt: its id and creation time stay, so
        // that what tracks it by them (test bases, loads) sees a new
        // version of it, not a new table.
        let kept = |e: serde_json::Error| TableError::Schema(format!("{name}: new metadata: {e}"));
        let mut v = serde_json::to_value(&fresh).map_err(kept)?;
        v["id"] = serde_json::json!(old.id());
        v["name"] = serde_json::json!(old.name());
        v["description"] = serde_json::json!(old.description());
        v["createdTime"] = serde_json::json!(old.created_time());
        let metadata = serde_json::from_value(v).map_err(kept)?;
        tracing::info!(
            table = name,
            "rebuilding with the declared columns: {change}"
        );
        this.partition_by = partition_by.to_vec();
        this.replacing = Some(Replacing {
            metadata,
            url: location.url.to_string(),
            storage_options: location.storage_options.clone(),
        });
        Ok(this)
    }

    /// Refuses a table whose columns (names or types) are not the
    /// declared ones, saying how they differ.
    fn check_schema(&self) -> Result<(), TableError> {
        let have: std::collections::BTreeMap<String, String> = self
            .table
            .snapshot()?
            .schema()
            .fields()
            .map(|f| (f.name().to_string(), f.data_type().to_string()))
            .collect();
        let declared: StructType = self.schema.as_ref().try_into_kernel()?;
        let want: std::collections::BTreeMap<String, String> = declared
            .fields()
            .map(|f| (f.name().to_string(), f.data_type().to_string()))
            .collect();
        if have == want {
            return Ok(());
        }
        let mut parts = Vec::new();
        let added: Vec<&String> = want.keys().filter(|k| !have.contains_key(*k)).collect();
        let gone: Vec<&String> = have.keys().filter(|k| !want.contains_key(*k)).collect();
        if !added.is_empty() {
            parts.push(format!("the model declares new columns {added:?}"));
        }
        if !gone.is_empty() {
            parts.push(format!(
                "the table has columns the model no longer declares {gone:?}"
            ));
        }
        for (name, ty) in &want {
            if let Some(old) = have.get(name).filter(|old| *old != ty) {
                parts.push(format!("`{name}` is {old} in the table, {ty} in the model"));
            }
        }
        Err(TableError::Changed(format!(
            "table {} at {}: {}",
            self.name,
            self.table.table_url(),
            parts.join("; ")
        )))
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
