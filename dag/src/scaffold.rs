//! `dag init NAME`: a new pipeline to start from, written as a project
//! (dag.toml, models/NAME/, data/, landing/): a file source with a first
//! file, a seed, a cleaning model and a gold model with data tests and a
//! warehouse table. `dag run` in the folder runs it all at once: the file
//! source takes its files, silver and gold run, their tests judge them and
//! the gold table is loaded into PostgreSQL (`DATABASE_URL`).

use anyhow::bail;
use std::path::{Path, PathBuf};

/// What [`write`] wrote.
#[derive(Debug)]
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Writes the new pipeline `name` into `dest`. Files that exist are an
/// error (nothing is written) unless `force`.
pub fn write(name: &str, dest: &Path, force: bool) -> anyhow::Result<Written> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid || matches!(name, "bronze" | "silver" | "gold") {
        bail!(
            "`{name}` cannot name a pipeline: use a lower-case identifier (a-z, 0-9, _), not bronze, silver or gold"
        );
    }
    let files: Vec<(PathBuf, String)> = FILES
        .iter()
        .map(|(path, text)| {
            (
                dest.join(path.replace("{name}", name)),
                text.replace("{name}", name),
            )
        })
        .collect();
    let todo: Vec<(PathBuf, &[u8])> = files
        .iter()
        .map(|(p, text)| (p.clone(), text.as_bytes()))
        .collect();
    crate::examples::write_project(&todo, force)?;
    Ok(Written {
        dir: dest.to_path_buf(),
        files: files.into_iter().map(|(p, _)| p).collect(),
    })
}

/// The files of a new pipeline; `{name}` is replaced by its name.
const FILES: &[(&str, &str)] = &[
    (
        "dag.toml",
        r#"# The {name} pipeline, written by `dag init {name}`. Every key is optional
# (README.md lists them); `dag validate` names any problem with its key.
pipeline = "{name}"

[vars]
# Read by models/{name}/gold/customer_revenue.sql: {{ var('min_orders') }}.
min_orders = 1

[warehouse]
# `dag run` loads the gold models marked `warehouse: true` into PostgreSQL:
# DATABASE_URL (or this url, with PGPASSWORD) says where.
url = "postgres://dag@localhost:5432/dag"
enabled = true
"#,
    ),
    (
        "models/{name}/pipeline.yml",
        r#"description: Orders arrive as CSV files in landing/orders; customers come from a seed; revenue per customer lands in the warehouse.
# `dag scheduler` fires these (cron with seconds); `dag run` runs everything now.
schedules:
  - {select: "+customer_revenue", cron: "0 */5 * * * *"}
"#,
    ),
    (
        "models/{name}/bronze/raw_orders.yml",
        r#"kind: file_source
description: Order exports, one CSV file per batch. Drop new files into landing/orders; each is taken once.
path: landing/orders
format: csv
"#,
    ),
    (
        "models/{name}/silver/orders.yml",
        r#"kind: clean
description: Orders with typed columns; rows that break a rule go to orders_quarantine with the reason.
format: csv
input: raw_orders
quarantine: orders_quarantine
fields:
  - {name: order_id, type: string, required: true}
  - {name: customer_id, type: string, required: true}
  - {name: amount, type: number, required: true, range: "(0, 100000]", max_decimals: 2, as: "decimal(12,2)"}
  - {name: ordered_at, type: timestamp, required: true}
dedupe:
  key: [order_id]
columns:
  - {name: order_id, type: string, nullable: false, tests: [not_null, unique]}
  - {name: customer_id, type: string, nullable: false, tests: [{relationships: {to: customers, field: customer_id, severity: warn}}]}
  - {name: amount, type: "decimal(12,2)", nullable: false}
  - {name: ordered_at, type: timestamp, nullable: false}
"#,
    ),
    (
        "models/{name}/silver/customers.yml",
        r#"kind: seed
description: Customers (data/customers.csv).
file: customers.csv
unique_key: [customer_id]
columns:
  - {name: customer_id, type: string, nullable: false, tests: [not_null, unique]}
  - {name: name, type: string, nullable: false}
  - {name: country, type: string, tests: [{accepted_values: {values: [DE, FR, NL, US]}}]}
"#,
    ),
    (
        "models/{name}/gold/customer_revenue.yml",
        r#"kind: sql
description: Orders and revenue per customer, loaded into the warehouse as gold.customer_revenue.
unique_key: [customer_id]
warehouse: true
columns:
  - {name: customer_id, type: string, nullable: false, tests: [unique, {relationships: {to: customers, field: customer_id}}]}
  - {name: name, type: string, nullable: false}
  - {name: orders, type: bigint, nullable: false, tests: [{expression: {sql: "orders >= 1"}}]}
  - {name: revenue, type: "decimal(14,2)", nullable: false}
  - {name: last_order_at, type: timestamp, nullable: false}
tests:
  - {row_count: {min: 1}}
"#,
    ),
    (
        "models/{name}/gold/customer_revenue.sql",
        r#"-- A Jinja template, as in dbt: `dag compile customer_revenue` prints it rendered.
SELECT
    c.customer_id,
    c.name,
    COUNT(*) AS orders,
    SUM(o.amount) AS revenue,
    MAX(o.ordered_at) AS last_order_at
FROM {{ ref('orders') }} o
JOIN {{ ref('customers') }} c ON c.customer_id = o.customer_id
GROUP BY c.customer_id, c.name
HAVING COUNT(*) >= {{ var('min_orders') }}
"#,
    ),
    (
        "data/customers.csv",
        "customer_id,name,country\nc1,Ada Lovelace,NL\nc2,Grace Hopper,US\nc3,Alan Turing,FR\n",
    ),
    (
        "landing/orders/orders-0001.csv",
        "order_id,customer_id,amount,ordered_at\n\
o1,c1,12.50,2026-12-01T09:15:00Z\n\
o2,c2,99.99,2026-12-01T10:00:00Z\n\
o3,c1,5.00,2026-12-01T11:30:00+01:00\n\
o4,c3,not a number,2026-12-01T12:00:00Z\n\
o2,c2,99.99,2026-12-01T10:00:00Z\n",
    ),
];
