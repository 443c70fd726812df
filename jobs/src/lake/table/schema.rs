//! The arrow schema of a model's declared columns.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// The arrow schema of a model's declared columns.
pub fn arrow_schema(columns: &[crate::decl::Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.ty), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

pub fn arrow_type(ty: crate::decl::ColumnType) -> DataType {
    use crate::decl::ColumnType as T;
    match ty {
        T::String => DataType::Utf8,
        T::Binary => DataType::Binary,
        T::Int => DataType::Int32,
        T::BigInt => DataType::Int64,
        T::Double => DataType::Float64,
        T::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
        T::Bool => DataType::Boolean,
        T::Timestamp => {
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()))
        }
        T::Date => DataType::Date32,
    }
}
