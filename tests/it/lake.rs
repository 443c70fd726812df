//! Delta tables on local disk and on the S3 server: a commit carries rows
//! and a `txn` action (a Kafka offset) atomically, the offset reads back,
//! and two writers that both claim the same app id cannot both commit.

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

fn batch(offsets: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("offset", DataType::Int64, false),
    ]));
    let n = offsets.end - offsets.start;
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["t"; n as usize])),
            Arc::new(Int64Array::from_iter_values(offsets)),
        ],
    )
    .expect("batch")
}

/// One commit of `rows` (written as a new data file) with the offset
/// `last` of app id `t/0`, on the table's loaded version.
async fn commit_rows(
    table: &DeltaTable,
    rows: RecordBatch,
    last: i64,
) -> Result<i64, DeltaTableError> {
    let mut writer = RecordBatchWriter::for_table(table)?;
    writer.write(rows).await?;
    let adds = writer.flush().await?;
    let props =
        CommitProperties::default().with_application_transaction(Transaction::new("t/0", last));
    let op = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    let done = CommitBuilder::from(props)
        .with_actions(adds.into_iter().map(Action::Add).collect())
        .build(Some(table.snapshot()?), table.log_store(), op)
        .await?;
    Ok(done.version() as i64)
}

async fn rows(table: &DeltaTable) -> usize {
    let batches = crate::fixtures::delta_rows(table).await.expect("read");
    batches.iter().map(|b| b.num_rows()).sum()
}

async fn offsets_commit_with_rows_exactly_once(url: Url, options: HashMap<String, String>) {
    jobs::lake::register_stores();
    let open = || {
        DeltaTableBuilder::from_url(url.clone())
            .expect("url")
            .with_storage_options(options.clone())
    };
    let schema: StructType = batch(0..0)
        .schema()
        .as_ref()
        .try_into_kernel()
        .expect("schema");
    let mut table = open()
        .build()
        .expect("table")
        .create()
        .with_columns(schema.fields().cloned())
        .await
        .expect("create");
    assert_eq!(table.version(), Some(0));
    let v = commit_rows(&table, batch(0..10), 9)
        .await
        .expect("first commit");
    assert_eq!(v, 1);
    table.update_state().await.expect("reload");
    let recorded = table
        .snapshot()
        .expect("loaded")
        .transaction_version(table.log_store().as_ref(), "t/0")
        .await
        .expect("txn");
    assert_eq!(recorded, Some(9), "the offset is committed with the rows");

    // Two writers that both saw version 1 claim the next offsets of t/0.
    let (ra, rb) = tokio::join!(
        commit_rows(&table, batch(10..20), 19),
        commit_rows(&table, batch(10..20), 19)
    );
    let won = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
    assert_eq!(
        won,
        1,
        "exactly one commit of the same offsets may land: {:?} / {:?}",
        ra.err(),
        rb.err()
    );

    let reloaded = open().load().await.expect("load");
    assert_eq!(reloaded.version(), Some(2));
    let recorded = reloaded
        .snapshot()
        .expect("loaded")
        .transaction_version(reloaded.log_store().as_ref(), "t/0")
        .await
        .expect("txn");
    assert_eq!(recorded, Some(19));
    assert_eq!(rows(&reloaded).await, 20, "no row lost, none twice");
}

#[tokio::test]
async fn on_local_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Url::from_directory_path(dir.path().join("bronze_t")).expect("url");
    std::fs::create_dir_all(dir.path().join("bronze_t")).expect("mkdir");
    offsets_commit_with_rows_exactly_once(url, HashMap::new()).await;
}

#[tokio::test]
async fn on_s3() {
    let s3 = testkit::TestS3::create().expect("test s3");
    let options = jobs::lake::S3Options {
        endpoint: s3.endpoint.clone(),
        region: "us-east-1".into(),
        allow_http: true,
        access_key_id: Some(testkit::S3_ACCESS_KEY.into()),
        secret_access_key: Some(testkit::S3_SECRET_KEY.into()),
    };
    let url = Url::parse(&format!("{}/lake/bronze_t", s3.url())).expect("url");
    offsets_commit_with_rows_exactly_once(url, options.storage_options()).await;
}

