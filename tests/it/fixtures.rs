//! Small pipelines written to temporary folders, for loader tests.

use std::path::{Path, PathBuf};
use std::process::Output;

pub struct TempPipeline {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

/// Writes `files` (relative path, content) under a fresh pipeline folder.
pub fn pipeline(files: &[(&str, &str)]) -> TempPipeline {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("p");
    std::fs::create_dir_all(&root).expect("mkdir");
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
    TempPipeline { _dir: dir, root }
}

/// The repository's root (where Cargo.toml of the workspace is).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Copies the folder `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

pub const BRONZE: &str = "kind: kafka_source\ntopic: t\n";

/// A gold sql model file pair with one column `k`.
pub fn gold(name: &str, sql: &str) -> [(String, String); 2] {
    [
        (
            format!("gold/{name}.yml"),
            "kind: sql\ncolumns:\n  - {name: k, type: string}\n".to_string(),
        ),
        (format!("gold/{name}.sql"), sql.to_string()),
    ]
}

pub fn owned(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// stdout of a `dag` command that must succeed (else both streams in the
/// panic).
pub fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "dag failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// stdout and stderr of a command, for messages and assertions.
pub fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The values of `column`, as text ("<null>" for a null), sorted.
pub fn strings(df: &polars::prelude::DataFrame, column: &str) -> Vec<String> {
    use polars::prelude::DataType;
    let mut v: Vec<String> = df
        .column(column)
        .unwrap_or_else(|e| panic!("{column}: {e}"))
        .cast(&DataType::String)
        .expect("cast")
        .str()
        .expect("str")
        .iter()
        .map(|s| s.unwrap_or("<null>").to_string())
        .collect();
    v.sort();
    v
}

/// Every file under `dir`, relative, with its bytes.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("ok").display().to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// A pipeline `p` of two seeds (`a`: ids 1-3 with v x, y, z; `b`: id 1)
/// and a gold table with a warehouse table over each (`c` over a, `d` over
/// b); ten tests, one of which warns (a's `z` is not an accepted value of
/// c's v). dag.toml holds the lake under `root` and `toml` after it.
pub fn two_branches(root: &Path, toml: &str) {
    const SEED: &str = "kind: seed\nfile: {f}.csv\nunique_key: [id]\ncolumns:\n  - {name: id, type: int, nullable: false, tests: [not_null, unique]}\n  - {name: v, type: string}\n";
    const GOLD: &str = "kind: sql\nmaterialized: table\nunique_key: [id]\nwarehouse: true\ncolumns:\n  - {name: id, type: int, nullable: false, tests: [not_null, unique]}\n  - {name: v, type: string, tests: [{accepted_values: {values: [x, y], severity: warn}}]}\n";
    for d in ["models/p/silver", "models/p/gold", "data"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    for (seed, model) in [("a", "c"), ("b", "d")] {
        std::fs::write(
            root.join(format!("models/p/silver/{seed}.yml")),
            SEED.replace("{f}", seed),
        )
        .expect("write");
        std::fs::write(root.join(format!("models/p/gold/{model}.yml")), GOLD).expect("write");
        std::fs::write(
            root.join(format!("models/p/gold/{model}.sql")),
            format!("SELECT id, v FROM {seed}\n"),
        )
        .expect("write");
    }
    std::fs::write(
        root.join("models/p/pipeline.yml"),
        "description: two branches\n",
    )
    .expect("write");
    std::fs::write(root.join("data/a.csv"), "id,v\n1,x\n2,y\n3,z\n").expect("write");
    std::fs::write(root.join("data/b.csv"), "id,v\n1,x\n").expect("write");
    std::fs::write(
        root.join("dag.toml"),
        format!(
            "pipeline = \"p\"\n[lake]\nuri = \"file://{}/lake\"\n{toml}",
            root.display()
        ),
    )
    .expect("write");
}

const EVENTS_CLEAN: &str = "kind: clean
format: json
input: raw_events
quarantine: events_quarantine
fields:
  - {name: id, type: string, required: true}
  - {name: at, type: timestamp, required: true}
dedupe:
  key: [id]
columns:
  - {name: id, type: string, nullable: false, tests: [not_null, unique]}
  - {name: at, type: timestamp, nullable: false}
tests:
  - freshness: {column: at, max_lag: 1h, severity: warn}
";

/// A Kafka pipeline on `topic`: `raw_events` (bronze) -> `events` (clean
/// JSON `{id, at}`, rejects in `events_quarantine`, a warn-severity
/// freshness test of 1h on `at`) -> `latest` (gold, joined with the seed
/// `tags`, loaded into the warehouse), with dag.toml pointing at the test broker and `toml` added.
pub fn events_pipeline(root: &Path, topic: &str, toml: &str) {
    for d in ["models/p/bronze", "models/p/silver", "models/p/gold"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let write = |path: &str, text: &str| std::fs::write(root.join(path), text).expect("write");
    write("models/p/pipeline.yml", "description: events\n");
    write(
        "models/p/bronze/raw_events.yml",
        &format!("kind: kafka_source\ntopic: {topic}\n"),
    );
    write("models/p/silver/events.yml", EVENTS_CLEAN);
    write(
        "models/p/gold/latest.yml",
        "kind: sql\nmaterialized: table\nunique_key: [id]\nwarehouse: true\ncolumns:\n  - {name: id, type: string, nullable: false}\n  - {name: at, type: timestamp, nullable: false}\n",
    );
    // A seed beside the stream: a run woken by a bronze commit needs it too.
    std::fs::create_dir_all(root.join("data")).expect("mkdir");
    write(
        "models/p/silver/tags.yml",
        "kind: seed\nfile: tags.csv\nunique_key: [id]\ncolumns:\n  - {name: id, type: string, nullable: false}\n  - {name: tag, type: string}\n",
    );
    write("data/tags.csv", "id,tag\ne1,first\n");
    write(
        "models/p/gold/latest.sql",
        "SELECT e.id, e.at FROM events e LEFT JOIN tags t ON e.id = t.id\n",
    );
    write(
        "dag.toml",
        &format!(
            "pipeline = \"p\"\n[lake]\nuri = \"file://{}/lake\"\n\
             [kafka]\nbootstrap_servers = \"{}\"\ngroup_id = \"g-{}\"\nsession_timeout = \"3s\"\n\
             [ingest]\nbatch_interval = \"300ms\"\n\
             [warehouse]\nenabled = true\n{toml}",
            root.display(),
            testkit::kafka_bootstrap().expect("broker"),
            testkit::unique_suffix()
        ),
    );
}

/// Every row of the Delta table's loaded version, read file by file with
/// the parquet reader, in the table's column order: the partition columns
/// (which Delta keeps out of the files) come from each file's values.
#[allow(deprecated)] // ParquetObjectReader, as jobs/src/lake/table/read.rs
pub async fn delta_rows(
    table: &deltalake::DeltaTable,
) -> Result<Vec<arrow::array::RecordBatch>, deltalake::DeltaTableError> {
    use arrow::array::{ArrayRef, RecordBatch, StringArray};
    use deltalake::parquet::arrow::async_reader::{
        ParquetObjectReader, ParquetRecordBatchStreamBuilder,
    };
    use futures::TryStreamExt;
    let log = table.log_store();
    let snapshot = table.snapshot()?.snapshot();
    let schema = snapshot.arrow_schema();
    let views: Vec<_> = snapshot
        .file_views(log.as_ref(), None)
        .try_collect()
        .await?;
    let store = log.object_store(None);
    let mut out = Vec::new();
    for f in views {
        let path = deltalake::Path::from_url_path(f.path().as_ref())?;
        let reader = ParquetObjectReader::new(store.clone(), path).with_file_size(f.size() as u64);
        let stream = ParquetRecordBatchStreamBuilder::new(reader)
            .await?
            .build()?;
        let partitions = f.partition_values_map();
        for b in stream.try_collect::<Vec<_>>().await? {
            let mut columns: Vec<ArrayRef> = Vec::new();
            for field in schema.fields() {
                let column = match b.column_by_name(field.name()) {
                    Some(c) => c.clone(),
                    None => {
                        let value = partitions.get(field.name()).cloned().flatten();
                        let text: ArrayRef =
                            std::sync::Arc::new(StringArray::from(vec![value; b.num_rows()]));
                        arrow::compute::cast(&text, field.data_type())?
                    }
                };
                columns.push(column);
            }
            let fields: Vec<_> = schema
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| arrow::datatypes::Field::new(f.name(), c.data_type().clone(), true))
                .collect();
            out.push(RecordBatch::try_new(
                std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
                columns,
            )?);
        }
    }
    Ok(out)
}

/// The data test results table of the lake at `lake_uri`, `columns` (all
/// when `None`).
pub async fn results_table(lake_uri: &str, columns: Option<&[&str]>) -> polars::prelude::DataFrame {
    use jobs::datatest::results;
    use jobs::lake::TableLocation;
    use jobs::lake::table::{ModelTable, arrow_schema};
    let loc = TableLocation::in_lake(
        lake_uri,
        results::LAYER,
        results::TABLE,
        std::collections::HashMap::new(),
    )
    .expect("location");
    ModelTable::open(results::TABLE, &loc, arrow_schema(&results::columns()))
        .await
        .expect("open")
        .expect("a results table")
        .read_all(columns)
        .await
        .expect("read")
}
