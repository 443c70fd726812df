//! The object store misbehaving under the pipeline. A fault-injecting
//! proxy (`testkit::s3_faults`) sits between `dag` and the S3 server and,
//! for a seeded share of the requests it picks, answers `503 SlowDown`
//! without forwarding, forwards after a pause, or forwards and then closes
//! the connection without an answer (the write lands, its answer is lost:
//! for a Delta commit, the client retries its create-if-absent PUT and is
//! told the version exists, although the commit that holds it is its own).
//!
//! What is proven, against the real broker, S3 server and binary:
//! - the proxy forwards signed requests untouched and each fault does what
//!   it says (checked with object_store directly);
//! - bronze ingest through lost and failed `_delta_log` writes, failed and
//!   delayed reads: after `--until-caught-up` runs, every (partition,
//!   offset) the broker holds is in the bronze table exactly once, with the
//!   message produced there;
//! - `dag run` (silver and gold) retried through the same faults until it
//!   succeeds leaves every table equal, row for row, to runs of the same
//!   bronze without faults; a further run without faults writes nothing.
//!   (A model whose commit landed with its answer lost fails that run with
//!   Delta's "Concurrent transaction failed" (its own commit is the
//!   conflict), or "Protocol changed" for a table's first commit; the next
//!   run finds it up to date and tests its rows: runs are retried, as the
//!   scheduler does.)
//!
//! Each test asserts that every kind of fault really happened.

use arrow::array::{Array, BinaryArray, Int32Array, Int64Array};
use arrow::compute::cast;
use chrono::{DateTime, TimeDelta, Utc};
use deltalake::DeltaTableBuilder;
use futures::TryStreamExt;
use jobs::bronze::batch::{BatchBuilder, RawMessage};
use jobs::bronze::table::{BatchCommit, BronzeTable, TableLocation};
use jobs::decl::{Layer, Source};
use jobs::model::{Catalog, RunSettings};
use jobs::produce::sim::{Fleet, Kind, SimSettings, Simulator};
use polars::prelude::{
    DataFrame, DataType, IntoLazy, SortMultipleOptions, UniqueKeepStrategy, col,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use testkit::TestS3;
use testkit::s3_faults::{ActionKind, FaultCounts, FaultEvent, FaultProxy, Method, Rule};

/// Storage options that reach the S3 server directly (no faults): how the
/// tests write inputs and read results.
pub(crate) fn direct_storage(s3: &TestS3) -> HashMap<String, String> {
    jobs::lake::S3Options {
        endpoint: s3.endpoint.clone(),
        region: "us-east-1".into(),
        allow_http: true,
        access_key_id: Some(testkit::S3_ACCESS_KEY.into()),
        secret_access_key: Some(testkit::S3_SECRET_KEY.into()),
    }
    .storage_options()
}

fn dag(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(testkit::dag_bin());
    c.current_dir(root)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", testkit::S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", testkit::S3_SECRET_KEY);
    c
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    )
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Lost answers of Delta commits that had landed: PUTs of
/// `_delta_log/<version>.json` the store answered 200 and the client never
/// heard of.
fn lost_commit_answers(events: &[FaultEvent]) -> usize {
    events
        .iter()
        .filter(|e| {
            e.action == ActionKind::DropResponse
                && e.method == "PUT"
                && e.target.contains("/_delta_log/")
                && e.target.ends_with(".json")
                && e.upstream_status == Some(200)
        })
        .count()
}

fn report(what: &str, n: &FaultCounts, events: &[FaultEvent]) {
    let by = |k: ActionKind, m: &str| {
        events
            .iter()
            .filter(|e| e.action == k && e.method == m)
            .count()
    };
    eprintln!(
        "{what}: {} requests, {} forwarded; {} failed (503), {} delayed, {} answers dropped, {} upstream errors; \
         commits landed with their answer lost: {}; dropped PUT/GET: {}/{}; failed PUT/GET: {}/{}",
        n.requests,
        n.forwarded,
        n.failed,
        n.delayed,
        n.dropped,
        n.upstream_errors,
        lost_commit_answers(events),
        by(ActionKind::DropResponse, "PUT"),
        by(ActionKind::DropResponse, "GET"),
        by(ActionKind::Fail, "PUT"),
        by(ActionKind::Fail, "GET"),
    );
}

