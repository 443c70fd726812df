//! The results table, `<lake>/_dag/test_results`: one row per test run,
//! appended in one commit per `dag run` / `dag test`, so that history can
//! be queried across runs (it is a Delta table like any other). Each
//! test's base, the last version it passed at with no failing row, is read
//! back from it.

use super::{Status, TestResult};
use crate::decl::{Column as SpecColumn, ColumnType};
use crate::lake::TableLocation;
use crate::lake::table::{ModelTable, TableCache, arrow_schema};
use crate::model::{ModelError, RunSettings};
use chrono::{DateTime, Utc};
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// Where the results table lives in the lake.
pub const LAYER: &str = "_dag";
pub const TABLE: &str = "test_results";

/// The results table's columns.
pub fn columns() -> Vec<SpecColumn> {
    let c = |name: &str, ty, nullable, description: &str| SpecColumn {
        name: name.into(),
        ty,
        nullable,
        description: description.into(),
    };
    use ColumnType::*;
    vec![
        c(
            "run_id",
            String,
            false,
            "the dag run or dag test that ran it",
        ),
        c(
            "tested_at",
            Timestamp,
            false,
            "when the run recorded its results",
        ),
        c("test", String, false, "the test's name"),
        c("model", String, false, "the model tested"),
        c("kind", String, false, "not_null, unique, ..."),
        c("severity", String, false, "error or warn"),
        c(
            "columns",
            String,
            true,
            "the tested columns, comma-separated",
        ),
        c(
            "version",
            BigInt,
            false,
            "the Delta version of the model tested",
        ),
        c(
            "since_version",
            BigInt,
            true,
            "only rows committed after this version were read (null: every row)",
        ),
        c(
            "compared_version",
            BigInt,
            true,
            "the version of the model compared with (relationships, row_count)",
        ),
        c("rows_checked", BigInt, false, "rows read or counted"),
        c("status", String, false, "pass, warn, fail or error"),
        c("failing", BigInt, false, "failing rows"),
        c("seconds", Double, false, "time taken"),
        c("message", String, true, "what failed, or how it passed"),
        c("sample", String, true, "JSON array of up to N failing rows"),
        c("declared_at", String, false, "file:line of the declaration"),
    ]
}

/// Where the results table lives for the lake of `s`.
pub fn location(s: &RunSettings) -> Result<TableLocation, ModelError> {
    Ok(TableLocation::in_lake(
        &s.lake,
        LAYER,
        TABLE,
        s.storage_options.clone(),
    )?)
}

/// A version at which a test passed with no failing row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Base {
    pub version: i64,
    pub compared_version: Option<i64>,
    /// When it was recorded (epoch microseconds): a pass recorded before
    /// the table was created was on another table of the same name (it
    /// was deleted and rebuilt), whose versions mean nothing here.
    pub tested_at: i64,
}

/// Each test's clean passes that can still be a base, from the results
/// table.
#[derive(Clone, Debug, Default)]
pub struct Bases {
    by_test: HashMap<String, Vec<Base>>,
}

impl Bases {
    pub async fn read(s: &RunSettings) -> Result<Bases, ModelError> {
        let schema = arrow_schema(&columns());
        let Some(table) = ModelTable::open(TABLE, &location(s)?, schema).await? else {
            return Ok(Bases::default());
        };
        let df = table
            .read_all(Some(&[
                "test",
                "tested_at",
                "version",
                "compared_version",
                "status",
                "failing",
            ]))
            .await?;
        Bases::of(df)
    }

