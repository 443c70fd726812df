//! Parsing of where a model goes in the warehouse (`warehouse:`) and what
//! happens to that table when the model's columns change
//! (`on_schema_change:`).

use super::raw::{RawModel, RawWarehouse};
use super::scalars::is_identifier;
use super::{Diagnostics, OnSchemaChange, Pos, WarehouseTarget};
use serde_saphyr::Spanned;
use std::path::Path;

/// The warehouse target of model `name`, if it has one. `unique_key` is
/// the key as declared: it becomes the table's primary key.
pub(super) fn parse_warehouse(
    path: &Path,
    name: &str,
    raw: &RawModel,
    unique_key: &[String],
    diags: &mut Diagnostics,
) -> Option<WarehouseTarget> {
    let at = |loc: &serde_saphyr::Location| Pos::at(path, loc);
    let on_schema_change = parse_on_schema_change(path, raw, diags);
    let warehouse = warehouse_target(path, name, raw, on_schema_change, diags);
    if let Some(v) = &raw.on_schema_change
        && warehouse.is_none()
    {
        diags.push(
            at(&v.referenced),
            "`on_schema_change` says what happens to this model's warehouse table when its columns change: the model has no `warehouse:`",
        );
    }
    if warehouse.is_some() && unique_key.is_empty() {
        diags.push(
            raw.warehouse
                .as_ref()
                .map(|w| at(&w.referenced))
                .unwrap_or_else(|| Pos::file(path)),
            "a model loaded into the warehouse needs `unique_key:` (the table's primary key)",
        );
    }
    warehouse
}

/// `on_schema_change:`, `fail` when absent or unknown.
fn parse_on_schema_change(path: &Path, raw: &RawModel, diags: &mut Diagnostics) -> OnSchemaChange {
    match &raw.on_schema_change {
        None => OnSchemaChange::default(),
        Some(v) => OnSchemaChange::parse(&v.value).unwrap_or_else(|| {
            diags.push(
                Pos::at(path, &v.referenced),
                format!(
                    "on_schema_change `{}` is not one of: fail, append_new_columns, sync_all_columns",
                    v.value
                ),
            );
            OnSchemaChange::default()
        }),
    }
}

/// `warehouse: true` (table `gold.<name>`), `warehouse: false` or absent
/// (none), or `warehouse: {table: schema.table}`.
fn warehouse_target(
    path: &Path,
    name: &str,
    raw: &RawModel,
    on_schema_change: OnSchemaChange,
    diags: &mut Diagnostics,
) -> Option<WarehouseTarget> {
    match &raw.warehouse {
        None
        | Some(Spanned {
            value: RawWarehouse::Flag(false),
            ..
        }) => None,
        Some(Spanned {
            value: RawWarehouse::Flag(true),
            ..
        }) => Some(WarehouseTarget {
            schema: "gold".into(),
            table: name.to_string(),
            on_schema_change,
        }),
        Some(Spanned {
            value: RawWarehouse::Target { table },
            referenced,
            ..
        }) => {
            let full = table.clone().unwrap_or_else(|| format!("gold.{name}"));
            let (schema, table) = full.split_once('.').unwrap_or(("gold", full.as_str()));
            if !is_identifier(schema) || !is_identifier(table) {
                diags.push(Pos::at(path, referenced), format!("warehouse table `{full}` must be `schema.table` with lower-case identifiers"));
            }
            Some(WarehouseTarget {
                schema: schema.into(),
                table: table.into(),
                on_schema_change,
            })
        }
    }
}
