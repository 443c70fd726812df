#!/usr/bin/env bash
# Commit cost as a table's log grows (issue 24, "commits that stay cheap"):
# COMMITS one-message commits to one local bronze table, with a streaming
# ingester's upkeep (a checkpoint every 100, the expired-log cleanup every
# 1,000, compaction every 600: 10 minutes at one commit a second); prints the
# mean and median milliseconds per commit of each thousand (upkeep
# included), the ratio of the last thousand's median to the first's and
# the trend of the means (ms per thousand commits).
#
#   scripts/bench_commits.sh [COMMITS]     (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh
# shellcheck source=bench_lib.sh
. scripts/bench_lib.sh
COMMITS="${1:-20000}"
build_release
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
out="$("$CARGO_TARGET_DIR/release/examples/bench_commits" "file://$dir" "$COMMITS" | tee /dev/stderr)"
metric commits_first_ms "$(sed -n 's/^first_ms //p' <<<"$out")"
metric commits_last_ms "$(sed -n 's/^last_ms //p' <<<"$out")"
metric commits_ratio "$(sed -n 's/^ratio //p' <<<"$out")"
metric commits_first_mean_ms "$(sed -n 's/^first_mean_ms //p' <<<"$out")"
metric commits_last_mean_ms "$(sed -n 's/^last_mean_ms //p' <<<"$out")"
metric commits_slope "$(sed -n 's/^slope_ms_per_1000 //p' <<<"$out")"
metric commits_count "$COMMITS"
