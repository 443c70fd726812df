#!/usr/bin/env bash
# The data-quality report of the shipped pipeline on simulated sample data,
# as CI artifacts: produce -> ingest -> `dag run` -> `dag test` with JUnit,
# Markdown and JSON reports in OUT (default ci-artifacts/data-quality).
# scripts/test.sh runs it after the test suite (the broker is up then).
#
#   scripts/quality_report.sh [OUT]
#
# The shipped models run unchanged but for their topic names (unique per
# run, so a broker shared with other runs holds exactly this sample) in a
# scratch project; the lake is kept in OUT/lake for inspection. The
# Markdown summary is also appended to $GITHUB_STEP_SUMMARY when set. The
# report checks every row (`--full`): `dag run` already ran the tests
# incrementally, and a report should show what was checked.
# Exit status: dag test's (0 pass, 1 an error test failed, 2 could not run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"
OUT="$(mkdir -p "${1:-$ROOT/ci-artifacts/data-quality}" && cd "${1:-$ROOT/ci-artifacts/data-quality}" && pwd)"
BIN="$CARGO_TARGET_DIR/release/dag"
EVENTS="${DAG_REPORT_EVENTS:-20000}"
if [ -z "${DAG_TEST_KAFKA_BOOTSTRAP:-}" ] && [ -f "$DAG_SERVICES_DIR/services.env" ]; then
  # shellcheck disable=SC1091
  . "$DAG_SERVICES_DIR/services.env"
fi
: "${DAG_TEST_KAFKA_BOOTSTRAP:?no broker: start it with scripts/services.sh start broker}"

rm -rf "$OUT/lake" "$OUT/project"
mkdir -p "$OUT/project/models"
cp -r "$ROOT/models/telematics" "$OUT/project/models/"
suffix="$(date +%s)-$$"
for f in "$OUT"/project/models/telematics/bronze/*.yml; do
  sed -i -E "s/^topic: *(.*)$/topic: \1-report-$suffix/" "$f"
done
cat > "$OUT/project/dag.toml" <<TOML
pipeline = "telematics"
data_dir = "$ROOT/data"
[lake]
uri = "file://$OUT/lake"
[kafka]
bootstrap_servers = "$DAG_TEST_KAFKA_BOOTSTRAP"
group_id = "report-$suffix"
[ingest]
batch_interval = "500ms"
[warehouse]
enabled = false
TOML
cd "$OUT/project"
"$BIN" produce --events "$EVENTS" --seed 42 > "$OUT/produce.log"
"$BIN" ingest --until-caught-up > "$OUT/ingest.log" 2>&1
"$BIN" run > "$OUT/run.log" || { echo "quality report: dag run failed:"; cat "$OUT/run.log"; }
rc=0
"$BIN" test --full --junit "$OUT/junit.xml" --markdown "$OUT/data-quality.md" --json "$OUT/data-quality.json" \
  > "$OUT/test.log" || rc=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$OUT/data-quality.md" >> "$GITHUB_STEP_SUMMARY"; fi
tail -n 1 "$OUT/test.log"
echo "quality report: $OUT/{junit.xml,data-quality.md,data-quality.json} (exit $rc)"
exit "$rc"