/// Where a model table `<layer>/<name>` of one BIGINT column `n` lives
/// under `dir`, and its schema.
fn one_bigint_table(
    dir: &std::path::Path,
    layer: &str,
    name: &str,
) -> (jobs::lake::TableLocation, arrow::datatypes::SchemaRef) {
    use jobs::decl::{Column, ColumnType};
    let loc = jobs::lake::TableLocation::in_lake(
        &format!("file://{}", dir.display()),
        layer,
        name,
        HashMap::new(),
    )
    .expect("location");
    let columns = [Column {
        name: "n".into(),
        ty: ColumnType::BigInt,
        nullable: false,
        description: String::new(),
    }];
    (loc, jobs::lake::table::arrow_schema(&columns))
}

/// A new one-column table `layer/name` in a fresh folder (kept alive by
/// the returned guard), with what reopening it takes.
async fn new_bigint_table(
    layer: &str,
    name: &str,
) -> (
    tempfile::TempDir,
    jobs::lake::TableLocation,
    arrow::datatypes::SchemaRef,
    jobs::lake::table::ModelTable,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (loc, schema) = one_bigint_table(dir.path(), layer, name);
    let table = jobs::lake::table::ModelTable::open_or_create(name, &loc, schema.clone(), &[], "")
        .await
        .expect("table");
    (dir, loc, schema, table)
}

/// Table `t` at `loc` opened through `cache` (it must exist).
async fn open_through(
    cache: &jobs::lake::table::TableCache,
    loc: &jobs::lake::TableLocation,
    schema: &arrow::datatypes::SchemaRef,
) -> jobs::lake::table::ModelTable {
    jobs::lake::table::ModelTable::open_cached("t", loc, schema.clone(), Some(cache))
        .await
        .expect("open")
        .expect("a table")
}

/// Appends `n` for each of `values`, one commit each.
async fn append_one_row_each(
    table: &mut jobs::lake::table::ModelTable,
    values: std::ops::Range<i64>,
) {
    for i in values {
        let df = polars::df!("n" => [i]).expect("frame");
        let adds = table.write_files(&df).await.expect("write");
        table
            .commit(adds, &[], &std::collections::BTreeMap::new(), false)
            .await
            .expect("commit");
    }
}

/// A model table (silver, gold, the test results) checkpoints every
/// `CHECKPOINT_EVERY` commits, so a table a scheduler commits to every few
/// seconds opens without replaying its whole log; every row stays readable.
#[tokio::test(flavor = "multi_thread")]
async fn model_tables_checkpoint_every_few_commits() {
    use jobs::lake::table::{CHECKPOINT_EVERY, ModelTable};
    let (dir, loc, schema, mut table) = new_bigint_table("gold", "t").await;
    // One row per commit up to the checkpoint's version (the table's own
    // compactions take a version now and then).
    let mut rows = 0;
    while table.version() < CHECKPOINT_EVERY {
        append_one_row_each(&mut table, rows..rows + 1).await;
        rows += 1;
    }
    let log = dir.path().join("gold/t/_delta_log");
    assert!(
        log.join(format!("{CHECKPOINT_EVERY:020}.checkpoint.parquet"))
            .exists(),
        "no checkpoint in {}",
        log.display()
    );
    let reopened = ModelTable::open("t", &loc, schema)
        .await
        .expect("open")
        .expect("a table");
    let df = reopened.read_all(None).await.expect("read");
    assert_eq!(df.height() as i64, rows);
}

/// A writer and a cached reader that follow one table for hundreds of
/// commits have their states rebuilt from a checkpoint now and then
/// (`lake::state`: deltalake's incremental updates keep a batch per commit,
/// and every commit paid for all of them); what they hold stays what a
/// fresh open reads: the version, the live files, every row.
#[tokio::test(flavor = "multi_thread")]
async fn long_lived_table_states_stay_what_a_fresh_open_reads() {
    use jobs::lake::state::REBUILD_EVERY;
    use jobs::lake::table::{ModelTable, TableCache};
    let (_dir, loc, schema, mut table) = new_bigint_table("gold", "t").await;
    let cache = TableCache::default();
    let cached = async || open_through(&cache, &loc, &schema).await;
    let paths = async |t: &ModelTable| {
        let mut p: Vec<String> = t
            .files()
            .await
            .expect("files")
            .into_iter()
            .map(|f| f.path)
            .collect();
        p.sort();
        p
    };
    let mut rows = 0;
    while table.version() < 2 * REBUILD_EVERY + 5 {
        append_one_row_each(&mut table, rows..rows + 1).await;
        rows += 1;
        if rows % 7 == 0 {
            assert_eq!(cached().await.version(), table.version());
        }
    }
    let fresh = ModelTable::open("t", &loc, schema.clone())
        .await
        .expect("open")
        .expect("a table");
    let reader = cached().await;
    for (who, t) in [("writer", &table), ("cached reader", &reader)] {
        assert_eq!(t.version(), fresh.version(), "{who}");
        assert_eq!(paths(t).await, paths(&fresh).await, "{who}");
        let df = t.read_all(None).await.expect("read");
        assert_eq!(df.height() as i64, rows, "{who}");
    }
}

