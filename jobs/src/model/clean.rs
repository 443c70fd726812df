//! Silver cleaning: new bronze rows -> typed silver rows, quarantined rows
//! with a reason, and duplicates counted (not copied: bronze keeps them).
//!
//! Only the bronze files added since the version this model consumed are
//! read. Rows are taken in the declared dedupe order; a key already in
//! silver, or seen earlier in the same run, is a duplicate, so the first
//! copy ingested wins and is never displaced. Silver and quarantine each
//! record the bronze version they consumed in their own commit; after a
//! crash between the two commits, each catches up from its own watermark.
//!
//! Under `clean/`: `check` (the field rules over rows, on every core),
//! `dedupe` (one batch checked, deduplicated and derived), `order` (the
//! order its rows are deduplicated in), `files` (which
//! bronze files a pass reads, in batches), `rejudge` (the quarantine of a
//! backfill over a range), `columns` (the bronze columns read).

mod check;
mod columns;
mod dedupe;
mod files;
mod order;
mod rejudge;

use self::columns::BRONZE_READ;
use self::dedupe::Rules;
use self::files::{batches, new_files, replaced};
use self::rejudge::Rejudged;
use super::dates::DateRange;
use super::keyset::KeySet;
use super::{Catalog, ModelError, ModelReport, RunSettings};
use crate::decl::{Model, RecordFormat, Source};
use crate::lake::table::ModelTable;
use deltalake::kernel::Add;
use std::collections::BTreeMap;

pub use check::{Judged, check_rows};
pub use dedupe::{Cleaned, derived};

pub async fn run(
    model: &Model,
    catalog: &Catalog,
    s: &RunSettings,
) -> Result<ModelReport, ModelError> {
    let Source::Clean {
        format,
        input,
        quarantine,
        fields,
        dedupe,
        derive,
    } = &model.source
    else {
        unreachable!("clean::run on a {} model", model.source.kind_name());
    };
    let bronze = catalog.open_input(input, s).await?;
    let mut silver = catalog.open_output(&model.name, s).await?;
    let mut quar = catalog.open_output(quarantine, s).await?;
    let ranged = match &s.range {
        Some(range) => range.column_of(model)?.map(|c| (range, c)),
        None => None,
    };
    let to = bronze.version();
    let (silver_from, quar_from) = if s.full_refresh {
        (-1, -1)
    } else {
        (
            silver.txn(input).await?.unwrap_or(-1),
            quar.txn(input).await?.unwrap_or(-1),
        )
    };
    let mut report = ModelReport::default();
    if silver_from >= to && quar_from >= to {
        report.note = Some(format!("{input} has no new version since {to}"));
        return Ok(report);
    }
    let order: Vec<&str> = dedupe.order.iter().map(String::as_str).collect();
    let run = Run {
        model,
        s,
        rule: Rules {
            format: *format,
            fields,
            dedupe,
            derive,
            model,
        },
        bronze: &bronze,
        ranged: ranged.as_ref().map(|(r, c)| (*r, c.as_str())),
        cols: read_columns(*format, &order),
        first_order: order.first().copied(),
        txns: BTreeMap::from([(input.clone(), to)]),
    };
    let mut versions = Vec::new();
    for pass in passes(silver_from, quar_from, to) {
        let written = run.clean_pass(pass, &silver, &quar, &mut report).await?;
        versions.extend(
            run.commit_pass(pass, written, &mut silver, &mut quar, &mut report)
                .await?,
        );
    }
    report.version = versions.last().copied();
    Ok(report)
}

/// Where a pass starts reading bronze and which tables it writes.
#[derive(Clone, Copy)]
struct Pass {
    from: i64,
    to_silver: bool,
    to_quar: bool,
}

/// Normally one pass writes both; after a crash between the two commits
/// each table catches up from its own watermark.
fn passes(silver_from: i64, quar_from: i64, to: i64) -> Vec<Pass> {
    let pass = |from, to_silver, to_quar| Pass {
        from,
        to_silver,
        to_quar,
    };
    if silver_from == quar_from {
        vec![pass(silver_from, true, true)]
    } else {
        [pass(silver_from, true, false), pass(quar_from, false, true)]
            .into_iter()
            .filter(|p| p.from < to)
            .collect()
    }
}

/// The bronze columns a run reads: [`BRONZE_READ`], the dedupe order's,
/// and a CSV row's header line.
fn read_columns<'a>(format: RecordFormat, order: &[&'a str]) -> Vec<&'a str> {
    let mut cols: Vec<&str> = BRONZE_READ.to_vec();
    cols.extend(order.iter().filter(|c| !BRONZE_READ.contains(c)));
    // A CSV row's header line travels in its bronze key.
    if format == RecordFormat::Csv && !cols.contains(&"key") {
        cols.push("key");
    }
    cols
}

