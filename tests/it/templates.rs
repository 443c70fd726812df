//! dbt-style SQL models, end to end with the built binary, on a user's
//! pipeline in a temporary folder: `ref`, `var` (dag.toml's `[vars]`,
//! overridden by `--vars`), `{% set %}`, `{% for %}`, `{% if %}`, a macro
//! from `macros/`, `config()` and `this`; `dag compile` prints the rendered
//! SQL; the rows reach PostgreSQL; errors in a template, in a macro and in
//! the rendered SQL name the file and the line in that file.

use crate::fixtures::ok;
use std::path::Path;
use std::process::{Command, Output};
use testkit::TestDb;

const CUSTOMERS: &str = "kind: seed
description: Customers.
file: customers.csv
unique_key: [id]
columns:
  - {name: id,   type: string, nullable: false, tests: [not_null, unique]}
  - {name: name, type: string}
";

const ORDERS: &str = "kind: seed
description: Orders.
file: orders.csv
unique_key: [id]
columns:
  - {name: id,          type: string, nullable: false, tests: [not_null, unique]}
  - {name: customer_id, type: string, nullable: false}
  - {name: status,      type: string}
  - {name: amount,      type: double}
";

const MACROS: &str = "{# Counting by status, the dbt way. #}
{% macro count_status(status) -%}
SUM(CASE WHEN o.status = '{{ status }}' THEN 1 ELSE 0 END)
{%- endmacro %}
";

/// The model as a dbt user writes it: pasted unchanged from a dbt project.
const MODEL_SQL: &str = "{{ config(materialized='table') }}
{% set statuses = var('statuses') %}
WITH o AS (
    SELECT * FROM {{ ref('orders') }}
    WHERE amount >= {{ var('min_amount', 0) }}
)
SELECT
    c.id,
    c.name,
    {% for s in statuses %}
    {{ count_status(s) }} AS n_{{ s }},
    {% endfor %}
    {% if var('with_total', true) %}SUM(COALESCE(o.amount, 0.0)){% else %}0.0{% endif %} AS total,
    COUNT(o.id) AS n_orders
FROM {{ ref('customers') }} c
LEFT JOIN o ON o.customer_id = c.id
GROUP BY c.id, c.name
";

const MODEL_YML: &str = "kind: sql
description: Orders per customer and status.
unique_key: [id]
warehouse: true
columns:
  - {name: id,         type: string, nullable: false, tests: [not_null, unique, {relationships: {to: customers, field: id}}]}
  - {name: name,       type: string}
  - {name: n_paid,     type: bigint}
  - {name: n_shipped,  type: bigint}
  - {name: total,      type: double}
  - {name: n_orders,   type: bigint, nullable: false}
";

/// A user's pipeline `shop` in a temporary folder, with its dag.toml.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let p = Project {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        p.write("models/shop/silver/customers.yml", CUSTOMERS);
        p.write("models/shop/silver/orders.yml", ORDERS);
        p.write("models/shop/macros/counts.sql", MACROS);
        p.write("models/shop/gold/customer_orders.yml", MODEL_YML);
        p.write("models/shop/gold/customer_orders.sql", MODEL_SQL);
        p.write("data/customers.csv", "id,name\nc1,Ada\nc2,Bob\nc3,Cy\n");
        p.write(
            "data/orders.csv",
            "id,customer_id,status,amount\no1,c1,paid,5.0\no2,c1,shipped,20.0\no3,c1,paid,30.0\no4,c2,shipped,8.0\n",
        );
        let r = p.root().display().to_string();
        p.write(
            "dag.toml",
            &format!(
                "pipeline = \"shop\"\nmodels_dir = \"{r}/models\"\ndata_dir = \"{r}/data\"\n[lake]\nuri = \"file://{r}/lake\"\n[vars]\nstatuses = [\"paid\", \"shipped\"]\n"
            ),
        );
        p
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn dag(&self, db: Option<&TestDb>, args: &[&str]) -> Output {
        let mut cmd = Command::new(testkit::dag_bin());
        cmd.current_dir(self.root()).args(args);
        match db {
            Some(db) => cmd
                .env("DATABASE_URL", &db.url)
                .env("DAG_WAREHOUSE__ENABLED", "true")
                .env("DAG_WAREHOUSE__RETRY_TIMEOUT", "20s"),
            None => cmd.env("DAG_WAREHOUSE__ENABLED", "false"),
        };
        cmd.output().expect("dag")
    }
}