    /// The passes of results `df` (the table's columns, in its order) that
    /// [`pick`] can ever choose: per test, those whose version is above
    /// every version passed after them. Any other pass loses to a later
    /// one whatever the table's creation time, so the history a run keeps
    /// is a few passes per test, not one per run ever made, and the rows
    /// are sorted and filtered as columns, not turned into strings one by
    /// one. (A test judging a version below a later pass's, rare, may then
    /// find no base where a dropped pass was one: it checks every row, as
    /// a test without a base does.)
    fn of(df: DataFrame) -> Result<Bases, ModelError> {
        const ROW: &str = "__row";
        let passes = df
            .with_row_index(ROW.into(), None)?
            .lazy()
            .filter(
                col("status")
                    .eq(lit(Status::Pass.as_str()))
                    .and(col("failing").eq(lit(0i64)))
                    .and(col("test").is_not_null())
                    .and(col("version").is_not_null()),
            )
            .select([
                col("test"),
                col("version"),
                col("compared_version"),
                col("tested_at")
                    .cast(DataType::Int64)
                    .fill_null(lit(i64::MIN)),
                col(ROW),
            ])
            // Newest first within each test; of two passes recorded at
            // the same time the one appended last counts as the later
            // (as `pick` breaks a full tie).
            .sort_by_exprs(
                [col("test"), col("tested_at"), col(ROW)],
                SortMultipleOptions::default().with_order_descending_multi([false, true, true]),
            )
            .collect()?;
        let tests = passes.column("test")?.str()?.rechunk();
        let versions = passes.column("version")?.i64()?.rechunk();
        let compared = passes.column("compared_version")?.i64()?.rechunk();
        let tested_at = passes.column("tested_at")?.i64()?.rechunk();
        let mut by_test: HashMap<String, Vec<Base>> = HashMap::new();
        // The test of the rows being walked, and the highest version it
        // passed after the current row.
        let mut later: Option<(&str, i64)> = None;
        for i in 0..passes.height() {
            let (Some(t), Some(v)) = (tests.get(i), versions.get(i)) else {
                continue;
            };
            if let Some((test, max)) = later
                && test == t
                && v <= max
            {
                continue;
            }
            later = Some((t, v));
            by_test.entry(t.to_string()).or_default().push(Base {
                version: v,
                compared_version: compared.get(i),
                tested_at: tested_at.get(i).unwrap_or(i64::MIN),
            });
        }
        Ok(Bases { by_test })
    }

    /// The clean passes of `test` that [`pick`] may choose (see
    /// `Bases::of`), with those made in this process.
    pub fn passes(&self, test: &str) -> Vec<Base> {
        self.by_test.get(test).cloned().unwrap_or_default()
    }

    /// Records a clean pass made in this process.
    pub fn passed(&mut self, test: &str, base: Base) {
        self.by_test.entry(test.to_string()).or_default().push(base);
    }

    /// Takes in the passes `other` knows more of, test by test (a run's
    /// tasks each update the bases of the tests they own).
    pub fn absorb(&mut self, other: Bases) {
        for (test, passes) in other.by_test {
            let mine = self.by_test.entry(test).or_default();
            if passes.len() > mine.len() {
                *mine = passes;
            }
        }
    }
}

/// The base of a test judging version `judged` of a table created at
/// `created` (epoch milliseconds, when the table's metadata says): the
/// highest version, no later than `judged`, among the passes recorded
/// since then (all of them when the creation time is unknown). A pass of
/// a later version (the table pinned to an older one, another run's tests
/// of a newer commit) is no base for it.
pub fn pick(passes: &[Base], created: Option<i64>, judged: i64) -> Option<Base> {
    let since = created.map_or(i64::MIN, |ms| ms.saturating_mul(1000));
    passes
        .iter()
        .filter(|b| b.tested_at >= since && b.version <= judged)
        .max_by_key(|b| (b.version, b.tested_at))
        .copied()
}

/// One recorded test result, as the results table holds it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recorded {
    pub run_id: String,
    /// RFC 3339, UTC.
    pub tested_at: String,
    pub test: String,
    pub model: String,
    pub kind: String,
    pub severity: String,
    pub version: Option<i64>,
    pub since_version: Option<i64>,
    pub rows_checked: Option<i64>,
    pub status: String,
    pub failing: Option<i64>,
    pub seconds: Option<f64>,
    pub message: String,
    /// The failing rows' sample, as JSON text.
    pub sample: Option<String>,
}

