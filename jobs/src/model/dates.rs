//! The range of dates a backfill replaces (`dag backfill --from D --to D
//! [--column C]`), and which files, rows and partitions lie in it. How a
//! model's table is then rewritten is [`super::range`]'s.

use super::ModelError;
use crate::decl::{ColumnType, Model, Source, quarantine_columns};
use crate::lake::table::DataFile;
use chrono::NaiveDate;
use polars::prelude::*;

/// Inclusive range of dates a backfill replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateRange {
    /// The partition column the range applies to; `None`: each model's
    /// first date partition column.
    pub column: Option<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    /// The column of `model`'s table the range replaces partitions of;
    /// `None` when the model has no such partition column (it is then
    /// rebuilt whole). A named column that is a partition column of
    /// another type is an error.
    pub fn column_of(&self, model: &Model) -> Result<Option<String>, ModelError> {
        let declared = |name: &str| match &model.source {
            Source::Quarantine { .. } => quarantine_columns().into_iter().find(|c| c.name == name),
            _ => model.columns.iter().find(|c| c.name == name).cloned(),
        };
        let is_date = |name: &str| declared(name).is_some_and(|c| c.ty == ColumnType::Date);
        match &self.column {
            Some(c) if model.partition_by.contains(c) => {
                if is_date(c) {
                    Ok(Some(c.clone()))
                } else {
                    Err(ModelError::Input(format!(
                        "model {}: backfill --column {c}: the column is not of type date",
                        model.name
                    )))
                }
            }
            Some(_) => Ok(None),
            None => Ok(model.partition_by.iter().find(|c| is_date(c)).cloned()),
        }
    }

    /// Whether a file's partition value for `column` lies in the range.
    pub fn holds_file(&self, file: &DataFile, column: &str) -> bool {
        file.partition_values
            .get(column)
            .and_then(|v| v.as_deref())
            .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
            .is_some_and(|d| self.from <= d && d <= self.to)
    }

    /// The rows of `df` whose `column` lies in the range.
    pub fn rows_in(&self, df: DataFrame, column: &str) -> Result<DataFrame, ModelError> {
        Ok(df.lazy().filter(self.predicate(column)).collect()?)
    }

    /// `column` between the range's ends (nulls are outside).
    pub fn predicate(&self, column: &str) -> Expr {
        let c = col(column).cast(DataType::Date);
        c.clone()
            .gt_eq(lit(self.from).cast(DataType::Date))
            .and(c.lt_eq(lit(self.to).cast(DataType::Date)))
            .fill_null(lit(false))
    }

    /// The table's files inside the range (those a backfill replaces) and
    /// outside it (those it keeps).
    pub fn split(&self, files: Vec<DataFile>, column: &str) -> (Vec<DataFile>, Vec<DataFile>) {
        files.into_iter().partition(|f| self.holds_file(f, column))
    }
}

impl std::fmt::Display for DateRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} to {}", self.from, self.to)?;
        if let Some(c) = &self.column {
            write!(f, " of {c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn file(day: Option<&str>) -> DataFile {
        DataFile {
            path: "p".into(),
            partition_values: BTreeMap::from([("day".to_string(), day.map(str::to_string))]),
            size: 1,
            stats: None,
        }
    }

    fn range() -> DateRange {
        DateRange {
            column: None,
            from: NaiveDate::from_ymd_opt(2026, 1, 2).expect("date"),
            to: NaiveDate::from_ymd_opt(2026, 1, 3).expect("date"),
        }
    }

    #[test]
    fn files_are_in_the_range_by_their_partition_value_ends_included() {
        let r = range();
        assert!(!r.holds_file(&file(Some("2026-01-01")), "day"));
        assert!(r.holds_file(&file(Some("2026-01-02")), "day"));
        assert!(r.holds_file(&file(Some("2026-01-03")), "day"));
        assert!(!r.holds_file(&file(Some("2026-01-04")), "day"));
        assert!(!r.holds_file(&file(None), "day"));
        assert!(!r.holds_file(&file(Some("2026-01-02")), "other"));
    }

    #[test]
    fn rows_are_in_the_range_by_their_date_nulls_outside() {
        let days = Series::new(
            "day".into(),
            [
                Some(NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")),
                Some(NaiveDate::from_ymd_opt(2026, 1, 2).expect("date")),
                None,
                Some(NaiveDate::from_ymd_opt(2026, 1, 3).expect("date")),
                Some(NaiveDate::from_ymd_opt(2026, 1, 4).expect("date")),
            ],
        );
        let df = DataFrame::new(
            5,
            vec![days.into(), Column::new("n".into(), [1, 2, 3, 4, 5])],
        )
        .expect("frame");
        let kept = range().rows_in(df, "day").expect("filter");
        let n: Vec<i32> = kept
            .column("n")
            .expect("n")
            .i32()
            .expect("i32")
            .into_no_null_iter()
            .collect();
        assert_eq!(n, vec![2, 4]);
    }
}
