#!/usr/bin/env bash
# Benchmark: silver + gold (`dag run`) of the shipped telematics pipeline
# over N simulated telemetry events (2% bad or duplicate, ~1 fine per 50),
# full and incremental (1% new events on top). Reports wall seconds and
# peak RSS per run. Not a test: numbers go to BENCHMARKS.md.
#
#   scripts/bench_models.sh [N]        (default 1000000)
#
# Bronze is filled straight from the simulator (examples/fill_bronze.rs:
# the messages `dag produce` would send, committed as an ingester would,
# without a broker in between, so exactly N events arrive), then timed:
# `dag run --full-refresh` (every model from all of bronze), `dag run` with
# nothing new, and `dag run` after 1% more events. KEEP=1 keeps the work
# folder (its lake is the input of scripts/bench_compare.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
source scripts/env.sh
N="${1:-1000000}"
NEW=$(( N / 100 ))
# The metrics' tag (bench_all.sh passes 1M, 10M, ...).
TAG="${BENCH_TAG:-$N}"
BIN="$CARGO_TARGET_DIR/release/dag"
FILL="$CARGO_TARGET_DIR/release/examples/fill_bronze"
# shellcheck source=bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
build_release
WORK="$(mktemp -d /var/tmp/dag-bench-models.XXXXXX)"
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
cat > "$WORK/dag.toml" <<TOML
pipeline = "telematics"
models_dir = "$ROOT/models"
data_dir = "$ROOT/data"
[lake]
uri = "./lake"
[warehouse]
enabled = false
TOML
cd "$WORK"
echo "work folder: $WORK"
echo "writing $N events to bronze..."
NEXT=$("$FILL" "file://$WORK/lake" "$N" 1 2026-11-21T00:00:00Z 2026-12-01T00:00:00Z | awk '/^next start:/ {print $3}')
timed "full ($N events)" "$BIN" run --full-refresh
metric "models.$TAG.full_s" "$TIMED_SECS"
metric "models.$TAG.full_rss_mb" "$TIMED_RSS_MB"
timed "no new data" "$BIN" run
metric "models.$TAG.nothing_new_s" "$TIMED_SECS"
metric "models.$TAG.nothing_new_rss_mb" "$TIMED_RSS_MB"
# The new 1% continues the timeline (as a stream does), with the
# simulator's own share of bad and duplicate messages.
"$FILL" "file://$WORK/lake" "$NEW" 2 "$NEXT" 2026-12-02T00:00:00Z > /dev/null
timed "incremental (+$NEW events)" "$BIN" run
metric "models.$TAG.incremental_s" "$TIMED_SECS"
metric "models.$TAG.incremental_rss_mb" "$TIMED_RSS_MB"
metric "models.$TAG.events" "$N"
echo; echo "per model, full run:"; sed 's/^/  /' "$WORK/full ($N events).out"
echo; echo "per model, incremental run:"; sed 's/^/  /' "$WORK/incremental (+$NEW events).out"