/// A table held in a catalog's cache opens again without an update when
/// no commit came since, and with one when another writer committed, even
/// after expired-log cleanup removed the commit files the held state was
/// loaded from (the next commit's file is then missing too: that must not
/// read as "nothing new").
#[tokio::test(flavor = "multi_thread")]
async fn a_cached_table_sees_every_commit_made_since_it_was_held() {
    use jobs::lake::table::{CHECKPOINT_EVERY, TableCache};
    let (dir, loc, schema, mut table) = new_bigint_table("gold", "t").await;
    append_one_row_each(&mut table, 0..1).await;
    let cache = TableCache::default();
    let cached = async || open_through(&cache, &loc, &schema).await;
    let held = cached().await.version();
    assert_eq!(held, table.version());
    assert_eq!(cached().await.version(), held, "nothing new: same version");

    append_one_row_each(&mut table, 1..2).await;
    let reader = cached().await;
    assert_eq!(
        reader.version(),
        table.version(),
        "a commit by another writer"
    );
    assert_eq!(reader.read_all(None).await.expect("read").height(), 2);

    // Past a checkpoint, then the commits before it removed as cleanup
    // removes expired ones (only ever below a checkpoint).
    let held = reader.version();
    let mut rows = 2;
    while table.version() < held + CHECKPOINT_EVERY + 2 {
        append_one_row_each(&mut table, rows..rows + 1).await;
        rows += 1;
    }
    let log = dir.path().join("gold").join("t").join("_delta_log");
    let checkpoint = std::fs::read_to_string(log.join("_last_checkpoint")).expect("checkpoint");
    let at: serde_json::Value = serde_json::from_str(&checkpoint).expect("json");
    let at = at["version"].as_i64().expect("checkpoint version");
    assert!(
        at > held + 1,
        "the checkpoint ({at}) is past the held version ({held})"
    );
    for v in 0..at {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).expect("remove commit");
    }
    let reader = cached().await;
    assert_eq!(reader.version(), table.version(), "after cleanup");
    assert_eq!(
        reader.read_all(None).await.expect("read").height() as i64,
        rows
    );
}

/// Tombstones (removed files) stay in a table's checkpoints only as long
/// as its `delta.deletedFileRetentionDuration`: dag creates its tables with
/// an hour (`TOMBSTONE_RETENTION`), not Delta's week, so a table compacted
/// every few minutes does not carry a week of them into every checkpoint;
/// a table that asks for none keeps none.
#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_keep_tombstones_only_for_the_tables_retention() {
    use jobs::lake::table::{CHECKPOINT_EVERY, ModelTable};
    let dir = tempfile::tempdir().expect("tempdir");
    let tombstones = async |name: &str, retention: Option<&str>| {
        let (mut loc, schema) = one_bigint_table(dir.path(), "gold", name);
        if let Some(r) = retention {
            loc = loc.with_property("delta.deletedFileRetentionDuration", r);
        }
        let mut table = ModelTable::open_or_create(name, &loc, schema, &[], "")
            .await
            .expect("table");
        append_one_row_each(&mut table, 0..5).await;
        assert_eq!(table.compact_small_files(2).await.expect("compact"), 5);
        let mut n = 0;
        while table.version() < 2 * CHECKPOINT_EVERY {
            append_one_row_each(&mut table, 100 + n..101 + n).await;
            n += 1;
        }
        let checkpoint = dir.path().join(format!(
            "gold/{name}/_delta_log/{:020}.checkpoint.parquet",
            2 * CHECKPOINT_EVERY
        ));
        let file = std::fs::File::open(&checkpoint).expect("checkpoint");
        let reader =
            deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .expect("parquet")
                .build()
                .expect("reader");
        let mut removes = 0;
        for b in reader {
            let b = b.expect("batch");
            let col = b.column_by_name("remove").expect("remove");
            removes += col.len() - col.null_count();
        }
        let mut delta = DeltaTableBuilder::from_url(loc.url.clone())
            .expect("url")
            .build()
            .expect("table");
        delta.load().await.expect("load");
        let config = format!(
            "{:?}",
            delta
                .snapshot()
                .expect("snapshot")
                .metadata()
                .configuration()
        );
        (removes, config)
    };
    let (kept, config) = tombstones("default", None).await;
    assert_eq!(
        kept, 5,
        "the compaction's tombstones are an hour old at most"
    );
    assert!(config.contains("interval 1 hours"), "{config}");
    let (kept, _) = tombstones("none", Some("interval 0 seconds")).await;
    assert_eq!(kept, 0, "expired tombstones were checkpointed");
}