/// What every pass of one cleaning run shares.
struct Run<'a> {
    model: &'a Model,
    s: &'a RunSettings,
    rule: Rules<'a>,
    bronze: &'a ModelTable,
    /// A backfill over a range: the range and its date column.
    ranged: Option<(&'a DateRange, &'a str)>,
    cols: Vec<&'a str>,
    first_order: Option<&'a str>,
    /// The bronze version consumed, for both tables' commits.
    txns: BTreeMap<String, i64>,
}

/// A pass's files, written but not committed.
struct Written {
    silver_adds: Vec<Add>,
    quar_adds: Vec<Add>,
    rejudged: Rejudged,
}

impl Run<'_> {
    /// Cleans the bronze rows after `pass.from`, batch by batch, and
    /// writes their files; nothing is committed.
    async fn clean_pass(
        &self,
        pass: Pass,
        silver: &ModelTable,
        quar: &ModelTable,
        report: &mut ModelReport,
    ) -> Result<Written, ModelError> {
        let (model, s) = (self.model, self.s);
        let files = new_files(self.bronze, pass.from).await?;
        // Keys that already won: silver's committed ones (none when it is
        // replaced), then each batch's winners in `won`.
        // In a backfill over a range, the rows outside it stay: their keys
        // won already.
        let silver_files = match &self.ranged {
            Some((range, column)) => range.split(silver.files().await?, column).1,
            None if s.full_refresh => Vec::new(),
            None => silver.files().await?,
        };
        let mut won = KeySet::new(&self.rule.dedupe.key);
        let (mut silver_adds, mut quar_adds) = (Vec::new(), Vec::new());
        let mut rejudged = Rejudged::default();
        for batch in batches(files, self.first_order, s.clean_batch_bytes) {
            let started = std::time::Instant::now();
            let rows = self.bronze.read(&batch, Some(&self.cols)).await?;
            tracing::debug!(model = %model.name, rows = rows.height(), files = batch.len(), seconds = started.elapsed().as_secs_f64(), "bronze read");
            let out = self
                .rule
                .clean(&rows, silver, &silver_files, &mut won, self.ranged)
                .await?;
            report.rows_in += rows.height() as u64;
            report.quarantined += out.quarantine.height() as u64;
            report.duplicates += out.duplicates;
            report.rows_out += out.silver.height() as u64;
            let quarantine = match out.in_range {
                Some(in_range) => {
                    rejudged.add(out.quarantine, in_range);
                    None
                }
                None => pass.to_quar.then_some(out.quarantine),
            };
            // Both tables' files at once: the quarantine's writer would
            // otherwise hold one core while the other waits.
            let (new_quar, new_silver) = futures::try_join!(
                async {
                    match &quarantine {
                        Some(rows) => quar.write_files(rows).await,
                        None => Ok(Vec::new()),
                    }
                },
                async {
                    if pass.to_silver {
                        silver.write_files(&out.silver).await
                    } else {
                        Ok(Vec::new())
                    }
                }
            )?;
            quar_adds.extend(new_quar);
            silver_adds.extend(new_silver);
            tracing::debug!(model = %model.name, seconds = started.elapsed().as_secs_f64(), "batch written");
        }
        Ok(Written {
            silver_adds,
            quar_adds,
            rejudged,
        })
    }

    /// One commit per table, whatever the number of batches; a full
    /// refresh replaces each table in that commit. The quarantine commits
    /// first; returns silver's new version, if the pass writes silver.
    async fn commit_pass(
        &self,
        pass: Pass,
        written: Written,
        silver: &mut ModelTable,
        quar: &mut ModelTable,
        report: &mut ModelReport,
    ) -> Result<Option<i64>, ModelError> {
        let (s, txns) = (self.s, &self.txns);
        if pass.to_quar && self.ranged.is_some() {
            let old = quar.files().await?;
            let (rows, note) = written.rejudged.apply(quar.read(&old, None).await?)?;
            let adds = quar.write_files(&rows).await?;
            quar.commit(adds, &old, txns, true).await?;
            report.note = Some(note);
        } else if pass.to_quar {
            let old = replaced(quar, s.full_refresh).await?;
            quar.commit(written.quar_adds, &old, txns, s.full_refresh)
                .await?;
        }
        if let (true, Some((range, column))) = (pass.to_silver, &self.ranged) {
            let (old, _) = range.split(silver.files().await?, column);
            Ok(Some(
                silver
                    .commit(written.silver_adds, &old, txns, false)
                    .await?,
            ))
        } else if pass.to_silver {
            let old = replaced(silver, s.full_refresh).await?;
            Ok(Some(
                silver
                    .commit(written.silver_adds, &old, txns, s.full_refresh)
                    .await?,
            ))
        } else {
            Ok(None)
        }
    }
}
