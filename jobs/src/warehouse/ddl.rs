//! A warehouse table derived from its model: the `CREATE TABLE` of a model
//! that has no table yet, and for one that has, the difference between the
//! live table (read from the catalog) and the model's columns, turned into
//! statements or problems by the model's `on_schema_change`.
//!
//! The model is the source of truth: declared columns and types, `nullable`,
//! `unique_key` as the primary key, descriptions as comments. Every
//! statement that changes what rows hold also resets the model's load
//! state, so the next load is a full one that rewrites every row from gold.

use super::quote;
use crate::decl::{ColumnType, Model, OnSchemaChange, WarehouseTarget};
use sqlx::PgConnection;

/// A column of a live warehouse table.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveColumn {
    pub name: String,
    /// As `format_type` prints it (the form [`pg_type`] returns).
    pub ty: String,
    pub not_null: bool,
}

/// A live warehouse table: its columns in order and its primary key.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveTable {
    pub columns: Vec<LiveColumn>,
    pub key: Vec<String>,
}

/// Reads `schema.table` from the catalog; `None` when it does not exist.
pub async fn live(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Option<LiveTable>, sqlx::Error> {
    let qualified = format!("{}.{}", quote(schema), quote(table));
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&qualified)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    let columns: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull
         FROM pg_attribute a
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(&qualified)
    .fetch_all(&mut *conn)
    .await?;
    let key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text
         FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary
         ORDER BY array_position(i.indkey::int2[], a.attnum)",
    )
    .bind(&qualified)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(LiveTable {
        columns: columns
            .into_iter()
            .map(|(name, ty, not_null)| LiveColumn { name, ty, not_null })
            .collect(),
        key,
    }))
}

/// What one model's table needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableChange {
    pub model: String,
    /// `schema.table`, for messages.
    pub table: String,
    /// The DDL to run, in order.
    pub statements: Vec<String>,
    /// One line per change, with what it does to the rows already there.
    pub notes: Vec<String>,
    /// Differences `on_schema_change` does not allow (nothing is run).
    pub problems: Vec<String>,
    /// The table's load state is reset with the statements: the next load
    /// rewrites every row.
    pub reset_load: bool,
}

impl TableChange {
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty() && self.problems.is_empty()
    }
}

fn qualified(t: &WarehouseTarget) -> String {
    format!("{}.{}", quote(&t.schema), quote(&t.table))
}

/// A SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The `CREATE TABLE` (and its comments) of a model's warehouse table.
pub fn create(m: &Model, t: &WarehouseTarget) -> TableChange {
    let q = qualified(t);
    let mut lines: Vec<String> = m
        .columns
        .iter()
        .map(|c| {
            let not_null = if !c.nullable || m.unique_key.contains(&c.name) {
                " NOT NULL"
            } else {
                ""
            };
            format!("    {} {}{not_null}", quote(&c.name), pg_type(c.ty))
        })
        .collect();
    if !m.unique_key.is_empty() {
        let key: Vec<String> = m.unique_key.iter().map(|k| quote(k)).collect();
        lines.push(format!("    PRIMARY KEY ({})", key.join(", ")));
    }
    let mut statements = vec![format!("CREATE TABLE {q} (\n{}\n)", lines.join(",\n"))];
    if !m.description.trim().is_empty() {
        statements.push(format!(
            "COMMENT ON TABLE {q} IS {}",
            literal(m.description.trim())
        ));
    }
    for c in &m.columns {
        if !c.description.trim().is_empty() {
            statements.push(format!(
                "COMMENT ON COLUMN {q}.{} IS {}",
                quote(&c.name),
                literal(c.description.trim())
            ));
        }
    }
    TableChange {
        model: m.name.clone(),
        table: format!("{}.{}", t.schema, t.table),
        statements,
        notes: vec![format!("table created (model {})", m.name)],
        problems: Vec::new(),
        reset_load: true,
    }
}

