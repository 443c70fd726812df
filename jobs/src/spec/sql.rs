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
