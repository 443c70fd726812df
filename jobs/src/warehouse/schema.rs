//! Each warehouse table against its model, before any row is written: a
//! missing table, a column added or missing on either side, a type or a
//! primary key that differs is an error naming table and column.
//! (`dag migrate` resolves what the model's `on_schema_change` allows.)

use super::{WarehouseError, ddl};
use crate::decl::Model;
use sqlx::PgConnection;

/// Checks every table of `models` (schema.table from each model's
/// warehouse target) against what [`ddl`] derives from the model: anything
/// `dag migrate` would still change is an error; all problems in one.
pub async fn check(conn: &mut PgConnection, models: &[&Model]) -> Result<(), WarehouseError> {
    let mut problems = Vec::new();
    for m in models {
        let Some(t) = &m.warehouse else { continue };
        let live = ddl::live(conn, &t.schema, &t.table).await?;
        let Some(ch) = ddl::change(m, live.as_ref()) else {
            continue;
        };
        if live.is_none() {
            problems.push(format!(
                "table {} (model {}) does not exist: run `dag migrate` (`dag migrate --plan` shows its DDL)",
                ch.table, m.name
            ));
            continue;
        }
        problems.extend(ch.problems);
        for (sql, note) in ch.statements.iter().zip(&ch.notes) {
            problems.push(format!(
                "{} (model {}): {note}; not applied yet: {sql} (run `dag migrate`)",
                ch.table, m.name
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