/// What the live table needs to match its model, by the model's
/// `on_schema_change`.
pub fn diff(m: &Model, t: &WarehouseTarget, live: &LiveTable) -> TableChange {
    let q = qualified(t);
    let table = format!("{}.{}", t.schema, t.table);
    let mode = t.on_schema_change;
    let mut ch = TableChange {
        model: m.name.clone(),
        table: table.clone(),
        ..TableChange::default()
    };
    // Every difference, as (the ALTER that resolves it, what it does to
    // rows, whether rows must be rewritten, the modes that run it).
    let mut wanted: Vec<(String, String, bool, bool)> = Vec::new();
    for c in &m.columns {
        let want = pg_type(c.ty);
        match live.columns.iter().find(|l| l.name == c.name) {
            None => wanted.push((
                format!("ALTER TABLE {q} ADD COLUMN {} {want}", quote(&c.name)),
                format!(
                    "column {} ({want}) added: NULL until the next load, which rewrites every row",
                    c.name
                ),
                true,
                mode != OnSchemaChange::Fail,
            )),
            Some(l) if l.ty != want => wanted.push((
                format!(
                    "ALTER TABLE {q} ALTER COLUMN {c} TYPE {want} USING {c}::{want}",
                    c = quote(&c.name)
                ),
                format!(
                    "column {} changes type {} -> {want}: values cast, then rewritten by the next load",
                    c.name, l.ty
                ),
                true,
                mode == OnSchemaChange::SyncAllColumns,
            )),
            // A nullable model column over a NOT NULL one: rows with NULL
            // would fail the load. (The other way round is harmless: the
            // model's tests guarantee what the table does not check.)
            Some(l) if l.not_null && c.nullable && !live.key.contains(&c.name) => wanted.push((
                format!(
                    "ALTER TABLE {q} ALTER COLUMN {} DROP NOT NULL",
                    quote(&c.name)
                ),
                format!("column {} becomes nullable: rows unchanged", c.name),
                false,
                mode != OnSchemaChange::Fail,
            )),
            Some(_) => {}
        }
    }
    for l in &live.columns {
        if m.column(&l.name).is_some() {
            continue;
        }
        let col = quote(&l.name);
        match mode {
            OnSchemaChange::SyncAllColumns => wanted.push((
                format!("ALTER TABLE {q} DROP COLUMN {col}"),
                format!(
                    "column {} ({}) dropped: the model no longer has it; its values are gone",
                    l.name, l.ty
                ),
                false,
                true,
            )),
            OnSchemaChange::AppendNewColumns if l.not_null && !live.key.contains(&l.name) => {
                wanted.push((
                    format!("ALTER TABLE {q} ALTER COLUMN {col} DROP NOT NULL"),
                    format!(
                        "column {} kept although the model no longer has it: now nullable, NULL in rows loaded from now on",
                        l.name
                    ),
                    false,
                    true,
                ))
            }
            OnSchemaChange::AppendNewColumns => {}
            OnSchemaChange::Fail => wanted.push((
                format!("ALTER TABLE {q} DROP COLUMN {col}"),
                format!("the table has column {} ({}), the model does not", l.name, l.ty),
                false,
                false,
            )),
        }
    }
    for (sql, note, rewrite, allowed) in wanted {
        if allowed {
            ch.statements.push(sql);
            ch.notes.push(note);
            ch.reset_load |= rewrite;
        } else {
            let what = match note.split_once(':') {
                Some((head, _)) => head.to_string(),
                None => note,
            };
            ch.problems.push(format!(
                "{table} (model {}, on_schema_change: {}): {what}; to fix: {sql}, or set on_schema_change: {} on the model",
                m.name,
                mode.as_str(),
                if mode == OnSchemaChange::Fail {
                    "append_new_columns or sync_all_columns"
                } else {
                    "sync_all_columns"
                }
            ));
        }
    }
    if live.key != m.unique_key {
        ch.problems.push(format!(
            "{table} (model {}): primary key ({}) differs from the model's unique_key ({}); a key is never changed in place: DROP TABLE {q}; then `dag migrate` recreates it and the next load fills it",
            m.name,
            live.key.join(", "),
            m.unique_key.join(", ")
        ));
    }
    ch
}

