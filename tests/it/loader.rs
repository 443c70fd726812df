//! The pipeline loader on the shipped pipeline and on broken ones: every
//! error names file, line and what is wrong.

use crate::fixtures::{self, BRONZE, gold, owned, pipeline};
use dag::pipeline::Pipeline;
use jobs::decl::{Layer, Source};

fn load_err(files: &[(&str, &str)]) -> (String, String) {
    let p = pipeline(files);
    let err = Pipeline::load(&p.root)
        .expect_err("must be rejected")
        .to_string();
    let root = format!("{}/", p.root.display());
    (err.replace(&root, ""), root)
}

#[test]
fn shipped_pipeline_loads_with_expected_shape() {
    let p = Pipeline::load(&fixtures::repo().join("models/telematics"))
        .expect("shipped pipeline is valid");
    assert_eq!(
        p.node_count(),
        17,
        "2 bronze, 2 clean + 2 quarantine + 4 seeds, 7 gold"
    );
    assert_eq!(p.edge_count(), 20);
    let count = |l: Layer| p.graph.node_weights().filter(|m| m.layer == l).count();
    assert_eq!(
        (
            count(Layer::Bronze),
            count(Layer::Silver),
            count(Layer::Gold)
        ),
        (2, 8, 7)
    );

    // Every edge goes forward in the topological order.
    let order = p.topo_order();
    let pos = |n| order.iter().position(|x| *x == n).expect("in order");
    for e in p.graph.edge_indices() {
        let (a, b) = p.graph.edge_endpoints(e).expect("edge");
        assert!(
            pos(a) < pos(b),
            "{} must come before {}",
            p.graph[a].name,
            p.graph[b].name
        );
    }
    let names: Vec<&str> = order.iter().map(|n| p.graph[*n].name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bronze_traffic_fines",
            "bronze_vehicle_telemetry",
            "silver_car_colors",
            "silver_car_models",
            "silver_drivers",
            "silver_fines",
            "quarantine_fines",
            "silver_telemetry",
            "quarantine_telemetry",
            "silver_vehicles",
            "fact_telemetry",
            "fact_fines",
            "dim_driver",
            "dim_vehicle",
            "agg_alerts_15min",
            "int_driver_daily_telemetry",
            "agg_driver_daily",
        ]
    );

    let inputs = |name: &str| -> Vec<String> {
        p.inputs(p.node(name).expect("model"))
            .iter()
            .map(|m| m.name.clone())
            .collect()
    };
    assert_eq!(
        inputs("fact_fines"),
        ["fact_telemetry", "silver_fines"],
        "as-of join sides are inputs"
    );
    assert_eq!(
        inputs("dim_vehicle"),
        [
            "fact_fines",
            "fact_telemetry",
            "silver_car_colors",
            "silver_car_models",
            "silver_vehicles"
        ]
    );
    assert_eq!(inputs("quarantine_telemetry"), ["silver_telemetry"]);
    assert_eq!(
        inputs("agg_alerts_15min"),
        ["dim_vehicle", "fact_telemetry"]
    );

    // The spec's data tests are all declared, with error severity.
    let tests: Vec<String> = p
        .graph
        .node_weights()
        .flat_map(|m| m.tests.iter().map(|t| t.name.clone()))
        .collect();
    for expected in [
        "unique_fact_telemetry_event_id",
        "relationships_fact_telemetry_vehicle_id",
        "relationships_fact_telemetry_driver_id",
        "relationships_fact_fines_vehicle_id",
        "relationships_fact_fines_driver_id",
        "relationships_agg_driver_daily_driver_id",
        "accepted_values_dim_vehicle_fuel_type",
        "accepted_values_fact_telemetry_gear",
        "unique_agg_driver_daily_driver_id_event_date",
        "not_null_fact_telemetry_event_time",
        "unique_agg_alerts_15min_window_start",
    ] {
        assert!(
            tests.contains(&expected.to_string()),
            "missing test {expected}; have {tests:?}"
        );
    }
    assert!(
        !tests.contains(&"not_null_fact_fines_driver_id".to_string()),
        "driver_id of a fine may be null"
    );
    let warehouse: Vec<&str> = p
        .graph
        .node_weights()
        .filter(|m| m.warehouse.is_some())
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        warehouse.len(),
        6,
        "every gold model is loaded: {warehouse:?}"
    );
    let Source::Clean { fields, .. } = &p.model("silver_telemetry").expect("model").source else {
        panic!("silver_telemetry is a clean model");
    };
    let order: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "event_id",
            "vehicle_id",
            "driver_id",
            "event_time",
            "lat",
            "lon",
            "speed_kmh",
            "rpm",
            "gear",
            "fuel_pct"
        ],
        "rule order decides the quarantine reason"
    );
    assert_eq!(p.schedules.len(), 2);
}

