//! How `dag run` schedules a run's tasks: in a full refresh, small models
//! run beside each other, and a model reading more than
//! `models.heavy_input_mb` of files only while no other such model runs.

use std::process::Command;

/// The order of the stall hook's lines on `stderr`: `stall <table>` as a
/// stalled commit begins, `resume <table>` as it goes on.
fn stalls(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("DAG_TEST_STALL_COMMIT: ")?;
            if let Some(rest) = l.strip_prefix("stalling ") {
                Some(format!("stall {}", rest.split('\'').next()?))
            } else {
                Some(format!("resume {}", l.split('\'').next()?))
            }
        })
        .collect()
}

/// Two gold models over two seeds (`c` over `a`, `d` over `b`), each
/// commit of `c` and `d` stalled for a second: with the default limit
/// their inputs (a few hundred bytes) are small and they stall at the same
/// time; with `heavy_input_mb = 0` both are heavy and one waits for the
/// other. Same rows either way.
#[test]
fn a_full_refresh_runs_small_models_side_by_side_and_heavy_ones_one_at_a_time() {
    for (limit, side_by_side) in [("", true), ("heavy_input_mb = 0\n", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        crate::fixtures::two_branches(
            root,
            &format!("[warehouse]\nenabled = false\n[models]\nconcurrency = 2\n{limit}"),
        );
        let stall = ["c", "d"]
            .map(|t| format!("{t}:1000:{}", root.join(format!("stalled-{t}")).display()))
            .join(",");
        let out = Command::new(testkit::dag_bin())
            .current_dir(root)
            .args(["run", "--full-refresh"])
            .env("DAG_TEST_STALL_COMMIT", stall)
            .output()
            .expect("dag");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
        assert!(out.status.success(), "{text}");
        let order = stalls(&stderr);
        assert_eq!(order.len(), 4, "both commits stalled once: {text}");
        // Side by side: both stalls began before either ended.
        let overlapped = order[0].starts_with("stall") && order[1].starts_with("stall");
        assert_eq!(overlapped, side_by_side, "{limit:?}: {order:?}\n{text}");
        assert_eq!(rows_out(&text, "c"), Some(3), "{text}");
        assert_eq!(rows_out(&text, "d"), Some(1), "{text}");
    }
}

/// The rows `model` wrote, from its line of the console (`c  in 3  out 3 ...`).
fn rows_out(text: &str, model: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let tokens: Vec<&str> = l.split_whitespace().collect();
        let at = tokens.iter().position(|t| *t == "out")?;
        (tokens.first() == Some(&model)).then(|| tokens.get(at + 1)?.parse().ok())?
    })
}
