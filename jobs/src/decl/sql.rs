//! The tables a gold model's SQL reads, with where they are named.
//!
//! DAG edges come from the query itself, not from a list kept by hand: every
//! table in a FROM or JOIN that is not a CTE of the same query is an input.
//! Parsed with sqlparser's PostgreSQL dialect, the closest to polars SQL.

use sqlparser::ast::{ObjectName, Query, Statement, visit_relations};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Span;
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// A table named in a query, and where (1-based line and column in the SQL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlRelation {
    pub name: String,
    pub line: u64,
    pub column: u64,
}

/// Parses one SELECT query and returns the tables it reads, in order of
/// first mention, without CTE names. Errors carry sqlparser's message, which
/// includes the line and column.
pub fn sql_relations(sql: &str) -> Result<Vec<SqlRelation>, String> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())?;
    let [statement] = statements.as_slice() else {
        return Err(format!(
            "a model's SQL must be exactly one query, found {} statements",
            statements.len()
        ));
    };
    let Statement::Query(query) = statement else {
        return Err("a model's SQL must be a SELECT query".into());
    };
    let mut ctes = BTreeSet::new();
    collect_ctes(query, &mut ctes);

    let mut found: Vec<SqlRelation> = Vec::new();
    let _ = visit_relations(statement, |name: &ObjectName| {
        let text = name.to_string();
        let bare = text.trim_matches('"').to_string();
        if !ctes.contains(&bare) && !found.iter().any(|r| r.name == bare) {
            let span: Span = sqlparser::ast::Spanned::span(name);
            found.push(SqlRelation {
                name: bare,
                line: span.start.line,
                column: span.start.column,
            });
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(found)
}

/// Which columns a query may read: every word of its text (a superset of
/// the column names it mentions, `USING (...)` lists included), lowercased,
/// and the tables it reads with `*` or `t.*`, which need every column.
/// Over-approximate on purpose: reading a column too many costs a little,
/// one too few breaks the query.
#[derive(Clone, Debug, Default)]
pub struct SqlColumns {
    pub words: BTreeSet<String>,
    pub wildcard_tables: BTreeSet<String>,
}

impl SqlColumns {
    /// Whether `column` of `table` may be read.
    pub fn reads(&self, table: &str, column: &str) -> bool {
        self.wildcard_tables.contains(table) || self.words.contains(&column.to_lowercase())
    }
}

pub fn sql_columns(sql: &str) -> Result<SqlColumns, String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = PostgreSqlDialect {};
    let words = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_lowercase()),
            _ => None,
        })
        .collect();
    let statements = Parser::parse_sql(&dialect, sql).map_err(|e| e.to_string())?;
    let mut wildcard_tables = BTreeSet::new();
    for statement in &statements {
        let _ = sqlparser::ast::visit_statements(statement, |st| {
            if let Statement::Query(q) = st {
                wildcards_of_query(q, &mut wildcard_tables);
            }
            ControlFlow::<()>::Continue(())
        });
    }
    Ok(SqlColumns {
        words,
        wildcard_tables,
    })
}

fn wildcards_of_query(query: &Query, out: &mut BTreeSet<String>) {
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            wildcards_of_query(&cte.query, out);
        }
    }
    wildcards_of_set(&query.body, out);
}

fn wildcards_of_set(set: &sqlparser::ast::SetExpr, out: &mut BTreeSet<String>) {
    use sqlparser::ast::{SelectItem, SetExpr, TableFactor};
    match set {
        SetExpr::Select(select) => {
            let star = select.projection.iter().any(|item| {
                matches!(
                    item,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            });
            for from in &select.from {
                let factors =
                    std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation));
                for factor in factors {
                    match factor {
                        TableFactor::Table { name, .. } if star => {
                            out.insert(name.to_string().trim_matches('"').to_string());
                        }
                        TableFactor::Derived { subquery, .. } => wildcards_of_query(subquery, out),
                        _ => {}
                    }
                }
            }
        }
        SetExpr::Query(q) => wildcards_of_query(q, out),
        SetExpr::SetOperation { left, right, .. } => {
            wildcards_of_set(left, out);
            wildcards_of_set(right, out);
        }
        _ => {}
    }
}

