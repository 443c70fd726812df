//! `dag init --example`: the pipelines shipped inside the binary are
//! written out as projects that load as they are, equal to the
//! repository's copy; an existing project is not overwritten without
//! `--force`; an unknown example says which there are.

use crate::fixtures::{files, text};
use std::path::Path;
use std::process::{Command, Output};

fn dag(dir: &Path, args: &[&str]) -> Output {
    Command::new(testkit::dag_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("dag")
}

#[test]
fn an_example_is_written_as_a_project_that_validates_where_it_is() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = dag(tmp.path(), &["init", "--example", "telematics"]);
    assert!(out.status.success(), "{}", text(&out));
    let project = tmp.path().join("telematics");
    assert_eq!(
        files(&project.join("models/telematics")),
        files(&crate::fixtures::repo().join("models/telematics")),
        "the shipped copy differs from the repository's"
    );
    for csv in [
        "car_colors.csv",
        "car_models.csv",
        "drivers.csv",
        "vehicles.csv",
    ] {
        assert_eq!(
            std::fs::read(project.join("data").join(csv)).expect("csv"),
            std::fs::read(crate::fixtures::repo().join("data").join(csv)).expect("repo csv"),
            "{csv}"
        );
    }
    let out = dag(&project, &["validate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("telematics"), "{}", text(&out));

    // A second init would overwrite: refused, nothing changed.
    std::fs::write(project.join("dag.toml"), "pipeline = \"telematics\"\n").expect("ok");
    let out = dag(tmp.path(), &["init", "--example", "telematics"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing was written"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(project.join("dag.toml")).expect("ok"),
        "pipeline = \"telematics\"\n"
    );
    let out = dag(tmp.path(), &["init", "--example", "telematics", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read_to_string(project.join("dag.toml"))
            .expect("ok")
            .contains("models_dir = \"models\"")
    );
}

#[test]
fn an_unknown_example_names_the_shipped_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = dag(tmp.path(), &["init", "--example", "telematic"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("no example pipeline `telematic`"), "{t}");
    assert!(t.contains("`telematics`"), "{t}");
    assert!(
        std::fs::read_dir(tmp.path()).expect("ok").next().is_none(),
        "wrote files"
    );
}

/// `dag init NAME`: a new pipeline that `dag run` runs at once, file source
/// to warehouse, with its tests; more files later are taken once each.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_pipeline_runs_from_its_first_file_to_the_warehouse() {
    let db = testkit::TestDb::create().await.expect("db");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = dag(tmp.path(), &["init", "shop"]);
    assert!(out.status.success(), "{}", text(&out));
    let root = tmp.path().join("shop");
    let run = |args: &[&str]| {
        Command::new(testkit::dag_bin())
            .current_dir(&root)
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .expect("dag")
    };
    for args in [
        &["validate"][..],
        &["compile", "customer_revenue"],
        &["migrate", "--plan"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "dag {args:?}: {}", text(&out));
    }
    let out = run(&["run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("raw_orders: 5 records of 1 new file(s)"), "{t}");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pg");
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT customer_id, orders, revenue::text FROM gold.customer_revenue ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_else(|e| panic!("{e}: {t}"));
    assert_eq!(
        rows,
        vec![
            ("c1".to_string(), 2, "17.50".to_string()),
            ("c2".to_string(), 1, "99.99".to_string())
        ],
        "{t}"
    );
    // Only this pipeline's tables in the warehouse's gold schema.
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'gold' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    assert_eq!(tables, vec![("customer_revenue".to_string(),)]);

    // A second file: its rows are added once, the first file is not read
    // again, and the warehouse follows.
    std::fs::write(
        root.join("landing/orders/orders-0002.csv"),
        "order_id,customer_id,amount,ordered_at\no5,c3,1.00,2026-12-02T08:00:00Z\n",
    )
    .expect("write");
    let out = run(&["run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("raw_orders: 1 records of 1 new file(s)"), "{t}");
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT customer_id, orders FROM gold.customer_revenue ORDER BY 1")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(
        rows,
        vec![("c1".into(), 2), ("c2".into(), 1), ("c3".into(), 1)]
    );
    // The data tests again, as CI would run them, and a load on its own
    // (nothing new: every table up to date).
    let report = root.join("report.xml");
    let out = run(&["test", "--junit", report.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    let junit = std::fs::read_to_string(&report).expect("junit");
    assert!(
        junit.contains("unique_customer_revenue_customer_id"),
        "{junit}"
    );
    let out = run(&["load"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("up to date"), "{}", text(&out));
    // An existing project is not overwritten.
    let out = dag(tmp.path(), &["init", "shop"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing was written"), "{}", text(&out));
    pool.close().await;
}

/// The same new pipeline under `dag scheduler`: its schedule fires, the
/// embedded ingester takes files as they arrive, and each one reaches the
/// warehouse with no command run by hand.
#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_takes_new_files_to_the_warehouse() {
    let db = testkit::TestDb::create().await.expect("db");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = dag(tmp.path(), &["init", "shop"]);
    assert!(out.status.success(), "{}", text(&out));
    let root = tmp.path().join("shop");
    std::fs::write(
        root.join("models/shop/pipeline.yml"),
        "description: shop\nschedules:\n  - {select: \"+customer_revenue\", cron: \"*/2 * * * * *\"}\n",
    )
    .expect("write");
    let toml = std::fs::read_to_string(root.join("dag.toml")).expect("toml")
        + "\n[ingest]\nbatch_interval = \"300ms\"\n\n[scheduler]\nmetrics_addr = \"off\"\npoll_interval = \"1s\"\n";
    std::fs::write(root.join("dag.toml"), toml).expect("write");
    let mut child = Command::new(testkit::dag_bin())
        .current_dir(&root)
        .arg("scheduler")
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("scheduler");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pg");
    let customers = async || -> Vec<(String, i64)> {
        sqlx::query_as("SELECT customer_id, orders FROM gold.customer_revenue ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap_or_default()
    };
    let wait_for = async |want: Vec<(String, i64)>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let got = customers().await;
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the warehouse holds {got:?}, not {want:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    };
    wait_for(vec![("c1".into(), 2), ("c2".into(), 1)]).await;
    // A file dropped in while it runs: written aside, then renamed.
    let tmp_file = root.join("landing/orders/.orders-0002.csv.tmp");
    std::fs::write(
        &tmp_file,
        "order_id,customer_id,amount,ordered_at\no5,c3,1.00,2026-12-02T08:00:00Z\no6,c1,3.00,2026-12-02T09:00:00Z\n",
    )
    .expect("write");
    std::fs::rename(&tmp_file, root.join("landing/orders/orders-0002.csv")).expect("rename");
    wait_for(vec![("c1".into(), 3), ("c2".into(), 1), ("c3".into(), 1)]).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    pool.close().await;
}
