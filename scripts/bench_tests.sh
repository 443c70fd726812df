#!/usr/bin/env bash
# Benchmark: the spec's data tests (every test of the gold models) over a
# lake of N events, full and incremental (+1% events), beside the same tests
# as DuckDB SQL over the same Parquet files (scripts/bench_tests_duckdb.py).
# Not a test: numbers go to BENCHMARKS.md.
#
#   KEEP=1 scripts/bench_models.sh 10000000   # makes WORK with dag.toml + lake
#   scripts/bench_tests.sh WORK
#
# Full: `dag test gold --full` (every row) vs DuckDB (always every row).
# Incremental: 1% more events, then `dag run --no-load`, whose tests read
# only what the run committed; their seconds are summed from its output.
# Then `dag test gold` with nothing new. Uses the venv of bench_compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=env.sh
source scripts/env.sh
WORK="$(cd "${1:?usage: bench_tests.sh WORK (a KEEP=1 bench_models.sh folder)}" && pwd)"
BIN="$CARGO_TARGET_DIR/release/dag"
FILL="$CARGO_TARGET_DIR/release/examples/fill_bronze"
PY=/var/tmp/dag-bench-venv/bin/python
[ -x "$PY" ] || { echo "no $PY: run scripts/bench_compare.sh once to create it" >&2; exit 1; }
# shellcheck source=bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
build_release
cd "$WORK"
gold_test_seconds() { # the summed seconds of the gold tests in a dag output
  awk '$1 == "test" && $2 ~ /_(fact|agg|dim)_/ { s = $NF; sub(/s$/, "", s); t += s; n++ }
       END { printf "%d gold tests, %.2f s of test time\n", n, t }' "$1"
}
test_time() { # the summed seconds alone
  gold_test_seconds "$1" | awk '{print $4}'
}

timed "dag test gold --full" "$BIN" test gold --full
metric tests.full.wall_s "$TIMED_SECS"
metric tests.full.rss_mb "$TIMED_RSS_MB"
gold_test_seconds "$WORK/dag test gold --full.out"
metric tests.full.test_s "$(test_time "$WORK/dag test gold --full.out")"
tail -n 1 "$WORK/dag test gold --full.out"
timed "duckdb, same tests" "$PY" "$ROOT/scripts/bench_tests_duckdb.py" "$WORK/lake"
metric tests.duckdb.wall_s "$TIMED_SECS"
metric tests.duckdb.rss_mb "$TIMED_RSS_MB"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%d tests, %.2f s of test time, %d failing" % (len(d["tests"]), d["seconds_total"], sum(t["failing"] for t in d["tests"])))' "$WORK/duckdb, same tests.out"
metric tests.duckdb.test_s "$("$PY" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["seconds_total"], 2))' "$WORK/duckdb, same tests.out")"

ROWS=$(awk '$2 == "unique_fact_telemetry_event_id" {print $4}' "$WORK/dag test gold --full.out")
NEW=$(( ${ROWS:-1000000} / 100 ))
echo "adding $NEW events..."
"$FILL" "file://$WORK/lake" "$NEW" 4 2026-12-25T00:00:00Z 2026-12-26T00:00:00Z > /dev/null
timed "dag run, +1% (tests inside)" "$BIN" run --no-load
gold_test_seconds "$WORK/dag run, +1% (tests inside).out"
metric tests.incremental.test_s "$(test_time "$WORK/dag run, +1% (tests inside).out")"
metric tests.rows "${ROWS:-0}"
grep -E '^  test unique_fact_telemetry_event_id' "$WORK/dag run, +1% (tests inside).out" || true
timed "dag test gold, nothing new" "$BIN" test gold
gold_test_seconds "$WORK/dag test gold, nothing new.out"
metric tests.nothing_new.wall_s "$TIMED_SECS"
