#!/usr/bin/env bash
# Benchmark: end-to-end freshness under a steady load. `dag demo` runs the
# whole chain in one process (librdkafka's mock broker, the producer at
# RATE events/s, the ingesters, silver and gold with data tests and the
# warehouse load in continuous mode (a run per bronze commit, one at a
# time), a private PostgreSQL) for EVENTS events, then
# reports per event the time from its Kafka timestamp to the commit of the
# first warehouse load that carried it (p50, p99), and checks every count
# against the simulator. Not a test: numbers go to BENCHMARKS.md.
#
#   scripts/bench_freshness.sh [EVENTS] [RATE]   (default 1500000 5000: five minutes)
#
# Runs in a temporary folder (its ./models and ./data link to the repo's),
# so the repo's own ./demo is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=env.sh
source scripts/env.sh
# shellcheck source=bench_lib.sh
. scripts/bench_lib.sh
EVENTS="${1:-1500000}"
RATE="${2:-5000}"
BIN="$CARGO_TARGET_DIR/release/dag"
build_release
WORK="$(mktemp -d /var/tmp/dag-bench-fresh.XXXXXX)"
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
ln -s "$ROOT/models" "$WORK/models"
ln -s "$ROOT/data" "$WORK/data"
cd "$WORK"
echo "dag demo --events $EVENTS --rate $RATE ..."
status=0
timed demo "$BIN" demo --events "$EVENTS" --rate "$RATE" || status=$?
OUT="$WORK/demo.out"
sed -n '/^dag demo: [0-9]* events through/,$p' "$OUT"
grep -E '^produced |^bronze_vehicle_telemetry: ' "$OUT" || true
[[ $status -eq 0 ]] || { echo "dag demo failed (exit $status):" >&2; tail -n 20 "$WORK/demo.err" >&2; exit 1; }
# "  freshness   produce -> row in PostgreSQL: p50 12.8 s, p99 26.6 s over 1470118 events ..."
read -r P50 P99 N < <(sed -nE 's/.*p50 ([0-9.]+) s, p99 ([0-9.]+) s over ([0-9]+) events.*/\1 \2 \3/p' "$OUT")
# "produced 1530000 messages (...) in 300.1 s (5098 msg/s), ..."
PRODUCED=$(sed -nE 's/^produced [0-9]+ messages .* \(([0-9]+) msg\/s\).*/\1/p' "$OUT")
# "bronze_vehicle_telemetry: ...; 4786 msg/s, 1.0 MB/s over ..."
BRONZE=$(sed -nE 's/^bronze_vehicle_telemetry: .*; ([0-9]+) msg\/s,.*/\1/p' "$OUT")
TOTAL=$(sed -nE 's/^dag demo: [0-9]+ events through .* in ([0-9.]+) s .*/\1/p' "$OUT")
HOLDS=$(grep -c '^  invariant   holds' "$OUT" || true)
metric freshness.events "$EVENTS"
metric freshness.rate_target "$RATE"
metric freshness.produced_msg_per_s "$PRODUCED"
metric freshness.bronze_msg_per_s "$BRONZE"
metric freshness.p50_s "$P50"
metric freshness.p99_s "$P99"
metric freshness.measured_events "$N"
metric freshness.total_s "$TOTAL"
metric freshness.rss_mb "$TIMED_RSS_MB"
metric freshness.invariant_holds "$HOLDS"
