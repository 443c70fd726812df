//! Test support: each test gets its own PostgreSQL database, Kafka topic
//! names and S3 bucket on the real services that `scripts/services.sh`
//! starts (`scripts/test.sh` and `.ci/run` start them before `cargo test`).
//!
//! Where to find the services: `DAG_TEST_DATABASE_URL`,
//! `DAG_TEST_S3_ENDPOINT`, `DAG_TEST_KAFKA_BOOTSTRAP` from the environment,
//! else from `$DAG_SERVICES_DIR/services.env` (default
//! `/var/tmp/dag-services`). A missing service fails the test with the
//! command that starts it: a test that silently skips proves nothing.

pub mod pg_cluster;
pub mod s3_faults;

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;

/// S3 credentials of the test server (SeaweedFS, as MinIO's defaults).
pub const S3_ACCESS_KEY: &str = "minioadmin";
pub const S3_SECRET_KEY: &str = "minioadmin";

fn services_file() -> std::path::PathBuf {
    let dir = std::env::var("DAG_SERVICES_DIR").unwrap_or_else(|_| "/var/tmp/dag-services".into());
    std::path::Path::new(&dir).join("services.env")
}

/// `export KEY=VALUE` lines of services.env.
fn services_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(services_file()).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("export ")
                .unwrap_or(l.trim())
                .split_once('=')
        })
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(['"', '\'']).to_string(),
            )
        })
        .collect()
}

/// A service's address, or an error saying how to start it.
pub fn service(var: &str) -> Result<String> {
    if let Ok(v) = std::env::var(var)
        && !v.is_empty()
    {
        return Ok(v);
    }
    match services_env().remove(var) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => bail!(
            "{var} is not set and {} does not name it: start the test services with `scripts/services.sh start` (or run the tests with `scripts/test.sh`)",
            services_file().display()
        ),
    }
}

/// A short random suffix for names.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// A topic name of this test's own: `t-<label>-<random>`.
pub fn unique_topic(label: &str) -> String {
    format!("t-{label}-{}", unique_suffix())
}

/// A database of this test's own, created on the test server and dropped
/// when the test ends ([`TestDb::drop_db`], or when the value is dropped),
/// or left for inspection if the test panics. (Tests that never dropped
/// theirs left hundreds of databases, gigabytes, on a developer's server.)
pub struct TestDb {
    pub name: String,
    /// URL of the new database.
    pub url: String,
    admin_url: String,
    pub pool: sqlx::PgPool,
    dropped: bool,
}

impl TestDb {
    pub async fn create() -> Result<TestDb> {
        let admin_url = service("DAG_TEST_DATABASE_URL")?;
        let name = format!("t_{}", unique_suffix());
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .with_context(|| format!("cannot connect to the test PostgreSQL at {admin_url}"))?;
        // The name is ours (t_ + hex), so formatting it into DDL is safe.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        admin.close().await;
        let mut url = url::Url::parse(&admin_url)?;
        url.set_path(&name);
        let pool = sqlx::PgPool::connect(url.as_str()).await?;
        Ok(TestDb {
            name,
            url: url.to_string(),
            admin_url,
            pool,
            dropped: false,
        })
    }

    /// Drops the database (call at the end of a passing test).
    pub async fn drop_db(mut self) -> Result<()> {
        self.pool.close().await;
        drop_database(&self.admin_url, &self.name).await?;
        self.dropped = true;
        Ok(())
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let admin = sqlx::PgPool::connect(admin_url).await?;
    // The name is ours (t_ + hex), so formatting it into DDL is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    Ok(())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped || std::thread::panicking() {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop cannot await and may run inside a test's runtime: the drop
        // runs on a thread of its own with its own small runtime.
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(drop_database(&admin_url, &name)))
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("test database {} not dropped: {e:#}", self.name);
        }
    }
}

/// A bucket of this test's own on the test S3 server. SeaweedFS creates a
/// bucket on its first write, so nothing needs creating up front (MinIO
/// would need an explicit CreateBucket).
pub struct TestS3 {
    pub endpoint: String,
    pub bucket: String,
    pub store: Arc<dyn object_store::ObjectStore>,
}

impl TestS3 {
    pub fn create() -> Result<TestS3> {
        let endpoint = service("DAG_TEST_S3_ENDPOINT")?;
        let bucket = format!("t-{}", unique_suffix());
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_bucket_name(&bucket)
            .with_region("us-east-1")
            .with_access_key_id(S3_ACCESS_KEY)
            .with_secret_access_key(S3_SECRET_KEY)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .context("cannot build the S3 client")?;
        let s3 = TestS3 {
            endpoint,
            bucket,
            store: Arc::new(store),
        };
        // The bucket exists from here on, as it would on MinIO or AWS
        // (SeaweedFS creates it on this first write).
        let store = s3.store.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(object_store::ObjectStoreExt::put(
                store.as_ref(),
                &object_store::path::Path::from(".bucket"),
                object_store::PutPayload::from_static(b""),
            ))
            .map(|_| ())
            .map_err(anyhow::Error::from)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("bucket creation thread panicked"))?
        .context("cannot create the test bucket")?;
        Ok(s3)
    }

    /// `s3://bucket`
    pub fn url(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    /// A path in this test's bucket.
    pub fn path(&self, rel: &str) -> object_store::path::Path {
        object_store::path::Path::from(rel)
    }
}

/// The bootstrap address of the separate test broker process.
pub fn kafka_bootstrap() -> Result<String> {
    service("DAG_TEST_KAFKA_BOOTSTRAP")
}

/// The `dag` binary of this build (next to the test binary's `deps/`).
/// `cargo test --workspace` builds it along with the tests.
pub fn dag_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("dag");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build --release --workspace --all-targets` (scripts/test.sh does)",
        bin.display()
    );
    bin
}
