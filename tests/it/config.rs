//! dag.toml validation: every error names the key and where the value came
//! from.

use dag::config::{self, Loaded};
use std::collections::BTreeMap;
use std::path::Path;

/// A project folder with models/telematics and data, and a dag.toml.
fn project(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("models/telematics")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("dag.toml"), toml).expect("write");
    dir
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(dir: &Path, vars: &[(&str, &str)]) -> Result<Loaded, String> {
    config::load(None, &env(vars), dir).map_err(|e| e.to_string())
}

#[test]
fn shipped_dag_toml_equals_the_defaults() {
    let repo = crate::fixtures::repo();
    let loaded = config::load(Some(&repo.join("dag.toml")), &BTreeMap::new(), repo).expect("valid");
    assert_eq!(
        loaded.config,
        config::Config::default(),
        "dag.toml documents the built-in defaults"
    );
}

#[test]
fn no_file_means_defaults() {
    let dir = project("");
    std::fs::remove_file(dir.path().join("dag.toml")).expect("rm");
    let loaded = load(dir.path(), &[]).expect("valid");
    assert!(loaded.file.is_none());
    assert_eq!(loaded.config, config::Config::default());
    assert_eq!(
        loaded.lake_url(),
        format!("file://{}/lake", dir.path().display())
    );
}

#[test]
fn unknown_key_is_named_with_a_suggestion() {
    let dir = project("[kafka]\nbootstrap_server = \"x:1\"\n");
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(
        err.ends_with(
            "dag.toml:2: unknown key `kafka.bootstrap_server` (did you mean `bootstrap_servers`?)"
        ),
        "{err}"
    );
}

#[test]
fn unknown_section_lists_the_known_keys() {
    let dir = project("[warehose]\nurl = \"postgres://x/y\"\n");
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(
        err.contains("unknown key `warehose` (did you mean `warehouse`?)"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_named() {
    let dir = project("[scheduler]\nmax_concurrency = \"four\"\n");
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.ends_with("dag.toml:2: key `scheduler.max_concurrency` must be an integer, found a string (\"four\")"), "{err}");
}

#[test]
fn env_overrides_the_file_and_is_named_in_errors() {
    let dir = project("[kafka]\nbootstrap_servers = \"file:9092\"\n");
    let loaded = load(
        dir.path(),
        &[
            ("DAG_KAFKA__BOOTSTRAP_SERVERS", "env:19092"),
            ("DAG_SCHEDULER__MAX_CONCURRENCY", "8"),
        ],
    )
    .expect("valid");
    assert_eq!(loaded.config.kafka.bootstrap_servers, "env:19092");
    assert_eq!(loaded.config.scheduler.max_concurrency, 8);

    let err = load(dir.path(), &[("DAG_SCHEDULER__MAX_CONCURRENCY", "lots")]).unwrap_err();
    assert_eq!(
        err,
        "environment variable DAG_SCHEDULER__MAX_CONCURRENCY: key `scheduler.max_concurrency` must be an integer, found a string (\"lots\")"
    );
    let err = load(dir.path(), &[("DAG_KAFKA__BOOTSTRAP", "x:1")]).unwrap_err();
    assert!(
        err.starts_with("environment variable DAG_KAFKA__BOOTSTRAP: unknown key `kafka.bootstrap`"),
        "{err}"
    );
}

#[test]
fn numeric_env_value_for_a_text_key_stays_text() {
    let dir = project("");
    let loaded = load(dir.path(), &[("DAG_KAFKA__GROUP_ID", "42")]).expect("valid");
    assert_eq!(loaded.config.kafka.group_id, "42");
}

#[test]
fn bad_values_name_their_key() {
    let cases: [(&str, &str); 6] = [
        (
            "[scheduler]\ntimezone = \"Mars/Olympus\"\n",
            "key `scheduler.timezone`: `Mars/Olympus` is not an IANA time zone",
        ),
        ("models_dir = \"nowhere\"\n", "key `models_dir`: "),
        (
            "pipeline = \"nope\"\n",
            "key `pipeline`: no pipeline folder",
        ),
        (
            "[lake]\nuri = \"/no/such/dir/lake\"\n",
            "key `lake.uri`: /no/such/dir/lake does not exist",
        ),
        (
            "[kafka]\nbootstrap_servers = \"localhost\"\n",
            "key `kafka.bootstrap_servers`: `localhost` must be host:port",
        ),
        (
            "[lake]\nuri = \"s3://\"\n",
            "key `lake.uri`: `s3://` needs a bucket",
        ),
    ];
    for (toml, expected) in cases {
        let dir = project(toml);
        let err = load(dir.path(), &[]).unwrap_err();
        assert!(err.contains(expected), "for {toml:?}: {err}");
        assert!(err.contains("dag.toml"), "names the file: {err}");
    }
}

#[test]
fn secrets_only_from_the_environment() {
    let dir = project("[warehouse]\nurl = \"postgres://dag:hunter2@db:5432/dag\"\n");
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(
        err.contains("key `warehouse.url`: holds a password"),
        "{err}"
    );

    let dir = project("[s3]\nsecret_access_key = \"x\"\n");
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(
        err.contains(
            "unknown key `s3.secret_access_key` (secrets are read only from the environment"
        ),
        "{err}"
    );

    let dir = project("");
    let loaded = load(dir.path(), &[("DATABASE_URL", "postgres://u:pw@h:1/d")]).expect("valid");
    assert_eq!(loaded.warehouse_url, "postgres://u:pw@h:1/d");
    let loaded = load(dir.path(), &[("PGPASSWORD", "s3cret")]).expect("valid");
    assert_eq!(
        loaded.warehouse_url,
        "postgres://dag:s3cret@localhost:5432/dag"
    );
}

#[test]
fn malformed_toml_names_file_and_line() {
    let dir = project("[kafka\nbootstrap_servers = 1\n");
    let err = load(dir.path(), &[]).unwrap_err();
    assert!(err.contains("dag.toml: malformed TOML"), "{err}");
    assert!(err.contains("line 1"), "{err}");
}