impl Recorded {
    /// The result as a report takes it (`declared_at`: where the test is
    /// declared now; the table does not keep the tested columns, nor the
    /// compared version).
    pub fn to_result(&self, declared_at: &str) -> TestResult {
        let status = match self.status.as_str() {
            "pass" => Status::Pass,
            "warn" => Status::Warn,
            "fail" => Status::Fail,
            _ => Status::Error,
        };
        let sample = self
            .sample
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        TestResult {
            test: self.test.clone(),
            model: self.model.clone(),
            kind: self.kind.clone(),
            severity: self.severity.clone(),
            columns: Vec::new(),
            version: self.version.unwrap_or(-1),
            since_version: self.since_version,
            compared_version: None,
            rows_checked: self.rows_checked.unwrap_or(0).max(0) as u64,
            status,
            failing: self.failing.unwrap_or(0).max(0) as u64,
            seconds: self.seconds.unwrap_or(0.0),
            message: self.message.clone(),
            sample,
            declared_at: declared_at.to_string(),
        }
    }
}

/// Every result on record, oldest first (none when no test ran yet).
pub async fn recorded(s: &RunSettings) -> Result<Vec<Recorded>, ModelError> {
    Ok(recorded_with_version(s).await?.1)
}

/// The results table's latest version (`None`: no test ran yet): a reader
/// that keeps what it read knows from it whether to read again.
pub async fn version(s: &RunSettings) -> Result<Option<i64>, ModelError> {
    Ok(
        ModelTable::open(TABLE, &location(s)?, arrow_schema(&columns()))
            .await?
            .map(|t| t.version()),
    )
}

/// [`recorded`], with the table version it was read at.
pub async fn recorded_with_version(
    s: &RunSettings,
) -> Result<(Option<i64>, Vec<Recorded>), ModelError> {
    let Some(table) = ModelTable::open(TABLE, &location(s)?, arrow_schema(&columns())).await?
    else {
        return Ok((None, Vec::new()));
    };
    Ok((Some(table.version()), read_recorded(&table).await?))
}