#[test]
fn cycle_is_named_as_a_whole_chain_with_places() {
    let mut files = vec![("bronze/src.yml".to_string(), BRONZE.to_string())];
    files.extend(gold("a", "SELECT k FROM c"));
    files.extend(gold("b", "SELECT k FROM a"));
    files.extend(gold("c", "SELECT k\nFROM b"));
    let (err, _) = load_err(&owned(&files));
    assert!(err.contains("cycle: a -> b -> c -> a"), "{err}");
    assert!(err.contains("b reads a at gold/b.sql:1:15"), "{err}");
    assert!(err.contains("c reads b at gold/c.sql:2:6"), "{err}");
    assert!(err.contains("a reads c at gold/a.sql:1:15"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("cycle:")).count(),
        1,
        "one cycle, reported once: {err}"
    );
}

#[test]
fn self_reference_is_a_cycle() {
    let files = gold("a", "SELECT k FROM a");
    let (err, _) = load_err(&owned(&files));
    assert!(err.contains("cycle: a -> a"), "{err}");
}

#[test]
fn unknown_model_in_sql_points_at_the_table_name() {
    let mut files = gold("a", "SELECT k\nFROM silver_telemetri");
    files[0].1.push_str("tags: [x]\n");
    let mut all = vec![(
        "silver/silver_telemetry.yml".to_string(),
        "kind: seed\nfile: x.csv\nunique_key: [k]\ncolumns:\n  - {name: k, type: string}\n"
            .to_string(),
    )];
    all.extend(files);
    let (err, _) = load_err(&owned(&all));
    assert_eq!(
        err,
        "gold/a.sql:2:6: `a` reads unknown model `silver_telemetri` (did you mean `silver_telemetry`?)"
    );
}

#[test]
fn unknown_model_and_column_in_tests_are_located() {
    let yml = "kind: sql\ncolumns:\n  - name: k\n    type: string\n    tests:\n      - relationships: {to: dim_x, field: id}\n  - name: j\n    type: string\n    tests:\n      - relationships: {to: b, field: nope}\nunique_key: [k, zz]\n";
    let mut files = vec![
        ("gold/a.yml".to_string(), yml.to_string()),
        ("gold/a.sql".to_string(), "SELECT 1 AS k".to_string()),
    ];
    files.extend(gold("b", "SELECT 1 AS k"));
    let (err, _) = load_err(&owned(&files));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "gold/a.yml:6:29: unknown model `dim_x`",
            "gold/a.yml:10:39: model `b` has no column `nope`",
            "gold/a.yml:11:17: `unique_key` names column `zz`, which `a` does not declare",
        ],
        "{err}"
    );
}

#[test]
fn duplicate_names_name_both_files() {
    let files = [
        ("bronze/x.yml", BRONZE),
        (
            "gold/x.yml",
            "kind: sql\ncolumns: [{name: k, type: string}]\n",
        ),
        ("gold/x.sql", "SELECT 1 AS k"),
    ];
    // load_err strips the temp folder from every path in the message.
    let (err, _) = load_err(&files);
    assert_eq!(
        err,
        "gold/x.yml:1:1: duplicate model name `x`: also declared by bronze/x.yml"
    );
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let files = [("bronze/x.yml", "kind: kafka_source\ntopic: [unclosed\n")];
    let (err, _) = load_err(&files);
    assert!(err.starts_with("bronze/x.yml:"), "{err}");
    assert!(err.contains("malformed model file"), "{err}");
}

#[test]
fn unknown_key_is_located_and_suggested() {
    let files = [
        (
            "gold/a.yml",
            "kind: sql\ncolumns: [{name: k, type: string}]\npartiton_by: [k]\n",
        ),
        ("gold/a.sql", "SELECT 1 AS k"),
    ];
    let (err, _) = load_err(&files);
    assert!(err.starts_with("gold/a.yml:3:"), "{err}");
    assert!(err.contains("partiton_by"), "{err}");
}