fn collect_ctes(query: &Query, out: &mut BTreeSet<String>) {
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            out.insert(cte.alias.name.value.clone());
            collect_ctes(&cte.query, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_words_and_stars_widen_their_tables() {
        let c = sql_columns(
            "WITH a AS (SELECT k, Speed FROM x JOIN v USING (vid)) SELECT * FROM a JOIN y USING (j) \
             UNION ALL SELECT t.* FROM (SELECT * FROM z) t",
        )
        .expect("parses");
        assert!(c.reads("x", "speed") && c.reads("x", "k") && !c.reads("x", "rpm"));
        assert!(c.reads("v", "vid") && !c.reads("v", "other"));
        // `SELECT * FROM a JOIN y`: y's every column; a is a CTE (its own
        // list decides x's columns); z through a derived table.
        assert!(c.reads("y", "anything") && c.reads("z", "anything"));
        assert!(!c.reads("x", "anything"));
    }

    #[test]
    fn finds_tables_and_skips_ctes() {
        let sql = "WITH a AS (SELECT * FROM silver_x)\nSELECT * FROM a\n  JOIN dim_y d ON a.k = d.k\n  LEFT JOIN silver_x s ON s.k = a.k";
        let rels = sql_relations(sql).expect("parses");
        let names: Vec<_> = rels.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["silver_x", "dim_y"]);
        assert_eq!((rels[1].line, rels[1].column), (3, 8));
    }

    #[test]
    fn subqueries_count() {
        let rels = sql_relations("SELECT k FROM t WHERE k IN (SELECT k FROM u)").expect("parses");
        assert_eq!(rels.len(), 2);
    }

    #[test]
    fn rejects_non_queries_and_garbage() {
        assert!(
            sql_relations("DELETE FROM t")
                .unwrap_err()
                .contains("SELECT")
        );
        assert!(
            sql_relations("SELECT 1; SELECT 2")
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(sql_relations("SELEC x FROM").is_err());
    }
}

/// The one column a scope expression reads, if the expression never
/// decreases when that column grows (so a data file's min and max of the
/// column bound the values the expression takes on its rows). Recognised:
/// the column itself, parentheses, `CAST` to a number, date or timestamp,
/// `FLOOR`/`CEIL`, `EXTRACT(EPOCH FROM ...)`, and `+`/`-` of a constant or
/// `*`/`/` by a positive constant. Anything else: `None` (no pruning).
pub fn monotone_in(expr_sql: &str) -> Option<String> {
    let dialect = PostgreSqlDialect {};
    let expr = Parser::new(&dialect)
        .try_with_sql(expr_sql)
        .ok()?
        .parse_expr()
        .ok()?;
    monotone(&expr)
}

fn monotone(e: &sqlparser::ast::Expr) -> Option<String> {
    use sqlparser::ast::{
        BinaryOperator as Op, DateTimeField, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    };
    match e {
        Expr::Identifier(id) => Some(id.value.clone()),
        Expr::Nested(inner) => monotone(inner),
        Expr::Cast {
            expr, data_type, ..
        } => {
            let ty = data_type.to_string().to_uppercase();
            let ordered = [
                "BIGINT",
                "INT",
                "SMALLINT",
                "TIMESTAMP",
                "DATE",
                "DOUBLE",
                "FLOAT",
                "REAL",
                "NUMERIC",
                "DECIMAL",
            ];
            ordered
                .iter()
                .any(|t| ty.starts_with(t))
                .then(|| monotone(expr))
                .flatten()
        }
        Expr::Floor { expr, .. } | Expr::Ceil { expr, .. } => monotone(expr),
        Expr::Extract {
            field: DateTimeField::Epoch,
            expr,
            ..
        } => monotone(expr),
        Expr::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            match (name.as_str(), list.args.as_slice()) {
                ("floor" | "ceil", [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))]) => monotone(a),
                _ => None,
            }
        }
        Expr::BinaryOp { left, op, right } => {
            let positive = |x: &Expr| constant(x).is_some_and(|v| v > 0.0);
            match op {
                Op::Plus if constant(left).is_some() => monotone(right),
                Op::Plus | Op::Minus if constant(right).is_some() => monotone(left),
                Op::Multiply if positive(left) => monotone(right),
                Op::Multiply | Op::Divide if positive(right) => monotone(left),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A numeric literal's value.
fn constant(e: &sqlparser::ast::Expr) -> Option<f64> {
    use sqlparser::ast::{Expr, Value};
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(inner) => constant(inner),
        _ => None,
    }
}

#[cfg(test)]
mod monotone_tests {
    use super::monotone_in;

    #[test]
    fn recognises_monotone_scope_expressions_and_nothing_else() {
        let window = "CAST(CAST(FLOOR(EXTRACT(EPOCH FROM event_time) / 900) AS BIGINT) * 900000000 AS TIMESTAMP)";
        assert_eq!(monotone_in(window).as_deref(), Some("event_time"));
        assert_eq!(monotone_in("event_time").as_deref(), Some("event_time"));
        assert_eq!(
            monotone_in("CAST(issued_at AS DATE)").as_deref(),
            Some("issued_at")
        );
        assert_eq!(monotone_in("(n + 1) * 2").as_deref(), Some("n"));
        for not in [
            "n * -2",
            "n / 0",
            "-n",
            "10 - n",
            "EXTRACT(HOUR FROM t)",
            "CAST(t AS VARCHAR)",
            "a + b",
            "lower(s)",
            "n % 7",
        ] {
            assert_eq!(monotone_in(not), None, "{not}");
        }
    }
}
