#!/usr/bin/env bash
# Benchmark: bronze ingest of N telemetry messages (~270 bytes of JSON each)
# from the broker process into a local bronze table. Reports messages/s,
# MB/s and the ingester's peak RSS. Not a test: numbers go to BENCHMARKS.md.
#
#   scripts/bench_ingest.sh [N]        (default 1000000)
#
# Uses the release build (cargo build --release --workspace --all-targets) and a private
# broker started for the run (64 partitions: the mock broker keeps at most
# 5 MB or 100k messages per partition, so 1M messages need that many);
# the lake is a temporary folder. KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# shellcheck source=bench_lib.sh
. scripts/bench_lib.sh
N="${1:-1000000}"
BIN="$CARGO_TARGET_DIR/release/dag"
build_release
WORK="$(mktemp -d /var/tmp/dag-bench.XXXXXX)"
trap 'kill "$BROKER_PID" 2>/dev/null || true; [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
mkdir -p "$WORK/models/bench/bronze" "$WORK/data"
cp data/vehicles.csv data/drivers.csv "$WORK/data/"
printf 'kind: kafka_source\ntopic: vehicle-telemetry\n' > "$WORK/models/bench/bronze/bronze_vehicle_telemetry.yml"
printf 'kind: kafka_source\ntopic: traffic-fines\n' > "$WORK/models/bench/bronze/bronze_traffic_fines.yml"
"$BIN" broker --bootstrap-file "$WORK/bootstrap" --partitions "${PARTITIONS:-64}" \
  --topic vehicle-telemetry --topic traffic-fines > "$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/bootstrap" ]] && break; sleep 0.1; done
cat > "$WORK/dag.toml" <<TOML
pipeline = "bench"
[lake]
uri = "./lake"
[kafka]
bootstrap_servers = "$(cat "$WORK/bootstrap")"
session_timeout = "6s"
TOML
cd "$WORK"
echo "producing $N telemetry messages..."
"$BIN" produce --events "$N" --bad-share 0 --seed 1 --start 2026-11-21T00:00:00Z 2>/dev/null | sed 's/^/  /'
echo "ingesting..."
/usr/bin/time -v -o "$WORK/time.txt" "$BIN" ingest bronze_vehicle_telemetry --until-caught-up \
  2> "$WORK/ingest.log" | tee "$WORK/ingest.out" | sed 's/^/  /'
RSS_KB=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
CPU=$(awk -F: '/Percent of CPU/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
LAKE_MB=$(du -sm lake | cut -f1)
echo "peak RSS: $((RSS_KB / 1024)) MB; wall (incl. group join): $WALL; CPU: $CPU; table on disk: ${LAKE_MB} MB"
# "...; 221964 msg/s, 49.1 MB/s over 4.5 s from the first message ..."
read -r RATE MBS < <(sed -nE 's/.*; ([0-9]+) msg\/s, ([0-9.]+) MB\/s over.*/\1 \2/p' "$WORK/ingest.out" | head -n 1)
metric ingest.messages "$N"
metric ingest.msg_per_s "$RATE"
metric ingest.mb_per_s "$MBS"
metric ingest.rss_mb "$((RSS_KB / 1024))"
metric ingest.wall_s "$(wall_seconds "$WALL")"
metric ingest.lake_mb "$LAKE_MB"
