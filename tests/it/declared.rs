//! What a model declares is what its table holds, or the run says why
//! not, on small pipelines run by the binary: a query value that does not
//! fit its column's declared type fails the model and names the column
//! and the value (it was written as a null); a test's SQL naming a column
//! the model does not declare is refused when the pipeline loads, at the
//! test's line (an incremental run with no new rows reported it passing);
//! a model whose declared columns or partitioning changed is refused by a
//! plain run, which says how to rebuild it, and rebuilt by
//! `--full-refresh` in one commit, as the same table; `dag validate` runs
//! each query (and each cleaning model's `derive`) on empty inputs and
//! names the file of one that fails.

use crate::fixtures::{text, two_branches};
use polars::prelude::DataFrame;
use std::path::Path;
use std::process::{Command, Output};

fn dag(root: &Path, args: &[&str]) -> Output {
    Command::new(testkit::dag_bin())
        .current_dir(root)
        .args(args)
        .output()
        .expect("dag")
}

/// The gold table `c` opened as its model declares it now (`None`: none
/// yet, or not as declared).
async fn open_c(root: &Path) -> Option<jobs::lake::table::ModelTable> {
    let pipeline = dag::pipeline::Pipeline::load(&root.join("models/p")).expect("pipeline");
    let catalog = jobs::model::Catalog::new(pipeline.graph.node_weights().cloned());
    let settings = jobs::model::RunSettings::new(
        format!("file://{}/lake", root.display()),
        Default::default(),
        root.join("data"),
    );
    catalog.open_input("c", &settings).await.ok()
}

