//! Benchmark: does a commit stay cheap as a table's log grows? Commits N
//! tiny batches (one message each, stamped now: today's open ingest date)
//! to one bronze table, with the upkeep a streaming ingester committing
//! every second runs (a checkpoint every 100 commits, with the expired-log
//! cleanup every 1,000 versions, compaction every 600,
//! as `ingest.compact_every = "10m"`), and prints the mean milliseconds per
//! commit of each thousand, upkeep included.
//!
//!   bench_commits LAKE_URI [COMMITS]     (default 20,000)
//!
//! Output: `commits FROM-TO mean_ms X median_ms M upkeep_ms Y` per
//! thousand (M: the median commit, upkeep included when it had some; Y:
//! the part of X spent in checkpoints and compaction), then for the
//! report `first_ms`, `last_ms` and `ratio` (the medians of the first and
//! last thousand: a few seconds' stall of this shared machine moves a
//! thousand's mean by a third), the two means, and `slope_ms_per_1000`
//! (the trend of the means over the whole run).

use jobs::bronze::IngestClock;
use jobs::bronze::batch::{BatchBuilder, RawMessage};
use jobs::bronze::table::{BatchCommit, BronzeTable, TableLocation};
use std::collections::HashMap;
use std::time::Instant;

const EVERY: usize = 1000;
const CHECKPOINT_EVERY: usize = 100;
const COMPACT_EVERY: usize = 600;

/// The table's tombstone retention, scaled like the bench's clock: dag's
/// tables keep tombstones an hour (`TOMBSTONE_RETENTION`), which at the
/// modelled commit a second is 3,600 commits (6 compactions' worth); the
/// bench commits about 30 times a second, so 2 minutes keeps the same
/// number of them.
const TOMBSTONES: &str = "interval 2 minutes";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [lake, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: bench_commits LAKE_URI [COMMITS]");
    };
    let commits: usize = rest
        .first()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let loc = TableLocation::in_lake(lake, "bronze", "bench_commits", HashMap::new())?
        .with_property("delta.deletedFileRetentionDuration", TOMBSTONES);
    let mut table = BronzeTable::open_or_create("bench_commits", "t", loc).await?;
    let mut next = table
        .claim(&[0])
        .await?
        .into_iter()
        .next()
        .and_then(|(_, last)| last)
        .map_or(0, |l| l + 1);
    let mut means = Vec::new();
    let mut medians = Vec::new();
    // This thousand's commits, each with its upkeep if it had any.
    let mut each_ms = Vec::with_capacity(EVERY);
    let mut started = Instant::now();
    // Of each thousand: milliseconds in upkeep (checkpoints, compaction).
    let mut upkeep_ms = 0.0;
    for i in 1..=commits {
        let mut b = BatchBuilder::new("t");
        b.push(
            &RawMessage {
                partition: 0,
                offset: next,
                key: None,
                value: Some(b"{\"v\":1}"),
                timestamp_ms: None,
            },
            chrono::Utc::now().timestamp_micros(),
        );
        next += 1;
        let (batch, spans) = b.finish();
        let commit_started = Instant::now();
        match table.commit(&batch, &spans).await? {
            BatchCommit::Committed { .. } => {}
            other => anyhow::bail!("commit {i}: {other:?}"),
        }
        if i % CHECKPOINT_EVERY == 0 {
            let t = Instant::now();
            table.checkpoint().await?;
            upkeep_ms += t.elapsed().as_secs_f64() * 1000.0;
            if std::env::var("BENCH_VERBOSE").is_ok() {
                eprintln!(
                    "checkpoint at {i}: {:.0} ms",
                    t.elapsed().as_secs_f64() * 1000.0
                );
            }
        }
        if i % COMPACT_EVERY == 0 {
            let t = Instant::now();
            let (_, removed) = table.compact(&IngestClock::System, 10, 128 << 20).await?;
            upkeep_ms += t.elapsed().as_secs_f64() * 1000.0;
            if std::env::var("BENCH_VERBOSE").is_ok() {
                eprintln!(
                    "compaction at {i}: {removed} files in {:.0} ms",
                    t.elapsed().as_secs_f64() * 1000.0
                );
            }
        }
        each_ms.push(commit_started.elapsed().as_secs_f64() * 1000.0);
        if i % EVERY == 0 {
            let mean = started.elapsed().as_secs_f64() * 1000.0 / EVERY as f64;
            each_ms.sort_by(f64::total_cmp);
            let median = each_ms[EVERY / 2];
            println!(
                "commits {}-{i} mean_ms {mean:.2} median_ms {median:.2} upkeep_ms {:.2}",
                i + 1 - EVERY,
                upkeep_ms / EVERY as f64
            );
            means.push(mean);
            medians.push(median);
            each_ms.clear();
            upkeep_ms = 0.0;
            started = Instant::now();
        }
    }
    if let (Some(first), Some(last)) = (medians.first(), medians.last()) {
        println!("first_ms {first:.2}");
        println!("last_ms {last:.2}");
        println!("ratio {:.2}", last / first);
        println!("first_mean_ms {:.2}", means[0]);
        println!("last_mean_ms {:.2}", means[means.len() - 1]);
        println!("slope_ms_per_1000 {:.3}", slope(&means));
    }
    Ok(())
}

/// The least-squares slope of `ys` over their index: how much a thousand
/// commits' mean moves per thousand commits (noise of one thousand, a
/// stall of the machine, weighs little against the whole run).
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (y - mean_y);
        den += dx * dx;
    }
    num / den
}
