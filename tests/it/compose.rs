//! docker-compose.yml (for users with Docker) agrees with dag.toml's
//! defaults: same ports on the host, same credentials, and a scheduler
//! environment that the config loader accepts.

use dag::config::{self, Config};
use serde_json::Value;
use std::collections::BTreeMap;

fn compose() -> Value {
    let text = std::fs::read_to_string(crate::fixtures::repo().join("docker-compose.yml"))
        .expect("docker-compose.yml");
    serde_saphyr::from_str(&text).expect("docker-compose.yml is valid YAML")
}

fn port_of(url_or_hostport: &str) -> u16 {
    let rest = url_or_hostport.split("://").last().expect("text");
    let hostport = rest.split('/').next().expect("host");
    let port = hostport.rsplit(':').next().expect("port");
    port.parse()
        .unwrap_or_else(|_| panic!("no port in {url_or_hostport}"))
}

/// Host ports a service publishes ("9092:9092" or "127.0.0.1:9092:9092").
fn host_ports(service: &Value) -> Vec<u16> {
    service["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.as_str())
                .filter_map(|p| {
                    let parts: Vec<&str> = p.split(':').collect();
                    parts.get(parts.len().checked_sub(2)?)?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_of(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .expect("environment is a map")
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

#[test]
fn compose_agrees_with_the_defaults() {
    let doc = compose();
    let services = doc["services"].as_object().expect("services");
    for name in ["kafka", "minio", "minio-init", "postgres", "scheduler"] {
        assert!(services.contains_key(name), "service {name} is missing");
    }
    let d = Config::default();
    assert!(
        host_ports(&services["kafka"]).contains(&port_of(&d.kafka.bootstrap_servers)),
        "kafka port"
    );
    assert!(
        host_ports(&services["minio"]).contains(&port_of(&d.s3.endpoint)),
        "minio port"
    );
    assert!(
        host_ports(&services["postgres"]).contains(&port_of(&d.warehouse.url)),
        "postgres port"
    );

    // The warehouse default URL's user and database are the ones compose creates.
    let wh = url::Url::parse(&d.warehouse.url).expect("url");
    let pg = env_of(&services["postgres"]);
    assert_eq!(pg["POSTGRES_USER"], wh.username());
    assert_eq!(pg["POSTGRES_DB"], wh.path().trim_start_matches('/'));

    // The scheduler's environment is a valid configuration ...
    let sched = env_of(&services["scheduler"]);
    for key in sched.keys().filter(|k| k.starts_with("DAG_")) {
        let one: BTreeMap<String, String> = [(key.clone(), sched[key].clone())].into();
        config::load(None, &one, crate::fixtures::repo())
            .unwrap_or_else(|e| panic!("{key} is not a valid override: {e}"));
    }
    let loaded = config::load(None, &sched, crate::fixtures::repo())
        .expect("scheduler environment is valid");

    // ... that points at the compose services, with their credentials.
    let kafka_env = env_of(&services["kafka"]);
    let internal = &loaded.config.kafka.bootstrap_servers;
    assert!(
        kafka_env.values().any(|v| v.contains(internal.as_str())),
        "kafka advertises {internal} to containers"
    );
    let minio = env_of(&services["minio"]);
    assert_eq!(minio["MINIO_ROOT_USER"], sched["AWS_ACCESS_KEY_ID"]);
    assert_eq!(minio["MINIO_ROOT_PASSWORD"], sched["AWS_SECRET_ACCESS_KEY"]);
    assert!(
        services.contains_key(
            url::Url::parse(&loaded.config.s3.endpoint)
                .expect("url")
                .host_str()
                .expect("host")
        )
    );

    let bucket = loaded
        .config
        .lake
        .uri
        .strip_prefix("s3://")
        .expect("s3 lake")
        .split('/')
        .next()
        .expect("bucket");
    let init = serde_json::to_string(&services["minio-init"]).expect("json");
    assert!(
        init.contains(&format!("/{bucket}")) || init.contains(&format!(" {bucket}")),
        "minio-init creates bucket {bucket}: {init}"
    );

    let db = url::Url::parse(&loaded.warehouse_url).expect("DATABASE_URL");
    assert_eq!(db.host_str(), Some("postgres"));
    assert_eq!(db.username(), pg["POSTGRES_USER"]);
    assert_eq!(db.password(), Some(pg["POSTGRES_PASSWORD"].as_str()));
    assert_eq!(db.path().trim_start_matches('/'), pg["POSTGRES_DB"]);

    assert!(
        crate::fixtures::repo().join("Dockerfile").is_file(),
        "the scheduler image is built from the Dockerfile"
    );
}
