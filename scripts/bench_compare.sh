#!/usr/bin/env bash
# Comparison benchmark: the telematics silver + gold pipeline of `dag run`,
# recomputed by DuckDB and by Python polars from the same bronze tables.
# Reports wall time and peak RSS per engine, and the row counts per table so
# they can be checked against dag's. Not a test: numbers go to BENCHMARKS.md.
#
#   scripts/bench_compare.sh LAKE_DIR
#
# BENCH_TAG (e.g. 10M) names the figures it hands to scripts/bench_all.sh.
# LAKE_DIR is a lake that dag filled, e.g. the work folder's lake that
# `KEEP=1 scripts/bench_models.sh` leaves. DATA_DIR (default: data/) holds the
# reference CSVs the lake was made with; WRITE_DIR=DIR also writes each
# engine's silver and gold tables as parquet under DIR/ENGINE (not timed).
# The first run creates a venv at /var/tmp/dag-bench-venv with the pinned
# engines below; later runs reuse it. Each engine runs in its own process
# (scripts/bench_compare.py) under /usr/bin/time -v.
#
# How this differs from `dag run` (compare with `dag run --full-refresh`):
# - Everything stays in memory: no Delta table is written (dag writes silver,
#   quarantine and gold as Delta tables, commits them with their bronze
#   watermarks and runs the data tests); quarantined rows are only counted
#   per reason. The engines' own in-process seconds (read+clean, gold) are in
#   the JSON line that bench_compare.py prints; the wall time below also
#   counts interpreter start-up and imports.
# - Bronze is read as every *.parquet file under the table (bronze is
#   append-only, so all are live), not through the Delta log.
# - The gold queries are models/telematics/gold/*.sql, read at run time. polars
#   (SQLContext) runs them unchanged; DuckDB runs them unchanged but for
#   agg_alerts_15min, where CAST(<BIGINT microseconds> AS TIMESTAMP), which
#   DuckDB lacks, becomes make_timestamp(...). fines_with_driver (the `asof`
#   of fact_fines.yml) is DuckDB's ASOF LEFT JOIN / polars'
#   join_asof(strategy="backward", by="vehicle_id"), after keeping, per
#   (vehicle_id, event_time), the telemetry row with the greatest event_id.
# - Output columns are not cast to the declared types (a SUM of flags comes
#   out as DOUBLE or INTEGER, not BIGINT; window_start has no time zone).
# - The lake of bench_models.sh also holds its +1% incremental batch, so
#   these runs read 1% more bronze rows than dag's "full" run did.
#
# Where the engines are less strict than the contract (and so than dag,
# which puts these rows in quarantine: the comparison is slightly in the
# other engines' favour). Found with hand-made rows; none occurs in the
# generated data, on which both engines match dag's counts exactly.
# - DuckDB: numbers are judged as doubles: an integer field's integrality
#   (1000.0000000000000001 passes as an integer) and every range
#   (300.00000000000000001 passes [0, 300]); amount_eur's decimal places are
#   judged on the double's shortest representation. Duplicate keys are found
#   only at the top level (DuckDB keeps the first copy; nested duplicates
#   pass). Its JSON reader accepts trailing commas and NaN/Infinity/inf/nan:
#   those are rejected by a regex over the text with string literals blanked.
# - polars: a field is found by a regex over the raw text, not by a parser,
#   so a key inside a nested object can supply a missing top-level field,
#   and an escaped key ("event\u005fid") is not found (missing, where dag
#   takes it). Ranges are judged as doubles (integrality and decimal places
#   are exact, from the number's text). Validity is strict (a regex for
#   objects of scalars, serde_json via json_path_match for the rest);
#   duplicate keys are found by counting `"key":` before and after serde_json
#   re-serializes the object (it keeps one copy), which a key escaped as
#   \u0022 could hide. polars has no per-row checked UTF-8 cast: slices whose
#   cast fails are decoded row by row in Python.
# - Both: whitespace is Unicode White_Space; RFC 3339 is checked by regex
#   (hour <= 23, second <= 59, offset required) plus the engine's calendar.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
if [[ $# -ne 1 ]]; then
  echo "usage: scripts/bench_compare.sh LAKE_DIR" >&2
  exit 2
fi
LAKE="$(cd "$1" && pwd)"
DATA_DIR="${DATA_DIR:-$ROOT/data}"
for t in bronze_vehicle_telemetry bronze_traffic_fines; do
  [[ -d "$LAKE/bronze/$t" ]] || { echo "no $LAKE/bronze/$t" >&2; exit 2; }
done

# shellcheck source=bench_lib.sh
. scripts/bench_lib.sh
VENV=/var/tmp/dag-bench-venv
DUCKDB_VERSION=2.0.0
POLARS_VERSION=2.1.0
PINS=("duckdb==$DUCKDB_VERSION" "polars==$POLARS_VERSION" "polars-runtime-32==$POLARS_VERSION")
PY="$VENV/bin/python"
have_pins() {
  "$PY" - "$DUCKDB_VERSION" "$POLARS_VERSION" 2>/dev/null <<'PYEOF'
import sys, duckdb, polars
sys.exit(0 if (duckdb.__version__, polars.__version__) == tuple(sys.argv[1:3]) else 1)
PYEOF
}
if ! have_pins; then
  echo "creating $VENV (${PINS[*]})..."
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
  have_pins || { echo "pinned versions did not install" >&2; exit 1; }
fi
echo "engines: $("$VENV/bin/pip" freeze --disable-pip-version-check | grep -Ei '^(duckdb|polars)' | tr '\n' ' ')"
echo "lake: $LAKE"

WORK="$(mktemp -d /var/tmp/dag-bench-compare.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
for engine in duckdb polars; do
  args=("$engine" "$LAKE" "$DATA_DIR")
  [[ -n "${WRITE_DIR:-}" ]] && args+=(--write "$WRITE_DIR/$engine")
  if ! /usr/bin/time -v -o "$WORK/$engine.time" "$PY" scripts/bench_compare.py "${args[@]}" \
      > "$WORK/$engine.json" 2> "$WORK/$engine.err"; then
    echo "$engine failed:" >&2
    cat "$WORK/$engine.err" >&2
    exit 1
  fi
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/$engine.time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/$engine.time")
  if [[ -n "${BENCH_TAG:-}" ]]; then
    metric "compare.$BENCH_TAG.$engine.wall_s" "$(wall_seconds "$wall")"
    metric "compare.$BENCH_TAG.$engine.rss_mb" "$((rss / 1024))"
  fi
  "$PY" - "$engine" "$wall" "$((rss / 1024))" "$WORK/$engine.json" <<'PYEOF'
import json, sys
engine, wall, rss, path = sys.argv[1:5]
with open(path) as f:
    r = json.loads(f.read().strip().splitlines()[-1])
rows, s = r["rows"], r["seconds"]
print(f"{engine:7} wall {wall:>8}  peak RSS {int(rss):6d} MB  "
      f"(rows: silver_telemetry={rows['silver_telemetry']}, fact_telemetry={rows['fact_telemetry']})")
print(f"        in process: read+clean {s['read_clean']:.2f} s, gold {s['gold']:.2f} s, "
      f"total {s['total']:.2f} s")
skip = {"silver_telemetry", "fact_telemetry"}
print("        rows: " + ", ".join(f"{k}={v}" for k, v in rows.items() if k not in skip))
PYEOF
  if [[ -n "${BENCH_TAG:-}" ]]; then
    metric "compare.$BENCH_TAG.$engine.in_process_s" "$("$PY" -c 'import json, sys
print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["seconds"]["total"], 2))' "$WORK/$engine.json")"
  fi
done
