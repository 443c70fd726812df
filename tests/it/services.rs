//! One smoke test per real service: a row through PostgreSQL, an object
//! through S3 (and the conditional put Delta commits rely on), a message
//! through the separate broker process.

use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use testkit::{TestDb, TestS3};

#[tokio::test]
async fn a_row_goes_through_postgresql() {
    let db = TestDb::create().await.expect("test database");
    sqlx::query("CREATE TABLE smoke (id bigint PRIMARY KEY, note text NOT NULL)")
        .execute(&db.pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO smoke VALUES ($1, $2)")
        .bind(7_i64)
        .bind("grüße, 'quoted'")
        .execute(&db.pool)
        .await
        .expect("insert");
    let (id, note): (i64, String) = sqlx::query_as("SELECT id, note FROM smoke")
        .fetch_one(&db.pool)
        .await
        .expect("select");
    assert_eq!((id, note.as_str()), (7, "grüße, 'quoted'"));
    db.drop_db().await.expect("drop");
}

#[tokio::test]
async fn an_object_goes_through_s3_and_create_only_puts_conflict() {
    let s3 = TestS3::create().expect("test s3");
    let path = s3.path("smoke/object.bin");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s3.store
        .put(&path, PutPayload::from(bytes.clone()))
        .await
        .expect("put");
    let got = s3
        .store
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got.as_ref(), bytes.as_slice());

    // Delta commits write `_delta_log/N.json` with PutMode::Create: exactly
    // one of two writers of the same version may succeed.
    let commit = s3.path("_delta_log/00000000000000000000.json");
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    s3.store
        .put_opts(&commit, PutPayload::from_static(b"first"), create())
        .await
        .expect("first create");
    let second = s3
        .store
        .put_opts(&commit, PutPayload::from_static(b"second"), create())
        .await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "a second create of the same commit must fail, got {second:?}"
    );
    let kept = s3
        .store
        .get(&commit)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(kept.as_ref(), b"first");
}

#[tokio::test]
async fn a_message_goes_through_the_broker_process() {
    let bootstrap = testkit::kafka_bootstrap().expect("broker");
    let topic = testkit::unique_topic("smoke");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let value: Vec<u8> = vec![0, 159, 146, 150, b'{', 0xff];
    let rdkafka::producer::future_producer::Delivery {
        partition, offset, ..
    } = producer
        .send(
            FutureRecord::to(&topic).key("V0001").payload(&value),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("g-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, partition, rdkafka::Offset::Offset(offset))
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no message within 20 s"
        );
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg.expect("message");
            assert_eq!(
                msg.payload(),
                Some(value.as_slice()),
                "bytes arrive unchanged"
            );
            assert_eq!(msg.key(), Some(b"V0001".as_slice()));
            assert_eq!(msg.offset(), offset);
            break;
        }
    }
}