/// Compaction of a small-append table (the test results): its small files
/// become one, every row stays exactly once, and of two compactions of the
/// same files started from the same version only the first lands (without
/// the txn guard both would, and every row would be there twice).
#[tokio::test(flavor = "multi_thread")]
async fn small_file_compaction_keeps_every_row_once_and_two_cannot_both_land() {
    use jobs::lake::table::ModelTable;
    let (_dir, loc, schema, mut table) = new_bigint_table("_dag", "r").await;
    // Fewer commits than a table's own compaction waits for.
    append_one_row_each(&mut table, 0..15).await;
    let open = || async {
        ModelTable::open("r", &loc, schema.clone())
            .await
            .expect("open")
            .expect("a table")
    };
    let (mut first, mut second) = (open().await, open().await);
    // Not enough small files yet: nothing happens.
    assert_eq!(first.compact_small_files(16).await.expect("compact"), 0);
    assert_eq!(first.compact_small_files(10).await.expect("compact"), 15);
    let lost = second.compact_small_files(10).await;
    assert!(lost.is_err(), "the second compaction landed too: {lost:?}");
    let now = open().await;
    let files = now.files().await.expect("files");
    assert_eq!(files.len(), 1);
    assert_eq!(values_in(&now, &files).await, (0..15).collect::<Vec<_>>());
}

/// The values of `n` in `files` of `table`, sorted.
async fn values_in(
    table: &jobs::lake::table::ModelTable,
    files: &[jobs::lake::table::DataFile],
) -> Vec<i64> {
    let df = table.read(files, None).await.expect("read");
    let mut n: Vec<i64> = df
        .column("n")
        .expect("n")
        .i64()
        .expect("i64")
        .into_no_null_iter()
        .collect();
    n.sort_unstable();
    n
}

/// A model table that commits often (continuous mode) compacts its small
/// files by itself every `COMPACT_EVERY` commits; a reader that keeps the
/// live files among those added since its base (a data test's scope, the
/// warehouse load) still finds every row added since, the compacted ones
/// too: without `Changes::rewritten` the rows a compaction moved were
/// lost to it.
#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_model_table_still_shows_every_new_row_to_its_readers() {
    use jobs::lake::table::COMPACT_EVERY;
    let (_dir, _, _, mut table) = new_bigint_table("gold", "t").await;
    append_one_row_each(&mut table, 0..5).await;
    let base = table.version();
    let last = COMPACT_EVERY + 5;
    append_one_row_each(&mut table, 5..last).await;
    // COMPACT_EVERY one-row commits, then the compaction's own, then 5.
    assert_eq!(table.version(), COMPACT_EVERY + 1 + 5);
    // The compacted file, the file of the commit that triggered the
    // compaction (left as it is, for the readers of that commit) and 5.
    let live = table.files().await.expect("files");
    assert_eq!(live.len(), 7, "{live:?}");
    // A reader of that commit finds its row in its own file, not in the
    // rewrite of older files.
    let triggering = table.changes(COMPACT_EVERY - 1).await.expect("changes");
    assert!(triggering.rewritten.is_empty(), "{triggering:?}");
    assert_eq!(
        values_in(
            &table,
            &triggering
                .live_new(&live)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        )
        .await,
        (COMPACT_EVERY - 1..last).collect::<Vec<_>>()
    );
    let changes = table.changes(base).await.expect("changes");
    assert!(
        !changes.rewritten.is_empty(),
        "no rewrite seen: {changes:?}"
    );
    // Every row added since the base is in the files a reader keeps (the
    // compacted file brings rows from before the base too).
    let kept: Vec<_> = changes.live_new(&live).into_iter().cloned().collect();
    let seen = values_in(&table, &kept).await;
    for n in 5..last {
        assert!(seen.contains(&n), "row {n} lost to the reader: {seen:?}");
    }
    // Only the added files that are still live would have lost them.
    let added_live: Vec<_> = live
        .iter()
        .filter(|f| changes.added.iter().any(|a| a.path == f.path))
        .cloned()
        .collect();
    assert!(values_in(&table, &added_live).await.len() < (last - 5) as usize);
    // A span that starts after the compaction sees no rewrite; one whose
    // files the compaction did not take sees none either.
    let after = table.changes(COMPACT_EVERY + 1).await.expect("changes");
    assert!(after.rewritten.is_empty());
    assert_eq!(
        values_in(&table, &after.added).await,
        (COMPACT_EVERY..last).collect::<Vec<_>>()
    );
    // Every row once in the table.
    assert_eq!(
        values_in(&table, &live).await,
        (0..last).collect::<Vec<_>>()
    );
}

