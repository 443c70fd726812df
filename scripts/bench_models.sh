#!/usr/bin/env bash
# Benchmark: silver + gold (`dag run`) of the shipped telematics pipeline
# over N simulated telemetry events (2% bad or duplicate, ~1 fine per 50),
# full and incremental (1% new events on top). Reports wall seconds and
# peak RSS per run. Not a test: numbers go to BENCHMARKS.md.
#
#   scripts/bench_models.sh [N]        (default 1000000)
#
# Bronze is filled the way users fill it (dag produce -> private broker ->
# dag ingest), then timed: `dag run --full-refresh` (every model from all
# of bronze) and `dag run` after 1% more events were ingested. KEEP=1 keeps
# the work folder (its lake is the input of the comparison scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
source scripts/env.sh
N="${1:-1000000}"
NEW=$(( N / 100 ))
BIN="$CARGO_TARGET_DIR/release/dag"
cargo build --release --workspace --quiet
WORK="$(mktemp -d /var/tmp/dag-bench-models.XXXXXX)"
trap 'kill "$BROKER_PID" 2>/dev/null || true; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
# The mock broker keeps at most 5 MB (or 100k messages) per partition and
# silently drops older ones: ~270-byte events need a partition per 15k.
PARTS=$(( N / 15000 + 4 ))
"$BIN" broker --bootstrap-file "$WORK/bootstrap" --partitions "$PARTS" \
  --topic vehicle-telemetry --topic traffic-fines > "$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/bootstrap" ]] && break; sleep 0.1; done
cat > "$WORK/dag.toml" <<TOML
pipeline = "telematics"
models_dir = "$ROOT/models"
data_dir = "$ROOT/data"
[lake]
uri = "./lake"
[kafka]
bootstrap_servers = "$(cat "$WORK/bootstrap")"
session_timeout = "6s"
[ingest]
clock = "2026-12-01T00:00:00Z"
TOML
cd "$WORK"
timed() { # label, command...
  local label="$1"; shift
  /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err"
  local rss wall
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
  printf '%-28s wall %8s  peak RSS %6d MB\n' "$label" "$wall" "$((rss / 1024))"
}
echo "producing and ingesting $N events..."
"$BIN" produce --events "$N" --seed 1 --start 2026-11-21T00:00:00Z > /dev/null 2>&1
"$BIN" ingest --until-caught-up > /dev/null 2>&1
BRONZE=$(find lake/bronze/bronze_vehicle_telemetry -name '*.parquet' | wc -l)
echo "bronze telemetry files: $BRONZE"
timed "full ($N events)" "$BIN" run --full-refresh
timed "no new data" "$BIN" run
"$BIN" produce --events "$NEW" --seed 2 --start 2026-11-22T00:00:00Z > /dev/null 2>&1
"$BIN" ingest --until-caught-up > /dev/null 2>&1
timed "incremental (+$NEW events)" "$BIN" run
echo; echo "per model, full run:"; sed 's/^/  /' "$WORK/full ($N events).out"
echo; echo "per model, incremental run:"; sed 's/^/  /' "$WORK/incremental (+$NEW events).out"
