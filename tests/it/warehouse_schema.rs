//! The warehouse schema comes from the models, for a pipeline that is not
//! the shipped one (a seed and a gold model, in a temporary folder), against
//! a real PostgreSQL: `dag migrate --plan` prints the DDL and changes
//! nothing; `dag run` creates only this pipeline's tables; a changed model
//! is handled by its `on_schema_change` (fail, append_new_columns,
//! sync_all_columns), each checked on the rows; the pipeline's own
//! migrations are read from its folder, applied once, and an edited one is
//! an error.

use crate::fixtures::ok;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::TestDb;

/// A user's pipeline `shop` in a temporary folder with its dag.toml.
struct Shop {
    dir: tempfile::TempDir,
}

const SEED: &str = "kind: seed
description: Customers (data/customers.csv).
file: customers.csv
unique_key: [id]
columns:
  - {name: id,   type: string, nullable: false, tests: [not_null, unique]}
  - {name: name, type: string}
  - {name: tier, type: string}
  - {name: visits, type: int}
";

const CSV: &str = "id,name,tier,visits\nc1,Ada,gold,3\nc2,Bob,silver,1\nc3,Cy,,7\n";

impl Shop {
    fn new(gold_yml: &str, gold_sql: &str) -> Shop {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Shop { dir };
        s.write("models/shop/pipeline.yml", "description: A shop.\n");
        s.write("models/shop/silver/customers.yml", SEED);
        s.write("data/customers.csv", CSV);
        s.set_gold(gold_yml, gold_sql);
        let root = s.root().to_path_buf();
        s.write(
            "dag.toml",
            &format!(
                "pipeline = \"shop\"\nmodels_dir = \"{r}/models\"\ndata_dir = \"{r}/data\"\n[lake]\nuri = \"file://{r}/lake\"\n",
                r = root.display()
            ),
        );
        s
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn set_gold(&self, yml: &str, sql: &str) {
        self.write("models/shop/gold/dim_customer.yml", yml);
        self.write("models/shop/gold/dim_customer.sql", sql);
        // A lake table whose model changed its columns is rebuilt by
        // deleting it (as `dag run` says); the warehouse table is not.
        let _ = std::fs::remove_dir_all(self.root().join("lake/gold/dim_customer"));
    }

    fn migrations(&self) -> PathBuf {
        self.root().join("models/shop/migrations")
    }

    fn dag(&self, db: &TestDb, args: &[&str]) -> Output {
        Command::new(testkit::dag_bin())
            .current_dir(self.root())
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("DAG_WAREHOUSE__ENABLED", "true")
            .env("DAG_WAREHOUSE__RETRY_TIMEOUT", "20s")
            .output()
            .expect("dag")
    }
}

/// stdout and stderr of a run that must fail.
fn fails(out: Output) -> String {
    let text = crate::fixtures::text(&out);
    assert!(!out.status.success(), "dag succeeded: {text}");
    text
}

fn gold_yml(mode: Option<&str>, columns: &str) -> String {
    let mode = mode.map_or(String::new(), |m| format!("on_schema_change: {m}\n"));
    format!(
        "kind: sql\ndescription: One row per customer.\nunique_key: [id]\nwarehouse: true\n{mode}columns:\n  - {{name: id, type: string, nullable: false, description: \"the customer's id\"}}\n{columns}"
    )
}

const V1_COLUMNS: &str = "  - {name: name, type: string}\n  - {name: visits, type: int}\n";
const V1_SQL: &str = "SELECT id, name, visits FROM customers\n";

/// Tables of the database outside the catalogs: schema.table.
async fn tables(db: &TestDb) -> BTreeSet<String> {
    sqlx::query_scalar(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables")
    .into_iter()
    .collect()
}

/// (column, type, nullable) of gold.dim_customer, in order.
async fn columns(db: &TestDb) -> Vec<(String, String, bool)> {
    sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
         FROM pg_attribute a WHERE a.attrelid = 'gold.dim_customer'::regclass
         AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .fetch_all(&db.pool)
    .await
    .expect("columns")
}

async fn rows(db: &TestDb, select: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT concat_ws('|', {select}) FROM gold.dim_customer ORDER BY id"
    )))
    .fetch_all(&db.pool)
    .await
    .expect("rows")
}