/// Every kind of fault happened, and at least one Delta commit landed with
/// its answer lost: a test that injected nothing would prove nothing.
fn assert_faults_happened(what: &str, n: &FaultCounts, events: &[FaultEvent]) {
    assert!(
        n.failed > 0 && n.delayed > 0 && n.dropped > 0,
        "{what}: not every kind of fault was injected: {n:?}"
    );
    assert!(
        lost_commit_answers(events) > 0,
        "{what}: no commit landed with its answer lost ({n:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_forwards_signed_requests_and_injects_each_fault() {
    use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
    use object_store::path::Path as Key;
    use object_store::{
        BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
    };
    let s3 = TestS3::create().expect("test s3");
    let proxy = FaultProxy::start(&s3.endpoint, 1).expect("proxy");
    let client = |retries: usize| {
        AmazonS3Builder::new()
            .with_endpoint(proxy.endpoint())
            .with_bucket_name(&s3.bucket)
            .with_region("us-east-1")
            .with_access_key_id(testkit::S3_ACCESS_KEY)
            .with_secret_access_key(testkit::S3_SECRET_KEY)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(10),
                    max_backoff: Duration::from_millis(100),
                    base: 2.0,
                },
                max_retries: retries,
                retry_timeout: Duration::from_secs(30),
            })
            .build()
            .expect("client")
    };
    let store = client(10);
    let get = |key: Key| {
        let store = &store;
        async move {
            store
                .get(&key)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body")
                .to_vec()
        }
    };

    // No rules: signed requests pass untouched (SigV4 covers the Host the
    // client sent and the payload), over kept-alive connections.
    let a = Key::from("p/a.json");
    store
        .put(&a, PutPayload::from_static(b"one"))
        .await
        .expect("put");
    assert_eq!(get(a.clone()).await, b"one");
    store.head(&a).await.expect("head");
    let listed: Vec<_> = store
        .list(Some(&Key::from("p")))
        .try_collect()
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    let n = proxy.counts();
    assert!(n.requests >= 4 && n.forwarded == n.requests, "{n:?}");
    assert_eq!((n.failed, n.delayed, n.dropped), (0, 0, 0));

    // DropResponse on a create-if-absent PUT (as a Delta commit is): the
    // object lands; the client retries, hears 412 and reports that the
    // object exists.
    proxy.set_rules(vec![
        Rule::drop_response()
            .method(Method::Put)
            .path("/p/_delta_log/")
            .times(1),
    ]);
    let b = Key::from("p/_delta_log/00000000000000000000.json");
    let put = store
        .put_opts(
            &b,
            PutPayload::from_static(b"two"),
            PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(put, Err(object_store::Error::AlreadyExists { .. })),
        "{put:?}"
    );
    assert_eq!(get(b).await, b"two", "the write landed");

    // Fail: 503 SlowDown, never forwarded; the client retries through it,
    // and a client that does not retry sees it.
    proxy.set_rules(vec![Rule::fail().method(Method::Get).times(3)]);
    assert_eq!(get(a.clone()).await, b"one");
    proxy.set_rules(vec![Rule::fail().method(Method::Get).times(1)]);
    let err = client(0).get(&a).await.expect_err("503 without retries");
    assert!(err.to_string().contains("503"), "{err}");

    // Delay: forwarded after the pause.
    proxy.set_rules(vec![
        Rule::delay(Duration::from_millis(400)).method(Method::Head),
    ]);
    let t = Instant::now();
    store.head(&a).await.expect("head");
    assert!(t.elapsed() >= Duration::from_millis(400));
    proxy.clear_rules();

    let n = proxy.counts();
    assert_eq!((n.dropped, n.failed, n.delayed), (1, 4, 1), "{n:?}");
    let events = proxy.events();
    assert_eq!(lost_commit_answers(&events), 1, "{events:?}");
}

// ---------------------------------------------------------------------------
// Bronze ingest

