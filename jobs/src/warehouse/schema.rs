//! Each warehouse table against its model, before any row is written: a
//! missing table, a column added or missing on either side, a type or a
//! primary key that differs is an error naming table and column.

use super::WarehouseError;
use crate::spec::{ColumnType, Model};
use sqlx::PgConnection;

/// The PostgreSQL type a column of `ty` has in the warehouse (as
/// `format_type` prints it).
pub fn pg_type(ty: ColumnType) -> String {
    match ty {
        ColumnType::String => "text".into(),
        ColumnType::Binary => "bytea".into(),
        ColumnType::Int => "integer".into(),
        ColumnType::BigInt => "bigint".into(),
        ColumnType::Double => "double precision".into(),
        ColumnType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        ColumnType::Bool => "boolean".into(),
        ColumnType::Timestamp => "timestamp with time zone".into(),
        ColumnType::Date => "date".into(),
    }
}

/// Checks every table of `models` (schema.table from each model's
/// warehouse target); all problems in one error.
pub async fn check(conn: &mut PgConnection, models: &[&Model]) -> Result<(), WarehouseError> {
    let mut problems = Vec::new();
    for m in models {
        let Some(t) = &m.warehouse else { continue };
        let table = format!("{}.{}", t.schema, t.table);
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
        )
        .bind(&t.schema)
        .bind(&t.table)
        .fetch_all(&mut *conn)
        .await?;
        if columns.is_empty() {
            problems.push(format!(
                "table {table} (model {}) does not exist: add it in a migration (migrations/) and run `dag migrate`",
                m.name
            ));
            continue;
        }
        for c in &m.columns {
            let want = pg_type(c.ty);
            match columns.iter().find(|(n, _)| n == &c.name) {
                None => problems.push(format!(
                    "{table}.{}: the model has this column ({want}), the table does not",
                    c.name
                )),
                Some((_, have)) if have != &want => problems.push(format!(
                    "{table}.{}: the table has type {have}, the model {} needs {want}",
                    c.name, m.name
                )),
                Some(_) => {}
            }
        }
        for (name, ty) in &columns {
            if m.column(name).is_none() {
                problems.push(format!(
                    "{table}.{name}: the table has this column ({ty}), the model {} does not",
                    m.name
                ));
            }
        }
        let key: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text
             FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = to_regclass($1) AND i.indisprimary
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
        )
        .bind(format!(
            "{}.{}",
            super::quote(&t.schema),
            super::quote(&t.table)
        ))
        .fetch_all(&mut *conn)
        .await?;
        if key != m.unique_key {
            problems.push(format!(
                "{table}: primary key ({}) differs from the model's unique_key ({})",
                key.join(", "),
                m.unique_key.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WarehouseError::Schema(format!(
            "the warehouse does not match the models (nothing was loaded):\n  {}",
            problems.join("\n  ")
        )))
    }
}