/// A model table's key column carries a parquet bloom filter in every file
/// it writes, and `lookup` finds exactly the keys the table holds (each as
/// often as it is held), in files with and without filters.
#[tokio::test(flavor = "multi_thread")]
async fn key_lookups_go_through_bloom_filters_and_find_exactly_the_held_keys() {
    use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
    use jobs::decl::{Column, ColumnType};
    use jobs::lake::table::{ModelTable, arrow_schema};
    let dir = tempfile::tempdir().expect("tempdir");
    let loc = jobs::lake::TableLocation::in_lake(
        &format!("file://{}", dir.path().display()),
        "silver",
        "k",
        HashMap::new(),
    )
    .expect("location");
    let column = |name: &str, ty| Column {
        name: name.into(),
        ty,
        nullable: false,
        description: String::new(),
    };
    let columns = [
        column("id", ColumnType::String),
        column("n", ColumnType::BigInt),
    ];
    let mut table = ModelTable::open_or_create("k", &loc, arrow_schema(&columns), &[], "")
        .await
        .expect("table");
    let open = || async {
        ModelTable::open("k", &loc, arrow_schema(&columns))
            .await
            .expect("open")
            .expect("table")
    };
    // One file without a filter (as written before filters existed), then
    // two with.
    for (part, bloom) in [(0i64, false), (1, true), (2, true)] {
        let ids: Vec<String> = (part * 50_000..(part + 1) * 50_000)
            .map(|i| format!("k{i}"))
            .collect();
        let ns: Vec<i64> = (0..50_000).collect();
        let df = polars::df!("id" => ids, "n" => ns).expect("frame");
        let mut writer = open().await;
        if bloom {
            writer = writer.with_bloom_filters(&["id".to_string()]);
        }
        let adds = writer.write_files(&df).await.expect("write");
        table = open().await;
        table
            .commit(adds, &[], &std::collections::BTreeMap::new(), false)
            .await
            .expect("commit");
    }
    let files = table.files().await.expect("files");
    assert_eq!(files.len(), 3);
    let mut with_filter = 0;
    for f in &files {
        let file = std::fs::File::open(dir.path().join("silver/k").join(&f.path)).expect("file");
        let reader = SerializedFileReader::new(file).expect("parquet");
        let rg = reader.metadata().row_group(0);
        let id = (0..rg.num_columns())
            .find(|&i| rg.column(i).column_path().string() == "id")
            .expect("id column");
        if rg.column(id).bloom_filter_offset().is_some() {
            with_filter += 1;
        }
    }
    assert_eq!(
        with_filter, 2,
        "the two files written with filters carry one"
    );
    let keys = ["k7", "k60000", "k149999", "nope", "k150000", "k7"];
    let found = table.lookup(&files, "id", &keys).await.expect("lookup");
    let mut found: Vec<String> = found
        .column("id")
        .expect("id")
        .str()
        .expect("strings")
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    found.sort();
    assert_eq!(found, ["k149999", "k60000", "k7"]);
    let none = table
        .lookup(&files, "id", &["x1", "x2", "k-1"])
        .await
        .expect("lookup");
    assert_eq!(none.height(), 0);
}