#[test]
fn key_of_another_kind_is_rejected() {
    let files = [(
        "bronze/a.yml",
        "kind: kafka_source\ntopic: t\nwarehouse: true\n",
    )];
    let (err, _) = load_err(&files);
    assert!(
        err.starts_with("bronze/a.yml:3:12: `warehouse` does not apply to a `kafka_source` model"),
        "{err}"
    );
}

#[test]
fn malformed_sql_and_missing_sql_are_reported() {
    let files = [
        (
            "gold/a.yml",
            "kind: sql\ncolumns: [{name: k, type: string}]\n",
        ),
        ("gold/a.sql", "SELEC k FROM"),
        (
            "gold/b.yml",
            "kind: sql\ncolumns: [{name: k, type: string}]\n",
        ),
        ("gold/orphan.sql", "SELECT 1"),
    ];
    let (err, _) = load_err(&files);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("gold/a.sql:1:1: malformed SQL"),
        "{err}"
    );
    assert_eq!(
        lines[1],
        "gold/b.yml:1:1: a `sql` model needs its query in `b.sql` beside this file"
    );
    assert!(
        lines[2].starts_with("gold/orphan.sql:1:1: SQL without a model file"),
        "{err}"
    );
}

/// A model file with a problem of its own is reported once: the models
/// reading it do not add "unknown model" lines for it.
#[test]
fn a_broken_model_file_is_not_reported_again_by_its_readers() {
    let files = [
        (
            "gold/f.yml",
            "kind: sql\nuniqe_key: [k]\ncolumns: [{name: k, type: string}]\n",
        ),
        ("gold/f.sql", "SELECT 'x' AS k\n"),
        (
            "gold/g.yml",
            "kind: sql\ncolumns: [{name: k, type: string}]\n",
        ),
        ("gold/g.sql", "SELECT k FROM f\n"),
    ];
    let (err, _) = load_err(&files);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("gold/f.yml:2:1: ") && lines[0].contains("`uniqe_key`"),
        "{err}"
    );
}

/// A query that ends too soon (a trailing comma) is reported where it
/// ends, not at its first line: sqlparser gives no place for it.
#[test]
fn a_query_that_ends_too_soon_is_reported_at_its_end() {
    let files = [
        (
            "gold/a.yml",
            "kind: sql\ncolumns: [{name: k, type: string}]\n",
        ),
        (
            "gold/t.yml",
            "kind: sql\ncolumns: [{name: k, type: string}]\n",
        ),
        ("gold/t.sql", "SELECT k\nFROM a\nGROUP BY k,\n\n"),
        ("gold/a.sql", "SELECT 'x' AS k\n"),
    ];
    let (err, _) = load_err(&files);
    assert!(
        err.starts_with("gold/t.sql:3:12: malformed SQL") && err.contains("EOF"),
        "{err}"
    );
}

#[test]
fn field_rules_are_checked() {
    let yml = "kind: clean\ninput: src\nquarantine: q\nfields:\n  - {name: a, type: numbr}\n  - {name: b, type: number, range: \"[5, 1]\"}\n  - {name: c, type: timestamp, max_ahead_of_ingest: 5 minutes}\ndedupe: {key: [a]}\ncolumns:\n  - {name: a, type: double}\n  - {name: b, type: double}\n  - {name: c, type: timestamp}\n";
    let files = [("bronze/src.yml", BRONZE), ("silver/s.yml", yml)];
    let (err, _) = load_err(&files);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("silver/s.yml:5:21: unknown field type `numbr`"),
        "{err}"
    );
    assert_eq!(
        lines[1],
        "silver/s.yml:6:36: interval `[5, 1]` is empty: 5 > 1"
    );
    assert!(
        lines[2].starts_with("silver/s.yml:7:53: duration `5 minutes` must look like `5m`"),
        "{err}"
    );
}

#[test]
fn layers_only_read_downstream() {
    let files = [
        ("bronze/src.yml", BRONZE),
        (
            "gold/a.yml",
            "kind: sql\ncolumns: [{name: k, type: string}]\n",
        ),
        ("gold/a.sql", "SELECT k FROM src"),
    ];
    let (err, _) = load_err(&files);
    assert!(
        err.contains("`a` cannot read `src`: bronze holds raw bytes"),
        "{err}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let files = [
        ("bronze/a.yml", "kind: kafka_sauce\n"),
        ("bronze/b.yml", "topic: x\n"),
        ("extra/c.yml", "kind: sql\n"),
    ];
    let (err, _) = load_err(&files);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains("unknown kind `kafka_sauce` (did you mean `kafka_source`?)"),
        "{err}"
    );
    assert!(
        lines[1].contains("bronze/b.yml:1:1: missing `kind:`"),
        "{err}"
    );
    assert!(lines[2].contains("unknown folder `extra`"), "{err}");
}