fn col(name: &str, ty: &str, nullable: bool) -> (String, String, bool) {
    (name.into(), ty.into(), nullable)
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_prints_the_ddl_and_changes_nothing_then_run_creates_only_this_pipelines_tables() {
    let db = TestDb::create().await.expect("db");
    let shop = Shop::new(&gold_yml(None, V1_COLUMNS), V1_SQL);
    let plan = ok(shop.dag(&db, &["migrate", "--plan"]));
    for want in [
        "CREATE SCHEMA IF NOT EXISTS \"gold\";",
        "CREATE TABLE \"gold\".\"dim_customer\" (\n    \"id\" text NOT NULL,\n    \"name\" text,\n    \"visits\" integer,\n    PRIMARY KEY (\"id\")\n);",
        "COMMENT ON TABLE \"gold\".\"dim_customer\" IS 'One row per customer.';",
        "COMMENT ON COLUMN \"gold\".\"dim_customer\".\"id\" IS 'the customer''s id';",
        "-- dag metadata migration V1__load_state",
    ] {
        assert!(plan.contains(want), "{want} not in:\n{plan}");
    }
    assert!(tables(&db).await.is_empty(), "--plan created tables");

    let out = ok(shop.dag(&db, &["run"]));
    assert!(
        out.contains("table gold.dim_customer: table created"),
        "{out}"
    );
    let gold: BTreeSet<String> = tables(&db)
        .await
        .into_iter()
        .filter(|t| !t.starts_with("dag."))
        .collect();
    assert_eq!(gold, BTreeSet::from(["gold.dim_customer".to_string()]));
    assert_eq!(
        rows(&db, "id, name, visits").await,
        ["c1|Ada|3", "c2|Bob|1", "c3|Cy|7"]
    );
    let again = ok(shop.dag(&db, &["migrate", "--plan"]));
    assert!(again.contains("nothing to do"), "{again}");
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_is_the_default_and_names_table_column_and_the_alter() {
    let db = TestDb::create().await.expect("db");
    let shop = Shop::new(&gold_yml(None, V1_COLUMNS), V1_SQL);
    ok(shop.dag(&db, &["run"]));
    shop.set_gold(
        &gold_yml(
            None,
            "  - {name: name, type: string}\n  - {name: visits, type: int}\n  - {name: tier, type: string}\n",
        ),
        "SELECT id, name, visits, tier FROM customers\n",
    );
    let err = fails(shop.dag(&db, &["run"]));
    for want in [
        "gold.dim_customer",
        "on_schema_change: fail",
        "column tier (text) added",
        "ALTER TABLE \"gold\".\"dim_customer\" ADD COLUMN \"tier\" text",
        "nothing was changed",
    ] {
        assert!(err.contains(want), "{want} not in:\n{err}");
    }
    assert_eq!(
        columns(&db).await,
        [
            col("id", "text", false),
            col("name", "text", true),
            col("visits", "integer", true)
        ]
    );
    assert_eq!(rows(&db, "id, name, visits").await.len(), 3);
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn append_new_columns_adds_and_fills_a_column_and_keeps_a_removed_one_nullable() {
    let db = TestDb::create().await.expect("db");
    let shop = Shop::new(
        &gold_yml(
            Some("append_new_columns"),
            "  - {name: name, type: string, nullable: false}\n  - {name: visits, type: int}\n",
        ),
        V1_SQL,
    );
    ok(shop.dag(&db, &["run"]));
    // `name` leaves the model, `tier` joins it.
    shop.set_gold(
        &gold_yml(
            Some("append_new_columns"),
            "  - {name: visits, type: int}\n  - {name: tier, type: string}\n",
        ),
        "SELECT id, visits, tier FROM customers\n",
    );
    let plan = ok(shop.dag(&db, &["migrate", "--plan"]));
    assert!(
        plan.contains("ALTER TABLE \"gold\".\"dim_customer\" ADD COLUMN \"tier\" text;")
            && plan.contains("ALTER COLUMN \"name\" DROP NOT NULL;")
            && plan.contains("DELETE FROM dag.loaded_versions WHERE model = 'dim_customer';"),
        "{plan}"
    );
    let out = ok(shop.dag(&db, &["run"]));
    assert!(out.contains("column tier (text) added"), "{out}");
    assert!(
        out.contains("(full)"),
        "the load after a new column rewrites: {out}"
    );
    assert_eq!(
        columns(&db).await,
        [
            col("id", "text", false),
            col("name", "text", true),
            col("visits", "integer", true),
            col("tier", "text", true)
        ]
    );
    // Existing rows got their tier from the full load; name kept its values.
    assert_eq!(
        rows(&db, "id, coalesce(name, '-'), coalesce(tier, '-')").await,
        ["c1|Ada|gold", "c2|Bob|silver", "c3|Cy|-"]
    );
    // A row loaded from now on has no name.
    shop.write("data/customers.csv", &format!("{CSV}c4,Dee,bronze,2\n"));
    ok(shop.dag(&db, &["run"]));
    assert_eq!(
        rows(&db, "id, coalesce(name, '-'), tier")
            .await
            .last()
            .map(String::as_str),
        Some("c4|-|bronze")
    );
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_all_columns_drops_retypes_and_adds_and_the_next_load_rewrites_every_row() {
    let db = TestDb::create().await.expect("db");
    let shop = Shop::new(&gold_yml(Some("sync_all_columns"), V1_COLUMNS), V1_SQL);
    ok(shop.dag(&db, &["run"]));
    // `name` dropped, `visits` int -> bigint (and doubled, so the rewrite
    // shows), `tier` added.
    shop.set_gold(
        &gold_yml(
            Some("sync_all_columns"),
            "  - {name: visits, type: bigint}\n  - {name: tier, type: string}\n",
        ),
        "SELECT id, CAST(visits AS BIGINT) * 2 AS visits, tier FROM customers\n",
    );
    let out = ok(shop.dag(&db, &["migrate"]));
    assert!(
        out.contains("column name (text) dropped: the model no longer has it; its values are gone"),
        "{out}"
    );
    assert!(
        out.contains("column visits changes type integer -> bigint"),
        "{out}"
    );
    assert_eq!(
        columns(&db).await,
        [
            col("id", "text", false),
            col("visits", "bigint", true),
            col("tier", "text", true)
        ]
    );
    // Cast in place until the load rewrites.
    assert_eq!(rows(&db, "id, visits").await, ["c1|3", "c2|1", "c3|7"]);
    let out = ok(shop.dag(&db, &["run"]));
    assert!(out.contains("(full)"), "{out}");
    assert_eq!(
        rows(&db, "id, visits, coalesce(tier, '-')").await,
        ["c1|6|gold", "c2|2|silver", "c3|14|-"]
    );
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_change_is_refused_in_every_mode_with_the_way_out() {
    let db = TestDb::create().await.expect("db");
    let shop = Shop::new(&gold_yml(Some("sync_all_columns"), V1_COLUMNS), V1_SQL);
    ok(shop.dag(&db, &["run"]));
    shop.set_gold(
        &gold_yml(Some("sync_all_columns"), V1_COLUMNS)
            .replace("unique_key: [id]", "unique_key: [id, name]"),
        V1_SQL,
    );
    let err = fails(shop.dag(&db, &["migrate"]));
    assert!(
        err.contains("primary key (id) differs from the model's unique_key (id, name)")
            && err.contains("DROP TABLE \"gold\".\"dim_customer\""),
        "{err}"
    );
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn pipeline_migrations_come_from_its_folder_apply_once_and_an_edited_one_is_an_error() {
    let db = TestDb::create().await.expect("db");
    let shop = Shop::new(&gold_yml(None, V1_COLUMNS), V1_SQL);
    std::fs::create_dir_all(shop.migrations()).expect("mkdir");
    let index = "CREATE INDEX dim_customer_name ON gold.dim_customer (name);\n";
    std::fs::write(shop.migrations().join("V1__name_index.sql"), index).expect("write");
    std::fs::write(shop.migrations().join("README.md"), "not a migration").expect("write");
    let plan = ok(shop.dag(&db, &["migrate", "--plan"]));
    let (create, index_at) = (
        plan.find("CREATE TABLE \"gold\".\"dim_customer\"")
            .expect("create"),
        plan.find("-- pipeline migration V1__name_index")
            .expect(&plan),
    );
    assert!(create < index_at, "the index runs after its table:\n{plan}");

    let out = ok(shop.dag(&db, &["migrate"]));
    assert!(
        out.contains("pipeline migration applied: V1__name_index"),
        "{out}"
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'gold' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("indexes");
    assert_eq!(indexes, ["dim_customer_name", "dim_customer_pkey"]);
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM dag.pipeline_shop_migrations")
        .fetch_one(&db.pool)
        .await
        .expect("history");
    assert_eq!(history, 1);
    let again = ok(shop.dag(&db, &["migrate"]));
    assert!(!again.contains("applied"), "{again}");

    // Edited after it was applied.
    std::fs::write(
        shop.migrations().join("V1__name_index.sql"),
        index.replace("(name)", "(name, id)"),
    )
    .expect("write");
    let err = fails(shop.dag(&db, &["migrate"]));
    assert!(
        err.contains("pipeline migrations") && err.contains("name_index"),
        "{err}"
    );

    // A badly named file is named by `dag validate`.
    std::fs::write(shop.migrations().join("indexes.sql"), "SELECT 1;").expect("write");
    let err = fails(shop.dag(&db, &["validate"]));
    assert!(
        err.contains("indexes.sql") && err.contains("V<version>__<name>.sql"),
        "{err}"
    );
    db.drop_db().await.expect("drop");
}