/// stdout and stderr of a command that must fail with exit code 2.
fn bad_input(out: Output) -> String {
    let text = crate::fixtures::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    text
}

async fn rows(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws('|', id, name, n_paid, n_shipped, total, n_orders)
         FROM gold.customer_orders ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("rows")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dbt_model_renders_runs_and_loads_and_vars_override_from_the_command_line() {
    let p = Project::new();
    let sql = ok(p.dag(None, &["compile", "customer_orders"]));
    for want in [
        "SELECT * FROM orders\n    WHERE amount >= 0\n",
        "SUM(CASE WHEN o.status = 'paid' THEN 1 ELSE 0 END) AS n_paid,",
        "SUM(CASE WHEN o.status = 'shipped' THEN 1 ELSE 0 END) AS n_shipped,",
        "SUM(COALESCE(o.amount, 0.0)) AS total,",
        "FROM customers c\n",
    ] {
        assert!(sql.contains(want), "{want:?} not in:\n{sql}");
    }
    assert!(!sql.contains("{{") && !sql.contains("{%"), "{sql}");

    // The edges come from the rendered SQL.
    let list = ok(p.dag(None, &["list", "+customer_orders"]));
    for m in ["customers", "orders", "customer_orders"] {
        assert!(list.contains(m), "{m} not in {list}");
    }

    let db = TestDb::create().await.expect("db");
    ok(p.dag(Some(&db), &["run"]));
    assert_eq!(
        rows(&db).await,
        ["c1|Ada|2|1|55|3", "c2|Bob|0|1|8|1", "c3|Cy|0|0|0|0"]
    );

    // --vars wins over [vars] and over a default; the lake table is
    // rebuilt from scratch because the query changed.
    let vars = "{min_amount: 10, with_total: false}";
    let sql = ok(p.dag(None, &["compile", "customer_orders", "--vars", vars]));
    assert!(sql.contains("WHERE amount >= 10\n"), "{sql}");
    assert!(sql.contains("    0.0 AS total,"), "{sql}");
    ok(p.dag(Some(&db), &["run", "--full-refresh", "--vars", vars]));
    assert_eq!(
        rows(&db).await,
        ["c1|Ada|1|1|0|2", "c2|Bob|0|0|0|0", "c3|Cy|0|0|0|0"]
    );

    let bad = bad_input(p.dag(None, &["compile", "customer_orders", "--vars", "[1, 2"]));
    assert!(bad.contains("--vars"), "{bad}");
    db.drop_db().await.expect("drop");
}

#[test]
fn an_unknown_ref_names_the_model_file_line_and_the_likely_model() {
    let p = Project::new();
    p.write(
        "models/shop/gold/customer_orders.sql",
        &MODEL_SQL.replace("ref('orders')", "ref('order')"),
    );
    let out = bad_input(p.dag(None, &["validate"]));
    let file = p.root().join("models/shop/gold/customer_orders.sql");
    let want = format!("{}:4:", file.display());
    assert!(out.contains(&want), "{want} not in:\n{out}");
    assert!(out.contains("unknown model `order`"), "{out}");
    assert!(out.contains("`orders`"), "{out}");
}

/// Takes `statuses` out of dag.toml's `[vars]`.
fn unset_statuses(p: &Project) {
    p.write(
        "dag.toml",
        &std::fs::read_to_string(p.root().join("dag.toml"))
            .expect("ok")
            .replace("statuses = [\"paid\", \"shipped\"]\n", ""),
    );
}

#[test]
fn a_missing_var_and_a_broken_tag_name_their_line() {
    let p = Project::new();
    unset_statuses(&p);
    let out = bad_input(p.dag(None, &["validate"]));
    assert!(out.contains("customer_orders.sql:2:"), "{out}");
    assert!(out.contains("var('statuses') is not set"), "{out}");
    // Given on the command line, it is set.
    ok(p.dag(
        None,
        &["validate", "--vars", r#"{"statuses": ["paid", "shipped"]}"#],
    ));

    p.write(
        "models/shop/gold/customer_orders.sql",
        &MODEL_SQL.replace("{% endfor %}", "{% endfro %}"),
    );
    let out = bad_input(p.dag(None, &["validate", "--vars", "{statuses: [paid]}"]));
    assert!(out.contains("customer_orders.sql:12:"), "{out}");
    assert!(out.contains("syntax error"), "{out}");
}

/// A template that does not render is reported once: the model file's
/// checks against the query (its `scope` inputs) do not add noise about a
/// query that could not be rendered.
#[test]
fn a_template_that_does_not_render_is_its_only_problem() {
    let p = Project::new();
    unset_statuses(&p);
    p.write(
        "models/shop/gold/customer_orders.yml",
        &MODEL_YML.replace(
            "unique_key: [id]\n",
            "unique_key: [id]\nmaterialized: incremental\nscope:\n  orders: {id: customer_id}\n",
        ),
    );
    let out = bad_input(p.dag(None, &["validate"]));
    assert!(out.contains("var('statuses') is not set"), "{out}");
    assert!(out.contains("has 1 problem(s)"), "{out}");
    ok(p.dag(
        None,
        &["validate", "--vars", r#"{"statuses": ["paid", "shipped"]}"#],
    ));
}

#[test]
fn an_error_inside_a_macro_names_the_macro_file() {
    let p = Project::new();
    p.write(
        "models/shop/macros/counts.sql",
        &MACROS.replace("'{{ status }}'", "'{{ status }}' AND {{ ref('nope') }}"),
    );
    let out = bad_input(p.dag(None, &["validate"]));
    let file = p.root().join("models/shop/macros/counts.sql");
    let want = format!("{}:3:", file.display());
    assert!(out.contains(&want), "{want} not in:\n{out}");
    assert!(out.contains("unknown model `nope`"), "{out}");
    assert!(out.contains("rendering model `customer_orders`"), "{out}");
}

#[test]
fn a_problem_in_the_rendered_sql_is_placed_on_the_template_line() {
    let p = Project::new();
    // Rendered, the loop makes the SQL longer than the template; the
    // unknown table is on template line 15.
    p.write(
        "models/shop/gold/customer_orders.sql",
        &MODEL_SQL.replace("FROM {{ ref('customers') }} c", "FROM customerz c"),
    );
    let out = bad_input(p.dag(None, &["validate"]));
    assert!(out.contains("customer_orders.sql:15:"), "{out}");
    assert!(out.contains("unknown model `customerz`"), "{out}");
}

#[test]
fn source_names_the_clean_model_of_a_topic_and_plain_sql_is_untouched() {
    let p = Project::new();
    p.write(
        "models/shop/bronze/raw_events.yml",
        "kind: kafka_source\ndescription: Raw events.\ntopic: shop.events\n",
    );
    p.write(
        "models/shop/silver/events.yml",
        "kind: clean
description: Events.
input: raw_events
quarantine: events_quarantine
fields:
  - {name: id, type: string, required: true}
dedupe: {key: [id]}
columns:
  - {name: id, type: string, nullable: false}
",
    );
    p.write(
        "models/shop/gold/event_ids.yml",
        "kind: sql\ndescription: Ids.\ncolumns:\n  - {name: id, type: string}\n",
    );
    p.write(
        "models/shop/gold/event_ids.sql",
        "SELECT id FROM {{ source('shop', 'shop.events') }} -- {{ this }}\n",
    );
    let sql = ok(p.dag(None, &["compile", "event_ids"]));
    assert_eq!(sql.trim(), "SELECT id FROM events -- event_ids");

    // A `source` that is no source says which there are.
    p.write(
        "models/shop/gold/event_ids.sql",
        "SELECT id FROM {{ source('shop.event') }}\n",
    );
    let out = bad_input(p.dag(None, &["validate"]));
    assert!(out.contains("event_ids.sql:1:"), "{out}");
    assert!(out.contains("unknown source `shop.event`"), "{out}");
    assert!(out.contains("`shop.events`"), "{out}");

    // Plain SQL with braces in a string literal is SQL, not a template.
    p.write(
        "models/shop/gold/event_ids.sql",
        "SELECT id FROM events WHERE id <> '}}'\n",
    );
    let sql = ok(p.dag(None, &["compile", "event_ids"]));
    assert_eq!(sql.trim(), "SELECT id FROM events WHERE id <> '}}'");
    let out = bad_input(p.dag(None, &["compile", "events"]));
    assert!(out.contains("only `sql` models have SQL"), "{out}");
}