async fn read_recorded(table: &ModelTable) -> Result<Vec<Recorded>, ModelError> {
    let df = table.read_all(None).await?;
    let micros = df.column("tested_at")?.cast(&DataType::Int64)?;
    let micros = micros.i64()?;
    let text = |c: &str| -> Result<polars::prelude::StringChunked, ModelError> {
        Ok(df.column(c)?.str()?.clone())
    };
    let int = |c: &str| -> Result<polars::prelude::Int64Chunked, ModelError> {
        Ok(df.column(c)?.cast(&DataType::Int64)?.i64()?.clone())
    };
    let (run, test, model, kind, severity, status, message) = (
        text("run_id")?,
        text("test")?,
        text("model")?,
        text("kind")?,
        text("severity")?,
        text("status")?,
        text("message")?,
    );
    let sample = text("sample")?;
    let (version, since, checked, failing) = (
        int("version")?,
        int("since_version")?,
        int("rows_checked")?,
        int("failing")?,
    );
    let seconds = df.column("seconds")?.cast(&DataType::Float64)?;
    let seconds = seconds.f64()?;
    let s = |c: &polars::prelude::StringChunked, i: usize| c.get(i).unwrap_or("").to_string();
    let mut out: Vec<(i64, Recorded)> = (0..df.height())
        .map(|i| {
            let at = micros.get(i).unwrap_or(0);
            let when = chrono::DateTime::from_timestamp_micros(at)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            (
                at,
                Recorded {
                    run_id: s(&run, i),
                    tested_at: when,
                    test: s(&test, i),
                    model: s(&model, i),
                    kind: s(&kind, i),
                    severity: s(&severity, i),
                    version: version.get(i),
                    since_version: since.get(i),
                    rows_checked: checked.get(i),
                    status: s(&status, i),
                    failing: failing.get(i),
                    seconds: seconds.get(i),
                    message: s(&message, i),
                    sample: sample.get(i).map(str::to_string),
                },
            )
        })
        .collect();
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// Creates the results table if it is missing: a run whose tasks end
/// together then appends to one table instead of racing to create it.
pub async fn ensure(s: &RunSettings) -> Result<(), ModelError> {
    let location = location(s)?;
    // The usual case, a table that exists, costs a look at its log rather
    // than a replay of it: every `dag run` waits for this before its first
    // task (a replay was ~14 ms of a run with nothing new's ~90). A table
    // of another shape is then reported by the first test's read of it,
    // or by the append of the results, instead of here.
    let table = location.builder().and_then(|b| b.build());
    if let Ok(table) = table
        && table.verify_deltatable_existence().await.unwrap_or(false)
    {
        return Ok(());
    }
    ModelTable::open_or_create(
        TABLE,
        &location,
        arrow_schema(&columns()),
        &[],
        "dag data test results, one row per test run",
    )
    .await?;
    Ok(())
}

/// Appends `results` in one commit (nothing when there are none), opening
/// the table through `cache` when given (only the commits since are read).
pub async fn append(
    s: &RunSettings,
    run_id: &str,
    clock: DateTime<Utc>,
    results: &[TestResult],
    cache: Option<&TableCache>,
) -> Result<(), ModelError> {
    if results.is_empty() {
        return Ok(());
    }
    let cols = columns();
    let mut table = ModelTable::open_or_create_cached(
        TABLE,
        &location(s)?,
        arrow_schema(&cols),
        &[],
        "dag data test results, one row per test run",
        cache,
    )
    .await?;
    let n = results.len();
    let text =
        |f: &dyn Fn(&TestResult) -> String| -> Vec<String> { results.iter().map(f).collect() };
    let sample = |r: &TestResult| -> Option<String> {
        (!r.sample.is_empty()).then(|| serde_json::Value::from(r.sample.clone()).to_string())
    };
    // Recorded now (or at the run's clock, if that is later): after the
    // tested tables existed, which is what tells a pass on a table from
    // one on an older table of the same name (see [`pick`]).
    let recorded = clock.max(Utc::now());
    let tested_at = Column::new("tested_at".into(), vec![recorded.timestamp_micros(); n])
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    let df = DataFrame::new(
        n,
        vec![
            Column::new("run_id".into(), vec![run_id.to_string(); n]),
            tested_at,
            Column::new("test".into(), text(&|r| r.test.clone())),
            Column::new("model".into(), text(&|r| r.model.clone())),
            Column::new("kind".into(), text(&|r| r.kind.clone())),
            Column::new("severity".into(), text(&|r| r.severity.clone())),
            Column::new(
                "columns".into(),
                results
                    .iter()
                    .map(|r| (!r.columns.is_empty()).then(|| r.columns.join(",")))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "version".into(),
                results.iter().map(|r| r.version).collect::<Vec<_>>(),
            ),
            Column::new(
                "since_version".into(),
                results.iter().map(|r| r.since_version).collect::<Vec<_>>(),
            ),
            Column::new(
                "compared_version".into(),
                results
                    .iter()
                    .map(|r| r.compared_version)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "rows_checked".into(),
                results
                    .iter()
                    .map(|r| r.rows_checked as i64)
                    .collect::<Vec<_>>(),
            ),
            Column::new("status".into(), text(&|r| r.status.as_str().to_string())),
            Column::new(
                "failing".into(),
                results.iter().map(|r| r.failing as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "seconds".into(),
                results.iter().map(|r| r.seconds).collect::<Vec<_>>(),
            ),
            Column::new("message".into(), text(&|r| r.message.clone())),
            Column::new(
                "sample".into(),
                results.iter().map(sample).collect::<Vec<_>>(),
            ),
            Column::new("declared_at".into(), text(&|r| r.declared_at.clone())),
        ],
    )?;
    let adds = table.write_files(&df).await?;
    // Compacted now and then, as every model table is (see
    // `ModelTable::commit`): a scheduler appends a file per task.
    if let Err(e) = table
        .commit(adds.clone(), &[], &BTreeMap::new(), false)
        .await
    {
        // Two tasks whose tests end together both find no results table
        // and race to create it; the loser's append then meets the
        // winner's creation as a metadata conflict. Blind appends never
        // conflict with each other: open the table as it now is and
        // append the same files once more.
        tracing::debug!("appending test results: {e}; once more on the table as it is");
        let mut table = ModelTable::open(TABLE, &location(s)?, arrow_schema(&cols))
            .await?
            .ok_or_else(|| ModelError::Input("the test results table vanished".into()))?;
        table.commit(adds, &[], &BTreeMap::new(), false).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A results row: test, tested_at (microseconds), version, status,
    /// failing.
    type Row<'a> = (&'a str, i64, Option<i64>, &'a str, i64);

    /// Results rows as the table holds them.
    fn results(rows: &[Row<'_>]) -> DataFrame {
        let col = |f: fn(&Row<'_>) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
        DataFrame::new_infer_height(vec![
            Column::new("test".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            Column::new("tested_at".into(), col(|r| Some(r.1)))
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .expect("test value"),
            Column::new("version".into(), col(|r| r.2)),
            Column::new("compared_version".into(), col(|r| r.2.map(|v| v - 1))),
            Column::new(
                "status".into(),
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            ),
            Column::new("failing".into(), col(|r| Some(r.4))),
        ])
        .expect("test value")
    }

    /// Every clean pass of each test in table order: what `Bases` held
    /// before it kept only the passes `pick` can choose.
    fn every_pass(rows: &[Row<'_>]) -> HashMap<String, Vec<Base>> {
        let mut all: HashMap<String, Vec<Base>> = HashMap::new();
        for &(test, at, version, status, failing) in rows {
            if let (Some(v), "pass", 0) = (version, status, failing) {
                all.entry(test.into()).or_default().push(Base {
                    version: v,
                    compared_version: Some(v - 1),
                    tested_at: at,
                });
            }
        }
        all
    }

    #[test]
    fn the_kept_passes_give_every_creation_time_the_base_all_passes_give() {
        let mut seed = 11u64;
        let mut below = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let names = ["a", "b", "c"];
        for round in 0..30 {
            // Versions that mostly rise with time but restart (a table
            // rebuilt) and go back (a slow run recording late), equal
            // times, failures, errors and rows without a version.
            let mut rows = Vec::new();
            let mut version = 0i64;
            for i in 0..(20 + 10 * round) {
                version = match below(10) {
                    0 => 0,
                    1 => (version - 3).max(0),
                    _ => version + below(3) as i64,
                };
                let at = 1_000_000 * (i as i64 / (1 + below(3) as i64)) + 1_000;
                let status = ["pass", "pass", "pass", "fail", "error"][below(5) as usize];
                let failing = if below(8) == 0 { 2 } else { 0 };
                let v = (below(12) != 0).then_some(version);
                rows.push((names[below(3) as usize], at, v, status, failing));
            }
            let kept = Bases::of(results(&rows)).expect("bases");
            let all = every_pass(&rows);
            for test in names {
                let (kept, all) = (
                    kept.passes(test),
                    all.get(test).cloned().unwrap_or_default(),
                );
                assert!(kept.len() <= all.len());
                for created_ms in [
                    None,
                    Some(0),
                    Some(1),
                    Some(5_000),
                    Some(17_000),
                    Some(60_000),
                ] {
                    assert_eq!(
                        pick(&kept, created_ms, i64::MAX),
                        pick(&all, created_ms, i64::MAX),
                        "round {round}, test {test}, created {created_ms:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_later_pass_at_a_version_as_high_leaves_the_earlier_out() {
        let rows = [
            ("t", 1_000, Some(5), "pass", 0),
            ("t", 2_000, Some(4), "pass", 0),
            ("t", 3_000, Some(6), "pass", 0),
            ("t", 4_000, Some(6), "pass", 0),
            ("t", 5_000, Some(7), "fail", 3),
        ];
        let kept = Bases::of(results(&rows)).expect("bases").passes("t");
        assert_eq!(
            kept.iter()
                .map(|b| (b.version, b.tested_at))
                .collect::<Vec<_>>(),
            [(6, 4_000)]
        );
    }
}