/// The rows of the gold table `c`, if it has a version.
async fn rows_of_c(root: &Path) -> Option<usize> {
    let table = open_c(root).await?;
    Some(table.read_all(None).await.expect("read c").height())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_that_does_not_fit_its_declared_type_fails_the_model_by_name() {
    for (sql, declared, said) in [
        // Text for an int column: 'x' is no number.
        ("SELECT id, v FROM a", "int", "'x'"),
        // A fraction for an int column: not silently cut to 2.
        (
            "SELECT id, id + 0.5 AS v FROM a",
            "int",
            "1.5 has a fractional part",
        ),
        // Too big for an int.
        ("SELECT id, id * 10000000000 AS v FROM a", "int", "Int32"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        two_branches(root, "[warehouse]\nenabled = false\n");
        std::fs::write(
            root.join("models/p/gold/c.yml"),
            format!(
                "kind: sql\nmaterialized: table\ncolumns:\n  - {{name: id, type: int, nullable: false}}\n  - {{name: v, type: {declared}}}\n"
            ),
        )
        .expect("write");
        std::fs::write(root.join("models/p/gold/c.sql"), sql).expect("write");
        let out = dag(root, &["run", "+c"]);
        let said_all = text(&out);
        assert!(!out.status.success(), "{sql}: {said_all}");
        assert!(
            said_all.contains(&format!("column `v` is declared {declared}")),
            "{sql}: {said_all}"
        );
        assert!(said_all.contains(said), "{sql}: {said_all}");
        assert_eq!(
            rows_of_c(root).await.unwrap_or(0),
            0,
            "{sql}: nothing written"
        );
    }
}

#[test]
fn a_test_whose_sql_names_an_undeclared_column_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    two_branches(root, "[warehouse]\nenabled = false\n");
    let good = "kind: sql\nmaterialized: table\ncolumns:\n  - {name: id, type: int, nullable: false}\n  - {name: v, type: string}\ntests:\n";
    for (test, line, word) in [
        ("  - expression: {sql: \"idd > 0\"}\n", 7, "idd"),
        (
            "  - expression: {sql: \"id > 0\", where: \"vv = 'x'\"}\n",
            7,
            "vv",
        ),
        ("  - row_count: {min: 1, where: \"ID2 > 0\"}\n", 7, "id2"),
    ] {
        std::fs::write(root.join("models/p/gold/c.yml"), format!("{good}{test}")).expect("write");
        for args in [&["validate"][..], &["run", "c"][..]] {
            let out = dag(root, args);
            let said = text(&out);
            assert!(!out.status.success(), "{args:?} {test}: {said}");
            assert!(
                said.contains(&format!("c.yml:{line}:")),
                "{args:?} {test}: {said}"
            );
            assert!(
                said.to_lowercase().contains(&format!("column \"{word}\"")),
                "{args:?} {test}: {said}"
            );
        }
    }
    // Declared columns, any case of keyword: loads.
    std::fs::write(
        root.join("models/p/gold/c.yml"),
        format!(
            "{good}  - expression: {{sql: \"id > 0 AND v IS NOT NULL\", where: \"v <> 'z'\"}}\n"
        ),
    )
    .expect("write");
    let out = dag(root, &["validate"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The gold table `c`: its columns (name, Delta type), partition
/// columns, version, creation time and rows.
async fn table_c(
    root: &Path,
) -> (
    Vec<(String, String)>,
    Vec<String>,
    i64,
    Option<i64>,
    DataFrame,
) {
    let url = url::Url::parse(&format!("file://{}/lake/gold/c/", root.display())).expect("url");
    let t = deltalake::DeltaTableBuilder::from_url(url)
        .expect("builder")
        .load()
        .await
        .expect("load c");
    let snapshot = t.snapshot().expect("snapshot");
    let columns = snapshot
        .schema()
        .fields()
        .map(|f| (f.name().to_string(), f.data_type().to_string()))
        .collect();
    let partitions = snapshot.metadata().partition_columns().to_vec();
    let created = snapshot.metadata().created_time();
    let version = t.version().expect("version") as i64;
    // Read as declared now: before a rebuild the table is not.
    let rows = match open_c(root).await {
        Some(c) => c
            .read_all(None)
            .await
            .expect("read c")
            .sort(["id"], Default::default())
            .expect("sort"),
        None => DataFrame::empty(),
    };
    (columns, partitions, version, created, rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_refresh_rebuilds_a_table_whose_declared_columns_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    two_branches(root, "[warehouse]\nenabled = false\n");
    let out = dag(root, &["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let (columns, _, v0, created, _) = table_c(root).await;
    assert_eq!(columns.len(), 2, "{columns:?}");
    // A new column, a retyped one and a new partitioning.
    std::fs::write(
        root.join("models/p/gold/c.yml"),
        "kind: sql\nmaterialized: table\nunique_key: [id]\npartition_by: [v]\ncolumns:\n  \
         - {name: id, type: bigint, nullable: false, tests: [not_null, unique]}\n  \
         - {name: v, type: string}\n  - {name: w, type: string, tests: [not_null]}\n",
    )
    .expect("write");
    std::fs::write(
        root.join("models/p/gold/c.sql"),
        "SELECT id, v, v || '!' AS w FROM a\n",
    )
    .expect("write");
    let out = dag(root, &["run", "c"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    for part in [
        "new columns [\"w\"]",
        "`id` is integer in the table, long in the model",
        "--full-refresh",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
    assert_eq!(table_c(root).await.2, v0, "nothing committed: {said}");
    let out = dag(root, &["run", "c", "--full-refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    let (columns, partitions, v1, rebuilt_created, rows) = table_c(root).await;
    assert_eq!(v1, v0 + 1, "one commit");
    assert_eq!(created, rebuilt_created, "the same table");
    assert_eq!(partitions, ["v"]);
    assert_eq!(
        columns,
        [
            ("id".to_string(), "long".to_string()),
            ("v".to_string(), "string".to_string()),
            ("w".to_string(), "string".to_string())
        ]
    );
    let w: Vec<Option<&str>> = rows
        .column("w")
        .expect("w")
        .str()
        .expect("str")
        .iter()
        .collect();
    assert_eq!(w, [Some("x!"), Some("y!"), Some("z!")]);
    // Then the plain run finds it current.
    let out = dag(root, &["run", "c"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(table_c(root).await.2, v1);
}

#[test]
fn validate_runs_each_query_on_empty_inputs_and_names_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    two_branches(root, "[warehouse]\nenabled = false\n");
    for (sql, said) in [
        // A column the input does not declare.
        ("SELECT id, vv AS v FROM a\n", "vv"),
        // A declared column the query does not return.
        ("SELECT id FROM a\n", "does not return declared column(s) v"),
    ] {
        std::fs::write(root.join("models/p/gold/c.sql"), sql).expect("write");
        let out = dag(root, &["validate"]);
        let text = text(&out);
        assert!(!out.status.success(), "{sql}: {text}");
        assert!(text.contains("gold/c.sql"), "{sql}: {text}");
        assert!(text.contains(said), "{sql}: {text}");
    }
    std::fs::write(root.join("models/p/gold/c.sql"), "SELECT id, v FROM a\n").expect("write");
    let out = dag(root, &["validate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));
    // A column the model does not declare: a warning (a run drops it).
    std::fs::write(
        root.join("models/p/gold/c.sql"),
        "SELECT id, v, v || '!' AS loud FROM a\n",
    )
    .expect("write");
    let out = dag(root, &["validate"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("does not declare") && said.contains("loud"),
        "{said}"
    );
}

#[test]
fn validate_runs_a_cleaning_models_derive_on_empty_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    crate::fixtures::events_pipeline(root, "derive_check", "");
    let events = root.join("models/p/silver/events.yml");
    let yml = std::fs::read_to_string(&events).expect("read");
    let with = |sql: &str| {
        yml.replace(
            "columns:\n",
            &format!(
                "derive:\n  - {{name: day, sql: \"{sql}\"}}\ncolumns:\n  - {{name: day, type: date}}\n"
            ),
        )
    };
    std::fs::write(&events, with("CAST(att AS DATE)")).expect("write");
    let out = dag(root, &["validate"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("silver/events.yml"), "{said}");
    assert!(said.contains("derive") && said.contains("att"), "{said}");
    std::fs::write(&events, with("CAST(at AS DATE)")).expect("write");
    let out = dag(root, &["validate"]);
    assert!(out.status.success(), "{}", text(&out));
}