const INGEST_EVENTS: u64 = 8_000;
const INGEST_SEED: u64 = 31;
const INGEST_START: &str = "2026-11-21T08:00:00Z";

/// A pipeline of two Kafka sources on topics of its own, its lake on S3
/// behind the proxy.
struct IngestProject {
    dir: tempfile::TempDir,
    telemetry: String,
    fines: String,
    lake: String,
    direct: HashMap<String, String>,
}

impl IngestProject {
    fn new(s3: &TestS3, proxy: &FaultProxy) -> IngestProject {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let telemetry = testkit::unique_topic("s3f-tel");
        let fines = testkit::unique_topic("s3f-fin");
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
        // The simulator's fleet.
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        for f in ["vehicles.csv", "drivers.csv"] {
            std::fs::copy(
                crate::fixtures::repo().join("data").join(f),
                root.join("data").join(f),
            )
            .expect("copy");
        }
        let lake = format!("{}/lake", s3.url());
        // Small batches and frequent checkpoints: many commits, each a
        // chance for a fault.
        let toml = format!(
            "pipeline = \"p\"\n[lake]\nuri = \"{lake}\"\n[s3]\nendpoint = \"{}\"\n\
             [kafka]\nbootstrap_servers = \"{}\"\ngroup_id = \"g-{}\"\nsession_timeout = \"6s\"\n\
             [ingest]\nbatch_rows = 300\nbatch_interval = \"200ms\"\ncheckpoint_every = 4\n\
             retry_timeout = \"30s\"\nclock = \"2026-11-21T09:00:00Z\"\n",
            proxy.endpoint(),
            testkit::kafka_bootstrap().expect("broker"),
            testkit::unique_suffix()
        );
        std::fs::write(root.join("dag.toml"), toml).expect("write dag.toml");
        IngestProject {
            dir,
            telemetry,
            fines,
            lake,
            direct: direct_storage(s3),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The messages `dag produce` sends with these settings, per topic.
    fn produced(&self) -> HashMap<String, Vec<Message>> {
        let fleet = Fleet::from_data_dir(&self.root().join("data")).expect("fleet");
        let settings = SimSettings {
            seed: INGEST_SEED,
            telemetry_topic: self.telemetry.clone(),
            fines_topic: self.fines.clone(),
            events: INGEST_EVENTS,
            start: DateTime::parse_from_rfc3339(INGEST_START)
                .expect("time")
                .with_timezone(&Utc),
            bad_share: 0.05,
            ..SimSettings::default()
        };
        let mut out: HashMap<String, Vec<Message>> = HashMap::new();
        for (_, r) in Simulator::new(settings, &fleet) {
            out.entry(r.topic).or_default().push((r.key, r.value));
        }
        out
    }

    /// (partition, offset, key, value) of every row, sorted, read directly.
    async fn rows(&self, name: &str) -> Vec<BronzeRow> {
        jobs::lake::register_stores();
        let url = url::Url::parse(&format!("{}/bronze/{name}/", self.lake)).expect("url");
        let table = DeltaTableBuilder::from_url(url)
            .expect("url")
            .with_storage_options(self.direct.clone())
            .load()
            .await
            .expect("load bronze table");
        let batches = crate::fixtures::delta_rows(&table).await.expect("read");
        let mut rows = Vec::new();
        for b in &batches {
            let column = |n: &str| {
                let c = b.column_by_name(n).unwrap_or_else(|| panic!("column {n}"));
                match c.data_type() {
                    arrow::datatypes::DataType::BinaryView
                    | arrow::datatypes::DataType::LargeBinary => {
                        cast(c, &arrow::datatypes::DataType::Binary).expect("cast")
                    }
                    _ => c.clone(),
                }
            };
            let (p, o, k, v) = (
                column("partition"),
                column("offset"),
                column("key"),
                column("value"),
            );
            let p = p.as_any().downcast_ref::<Int32Array>().expect("partition");
            let o = o.as_any().downcast_ref::<Int64Array>().expect("offset");
            let k = k.as_any().downcast_ref::<BinaryArray>().expect("key");
            let v = v.as_any().downcast_ref::<BinaryArray>().expect("value");
            for i in 0..b.num_rows() {
                rows.push((
                    p.value(i),
                    o.value(i),
                    k.is_valid(i).then(|| k.value(i).to_vec()),
                    v.is_valid(i).then(|| v.value(i).to_vec()),
                ));
            }
        }
        rows.sort();
        rows
    }
}

/// A message's key and value (None: null).
type Message = (Option<Vec<u8>>, Option<Vec<u8>>);
/// A message as (topic, key, value), for bronze tables written directly.
type Record = (String, Vec<u8>, Option<Vec<u8>>);
type BronzeRow = (i32, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// (low, high) watermarks of every partition of `topic`, from the broker.
pub(crate) fn watermarks(topic: &str) -> BTreeMap<i32, (i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set(
            "bootstrap.servers",
            testkit::kafka_bootstrap().expect("broker"),
        )
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(15);
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    let t = md.topics().first().expect("the topic");
    assert!(!t.partitions().is_empty(), "{topic} has no partitions");
    t.partitions()
        .iter()
        .map(|p| {
            let w = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .expect("watermarks");
            (p.id(), w)
        })
        .collect()
}

/// Every offset the broker holds is in the table exactly once, and the
/// table holds nothing else; per key, the values in offset order are those
/// produced.
fn assert_exactly_once(
    name: &str,
    rows: &[BronzeRow],
    marks: &BTreeMap<i32, (i64, i64)>,
    produced: &[Message],
) {
    let mut per: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o, _, _) in rows {
        per.entry(*p).or_default().push(*o);
    }
    for (p, offsets) in &per {
        assert!(
            marks.contains_key(p),
            "{name}: rows of unknown partition {p}"
        );
        let dups = offsets.windows(2).filter(|w| w[0] == w[1]).count();
        assert_eq!(dups, 0, "{name}: partition {p} holds {dups} offsets twice");
    }
    for (p, (lo, hi)) in marks {
        let want: Vec<i64> = (*lo..*hi).collect();
        let got = per.get(p).cloned().unwrap_or_default();
        if got != want {
            let missing: Vec<_> = want.iter().filter(|o| !got.contains(o)).take(10).collect();
            panic!(
                "{name}: partition {p} holds {} rows for offsets {lo}..{hi}; missing {missing:?}",
                got.len()
            );
        }
    }
    assert_eq!(
        rows.len(),
        produced.len(),
        "{name}: rows vs messages produced"
    );
    let mut want: BTreeMap<Option<Vec<u8>>, Vec<Option<Vec<u8>>>> = BTreeMap::new();
    for (k, v) in produced {
        want.entry(k.clone()).or_default().push(v.clone());
    }
    let mut got: BTreeMap<Option<Vec<u8>>, Vec<Option<Vec<u8>>>> = BTreeMap::new();
    for (_, _, k, v) in rows {
        got.entry(k.clone()).or_default().push(v.clone());
    }
    assert!(
        got == want,
        "{name}: the messages differ from those produced"
    );
}

/// Faults for the lake: commits (and checkpoints) that land with their
/// answer lost, failed log writes, lost data-file answers, failed and lost
/// reads, delays.
fn lake_faults() -> Vec<Rule> {
    vec![
        Rule::drop_response()
            .method(Method::Put)
            .path("/_delta_log/0")
            .share(0.3),
        Rule::fail()
            .method(Method::Put)
            .path("/_delta_log/")
            .share(0.25),
        Rule::drop_response()
            .method(Method::Put)
            .path(".parquet")
            .share(0.1),
        Rule::fail().method(Method::Get).share(0.05),
        Rule::drop_response().method(Method::Get).share(0.02),
        Rule::delay(Duration::from_millis(150)).share(0.05),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn bronze_ingest_through_lost_and_failed_log_writes_keeps_every_offset_once() {
    let s3 = TestS3::create().expect("test s3");
    let proxy = FaultProxy::start(&s3.endpoint, 0x5eed_0001).expect("proxy");
    let p = IngestProject::new(&s3, &proxy);
    proxy.set_rules(lake_faults());
    let started = Instant::now();
    let log = |name: &str| std::fs::File::create(p.root().join(name)).expect("log file");
    let mut producer = dag(
        p.root(),
        &[
            "produce",
            "--seed",
            &INGEST_SEED.to_string(),
            "--events",
            &INGEST_EVENTS.to_string(),
            "--rate",
            "1500",
            "--start",
            INGEST_START,
            "--bad-share",
            "0.05",
        ],
    )
    .stdout(Stdio::from(log("producer.out")))
    .stderr(Stdio::from(log("producer.err")))
    .spawn()
    .expect("spawn producer");

    // Run-once ingests while the producer sends and after; one that gives
    // up is simply run again. Done when a run that started after the
    // producer finished succeeds.
    let (mut runs, mut gave_up, mut resolved) = (0, 0, 0);
    loop {
        let produced_all = producer.try_wait().expect("producer").is_some();
        runs += 1;
        let out = dag(p.root(), &["ingest", "--until-caught-up"])
            .output()
            .expect("dag ingest");
        let stderr = String::from_utf8_lossy(&out.stderr);
        resolved += stderr
            .matches("commit failed; checking what the table recorded")
            .count();
        std::fs::write(p.root().join(format!("ingest-{runs}.log")), describe(&out)).expect("log");
        if !out.status.success() {
            gave_up += 1;
            eprintln!("ingest run {runs} gave up: {}", describe(&out));
        }
        if produced_all && out.status.success() {
            break;
        }
        assert!(
            runs < 30 && started.elapsed() < Duration::from_secs(900),
            "no clean ingest run after {runs} runs: {}",
            describe(&out)
        );
    }
    let status = producer.wait().expect("producer");
    assert!(
        status.success(),
        "producer: {}",
        std::fs::read_to_string(p.root().join("producer.err")).unwrap_or_default()
    );
    proxy.clear_rules();
    let counts = proxy.counts();
    let events = proxy.events();
    report("bronze ingest", &counts, &events);
    eprintln!(
        "bronze ingest: {runs} `ingest --until-caught-up` runs ({gave_up} gave up), \
         {resolved} failed commit attempts resolved from the table, {:.0}s",
        started.elapsed().as_secs_f64()
    );

    let produced = p.produced();
    for (name, topic) in [
        ("bronze_vehicle_telemetry", &p.telemetry),
        ("bronze_traffic_fines", &p.fines),
    ] {
        let rows = p.rows(name).await;
        assert_exactly_once(name, &rows, &watermarks(topic), &produced[topic]);
    }
    assert_faults_happened("bronze ingest", &counts, &events);
    assert!(
        resolved > 0,
        "no commit attempt failed: the faults missed the commits"
    );
}

// ---------------------------------------------------------------------------
// Silver and gold

const TELEMETRY: &str = "vehicle-telemetry";
const FINES: &str = "traffic-fines";

/// Two lakes in one bucket with the same bronze: `clean` run directly on
/// the S3 server, `faulty` through the proxy. One snapshot of the shipped
/// pipeline and data serves both.
struct TwoLakes {
    dir: tempfile::TempDir,
    s3: TestS3,
    direct: HashMap<String, String>,
    /// Next offset per (topic, partition), the same for both lakes.
    offsets: BTreeMap<(String, i32), i64>,
}

impl TwoLakes {
    fn new(s3: TestS3, proxy: &FaultProxy) -> TwoLakes {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let repo = crate::fixtures::repo();
        crate::fixtures::copy_dir(
            &repo.join("models/telematics"),
            &root.join("models/telematics"),
        );
        crate::fixtures::copy_dir(&repo.join("data"), &root.join("data"));
        for (name, endpoint) in [("clean", s3.endpoint.clone()), ("faulty", proxy.endpoint())] {
            std::fs::create_dir_all(root.join(name)).expect("mkdir");
            let toml = format!(
                "pipeline = \"telematics\"\nmodels_dir = \"{}\"\ndata_dir = \"{}\"\n\
                 [warehouse]\nenabled = false\n[lake]\nuri = \"{}/{name}\"\n[s3]\nendpoint = \"{endpoint}\"\n",
                root.join("models").display(),
                root.join("data").display(),
                s3.url()
            );
            std::fs::write(root.join(name).join("dag.toml"), toml).expect("write dag.toml");
        }
        TwoLakes {
            dir,
            direct: direct_storage(&s3),
            s3,
            offsets: BTreeMap::new(),
        }
    }

    fn project(&self, lake: &str) -> PathBuf {
        self.dir.path().join(lake)
    }

    fn settings(&self, lake: &str) -> RunSettings {
        RunSettings::new(
            format!("{}/{lake}", self.s3.url()),
            self.direct.clone(),
            self.dir.path().join("data"),
        )
    }

    fn catalog(&self) -> Catalog {
        let p = dag::pipeline::Pipeline::load(&self.dir.path().join("models/telematics"))
            .expect("pipeline");
        Catalog::new(p.graph.node_weights().cloned())
    }

    /// The silver and gold tables with the columns that identify a row.
    fn tables(&self) -> Vec<(String, Vec<String>)> {
        let p = dag::pipeline::Pipeline::load(&self.dir.path().join("models/telematics"))
            .expect("pipeline");
        p.graph
            .node_weights()
            .filter(|m| m.layer != Layer::Bronze)
            .map(|m| {
                let key = match m.source {
                    Source::Quarantine { .. } => {
                        ["topic", "partition", "offset"].map(String::from).to_vec()
                    }
                    _ => m.unique_key.clone(),
                };
                (m.name.clone(), key)
            })
            .collect()
    }

    /// Appends the same messages, at the same offsets, to the bronze tables
    /// of both lakes (one commit per table and lake), directly.
    async fn add(&mut self, records: &[Record], at: DateTime<Utc>) {
        for (name, topic) in [
            ("bronze_vehicle_telemetry", TELEMETRY),
            ("bronze_traffic_fines", FINES),
        ] {
            let mut placed = Vec::new();
            for (_, key, value) in records.iter().filter(|r| r.0 == topic) {
                let p = (key.iter().map(|c| *c as u32).sum::<u32>() % 3) as i32;
                let off = self.offsets.entry((topic.to_string(), p)).or_insert(0);
                placed.push((p, *off, key, value));
                *off += 1;
            }
            if placed.is_empty() {
                continue;
            }
            for lake in ["clean", "faulty"] {
                let loc = TableLocation::in_lake(
                    &self.settings(lake).lake,
                    "bronze",
                    name,
                    self.direct.clone(),
                )
                .expect("location");
                let mut table = BronzeTable::open_or_create(name, topic, loc)
                    .await
                    .expect("bronze");
                table.claim(&[0, 1, 2]).await.expect("claim");
                let mut b = BatchBuilder::new(topic);
                for (p, off, key, value) in &placed {
                    b.push(
                        &RawMessage {
                            partition: *p,
                            offset: *off,
                            key: Some(key),
                            value: value.as_deref(),
                            timestamp_ms: Some(at.timestamp_millis()),
                        },
                        at.timestamp_micros(),
                    );
                }
                let (batch, spans) = b.finish();
                let outcome = table.commit(&batch, &spans).await.expect("commit");
                assert!(
                    matches!(outcome, BatchCommit::Committed { .. }),
                    "{outcome:?}"
                );
            }
        }
    }

    async fn read(&self, catalog: &Catalog, lake: &str, name: &str) -> DataFrame {
        catalog
            .open_input(name, &self.settings(lake))
            .await
            .unwrap_or_else(|e| panic!("{lake}: open {name}: {e}"))
            .read_all(None)
            .await
            .unwrap_or_else(|e| panic!("{lake}: read {name}: {e}"))
    }

    async fn versions(&self, lake: &str) -> BTreeMap<String, i64> {
        let catalog = self.catalog();
        let mut out = BTreeMap::new();
        for (name, _) in self.tables() {
            let v = catalog
                .open_input(&name, &self.settings(lake))
                .await
                .unwrap_or_else(|e| panic!("{lake}: open {name}: {e}"))
                .version();
            out.insert(name, v);
        }
        out
    }
}

/// The simulator's messages (topic, key, value), spread over hours.
fn simulate(seed: u64, events: u64, start: &str) -> Vec<(Kind, Record)> {
    let fleet = Fleet::from_data_dir(&crate::fixtures::repo().join("data")).expect("fleet");
    let s = SimSettings {
        seed,
        events,
        start: DateTime::parse_from_rfc3339(start)
            .expect("start")
            .with_timezone(&Utc),
        report_every: Duration::from_secs(3600),
        bad_share: 0.08,
        unknown_share: 0.01,
        ..SimSettings::default()
    };
    Simulator::new(s, &fleet)
        .map(|(k, r)| (k, (r.topic, r.key.unwrap_or_default(), r.value)))
        .collect()
}

/// Rows sorted by `key` (then every column); floats compared with a
/// relative 1e-9 (sums may add in another order), the rest exactly.
fn assert_same(name: &str, a: &DataFrame, b: &DataFrame, key: &[String]) {
    // A key identifies a row; without one, every column orders them.
    let by: Vec<String> = if key.is_empty() {
        a.get_column_names().iter().map(|c| c.to_string()).collect()
    } else {
        key.to_vec()
    };
    let sort = |d: &DataFrame| {
        d.sort(by.clone(), SortMultipleOptions::default())
            .unwrap_or_else(|e| panic!("{name}: sort: {e}"))
    };
    let (a, b) = (sort(a), sort(b));
    assert_eq!(
        a.height(),
        b.height(),
        "{name}: {} rows after faults, {} without",
        a.height(),
        b.height()
    );
    for c in a.columns() {
        let other = b
            .column(c.name())
            .unwrap_or_else(|_| panic!("{name}: column {} missing", c.name()));
        if c.dtype() == &DataType::Float64 {
            let (x, y) = (c.f64().expect("f64"), other.f64().expect("f64"));
            for (i, (u, v)) in x.iter().zip(y.iter()).enumerate() {
                let same = match (u, v) {
                    (Some(u), Some(v)) => (u - v).abs() <= 1e-9 * u.abs().max(1.0),
                    (None, None) => true,
                    _ => false,
                };
                assert!(same, "{name}.{} row {i}: {u:?} vs {v:?}", c.name());
            }
        } else {
            assert!(
                c.as_materialized_series()
                    .equals_missing(other.as_materialized_series()),
                "{name}.{} differs after faults:\n{c:?}\nwithout faults:\n{other:?}",
                c.name()
            );
        }
    }
}

fn unique_keys(name: &str, df: &DataFrame, key: &[String]) -> usize {
    if key.is_empty() {
        return df.height();
    }
    df.clone()
        .lazy()
        .select(key.iter().map(|k| col(k.as_str())).collect::<Vec<_>>())
        .unique(None, UniqueKeepStrategy::First)
        .collect()
        .unwrap_or_else(|e| panic!("{name}: keys: {e}"))
        .height()
}

#[tokio::test(flavor = "multi_thread")]
async fn silver_and_gold_through_s3_faults_equal_runs_without_faults() {
    let s3 = TestS3::create().expect("test s3");
    let proxy = FaultProxy::start(&s3.endpoint, 0x5eed_0002).expect("proxy");
    let mut lakes = TwoLakes::new(s3, &proxy);
    let started = Instant::now();
    let starts = [
        "2026-11-18T06:00:00Z",
        "2026-11-19T06:00:00Z",
        "2026-11-19T18:00:00Z",
    ];
    let mut earlier: Vec<Record> = Vec::new();
    let (mut attempts, mut failures) = (0, Vec::new());
    for (round, start) in starts.iter().enumerate() {
        let made = simulate(300 + round as u64, 2_500, start);
        let mut records: Vec<_> = made.iter().map(|(_, m)| m.clone()).collect();
        // Re-sends of earlier valid messages: duplicates across runs.
        records.extend(earlier.iter().step_by(89).take(15).cloned());
        earlier.extend(
            made.iter()
                .filter(|(k, _)| *k == Kind::Telemetry)
                .map(|(_, m)| m.clone()),
        );
        let at = DateTime::parse_from_rfc3339(start)
            .expect("t")
            .with_timezone(&Utc)
            + TimeDelta::days(1);
        lakes.add(&records, at).await;

        let out = dag(&lakes.project("clean"), &["run"])
            .output()
            .expect("dag run");
        assert!(
            out.status.success(),
            "run without faults: {}",
            describe(&out)
        );

        proxy.set_rules(lake_faults());
        let mut done = false;
        for attempt in 1..=15 {
            attempts += 1;
            let out = dag(&lakes.project("faulty"), &["run"])
                .output()
                .expect("dag run");
            if out.status.success() {
                done = true;
                break;
            }
            let text = describe(&out);
            eprintln!("round {round}, attempt {attempt} failed under faults: {text}");
            failures.push(text);
        }
        proxy.clear_rules();
        assert!(
            done,
            "round {round}: `dag run` never succeeded under faults; last: {}",
            failures.last().map(String::as_str).unwrap_or("")
        );
    }
    let counts = proxy.counts();
    let events = proxy.events();
    report("dag run", &counts, &events);
    eprintln!(
        "dag run: {} rounds, {attempts} runs under faults ({} failed and were retried), {:.0}s",
        starts.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );

    // Every table equals the one the runs without faults made.
    let catalog = lakes.catalog();
    let mut compared = 0;
    for (name, key) in lakes.tables() {
        let faulty = lakes.read(&catalog, "faulty", &name).await;
        let clean = lakes.read(&catalog, "clean", &name).await;
        assert_eq!(
            unique_keys(&name, &faulty, &key),
            faulty.height(),
            "{name}: duplicate keys after faults"
        );
        assert_same(&name, &faulty, &clean, &key);
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} tables compared");
    let silver = lakes.read(&catalog, "faulty", "silver_telemetry").await;
    assert!(silver.height() > 4_000, "{} silver rows", silver.height());

    // A run without new input and without faults writes nothing.
    let before = lakes.versions("faulty").await;
    let out = dag(&lakes.project("faulty"), &["run"])
        .output()
        .expect("dag run");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        lakes.versions("faulty").await,
        before,
        "a run with nothing new wrote versions: {}",
        describe(&out)
    );

    assert_faults_happened("dag run", &counts, &events);
}

/// A model's commit that lands while its answer is lost is recognised as
/// its own: the run succeeds at once (no failed run, nothing downstream
/// skipped), and the tables equal a run without faults.
#[tokio::test(flavor = "multi_thread")]
async fn a_model_commit_whose_answer_is_lost_counts_as_done() {
    let s3 = TestS3::create().expect("test s3");
    let proxy = FaultProxy::start(&s3.endpoint, 0x5eed_0003).expect("proxy");
    let mut lakes = TwoLakes::new(s3, &proxy);
    for (round, start) in ["2026-11-18T06:00:00Z", "2026-11-19T06:00:00Z"]
        .iter()
        .enumerate()
    {
        let made = simulate(700 + round as u64, 1_500, start);
        let records: Vec<_> = made.iter().map(|(_, m)| m.clone()).collect();
        let at = DateTime::parse_from_rfc3339(start)
            .expect("t")
            .with_timezone(&Utc)
            + TimeDelta::days(1);
        lakes.add(&records, at).await;
        for project in ["clean", "faulty"] {
            // The second round's silver commit lands, its answer is lost.
            if round == 1 && project == "faulty" {
                proxy.set_rules(vec![
                    Rule::drop_response()
                        .method(Method::Put)
                        .path("silver_telemetry/_delta_log/")
                        .times(1),
                ]);
            }
            let out = dag(&lakes.project(project), &["run"])
                .output()
                .expect("dag run");
            assert!(
                out.status.success(),
                "{project} round {round}: {}",
                describe(&out)
            );
        }
    }
    let events = proxy.events();
    assert_eq!(
        lost_commit_answers(&events),
        1,
        "the fault did not happen: {events:?}"
    );
    let catalog = lakes.catalog();
    for (name, key) in lakes.tables() {
        let faulty = lakes.read(&catalog, "faulty", &name).await;
        let clean = lakes.read(&catalog, "clean", &name).await;
        assert_same(&name, &faulty, &clean, &key);
    }
}
