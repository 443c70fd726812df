//! The `dag` binary as a user runs it from the repository root.

use std::path::Path;
use std::process::{Command, Output};

fn dag(args: &[&str]) -> Output {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root");
    Command::new(env!("CARGO_BIN_EXE_dag"))
        .args(args)
        .current_dir(repo)
        .env_remove("DAG_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("dag runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn list_shows_models_in_dependency_order() {
    let out = dag(&["list", "+fact_telemetry"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let names: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "bronze_vehicle_telemetry",
            "silver_telemetry",
            "fact_telemetry"
        ]
    );
    assert!(stdout.starts_with("MODEL"), "{stdout}");
    assert!(
        stdout.contains("kafka_source(vehicle-telemetry)"),
        "{stdout}"
    );
}

#[test]
fn list_json_is_machine_readable() {
    let out = dag(&["list", "gold", "--format", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let items = v.as_array().expect("array");
    assert_eq!(items.len(), 7);
    let fines = items
        .iter()
        .find(|m| m["name"] == "fact_fines")
        .expect("fact_fines");
    assert_eq!(
        fines["inputs"],
        serde_json::json!(["fact_telemetry", "silver_fines"])
    );
    assert_eq!(fines["warehouse"], "gold.fact_fines");
}

#[test]
fn graph_draws_dot_and_mermaid() {
    let out = dag(&["graph", "--format", "dot"]);
    let (dot, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(dot.starts_with("digraph \"telematics\" {"), "{dot}");
    assert_eq!(dot.matches(" -> ").count(), 20, "every edge once");
    assert!(dot.contains("\"silver_telemetry\" -> \"fact_telemetry\";"));

    let out = dag(&["graph", "fact_fines+", "--format", "mermaid"]);
    let (mermaid, _) = text(&out);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("  fact_fines --> agg_driver_daily\n"),
        "{mermaid}"
    );
    assert!(
        !mermaid.contains("fact_telemetry -->"),
        "only the selection is drawn: {mermaid}"
    );
}

#[test]
fn ingest_and_produce_name_bad_input_and_send_nothing() {
    let out = dag(&["ingest", "bronze_vehicle_telemetri"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`bronze_vehicle_telemetri` is not a source of pipeline telematics (did you mean `bronze_vehicle_telemetry`?)"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"topic\":\"t\",\"value\":\"ok\"}\n\n{\"topic\":\"t\",\"value\":7}\n",
    )
    .expect("write");
    let out = dag(&["produce", "--file", file.to_str().expect("utf-8 path")]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "bad.jsonl:3: `value` must be a string (the raw message text) or null, found 7"
        ),
        "names file and line: {stderr}"
    );
    assert!(stderr.contains("nothing was sent"), "{stderr}");
}

#[test]
fn bad_selector_and_bad_config_exit_2_with_the_reason() {
    let out = dag(&["list", "fact_fine"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("no model named `fact_fine` (did you mean `fact_fines`?)"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_dag"))
        .args(["validate"])
        .current_dir(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("repo"),
        )
        .env("DAG_SCHEDULER__TIMEZONE", "Nowhere/Land")
        .output()
        .expect("runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("DAG_SCHEDULER__TIMEZONE: key `scheduler.timezone`"),
        "{stderr}"
    );
}

#[test]
fn run_without_bronze_fails_and_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::write(
        dir.path().join("dag.toml"),
        format!(
            "pipeline = \"telematics\"\nmodels_dir = \"{}/models\"\ndata_dir = \"{}/data\"\n[lake]\nuri = \"./lake\"\n",
            repo.display(),
            repo.display()
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dag"))
        .current_dir(dir.path())
        .args(["run", "+fact_telemetry"])
        .output()
        .expect("dag run");
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("silver_telemetry  FAILED: input `bronze_vehicle_telemetry` has no table"),
        "{stdout}"
    );
    assert!(stdout.contains("run `dag ingest` first"), "{stdout}");
    assert!(
        stdout.contains("fact_telemetry    skipped: upstream failed"),
        "{stdout}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dag"))
        .current_dir(dir.path())
        .args(["run", "no_such_model"])
        .output()
        .expect("dag run");
    assert_eq!(out.status.code(), Some(2));
}
