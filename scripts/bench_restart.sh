#!/usr/bin/env bash
# Benchmark: kill -9 to reading again. A streaming `dag ingest` of one
# Kafka source is killed -9, restarted at once while new messages are
# produced, and timed from the kill to its first new bronze commit (a new
# Delta log entry). Repeated R times for each assignment mode:
#   all:   every partition taken by the ingester itself (no group to wait for)
#   group: the consumer group (the restart waits for the group to drop its
#          dead predecessor: up to session_timeout, 6 s here)
# Not a test: numbers go to BENCHMARKS.md.
#
#   scripts/bench_restart.sh [R]        (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# shellcheck source=bench_lib.sh
. scripts/bench_lib.sh
R="${1:-5}"
BIN="$CARGO_TARGET_DIR/release/dag"
build_release
WORK="$(mktemp -d /var/tmp/dag-bench.XXXXXX)"
INGEST_PID=""
trap 'kill -9 "$INGEST_PID" 2>/dev/null || true; kill "$BROKER_PID" 2>/dev/null || true; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
mkdir -p "$WORK/models/bench/bronze" "$WORK/data"
cp data/vehicles.csv data/drivers.csv "$WORK/data/"
printf 'kind: kafka_source\ntopic: vehicle-telemetry\n' > "$WORK/models/bench/bronze/bronze_vehicle_telemetry.yml"
"$BIN" broker --bootstrap-file "$WORK/bootstrap" --partitions 8 \
  --topic vehicle-telemetry > "$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/bootstrap" ]] && break; sleep 0.1; done
cd "$WORK"
LOG=lake/bronze/bronze_vehicle_telemetry/_delta_log
commits() { ls "$LOG"/*.json 2>/dev/null | wc -l; }
now() { date +%s.%N; }
produce() { "$BIN" produce --events "$1" --bad-share 0 --seed "$2" --start 2026-11-21T00:00:00Z > produce.log 2>&1 || { cat produce.log >&2; return 1; }; }
# Waits (up to 120 s) until the table has more than $1 commits.
wait_commit() {
  local before="$1" deadline=$((SECONDS + 120))
  while (( $(commits) <= before )); do
    (( SECONDS < deadline )) || { echo "no commit within 120 s" >&2; return 1; }
    sleep 0.02
  done
}
seed=1
for mode in all group; do
  rm -rf lake
  cat > dag.toml <<TOML
pipeline = "bench"
[lake]
uri = "./lake"
[kafka]
bootstrap_servers = "$(cat bootstrap)"
session_timeout = "6s"
group_id = "bench-$mode"
assignment = "$mode"
[ingest]
batch_interval = "200ms"
TOML
  produce 20000 $((seed++))
  "$BIN" ingest bronze_vehicle_telemetry > "ingest-$mode.log" 2>&1 &
  INGEST_PID=$!
  wait_commit 0
  times=()
  for i in $(seq "$R"); do
    sleep 1
    kill -9 "$INGEST_PID"; wait "$INGEST_PID" 2>/dev/null || true
    t0=$(now)
    before=$(commits)
    "$BIN" ingest bronze_vehicle_telemetry >> "ingest-$mode.log" 2>&1 &
    INGEST_PID=$!
    # New messages while the new ingester starts.
    produce 5000 $((seed++))
    wait_commit "$before"
    t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
    echo "  $mode: restart $i: kill -9 -> first new commit in $t s"
    times+=("$t")
  done
  kill -9 "$INGEST_PID"; wait "$INGEST_PID" 2>/dev/null || true
  INGEST_PID=""
  read -r MEDIAN MAX < <(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%s %s\n", v[int((NR + 1) / 2)], v[NR] }')
  echo "$mode: median $MEDIAN s, max $MAX s over $R restarts"
  metric "restart.$mode.median_s" "$MEDIAN"
  metric "restart.$mode.max_s" "$MAX"
done
metric restart.repeats "$R"
