#!/usr/bin/env bash
# Every benchmark of the project in one go, then BENCHMARKS.md generated
# from what they measured (scripts/bench_report.py: the table of figures,
# peers and ratios, the machine, the notes of docs/benchmarks-notes.md and
# each benchmark's own output).
#
#   scripts/bench_all.sh            # the full set: ~25 minutes on 2 cores
#   scripts/bench_all.sh --quick    # small sizes, to check the scripts (~5 min);
#                                   # writes /var/tmp/dag-bench-quick.md
#
# BENCH_OUT=FILE writes the report elsewhere. A benchmark that fails is
# reported as failed (with its log) and the others still run; the script
# then exits 1. Nothing else may run on the machine meanwhile: every figure
# is a wall time on its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=env.sh
source scripts/env.sh
QUICK=""
[[ "${1:-}" == "--quick" ]] && QUICK=1
if [[ -n "$QUICK" ]]; then
  INGEST=100000; SMALL=100000; LARGE=1000000; FRESH_EVENTS=20000; FRESH_RATE=5000; COMMITS=2000
  OUT="${BENCH_OUT:-/var/tmp/dag-bench-quick.md}"
else
  INGEST=1000000; SMALL=1000000; LARGE=10000000; FRESH_EVENTS=1500000; FRESH_RATE=5000; COMMITS=20000
  OUT="${BENCH_OUT:-$ROOT/BENCHMARKS.md}"
fi
tag() { (( $1 % 1000000 == 0 )) && echo "$(($1 / 1000000))M" || echo "$(($1 / 1000))k"; }
RUN="$(mktemp -d /var/tmp/dag-bench-all.XXXXXX)"
export BENCH_METRICS="$RUN/metrics.txt"
: > "$BENCH_METRICS"
# What was measured, for the report (also when it is made again from this
# run's folder with new prose: `scripts/bench_report.py RUN BENCHMARKS.md`).
echo "run.commit $(git rev-parse --short HEAD)" >> "$BENCH_METRICS"
[[ -n "$(git status --porcelain --untracked-files=no)" ]] && dirty=1 || dirty=0
echo "run.dirty $dirty" >> "$BENCH_METRICS"
: > "$RUN/stages.txt"
KEPT=()
trap 'for d in "${KEPT[@]}"; do rm -rf "$d"; done' EXIT

echo "building (release)..."
# shellcheck source=bench_lib.sh
. scripts/bench_lib.sh
build_release
export BENCH_BUILT=1
scripts/services.sh start postgres > /dev/null

FAILED=0
# stage NAME CMD...: runs one benchmark, its output in $RUN/NAME.log, and
# records "NAME ok|failed SECONDS" for the report.
stage() {
  local name="$1"; shift
  local t0 t1 status=0
  echo "== $name: $*"
  t0=$(date +%s)
  "$@" > "$RUN/$name.log" 2>&1 || status=$?
  t1=$(date +%s)
  if [[ $status -eq 0 ]]; then
    echo "$name ok $((t1 - t0)) $*" >> "$RUN/stages.txt"
  else
    echo "$name failed $((t1 - t0)) $*" >> "$RUN/stages.txt"
    echo "   FAILED (exit $status), last lines:"; tail -n 5 "$RUN/$name.log" | sed 's/^/   /'
    FAILED=1
  fi
  echo "   $((t1 - t0)) s"
}
# The work folder a KEEP=1 bench_models.sh run left (it prints it).
work_of() { sed -n 's/^work folder: //p' "$RUN/$1.log"; }

stage ingest scripts/bench_ingest.sh "$INGEST"
for n in "$SMALL" "$LARGE"; do
  t=$(tag "$n")
  KEEP=1 BENCH_TAG="$t" stage "models-$t" scripts/bench_models.sh "$n"
  w=$(work_of "models-$t")
  [[ -n "$w" ]] && KEPT+=("$w")
  if [[ -n "$w" && -d "$w/lake" ]]; then
    # DuckDB, Python polars and PySpark on the lake dag just filled
    # PySpark at 10M would take about a quarter of an hour on 2 cores (88 s
    # at 1M) and likely outgrow its 4 GB heap: at 1M only, unless
    # BENCH_SPARK_LARGE=1.
    engines="duckdb polars pyspark"
    [[ "$t" == "$(tag "$LARGE")" && -z "${BENCH_SPARK_LARGE:-}" ]] && engines="duckdb polars"
    BENCH_ENGINES="$engines" BENCH_TAG="$t" stage "compare-$t" scripts/bench_compare.sh "$w/lake"
    if [[ "$n" == "$LARGE" ]]; then
      BENCH_TAG="$t" stage "tests-$t" scripts/bench_tests.sh "$w"
      BENCH_TAG="$t" stage "load-$t" scripts/bench_load.sh "$w"
    fi
    rm -rf "$w"
  fi
done
stage scheduler-c4 scripts/bench_scheduler.sh 200 4
stage scheduler-c1 scripts/bench_scheduler.sh 200 1
stage freshness scripts/bench_freshness.sh "$FRESH_EVENTS" "$FRESH_RATE"
stage restart scripts/bench_restart.sh 5
stage commits scripts/bench_commits.sh "$COMMITS"
# First contact: a cold build takes ~25 minutes here, so it is measured
# by scripts/bench_build.sh when asked (BENCH_BUILD=1) and its last figures
# (docs/build-figures.txt, dated) are reported otherwise.
if [[ -n "${BENCH_BUILD:-}" ]]; then
  stage build scripts/bench_build.sh
fi
[[ -f docs/build-figures.txt ]] && cat docs/build-figures.txt >> "$BENCH_METRICS"

echo "run.at $(date -u '+%Y-%m-%d %H:%M UTC')" >> "$BENCH_METRICS"
python3 scripts/bench_report.py "$RUN" "$OUT" --small "$(tag "$SMALL")" --large "$(tag "$LARGE")" \
  ${QUICK:+--quick}
echo "wrote $OUT (logs and metrics in $RUN)"
exit "$FAILED"
