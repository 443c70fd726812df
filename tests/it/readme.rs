//! The README's "Your own pipeline" walk-through, run as written by a new
//! user with only the built binary on the PATH: the shell block is taken
//! from README.md itself (so the docs cannot drift), in an empty folder,
//! against a real PostgreSQL; then the warehouse holds that pipeline's
//! table with the rows the SQL selects, and nothing else.

use std::process::Command;
use testkit::TestDb;

/// The first ```sh block after `heading` in README.md.
fn shell_block(heading: &str) -> String {
    let readme = std::fs::read_to_string(crate::fixtures::repo().join("README.md")).expect("ok");
    let after = &readme[readme.find(heading).expect("heading")..];
    let start = after.find("```sh\n").expect("sh block") + 6;
    let end = start + after[start..].find("\n```").expect("block end");
    after[start..end].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_your_own_pipeline_walk_through_works_as_written() {
    let script = shell_block("## Your own pipeline");
    // The test's database stands in for the user's.
    let script: String = script
        .lines()
        .filter(|l| !l.starts_with("export DATABASE_URL="))
        .map(|l| format!("{l}\n"))
        .collect();
    let db = TestDb::create().await.expect("db");
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin_dir = testkit::dag_bin().parent().expect("ok").to_path_buf();
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&script)
        .current_dir(tmp.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").expect("ok")
            ),
        )
        .env("DATABASE_URL", &db.url)
        .env("DAG_WAREHOUSE__RETRY_TIMEOUT", "20s")
        .output()
        .expect("bash");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}\n---\n{text}");
    assert!(
        text.contains("CREATE TABLE \"gold\".\"regulars\""),
        "{text}"
    );
    assert!(
        text.contains("SELECT id, name FROM customers WHERE visits >= 2"),
        "{text}"
    );
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, name FROM gold.regulars ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .expect("rows");
    assert_eq!(rows, [("c1".to_string(), "Ada".to_string())]);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'dag')",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables");
    assert_eq!(tables, ["gold.regulars"]);
    assert!(tmp.path().join("shop/report.xml").is_file());
    db.drop_db().await.expect("drop");
}