#[test]
fn a_scope_is_checked_against_the_model_and_its_inputs() {
    let files = [
        (
            "silver/s.yml",
            "kind: seed\nfile: s.csv\nunique_key: [k]\ncolumns:\n  - {name: k, type: string}\n  - {name: d, type: date}\n",
        ),
        (
            "silver/t.yml",
            "kind: seed\nfile: t.csv\nunique_key: [k]\ncolumns:\n  - {name: k, type: string}\n",
        ),
        (
            "gold/a.yml",
            "kind: sql\nunique_key: [k]\ncolumns:\n  - {name: k, type: string}\n  - {name: d, type: date}\nscope:\n  s: {k: k, d: dd}\n  t: {k: k}\n  u: {kk: k}\nscope_presence: [t, tt]\n",
        ),
        ("gold/a.sql", "SELECT s.k, s.d FROM s JOIN t ON t.k = s.k"),
    ];
    let (err, _) = load_err(&files);
    for want in [
        "`scope` needs `materialized: incremental`",
        "model `s` has no column `dd`",
        "every input must map the same output columns",
        "`scope` names `u`, which the model's query does not read",
        "`scope.u` names output column `kk`, which the model does not declare",
        "gold/a.yml:7:3: ",
        "gold/a.yml:10:21: `scope_presence` names `tt`, which `scope` does not map",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn accumulate_names_the_column_without_a_fold_and_the_unknown_fold() {
    let files = [
        (
            "gold/src.yml",
            "kind: sql\ncolumns: [{name: k, type: string}, {name: v, type: double}]\n",
        ),
        ("gold/src.sql", "SELECT 'a' AS k, 1.0 AS v"),
        (
            "gold/a.yml",
            "kind: sql\nmaterialized: incremental\nunique_key: [k]\n\
             accumulate: {n: sum, top: avg}\n\
             columns: [{name: k, type: string}, {name: n, type: bigint}, \
             {name: top, type: double}, {name: low, type: double}]\n",
        ),
        (
            "gold/a.sql",
            "SELECT k, COUNT(*) AS n, MAX(v) AS top, MIN(v) AS low FROM src GROUP BY k",
        ),
    ];
    let (err, _) = load_err(&files);
    assert!(
        err.contains("gold/a.yml:4:")
            && err.contains("`accumulate.top` is `avg`; expected sum, min or max"),
        "{err}"
    );
    assert!(
        err.contains("`accumulate` does not say how column `low` folds"),
        "{err}"
    );
}

#[test]
fn a_tests_options_are_read_by_its_kind_and_each_problem_is_located() {
    // One problem a test: an option of no kind (a typo), an option of
    // another kind, a list where a value goes, a count that is not one,
    // a key `equal_to` does not take, and an unknown kind.
    let yml = "kind: sql
columns:
  - name: k
    type: string
    tests:
      - unique: {colums: [k]}
      - not_null: {values: [a]}
      - accepted_values: {values: [a, [b]]}
tests:
  - row_count: {min: -1}
  - row_count: {equal_to: {model: a, filter: \"k > 1\"}}
  - expression: {sql: [x]}
  - uniqe: {columns: [k]}
";
    let files = [("gold/a.yml", yml), ("gold/a.sql", "SELECT 'x' AS k")];
    let (err, _) = load_err(&files);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "gold/a.yml:6:26: the `unique` test has no option `colums` (did you mean `columns`?): it takes columns, severity, where, warn_if, error_if",
            "gold/a.yml:7:28: the `not_null` test has no option `values`: it takes column, severity, where, warn_if, error_if",
            "gold/a.yml:8:39: `values:` of the `accepted_values` test lists values; this item is a list",
            "gold/a.yml:10:22: `min:` of the `row_count` test must be a whole number, 0 or more, not `-1`",
            "gold/a.yml:11:46: `equal_to:` has no key `filter`: it takes model, where",
            "gold/a.yml:12:23: `sql:` of the `expression` test must be a value, not a list",
            "gold/a.yml:13:5: unknown test `uniqe` (did you mean `unique`?): use one of not_null, unique, relationships, accepted_values, expression, row_count, freshness",
        ],
        "{err}"
    );
}
