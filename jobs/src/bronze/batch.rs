//! Messages into Arrow: the bronze schema and the builder that accumulates
//! one batch of raw messages, with the offsets it holds per partition.

use super::clock::epoch_day;
use arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// The partition column of every bronze table.
pub const PARTITION_COLUMN: &str = "ingest_date";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("kafka_timestamp", ts.clone(), true),
        Field::new("ingested_at", ts, false),
        Field::new(PARTITION_COLUMN, DataType::Date32, false),
    ]))
});

/// The Arrow schema of a bronze table (the columns of
/// `jobs::decl::bronze_columns`).
pub fn bronze_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// One message as the ingester sees it; borrowed from the consumer's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawMessage<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    /// `None` is a tombstone; `Some(&[])` an empty value.
    pub value: Option<&'a [u8]>,
    /// Kafka's timestamp in milliseconds, when the message has one.
    pub timestamp_ms: Option<i64>,
}

/// The offsets one batch holds in one partition (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub first: i64,
    pub last: i64,
    pub rows: u64,
}

/// Accumulates messages of one topic into the columns of a bronze batch.
pub struct BatchBuilder {
    topic: String,
    topics: StringBuilder,
    partitions: Int32Builder,
    offsets: Int64Builder,
    keys: BinaryBuilder,
    values: BinaryBuilder,
    kafka_ts: TimestampMicrosecondBuilder,
    ingested: TimestampMicrosecondBuilder,
    dates: Date32Builder,
    spans: BTreeMap<i32, Span>,
    rows: usize,
    bytes: usize,
    payload: usize,
}

