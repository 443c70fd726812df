#!/usr/bin/env bash
# Comparison benchmark: the telematics silver + gold pipeline of `dag run`,
# recomputed by DuckDB, by Python polars and by PySpark (local[2]) from the
# same bronze tables.
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
# engines below (a venv without one of them gets it on the next run); later
# runs reuse it. PySpark needs a Java 17+ runtime: without `java` it installs
# Debian's openjdk-17-jre-headless (scripts/setup.sh's apt_install). Each
# engine runs in its own process (scripts/bench_compare.py) under
# /usr/bin/time -v; for PySpark that is Python plus the JVM it starts (the
# driver, which in local mode is also the executor), and the peak RSS is
# that of the largest one, the JVM.
#
# PySpark runs with master local[2] (one task thread per core), a 4 GB
# driver heap (BENCH_SPARK_MEMORY overrides it: in local mode the driver is
# all Spark has, and 4 GB keeps the 10M run's tables mostly in memory; what
# does not fit spills to a scratch folder in /var/tmp), 4 shuffle partitions
# (not 200), the UTC session time zone, no UI, and logs at ERROR only. Its
# in-process seconds exclude the JVM's start (reported apart); the wall
# time includes it.
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
#   DuckDB lacks, becomes make_timestamp(...). Spark SQL runs them with
#   three textual changes: in agg_alerts_15min the window start becomes
#   timestamp_micros(CAST(FLOOR(unix_micros(t.event_time) / 1000000 / 900)
#   AS BIGINT) * 900000000) (Spark has no EXTRACT(EPOCH ...) and reads a
#   BIGINT cast to TIMESTAMP as seconds), and CAST(NULL AS VARCHAR) becomes
#   CAST(NULL AS STRING) in dim_driver and dim_vehicle (Spark wants a length
#   after VARCHAR). fines_with_driver (the `asof` of fact_fines.yml) is
#   DuckDB's ASOF LEFT JOIN / polars' join_asof(strategy="backward",
#   by="vehicle_id"), after keeping, per (vehicle_id, event_time), the
#   telemetry row with the greatest event_id. Spark has no as-of join: there
#   each vehicle's events and fines are put in one time order (at equal
#   times events before fines, events by event_id), and each fine takes
#   last(driver_id, ignoreNulls) over a running window partitioned by
#   vehicle_id, which is the same driver.
# - PySpark keeps each table it computes in an eager local checkpoint
#   (memory, then disk) where DuckDB creates tables and polars keeps
#   DataFrames; the checkpoint also cuts the plan's lineage, without which
#   Spark's planning over the nested cleaning plan cost seconds per table.
# - Output columns are not cast to the declared types (a SUM of flags comes
#   out as DOUBLE or INTEGER, not BIGINT; window_start has no time zone).
# - The lake of bench_models.sh also holds its +1% incremental batch, so
#   these runs read 1% more bronze rows than dag's "full" run did.
#
# Where the engines are less strict than the contract (and so than dag,
# which puts these rows in quarantine: the comparison is slightly in the
# other engines' favour). Found with hand-made rows; none occurs in the
# generated data, on which all three engines match dag's counts exactly.
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
# - PySpark: the JSON is parsed by try_parse_json (Jackson, into a VARIANT),
#   which is strict about NaN/Infinity, trailing commas, single quotes,
#   unquoted keys, raw control characters, invalid escapes, lone surrogate
#   escapes, a byte-order mark and duplicate keys at any depth; UTF-8 is
#   checked by is_valid_utf8. But parse_json stops after the first value and
#   ignores the rest: a row passes only if its text ends with `}` and has as
#   many structural characters ({}[]:," ) as the value re-serialized by
#   to_json (both with string literals blanked when the text has a
#   backslash), which catches trailing text short of a crafted one that
#   keeps the counts equal. A field's type is schema_of_variant's: an
#   integer type or DECIMAL(p,s) (a token without exponent, whose exact
#   value Spark keeps) is judged exactly for integrality and amount_eur's
#   two places; a token with an exponent, or too long for a DECIMAL(38), is
#   a DOUBLE and judged as a double (1.00000000000000000000000000000000000001
#   passes as an integer). Ranges are judged as doubles. A nested object
#   never supplies a top-level field and escaped keys are decoded, as in dag.
# - All three: whitespace is Unicode White_Space; RFC 3339 is checked by
#   regex (hour <= 23, second <= 59, offset required) plus the engine's
#   calendar.
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
PYSPARK_VERSION=4.3.0
PINS=("duckdb==$DUCKDB_VERSION" "polars==$POLARS_VERSION" "polars-runtime-32==$POLARS_VERSION"
      "pyspark==$PYSPARK_VERSION")
# BENCH_ENGINES (space-separated) runs only those engines.
read -r -a ENGINES <<< "${BENCH_ENGINES:-duckdb polars pyspark}"
PY="$VENV/bin/python"
have_pins() {
  "$PY" - "$DUCKDB_VERSION" "$POLARS_VERSION" "$PYSPARK_VERSION" 2>/dev/null <<'PYEOF'
import sys
from importlib import metadata
have = tuple(metadata.version(p) for p in ("duckdb", "polars", "pyspark"))
sys.exit(0 if have == tuple(sys.argv[1:4]) else 1)
PYEOF
}
if ! have_pins; then
  # an existing venv is kept: pip installs only what is missing or differs
  echo "setting up $VENV (${PINS[*]})..."
  [[ -x "$PY" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
  have_pins || { echo "pinned versions did not install" >&2; exit 1; }
fi
# PySpark 4 runs on Java 17 or later.
java_major() { java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}'; }
if ! command -v java > /dev/null 2>&1; then
  echo "installing a Java runtime for PySpark (openjdk-17-jre-headless)..."
  # shellcheck source=setup.sh
  . scripts/setup.sh
  apt_install openjdk-17-jre-headless
fi
if [[ "$(java_major)" -lt 17 ]]; then
  echo "PySpark needs Java 17 or later; java -version says: $(java -version 2>&1 | head -n 1)" >&2
  exit 1
fi
echo "engines: $("$VENV/bin/pip" freeze --disable-pip-version-check | grep -Ei '^(duckdb|polars|pyspark)==' | tr '\n' ' ')java $(java_major)"
echo "lake: $LAKE"

WORK="$(mktemp -d /var/tmp/dag-bench-compare.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
for engine in "${ENGINES[@]}"; do
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
start = f", after {s['start']:.2f} s of JVM start" if "start" in s else ""
print(f"        in process: read+clean {s['read_clean']:.2f} s, gold {s['gold']:.2f} s, "
      f"total {s['total']:.2f} s{start}")
print("        quarantine: " + "; ".join(
    f"{t}: " + (", ".join(f"{k}={v}" for k, v in q.items()) or "none")
    for t, q in r["quarantine_reasons"].items()))
skip = {"silver_telemetry", "fact_telemetry"}
print("        rows: " + ", ".join(f"{k}={v}" for k, v in rows.items() if k not in skip))
PYEOF
  if [[ -n "${BENCH_TAG:-}" ]]; then
    metric "compare.$BENCH_TAG.$engine.in_process_s" "$("$PY" -c 'import json, sys
print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["seconds"]["total"], 2))' "$WORK/$engine.json")"
  fi
done