/// What a model's table needs: created when `live` is `None`, else the
/// [`diff`]; `None` for a model without a warehouse table.
pub fn change(m: &Model, live: Option<&LiveTable>) -> Option<TableChange> {
    let t = m.warehouse.as_ref()?;
    Some(match live {
        None => create(m, t),
        Some(l) => diff(m, t, l),
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decl::{Column, ColumnType};

    fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
        Column {
            name: name.into(),
            ty,
            description: String::new(),
            nullable,
        }
    }

    fn model(mode: OnSchemaChange, columns: Vec<Column>) -> Model {
        Model {
            name: "m".into(),
            layer: crate::decl::Layer::Gold,
            source: crate::decl::Source::Kafka { topic: "t".into() },
            description: String::new(),
            tags: Vec::new(),
            schedule: None,
            materialized: crate::decl::Materialization::Table,
            unique_key: vec!["id".into()],
            partition_by: Vec::new(),
            columns,
            tests: Vec::new(),
            warehouse: Some(WarehouseTarget {
                schema: "gold".into(),
                table: "t".into(),
                on_schema_change: mode,
            }),
            pos: crate::decl::Pos::file("m.yml"),
        }
    }

    fn live(cols: &[(&str, &str, bool)]) -> LiveTable {
        LiveTable {
            columns: cols
                .iter()
                .map(|(n, t, nn)| LiveColumn {
                    name: n.to_string(),
                    ty: t.to_string(),
                    not_null: *nn,
                })
                .collect(),
            key: vec!["id".into()],
        }
    }

    #[test]
    fn create_quotes_types_keys_and_comments() {
        let mut m = model(
            OnSchemaChange::Fail,
            vec![
                col("id", ColumnType::String, false),
                col(
                    "amount",
                    ColumnType::Decimal {
                        precision: 14,
                        scale: 2,
                    },
                    true,
                ),
            ],
        );
        m.description = "it's gold".into();
        let c = change(&m, None).unwrap();
        assert_eq!(
            c.statements[0],
            "CREATE TABLE \"gold\".\"t\" (\n    \"id\" text NOT NULL,\n    \"amount\" numeric(14,2),\n    PRIMARY KEY (\"id\")\n)"
        );
        assert_eq!(
            c.statements[1],
            "COMMENT ON TABLE \"gold\".\"t\" IS 'it''s gold'"
        );
        assert!(c.reset_load);
    }

    #[test]
    fn each_mode_handles_an_added_a_retyped_and_a_removed_column() {
        let cols = vec![
            col("id", ColumnType::String, false),
            col("n", ColumnType::BigInt, false),
            col("new", ColumnType::Date, true),
        ];
        let table = live(&[
            ("id", "text", true),
            ("n", "integer", true),
            ("old", "text", true),
        ]);
        let fail = diff(
            &model(OnSchemaChange::Fail, cols.clone()),
            &fail_target(),
            &table,
        );
        assert!(fail.statements.is_empty());
        assert_eq!(fail.problems.len(), 3, "{:?}", fail.problems);
        assert!(fail.problems[0].contains("TYPE bigint USING \"n\"::bigint"));
        assert!(fail.problems[1].contains("ADD COLUMN \"new\" date"));
        assert!(fail.problems[2].contains("DROP COLUMN \"old\""));

        let m = model(OnSchemaChange::AppendNewColumns, cols.clone());
        let append = diff(&m, m.warehouse.as_ref().unwrap(), &table);
        assert_eq!(
            append.statements,
            vec![
                "ALTER TABLE \"gold\".\"t\" ADD COLUMN \"new\" date",
                "ALTER TABLE \"gold\".\"t\" ALTER COLUMN \"old\" DROP NOT NULL"
            ]
        );
        assert_eq!(
            append.problems.len(),
            1,
            "the type change: {:?}",
            append.problems
        );
        assert!(append.reset_load);

        let m = model(OnSchemaChange::SyncAllColumns, cols);
        let sync = diff(&m, m.warehouse.as_ref().unwrap(), &table);
        assert!(sync.problems.is_empty(), "{:?}", sync.problems);
        assert_eq!(sync.statements.len(), 3);
        assert!(sync.notes[2].contains("values are gone"));
    }

    #[test]
    fn a_key_change_is_a_problem_in_every_mode() {
        let m = model(
            OnSchemaChange::SyncAllColumns,
            vec![col("id", ColumnType::String, false)],
        );
        let mut table = live(&[("id", "text", true)]);
        table.key = vec![];
        let c = diff(&m, m.warehouse.as_ref().unwrap(), &table);
        assert_eq!(c.problems.len(), 1);
        assert!(c.problems[0].contains("DROP TABLE \"gold\".\"t\""));
    }

    #[test]
    fn a_matching_table_needs_nothing() {
        let m = model(
            OnSchemaChange::Fail,
            vec![
                col("id", ColumnType::String, false),
                col("x", ColumnType::Double, false),
            ],
        );
        // NOT NULL in the model over a nullable column is tolerated.
        let c = change(
            &m,
            Some(&live(&[
                ("id", "text", true),
                ("x", "double precision", false),
            ])),
        );
        assert!(c.unwrap().is_empty());
    }

    fn fail_target() -> WarehouseTarget {
        WarehouseTarget {
            schema: "gold".into(),
            table: "t".into(),
            on_schema_change: OnSchemaChange::Fail,
        }
    }
}