impl BatchBuilder {
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            topics: StringBuilder::new(),
            partitions: Int32Builder::new(),
            offsets: Int64Builder::new(),
            keys: BinaryBuilder::new(),
            values: BinaryBuilder::new(),
            kafka_ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            ingested: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            dates: Date32Builder::new(),
            spans: BTreeMap::new(),
            rows: 0,
            bytes: 0,
            payload: 0,
        }
    }

    /// The `topic` of the rows pushed from now on (a file source's rows
    /// carry their file's path there).
    pub fn set_topic(&mut self, topic: &str) {
        topic.clone_into(&mut self.topic);
    }

    /// Appends one message, stamped `ingested_at_us`. The caller guarantees
    /// offsets increase within a partition.
    pub fn push(&mut self, m: &RawMessage<'_>, ingested_at_us: i64) {
        self.topics.append_value(&self.topic);
        self.partitions.append_value(m.partition);
        self.offsets.append_value(m.offset);
        self.keys.append_option(m.key);
        self.values.append_option(m.value);
        self.kafka_ts
            .append_option(m.timestamp_ms.map(|ms| ms.saturating_mul(1000)));
        self.ingested.append_value(ingested_at_us);
        self.dates.append_value(epoch_day(ingested_at_us));
        self.spans
            .entry(m.partition)
            .and_modify(|s| {
                s.last = m.offset;
                s.rows += 1;
            })
            .or_insert(Span {
                first: m.offset,
                last: m.offset,
                rows: 1,
            });
        self.rows += 1;
        let payload = m.key.map_or(0, <[u8]>::len) + m.value.map_or(0, <[u8]>::len);
        self.payload += payload;
        // What the batch costs in memory, roughly: payloads plus fixed columns.
        self.bytes += payload + 40;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Key and value bytes of the messages held.
    pub fn payload_bytes(&self) -> usize {
        self.payload
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Per partition, the offsets this batch holds.
    pub fn spans(&self) -> &BTreeMap<i32, Span> {
        &self.spans
    }

    /// Takes the accumulated rows as a record batch and starts empty again,
    /// with room for as many rows and bytes as this batch had: the next
    /// batch is likely as big, and growing the buffers by doubling copied
    /// each one several times over (untouched room costs no memory).
    pub fn finish(&mut self) -> (RecordBatch, BTreeMap<i32, Span>) {
        let rows = self.rows;
        let bytes = |b: &BinaryBuilder| b.values_slice().len();
        let keys = BinaryBuilder::with_capacity(rows, bytes(&self.keys));
        let values = BinaryBuilder::with_capacity(rows, bytes(&self.values));
        let topics = StringBuilder::with_capacity(rows, self.topics.values_slice().len());
        let ts = || TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(std::mem::replace(&mut self.topics, topics).finish()),
            Arc::new(
                std::mem::replace(&mut self.partitions, Int32Builder::with_capacity(rows)).finish(),
            ),
            Arc::new(
                std::mem::replace(&mut self.offsets, Int64Builder::with_capacity(rows)).finish(),
            ),
            Arc::new(std::mem::replace(&mut self.keys, keys).finish()),
            Arc::new(std::mem::replace(&mut self.values, values).finish()),
            Arc::new(std::mem::replace(&mut self.kafka_ts, ts()).finish()),
            Arc::new(std::mem::replace(&mut self.ingested, ts()).finish()),
            Arc::new(
                std::mem::replace(&mut self.dates, Date32Builder::with_capacity(rows)).finish(),
            ),
        ];
        self.rows = 0;
        self.bytes = 0;
        self.payload = 0;
        let spans = std::mem::take(&mut self.spans);
        // The columns match SCHEMA by construction; a mismatch is a bug here.
        let batch = RecordBatch::try_new(bronze_schema(), columns)
            .unwrap_or_else(|e| unreachable!("bronze batch does not match its schema: {e}"));
        (batch, spans)
    }

    /// Drops the rows of `partitions` (revoked before they could be
    /// committed): rebuilds the batch without them.
    pub fn retain_partitions(&mut self, keep: impl Fn(i32) -> bool) {
        if self.spans.keys().all(|p| keep(*p)) {
            return;
        }
        let (batch, _) = self.finish();
        let parts = batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Int32Array>()
            .map(|a| a.values().to_vec())
            .unwrap_or_default();
        let col = |i: usize| batch.column(i).as_any();
        let offsets = col(2).downcast_ref::<arrow::array::Int64Array>();
        let keys = col(3).downcast_ref::<arrow::array::BinaryArray>();
        let values = col(4).downcast_ref::<arrow::array::BinaryArray>();
        let kts = col(5).downcast_ref::<arrow::array::TimestampMicrosecondArray>();
        let ing = col(6).downcast_ref::<arrow::array::TimestampMicrosecondArray>();
        let (Some(offsets), Some(keys), Some(values), Some(kts), Some(ing)) =
            (offsets, keys, values, kts, ing)
        else {
            unreachable!("bronze batch columns have the bronze types")
        };
        use arrow::array::Array;
        for (i, p) in parts.iter().enumerate() {
            if keep(*p) {
                let m = RawMessage {
                    partition: *p,
                    offset: offsets.value(i),
                    key: keys.is_valid(i).then(|| keys.value(i)),
                    value: values.is_valid(i).then(|| values.value(i)),
                    timestamp_ms: kts.is_valid(i).then(|| kts.value(i) / 1000),
                };
                self.push(&m, ing.value(i));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, BinaryArray, Int64Array};

    fn msg(partition: i32, offset: i64, value: Option<&[u8]>) -> RawMessage<'_> {
        RawMessage {
            partition,
            offset,
            key: Some(b"k"),
            value,
            timestamp_ms: Some(1_700_000_000_123),
        }
    }

    #[test]
    fn keeps_bytes_nulls_and_spans() {
        let mut b = BatchBuilder::new("t");
        b.push(&msg(0, 5, Some(b"\xff\x00{")), 86_400_000_000);
        b.push(&msg(0, 6, None), 86_400_000_001);
        b.push(&msg(2, 9, Some(b"")), 86_400_000_002);
        assert_eq!(b.rows(), 3);
        let (batch, spans) = b.finish();
        assert!(b.is_empty());
        assert_eq!(batch.schema(), bronze_schema());
        let values = batch
            .column(4)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap();
        assert_eq!(values.value(0), b"\xff\x00{");
        assert!(values.is_null(1), "a tombstone stays null");
        assert!(
            values.is_valid(2) && values.value(2).is_empty(),
            "empty is not null"
        );
        assert_eq!(
            spans[&0],
            Span {
                first: 5,
                last: 6,
                rows: 2
            }
        );
        assert_eq!(spans[&2].first, 9);
    }

    #[test]
    fn dropping_revoked_partitions_keeps_the_rest() {
        let mut b = BatchBuilder::new("t");
        for o in 0..4 {
            b.push(&msg((o % 2) as i32, o, Some(b"v")), 1);
        }
        b.retain_partitions(|p| p == 1);
        let (batch, spans) = b.finish();
        assert_eq!(spans.keys().copied().collect::<Vec<_>>(), vec![1]);
        let offs = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(offs.values().to_vec(), vec![1, 3]);
    }
}
