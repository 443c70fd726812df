//! `dag demo` with the binary alone, in an empty scratch folder (no
//! dag.toml, no models/): it writes out the pipeline it ships and runs the
//! in-process broker, the lake, PostgreSQL (the test's database as
//! DATABASE_URL), the scheduler; exit 0 and a summary whose every count
//! matches what the simulator sent.

use std::process::Command;
use testkit::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_end_to_end_and_its_counts_hold_the_invariant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TestDb::create().await.expect("db");
    let out = Command::new(testkit::dag_bin())
        .current_dir(dir.path())
        .args(["demo", "--events", "20000"])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("dag demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "using the telematics pipeline shipped in the binary",
        "invariant   holds",
        "41 passed, 0 warned, 0 failed",
        "(= gold)",
        "freshness   produce -> row in PostgreSQL: p50",
    ] {
        assert!(stdout.contains(want), "{want} not in:\n{stdout}");
    }
    assert!(!stdout.contains("  !"), "{stdout}");
    for report in ["junit.xml", "data-quality.md", "data-quality.json"] {
        assert!(
            dir.path().join("demo/report").join(report).exists(),
            "{report}"
        );
    }
    // The project it wrote is a complete one.
    let project = dir.path().join("demo/project");
    for f in [
        "dag.toml",
        "models/telematics/pipeline.yml",
        "data/drivers.csv",
    ] {
        assert!(project.join(f).is_file(), "{f}");
    }
    db.drop_db().await.expect("drop");
}
