//! Why an ingester stopped: Kafka refused, or its table could not be
//! opened, read or committed to.

use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("source {source_name}: Kafka: {error}")]
    Kafka {
        source_name: String,
        #[source]
        error: KafkaError,
    },
    #[error("source {source_name}: table {table}: {message}")]
    Table {
        source_name: String,
        table: String,
        message: String,
    },
}

impl IngestError {
    /// Kafka refused something for source `source_name`.
    pub(super) fn kafka(source_name: &str, error: KafkaError) -> Self {
        IngestError::Kafka {
            source_name: source_name.to_string(),
            error,
        }
    }
}
