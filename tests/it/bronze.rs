//! Bronze ingest end to end, against the separate broker process and real
//! Delta tables (local and on the S3 server): every message lands once,
//! byte for byte, through kill -9 at random points and a group member's
//! death; and, without Kafka, the table-level fencing that makes it so.

use arrow::array::{
    Array, BinaryArray, Date32Array, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use deltalake::DeltaTableBuilder;
use jobs::produce::sim::{Fleet, SimSettings, Simulator};
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A message's key and value (None: null).
type Message = (Option<Vec<u8>>, Option<Vec<u8>>);

/// One row of a bronze table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    kafka_ts: Option<i64>,
    ingested_at: i64,
    ingest_date: i32,
}

/// A project folder with a two-source pipeline on topics of its own.
struct Project {
    dir: tempfile::TempDir,
    telemetry: String,
    fines: String,
    lake: String,
    storage: HashMap<String, String>,
    env: Vec<(String, String)>,
}

impl Project {
    fn new(label: &str, s3: Option<&testkit::TestS3>, ingest: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let telemetry = testkit::unique_topic(&format!("{label}-tel"));
        let fines = testkit::unique_topic(&format!("{label}-fin"));
        let root = dir.path();
        let bronze = root.join("models/p/bronze");
        std::fs::create_dir_all(&bronze).expect("mkdir");
        for (name, topic) in [
            ("bronze_vehicle_telemetry", &telemetry),
            ("bronze_traffic_fines", &fines),
        ] {
            std::fs::write(
                bronze.join(format!("{name}.yml")),
                format!("kind: kafka_source\ntopic: {topic}\n"),
            )
            .expect("write model");
        }
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        for f in ["vehicles.csv", "drivers.csv"] {
            std::fs::copy(repo().join("data").join(f), root.join("data").join(f)).expect("copy");
        }
        let bootstrap = testkit::kafka_bootstrap().expect("broker");
        let (lake, storage, s3_section, env) = match s3 {
            Some(s3) => {
                let opts = jobs::lake::S3Options {
                    endpoint: s3.endpoint.clone(),
                    region: "us-east-1".into(),
                    allow_http: true,
                    access_key_id: Some(testkit::S3_ACCESS_KEY.into()),
                    secret_access_key: Some(testkit::S3_SECRET_KEY.into()),
                };
                (
                    format!("{}/lake", s3.url()),
                    opts.storage_options(),
                    format!("[s3]\nendpoint = \"{}\"\n", s3.endpoint),
                    vec![
                        (
                            "AWS_ACCESS_KEY_ID".to_string(),
                            testkit::S3_ACCESS_KEY.to_string(),
                        ),
                        (
                            "AWS_SECRET_ACCESS_KEY".to_string(),
                            testkit::S3_SECRET_KEY.to_string(),
                        ),
                    ],
                )
            }
            None => (
                format!("file://{}/lake", root.display()),
                HashMap::new(),
                String::new(),
                vec![],
            ),
        };
        let toml = format!(
            "pipeline = \"p\"\n[lake]\nuri = \"{lake}\"\n{s3_section}\
             [kafka]\nbootstrap_servers = \"{bootstrap}\"\ngroup_id = \"g-{}\"\nsession_timeout = \"3s\"\n\
             [ingest]\nbatch_interval = \"300ms\"\ncheckpoint_every = 5\n{ingest}\n",
            testkit::unique_suffix()
        );
        std::fs::write(root.join("dag.toml"), toml).expect("write dag.toml");
        Project {
            dir,
            telemetry,
            fines,
            lake,
            storage,
            env,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn dag(&self, args: &[&str]) -> Command {
        let mut c = Command::new(testkit::dag_bin());
        c.args(args)
            .current_dir(self.root())
            .envs(self.env.iter().cloned());
        c
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.dag(args).output().expect("run dag");
        assert_ok(args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A long-running `dag` with stdout/stderr in files under the project.
    fn spawn(&self, args: &[&str], log: &str) -> Child {
        let file = |ext: &str| {
            std::fs::File::create(self.root().join(format!("{log}.{ext}"))).expect("log file")
        };
        self.dag(args)
            .stdout(Stdio::from(file("out")))
            .stderr(Stdio::from(file("err")))
            .spawn()
            .expect("spawn dag")
    }

    fn log(&self, log: &str, ext: &str) -> String {
        std::fs::read_to_string(self.root().join(format!("{log}.{ext}"))).unwrap_or_default()
    }

    fn table_url(&self, name: &str) -> url::Url {
        url::Url::parse(&format!("{}/bronze/{name}/", self.lake)).expect("url")
    }

    async fn rows(&self, name: &str) -> Vec<Row> {
        jobs::lake::register_stores();
        let table = DeltaTableBuilder::from_url(self.table_url(name))
            .expect("url")
            .with_storage_options(self.storage.clone())
            .load()
            .await
            .expect("load bronze table");
        let batches = crate::fixtures::delta_rows(&table).await.expect("read");
        let mut rows = Vec::new();
        for b in &batches {
            // Readers may hand binary columns back as views: normalize.
            let col = |n: &str| {
                let c = b.column_by_name(n).unwrap_or_else(|| panic!("column {n}"));
                match c.data_type() {
                    DataType::BinaryView | DataType::LargeBinary => {
                        cast(c, &DataType::Binary).expect("cast")
                    }
                    _ => c.clone(),
                }
            };
            let parts = col("partition");
            let parts = parts
                .as_any()
                .downcast_ref::<Int32Array>()
                .expect("partition");
            let offs = col("offset");
            let offs = offs.as_any().downcast_ref::<Int64Array>().expect("offset");
            let keys = col("key");
            let keys = keys.as_any().downcast_ref::<BinaryArray>().expect("key");
            let vals = col("value");
            let vals = vals.as_any().downcast_ref::<BinaryArray>().expect("value");
            let kts = col("kafka_timestamp");
            let kts = kts
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("kafka_timestamp");
            let ing = col("ingested_at");
            let ing = ing
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("ingested_at");
            let dates = col("ingest_date");
            let dates = dates
                .as_any()
                .downcast_ref::<Date32Array>()
                .expect("ingest_date");
            for i in 0..b.num_rows() {
                rows.push(Row {
                    partition: parts.value(i),
                    offset: offs.value(i),
                    key: keys.is_valid(i).then(|| keys.value(i).to_vec()),
                    value: vals.is_valid(i).then(|| vals.value(i).to_vec()),
                    kafka_ts: kts.is_valid(i).then(|| kts.value(i)),
                    ingested_at: ing.value(i),
                    ingest_date: dates.value(i),
                });
            }
        }
        rows.sort();
        rows
    }

    /// Rows committed so far, cheaply (0 before the table exists).
    async fn count(&self, name: &str) -> usize {
        jobs::lake::register_stores();
        let Ok(table) = DeltaTableBuilder::from_url(self.table_url(name))
            .expect("url")
            .with_storage_options(self.storage.clone())
            .load()
            .await
        else {
            return 0;
        };
        let batches = crate::fixtures::delta_rows(&table)
            .await
            .unwrap_or_default();
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    fn log_dir(&self, name: &str) -> PathBuf {
        self.root()
            .join("lake/bronze")
            .join(name)
            .join("_delta_log")
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn assert_ok(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "dag {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No row twice, and per partition the offsets are exactly 0..n (the
/// producer is idempotent and not transactional, so the log has no gaps).
fn assert_once_and_gapless(rows: &[Row], what: &str) -> BTreeMap<i32, usize> {
    let mut per: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in rows {
        per.entry(r.partition).or_default().push(r.offset);
    }
    for (p, offs) in &per {
        let expected: Vec<i64> = (0..offs.len() as i64).collect();
        if *offs != expected {
            let dups = offs.windows(2).filter(|w| w[0] == w[1]).count();
            panic!(
                "{what}: partition {p} holds offsets that are not exactly 0..{} ({dups} duplicated, first {:?}, last {:?})",
                offs.len(),
                &offs[..offs.len().min(5)],
                offs.last()
            );
        }
    }
    per.into_iter().map(|(p, o)| (p, o.len())).collect()
}

/// Per message key, the values in the order they were produced must equal
/// the values bronze holds in offset order (a key maps to one partition).
fn assert_same_messages(rows: &[Row], produced: &[Message], what: &str) {
    assert_eq!(
        rows.len(),
        produced.len(),
        "{what}: bronze rows vs messages produced"
    );
    let mut want: BTreeMap<Option<Vec<u8>>, Vec<Option<Vec<u8>>>> = BTreeMap::new();
    for (k, v) in produced {
        want.entry(k.clone()).or_default().push(v.clone());
    }
    let mut got: BTreeMap<Option<Vec<u8>>, Vec<Option<Vec<u8>>>> = BTreeMap::new();
    for r in rows {
        // rows are sorted by (partition, offset)
        got.entry(r.key.clone()).or_default().push(r.value.clone());
    }
    assert_eq!(got.len(), want.len(), "{what}: distinct keys");
    for (k, vs) in &want {
        assert!(
            got.get(k) == Some(vs),
            "{what}: the messages of key {:?} differ from what was produced",
            k.as_ref().map(|k| String::from_utf8_lossy(k).into_owned())
        );
    }
}

/// Every kind of message the spec names, and then some: (partition, key, value).
fn every_kind(n: usize) -> Vec<(i32, Message)> {
    let valid = r#"{"event_id":"e-1","vehicle_id":"V0001","driver_id":"D0001","event_time":"2026-11-21T08:15:30.123Z","lat":45.1,"lon":9.2,"speed_kmh":88.5,"rpm":2500,"gear":3,"fuel_pct":null,"extra":{"nested":[1,2]}}"#;
    let large = format!("{{\"pad\":\"{}\"}}", "x".repeat(900 * 1024));
    let kinds: Vec<Message> = vec![
        (Some(b"V0001".to_vec()), Some(valid.as_bytes().to_vec())),
        (
            Some(b"V0002".to_vec()),
            Some(b"{\"event_id\": \"e-2\", ".to_vec()),
        ),
        (Some(b"V0003".to_vec()), Some(Vec::new())),
        (Some(b"V0004".to_vec()), Some(b" \t\r\n ".to_vec())),
        (Some(b"V0005".to_vec()), None),
        (None, Some(valid.as_bytes().to_vec())),
        (None, None),
        (Some(Vec::new()), Some(b"{}".to_vec())),
        (
            Some(vec![0, 159, 146, 150, 255]),
            Some(vec![0xff, 0xfe, 0x00, 0x80, b'{']),
        ),
        (
            Some("Zoë ☃".as_bytes().to_vec()),
            Some("{\"città\":\"Zürich ✓\"}".as_bytes().to_vec()),
        ),
        (
            Some(b"V0006".to_vec()),
            Some(b"\xef\xbb\xbf{\"a\":1}".to_vec()),
        ),
        (Some(b"V0007".to_vec()), Some(b"{\"a\":NaN}".to_vec())),
        (Some(b"V0008".to_vec()), Some(b"[1,2,3]".to_vec())),
        (Some(b"V0009".to_vec()), Some(b"null".to_vec())),
        (Some(b"V0010".to_vec()), Some(large.into_bytes())),
        (
            Some(b"V0011".to_vec()),
            Some(b"{\"a\":1}{\"b\":2}".to_vec()),
        ),
        (Some(b"V0012".to_vec()), Some(b"line1\nline2\x00".to_vec())),
    ];
    (0..n)
        .map(|i| {
            let (k, v) = kinds[i % kinds.len()].clone();
            ((i % 3) as i32, (k, v))
        })
        .collect()
}

fn jsonl_line(
    topic: &str,
    partition: i32,
    key: &Option<Vec<u8>>,
    value: &Option<Vec<u8>>,
) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut obj = serde_json::json!({"topic": topic, "partition": partition});
    match key {
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => obj["key"] = s.into(),
            Err(_) => obj["key_b64"] = b64(k).into(),
        },
        None => obj["key"] = serde_json::Value::Null,
    }
    match value {
        Some(v) => match std::str::from_utf8(v) {
            Ok(s) => obj["value"] = s.into(),
            Err(_) => obj["value_b64"] = b64(v).into(),
        },
        None => obj["value"] = serde_json::Value::Null,
    }
    obj.to_string()
}

async fn every_message_lands_once(p: &Project) {
    let messages = every_kind(170);
    let lines: Vec<String> = messages
        .iter()
        .map(|(part, (k, v))| jsonl_line(&p.telemetry, *part, k, v))
        .collect();
    let file = p.root().join("messages.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write jsonl");
    let out = p.run_ok(&["produce", "--file", "messages.jsonl"]);
    assert!(out.contains("produced 170 messages"), "{out}");

    let out = p.run_ok(&["ingest", "bronze_vehicle_telemetry", "--until-caught-up"]);
    assert!(
        out.contains("bronze_vehicle_telemetry: 170 messages ("),
        "{out}"
    );

    let rows = p.rows("bronze_vehicle_telemetry").await;
    let per = assert_once_and_gapless(&rows, "bronze_vehicle_telemetry");
    assert_eq!(rows.len(), 170);
    // Explicit partitions: the exact sequence of each partition, byte for byte.
    for part in 0..3 {
        let want: Vec<Message> = messages
            .iter()
            .filter(|(q, _)| *q == part)
            .map(|(_, m)| m.clone())
            .collect();
        let got: Vec<Message> = rows
            .iter()
            .filter(|r| r.partition == part)
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect();
        assert_eq!(got.len(), per[&part]);
        assert!(
            got == want,
            "partition {part}: bronze differs from what was produced"
        );
    }
    // Tombstones stay null, empty values stay empty.
    assert!(rows.iter().any(|r| r.value.is_none()));
    assert!(rows.iter().any(|r| r.value.as_deref() == Some(&[][..])));
    // The pinned clock stamps every row; the date partition follows it.
    let pinned = chrono::DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z").expect("time");
    assert!(
        rows.iter()
            .all(|r| r.ingested_at == pinned.timestamp_micros())
    );
    let day = (pinned.timestamp() / 86_400) as i32;
    assert!(rows.iter().all(|r| r.ingest_date == day));
    assert!(
        rows.iter().all(|r| r.kafka_ts.is_some()),
        "Kafka timestamps kept"
    );

    // A second run finds nothing new and commits nothing, without joining
    // the consumer group (whose rebalance could hold it for tens of
    // seconds).
    let out = p.run_ok(&["ingest", "bronze_vehicle_telemetry", "--until-caught-up"]);
    assert!(
        out.contains("bronze_vehicle_telemetry: 0 messages (0.0 MB) committed in 0 commits"),
        "{out}"
    );
    assert!(
        out.contains("already at the topic's high watermarks"),
        "{out}"
    );
    assert_eq!(p.rows("bronze_vehicle_telemetry").await, rows);
}

const PINNED: &str = "clock = \"2026-11-21T09:00:00Z\"";

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_message_lands_once_byte_for_byte() {
    let p = Project::new("kinds", None, &format!("{PINNED}\nbatch_rows = 50"));
    every_message_lands_once(&p).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_message_lands_once_on_s3() {
    let s3 = testkit::TestS3::create().expect("test s3");
    let p = Project::new("kinds-s3", Some(&s3), &format!("{PINNED}\nbatch_rows = 50"));
    every_message_lands_once(&p).await;
}

/// The simulator's messages for these settings, per topic.
fn simulated(p: &Project, settings: &SimSettings) -> HashMap<String, Vec<Message>> {
    let fleet = Fleet::from_data_dir(&p.root().join("data")).expect("fleet");
    let mut out: HashMap<String, Vec<_>> = HashMap::new();
    for (_, r) in Simulator::new(settings.clone(), &fleet) {
        out.entry(r.topic).or_default().push((r.key, r.value));
    }
    out
}

fn sim_settings(p: &Project, seed: u64, events: u64) -> SimSettings {
    SimSettings {
        seed,
        telemetry_topic: p.telemetry.clone(),
        fines_topic: p.fines.clone(),
        events,
        start: chrono::DateTime::parse_from_rfc3339("2026-11-21T08:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc),
        bad_share: 0.05,
        ..SimSettings::default()
    }
}

/// Starts `dag produce` of the simulator in the background; returns the
/// settings that regenerate its messages.
fn start_producer(p: &Project, seed: u64, events: u64, rate: u64) -> (SimSettings, Child) {
    let args = produce_args(seed, events, rate);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (sim_settings(p, seed, events), p.spawn(&args, "producer"))
}

fn produce_args(seed: u64, events: u64, rate: u64) -> Vec<String> {
    [
        "produce",
        "--seed",
        &seed.to_string(),
        "--events",
        &events.to_string(),
        "--rate",
        &rate.to_string(),
        "--start",
        "2026-11-21T08:00:00Z",
        "--bad-share",
        "0.05",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn assert_invariant(p: &Project, settings: &SimSettings) {
    let want = simulated(p, settings);
    for (name, topic) in [
        ("bronze_vehicle_telemetry", &p.telemetry),
        ("bronze_traffic_fines", &p.fines),
    ] {
        let rows = p.rows(name).await;
        assert_once_and_gapless(&rows, name);
        assert_same_messages(&rows, &want[topic], name);
    }
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn commits_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_points_loses_and_duplicates_nothing() {
    let p = Project::new("kill9", None, "batch_rows = 700");
    let (settings, mut producer) = start_producer(&p, 11, 24_000, 300);

    let mut rng = rand::rng();
    let log = p.log_dir("bronze_vehicle_telemetry");
    for round in 0..20 {
        let mut ingester = p.spawn(&["ingest"], &format!("ingest-{round}"));
        if round % 2 == 0 {
            // Right around a commit: while writing files, committing, or
            // just after.
            let before = commits_in(&log);
            let deadline = Instant::now() + Duration::from_secs(20);
            while commits_in(&log) == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        } else {
            std::thread::sleep(Duration::from_millis(rng.random_range(200..6000)));
        }
        kill9(&mut ingester);
    }
    let status = producer.wait().expect("producer");
    assert!(status.success(), "producer: {}", p.log("producer", "err"));
    assert!(
        commits_in(&log) > 10,
        "the ingesters committed along the way"
    );

    p.run_ok(&["ingest", "--until-caught-up"]);
    assert_invariant(&p, &settings).await;
}

/// `kafka.assignment = "all"`: an ingester takes every partition itself,
/// so one killed -9 and restarted reads again at once (no dead group
/// member to wait out), and still loses and duplicates nothing. The time
/// from each restart to its first commit is printed (measured, not
/// asserted).
#[tokio::test(flavor = "multi_thread")]
async fn with_every_partition_taken_a_restart_reads_again_at_once() {
    let mut p = Project::new("assign", None, "batch_rows = 500");
    p.env
        .push(("DAG_KAFKA__ASSIGNMENT".to_string(), "all".to_string()));
    let (settings, mut producer) = start_producer(&p, 13, 16_000, 800);
    let mut rng = rand::rng();
    let log = p.log_dir("bronze_vehicle_telemetry");
    let mut to_first_commit = Vec::new();
    for round in 0..8 {
        let before = commits_in(&log);
        let started = Instant::now();
        let mut ingester = p.spawn(&["ingest"], &format!("ingest-{round}"));
        let deadline = started + Duration::from_secs(30);
        while commits_in(&log) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            commits_in(&log) > before,
            "round {round}: no commit within 30 s of the restart: {}",
            p.log(&format!("ingest-{round}"), "err")
        );
        to_first_commit.push(started.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        kill9(&mut ingester);
    }
    let status = producer.wait().expect("producer");
    assert!(status.success(), "producer: {}", p.log("producer", "err"));
    p.run_ok(&["ingest", "--until-caught-up"]);
    assert_invariant(&p, &settings).await;
    to_first_commit.sort_by(f64::total_cmp);
    eprintln!(
        "assignment = all: restart to first commit (batch_interval 300 ms) median {:.2} s, max {:.2} s over {} restarts",
        to_first_commit[to_first_commit.len() / 2],
        to_first_commit[to_first_commit.len() - 1],
        to_first_commit.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_member_dies_and_the_other_takes_over() {
    let p = Project::new("group", None, "batch_rows = 2000");
    let (settings, mut producer) = start_producer(&p, 12, 12_000, 1000);
    let mut a = p.spawn(&["ingest"], "a");
    let mut b = p.spawn(&["ingest"], "b");
    // Both hold partitions of the telemetry topic before one dies.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(p.log("a", "err").contains("assigned") && p.log("b", "err").contains("assigned")) {
        assert!(
            Instant::now() < deadline,
            "no assignment:\n{}\n{}",
            p.log("a", "err"),
            p.log("b", "err")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    kill9(&mut a);
    assert!(
        producer.wait().expect("producer").success(),
        "{}",
        p.log("producer", "err")
    );

    // Everything produced reaches the table while only b runs.
    let want = simulated(&p, &settings);
    let total = want[&p.telemetry].len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while p.count("bronze_vehicle_telemetry").await < total {
        assert!(
            Instant::now() < deadline,
            "b did not take over: {} of {total} rows\n{}",
            p.count("bronze_vehicle_telemetry").await,
            p.log("b", "err")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // SIGTERM: b commits what it holds and exits cleanly.
    let _ = Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status();
    let status = b.wait().expect("b");
    assert!(
        status.success(),
        "b on SIGTERM: {status}\n{}",
        p.log("b", "err")
    );
    assert!(
        p.log("b", "out").contains("bronze_vehicle_telemetry:"),
        "summary printed"
    );

    p.run_ok(&["ingest", "--until-caught-up"]);
    assert_invariant(&p, &settings).await;
}

mod fencing {
    //! Two writers of one bronze table, without Kafka: what the table
    //! refuses.
    use jobs::bronze::batch::{BatchBuilder, RawMessage};
    use jobs::bronze::table::{BatchCommit, BronzeTable, TableLocation};
    use std::collections::HashMap;

    fn batch(partition: i32, offsets: std::ops::Range<i64>) -> BatchBuilder {
        let mut b = BatchBuilder::new("t");
        for o in offsets {
            b.push(
                &RawMessage {
                    partition,
                    offset: o,
                    key: None,
                    value: Some(b"v"),
                    timestamp_ms: None,
                },
                0,
            );
        }
        b
    }

    async fn open(dir: &std::path::Path) -> BronzeTable {
        let url = url::Url::from_directory_path(dir).expect("url");
        let loc = TableLocation::in_lake(url.as_str(), "bronze", "bronze_t", HashMap::new())
            .expect("loc");
        BronzeTable::open_or_create("bronze_t", "t", loc)
            .await
            .expect("open")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_zombie_cannot_append_offsets_another_writer_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = open(dir.path()).await;
        let mut b = open(dir.path()).await;
        a.claim(&[0, 1]).await.expect("claim");
        // b took partition 0 over (a has not noticed) and commits 0..=9.
        b.claim(&[0]).await.expect("claim");
        let (rows, spans) = batch(0, 0..10).finish();
        let out = b.commit(&rows, &spans).await.expect("commit");
        assert!(matches!(out, BatchCommit::Committed { .. }), "{out:?}");
        // a commits partition 1 and steps over b's commit: it learns that
        // partition 0 moved.
        let (rows, spans) = batch(1, 0..5).finish();
        match a.commit(&rows, &spans).await.expect("commit") {
            BatchCommit::Committed { moved, .. } => {
                assert_eq!(moved.get(&0), Some(&Some(9)), "partition 0 moved under a")
            }
            other => panic!("{other:?}"),
        }
        // a's stale batch of partition 0 is refused, not appended.
        let (rows, spans) = batch(0, 0..10).finish();
        let out = a.commit(&rows, &spans).await.expect("commit");
        assert_eq!(
            out,
            BatchCommit::Fenced {
                moved: [(0, Some(9))].into()
            }
        );
        // A concurrent commit from an older snapshot is caught by Delta's
        // conflict check on the txn app id, and resolves as fenced.
        let mut c = open(dir.path()).await;
        c.claim(&[0]).await.expect("claim");
        let (rows, spans) = batch(0, 10..20).finish();
        b.commit(&rows, &spans).await.expect("b commits 10..=19");
        let (rows, spans) = batch(0, 10..15).finish();
        let err = c.commit(&rows, &spans).await;
        assert!(err.is_err(), "c's commit conflicts: {err:?}");
        let resolved = c.resolve(&spans).await.expect("resolve");
        assert_eq!(
            resolved,
            Some(BatchCommit::Fenced {
                moved: [(0, Some(19))].into()
            })
        );
        let fresh = open(dir.path()).await;
        let recorded = fresh.recorded([0, 1]).await.expect("recorded");
        assert_eq!(recorded, [(0, Some(19)), (1, Some(4))].into());
        assert_eq!(
            rows_in(dir.path()).await,
            25,
            "20 of partition 0 and 5 of partition 1, none twice"
        );
    }

    /// The ingester's loop around one batch: commit, and after an error
    /// ask the table what happened, until it says.
    async fn commit_until_known(
        t: &mut BronzeTable,
        rows: &arrow::array::RecordBatch,
        spans: &std::collections::BTreeMap<i32, jobs::bronze::batch::Span>,
    ) -> BatchCommit {
        for _ in 0..5 {
            match t.commit(rows, spans).await {
                Ok(o) => return o,
                Err(_) => {
                    if let Some(o) = t.resolve(spans).await.expect("resolve") {
                        return o;
                    }
                }
            }
        }
        panic!("no outcome after 5 attempts");
    }

    async fn rows_in(dir: &std::path::Path) -> usize {
        let fresh = open(dir).await;
        let batches = crate::fixtures::delta_rows(fresh.delta())
            .await
            .expect("read");
        batches.iter().map(|b| b.num_rows()).sum()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_commit_whose_log_read_back_fails_is_not_written_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = open(dir.path()).await;
        let mut b = open(dir.path()).await;
        a.claim(&[0, 1]).await.expect("claim");
        b.claim(&[1]).await.expect("claim");
        // b takes partition 1 over meanwhile (a steps over its commit).
        let (rows, spans) = batch(1, 0..3).finish();
        b.commit(&rows, &spans).await.expect("b commits");
        // a's commit lands, then the read that follows it fails.
        a.fail_next_scan();
        let (rows, spans) = batch(0, 0..10).finish();
        match commit_until_known(&mut a, &rows, &spans).await {
            // b's commit, stepped over before the failed read, is not missed.
            BatchCommit::Committed { moved, .. } => {
                assert_eq!(moved, [(1, Some(2))].into(), "partition 1 moved under a")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(rows_in(dir.path()).await, 13, "a's 10 rows once, b's 3");
        let recorded = open(dir.path())
            .await
            .recorded([0, 1])
            .await
            .expect("recorded");
        assert_eq!(recorded, [(0, Some(9)), (1, Some(2))].into());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_claim_that_absorbs_another_writers_commit_still_refuses_its_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = open(dir.path()).await;
        let mut b = open(dir.path()).await;
        a.claim(&[0]).await.expect("claim");
        // b takes partition 0 over and commits 0..=9; a has not noticed.
        b.claim(&[0]).await.expect("claim");
        let (rows, spans) = batch(0, 0..10).finish();
        b.commit(&rows, &spans).await.expect("b commits");
        // a is assigned one more partition (cooperative rebalancing): the
        // reload takes b's commit into a's snapshot.
        a.claim(&[1]).await.expect("claim");
        // a's stale batch of partition 0 must be refused: the conflict
        // check cannot see b's commit any more.
        let (rows, spans) = batch(0, 0..5).finish();
        let out = a.commit(&rows, &spans).await.expect("commit");
        assert_eq!(
            out,
            BatchCommit::Fenced {
                moved: [(0, Some(9))].into()
            }
        );
        assert_eq!(rows_in(dir.path()).await, 10, "offsets 0..=9 once");
    }

    /// The expired-log cleanup lists the whole log (30 days of commits):
    /// a writer runs it at its first checkpoint, then once per
    /// `CLEANUP_EVERY` versions, not at every checkpoint.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_writer_cleans_expired_log_entries_at_its_first_checkpoint_not_at_every_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = url::Url::from_directory_path(dir.path()).expect("url");
        let loc = TableLocation::in_lake(url.as_str(), "bronze", "bronze_t", HashMap::new())
            .expect("loc")
            .with_property("delta.logRetentionDuration", "interval 0 seconds");
        let open = async || {
            BronzeTable::open_or_create("bronze_t", "t", loc.clone())
                .await
                .expect("open")
        };
        let log = dir.path().join("bronze/bronze_t/_delta_log");
        let commits = || {
            let mut v: Vec<String> = std::fs::read_dir(&log)
                .expect("log")
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json") && !n.starts_with('_'))
                .collect();
            v.sort();
            v
        };
        let mut next = 0;
        let mut commit_five = async |t: &mut BronzeTable| {
            t.claim(&[0]).await.expect("claim");
            for _ in 0..5 {
                let (rows, spans) = batch(0, next..next + 1).finish();
                t.commit(&rows, &spans).await.expect("commit");
                next += 1;
            }
        };
        let mut t = open().await;
        commit_five(&mut t).await;
        t.checkpoint().await.expect("checkpoint");
        assert_eq!(
            commits(),
            vec![format!("{:020}.json", 5)],
            "cleaned at the first checkpoint"
        );
        commit_five(&mut t).await;
        t.checkpoint().await.expect("checkpoint");
        assert_eq!(commits().len(), 6, "versions 5..=10 kept: {:?}", commits());
        // A new writer cleans at its first checkpoint.
        let mut t = open().await;
        commit_five(&mut t).await;
        t.checkpoint().await.expect("checkpoint");
        assert_eq!(commits(), vec![format!("{:020}.json", 15)]);
        assert_eq!(rows_in(dir.path()).await, 15, "every row readable");
    }

    /// Offsets 0..=119 of partition 0 in twelve commits of ten, all on
    /// ingest date 1970-01-01 (its `ingested_at` is 0).
    async fn twelve_small_commits(t: &mut BronzeTable) {
        t.claim(&[0]).await.expect("claim");
        for i in 0..12 {
            let (rows, spans) = batch(0, i * 10..(i + 1) * 10).finish();
            t.commit(&rows, &spans).await.expect("commit");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn checkpoints_and_compaction_keep_every_row_and_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = open(dir.path()).await;
        twelve_small_commits(&mut t).await;
        t.checkpoint().await.expect("checkpoint");
        let log = dir.path().join("bronze/bronze_t/_delta_log");
        let checkpoints = std::fs::read_dir(&log)
            .expect("log")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".checkpoint."))
            .count();
        assert_eq!(checkpoints, 1, "a checkpoint file in {}", log.display());
        let files = |t: &BronzeTable| {
            t.delta()
                .snapshot()
                .expect("snapshot")
                .log_data()
                .num_files()
        };
        assert_eq!(files(&t), 12);

        // A clock on the day after: the date is still open, so only the
        // ingester's batch files (all twelve, tiny) are compacted.
        let today = jobs::bronze::IngestClock::parse("1970-01-02T12:00:00Z").expect("clock");
        let (dates, removed) = t.compact(&today, 10, 128 << 20).await.expect("compact");
        assert_eq!(dates, vec!["1970-01-01".to_string()]);
        assert_eq!(removed, 12);
        assert_eq!(files(&t), 1, "one file after compaction");
        // Closed later, the date holds one file: nothing left to compact.
        let later = jobs::bronze::IngestClock::parse("2026-11-21T09:00:00Z").expect("clock");
        let (dates, removed) = t.compact(&later, 10, 128 << 20).await.expect("compact");
        assert_eq!((dates, removed), (Vec::<String>::new(), 0));

        // Rows and recorded offsets unchanged; the writer carries on.
        assert_eq!(
            t.recorded([0]).await.expect("recorded"),
            [(0, Some(119))].into()
        );
        let (rows, spans) = batch(0, 120..130).finish();
        assert!(matches!(
            t.commit(&rows, &spans).await.expect("commit"),
            BatchCommit::Committed { .. }
        ));
        assert_eq!(
            offsets_in(dir.path()).await,
            (0..130).collect::<Vec<i64>>(),
            "every row once"
        );
    }

    /// The offsets of every row of the table, sorted.
    async fn offsets_in(dir: &std::path::Path) -> Vec<i64> {
        let fresh = open(dir).await;
        let batches = crate::fixtures::delta_rows(fresh.delta())
            .await
            .expect("read");
        let mut offsets: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("offset")
                    .expect("offset")
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .expect("int64")
                    .values()
                    .to_vec()
            })
            .collect();
        offsets.sort();
        offsets
    }

    /// Two ingesters of one table both compact in their upkeep: when both
    /// compact the same closed date from the same snapshot, Delta's own
    /// conflict check lets both land (removes without a data change may
    /// overlap) and the date's rows would be there twice. The second must
    /// give way instead; a writer appending meanwhile is not disturbed.
    #[tokio::test(flavor = "multi_thread")]
    async fn two_compactions_of_one_date_cannot_both_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = open(dir.path()).await;
        twelve_small_commits(&mut writer).await;
        // Both compactors load the table now: the same snapshot.
        let mut b = open(dir.path()).await;
        let mut c = open(dir.path()).await;
        // The writer goes on, on a later ingest date (2023-11-14).
        let mut later = jobs::bronze::batch::BatchBuilder::new("t");
        for o in 120..130 {
            later.push(
                &jobs::bronze::batch::RawMessage {
                    partition: 0,
                    offset: o,
                    key: None,
                    value: Some(b"v"),
                    timestamp_ms: None,
                },
                1_700_000_000_000_000,
            );
        }
        let (rows, spans) = later.finish();
        writer.commit(&rows, &spans).await.expect("append");

        let clock = jobs::bronze::IngestClock::parse("2026-11-21T09:00:00Z").expect("clock");
        let (dates, removed) = b
            .compact(&clock, 10, 128 << 20)
            .await
            .expect("the first compaction lands beside the append");
        assert_eq!((dates, removed), (vec!["1970-01-01".to_string()], 12));
        let second = c
            .compact(&clock, 10, 128 << 20)
            .await
            .expect("a conflict is not an error: the date is compacted");
        assert_eq!(
            second,
            (Vec::new(), 0),
            "the second compaction of the same files conflicts and is dropped"
        );
        assert_eq!(
            offsets_in(dir.path()).await,
            (0..130).collect::<Vec<i64>>(),
            "every row once"
        );
        // The writer's next commit still lands, after its recorded offset.
        let (rows, spans) = batch(0, 130..140).finish();
        assert!(matches!(
            writer.commit(&rows, &spans).await.expect("commit"),
            BatchCommit::Committed { .. }
        ));
        assert_eq!(offsets_in(dir.path()).await, (0..140).collect::<Vec<i64>>());
    }
}
