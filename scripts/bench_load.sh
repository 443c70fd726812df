#!/usr/bin/env bash
# Benchmark: the warehouse load (`dag load`) of the gold tables of a lake,
# initial and incremental (1% new events), beside a plain COPY of the same
# fact rows into the same empty table (the ceiling). Not a test: numbers go
# to BENCHMARKS.md.
#
#   KEEP=1 scripts/bench_models.sh N    # makes WORK with dag.toml + lake
#   scripts/bench_load.sh WORK
#
# Uses the private PostgreSQL of scripts/services.sh (started if needed),
# two fresh databases, dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
source scripts/env.sh
WORK="$(cd "${1:?usage: bench_load.sh WORK (a KEEP=1 bench_models.sh folder)}" && pwd)"
BIN="$CARGO_TARGET_DIR/release/dag"
FILL="$CARGO_TARGET_DIR/release/examples/fill_bronze"
PSQL="${DAG_PG_BIN:-/usr/lib/postgresql/15/bin}/psql"
scripts/services.sh start postgres > /dev/null
source "$DAG_SERVICES_DIR/services.env"
ADMIN="$DAG_TEST_DATABASE_URL"
DB="bench_load_$$"; CEIL="bench_copy_$$"
url() { echo "${ADMIN%/*}/$1"; }
cleanup() {
  "$PSQL" -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "DROP DATABASE IF EXISTS $CEIL WITH (FORCE)" || true
  rm -f "$WORK/fact_telemetry.csv"
}
trap cleanup EXIT
"$PSQL" -q "$ADMIN" -c "CREATE DATABASE $DB" -c "CREATE DATABASE $CEIL"
cd "$WORK"
# shellcheck source=bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
build_release
export DATABASE_URL; DATABASE_URL="$(url "$DB")"
"$BIN" migrate > /dev/null
timed "initial load" "$BIN" load
grep '^load' "$WORK/initial load.out" | sed 's/^/    /'
ROWS=$("$PSQL" -Atq "$DATABASE_URL" -c "SELECT count(*) FROM gold.fact_telemetry")
metric load.initial.wall_s "$TIMED_SECS"
metric load.initial.rss_mb "$TIMED_RSS_MB"
metric load.initial.fact_rows "$ROWS"
# The ceiling: the same fact rows, as CSV, COPY'd into an empty table with
# its primary key (schema from the same migrations).
"$PSQL" -q "$DATABASE_URL" -c "\\copy gold.fact_telemetry TO '$WORK/fact_telemetry.csv' WITH (FORMAT csv)"
DATABASE_URL="$(url "$CEIL")" "$BIN" migrate > /dev/null
t0=$(date +%s.%N)
"$PSQL" -q "$(url "$CEIL")" -c "\\copy gold.fact_telemetry FROM '$WORK/fact_telemetry.csv' WITH (FORMAT csv)"
t1=$(date +%s.%N)
COPY_S=$(echo "scale=2; ($t1 - $t0) / 1" | bc)
printf '%-24s wall %8.2f s  (%s fact rows, psql \\copy of a CSV file)\n' "plain COPY" "$COPY_S" "$ROWS"
metric load.copy.wall_s "$COPY_S"
NEW=$(( ROWS / 100 ))
"$FILL" "file://$WORK/lake" "$NEW" 3 2026-12-20T00:00:00Z 2026-12-21T00:00:00Z > /dev/null
"$BIN" run --no-load > "$WORK/run-for-load.out"
timed "incremental load (+1%)" "$BIN" load
grep '^load' "$WORK/incremental load (+1%).out" | sed 's/^/    /'
metric load.incremental.wall_s "$TIMED_SECS"
metric load.incremental.rss_mb "$TIMED_RSS_MB"
metric load.incremental.fact_rows "$(( $("$PSQL" -Atq "$DATABASE_URL" -c "SELECT count(*) FROM gold.fact_telemetry") - ROWS ))"
