#!/usr/bin/env bash
# The README's test command (`./scripts/test.sh [cargo test args]`), and what
# CI runs through .ci/run (CI=true, no stdin, a fresh clone, nothing
# running). Installs what is missing, builds, starts
# the services the end-to-end tests use (scripts/services.sh), runs the test
# suite, writes the shipped pipeline's data-quality report to
# ci-artifacts/data-quality (scripts/quality_report.sh) and exits with the
# suite's status (or the report's, when the suite passed). Services this run started are stopped on
# exit; services that were already running are left alone.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=env.sh
. "$ROOT/scripts/env.sh"

SERVICES=(postgres s3 broker)
started=()
run_start=$SECONDS

# step NAME CMD...: runs CMD, printing its name and elapsed time.
step() {
  local name="$1" t0=$SECONDS rc=0
  shift
  echo "==> $name"
  "$@" || rc=$?
  echo "==> $name: $((SECONDS - t0))s$([ "$rc" -eq 0 ] || echo " (exit $rc)")"
  return "$rc"
}

cleanup() {
  local rc=$? svc
  trap - EXIT INT TERM
  for svc in "${started[@]}"; do
    "$ROOT/scripts/services.sh" stop "$svc" || true
  done
  echo "==> total: $((SECONDS - run_start))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==> CARGO_TARGET_DIR=$CARGO_TARGET_DIR DAG_SERVICES_DIR=$DAG_SERVICES_DIR"
step "setup" "$ROOT/scripts/setup.sh" </dev/null
# Again: env.sh sets RUSTFLAGS only when mold is there, and setup may have
# just installed it (the next run would otherwise rebuild everything).
. "$ROOT/scripts/env.sh"

# The code's shape: no import circles between files, nothing new too long
# (seconds; fails before the long build does).
step "structure" python3 "$ROOT/scripts/check_structure.py"

# Stale binaries of our own crates fill the disk otherwise (never a clean).
"$ROOT/scripts/prune_target.sh" || true

# The same cargo invocation as a developer's full build, so CI reuses it
# (one feature set, one target dir); it also builds the dag binary that
# hosts the separate broker process.
step "cargo build --release --workspace --all-targets" \
  cargo build --release --workspace --all-targets </dev/null

# Remember what was running before, so the trap stops only what we start.
for svc in "${SERVICES[@]}"; do
  if ! "$ROOT/scripts/services.sh" status "$svc" >/dev/null 2>&1; then
    started+=("$svc")
  fi
done
for svc in "${SERVICES[@]}"; do
  step "start $svc" "$ROOT/scripts/services.sh" start "$svc" </dev/null
done

# shellcheck disable=SC1091
. "$DAG_SERVICES_DIR/services.env"
echo "==> DAG_TEST_DATABASE_URL=${DAG_TEST_DATABASE_URL:-} DAG_TEST_S3_ENDPOINT=${DAG_TEST_S3_ENDPOINT:-} DAG_TEST_KAFKA_BOOTSTRAP=${DAG_TEST_KAFKA_BOOTSTRAP:-}"

test_rc=0
step "cargo test --release --workspace --no-fail-fast $*" cargo test --release --workspace --no-fail-fast "$@" </dev/null || test_rc=$?
if [ "$test_rc" -ne 0 ]; then
  echo "==> tests failed; service logs: $DAG_SERVICES_DIR/{postgres,s3,broker}/log"
fi
# The CI artifact: the shipped pipeline's data-quality report on sample data.
report_rc=0
step "data-quality report (ci-artifacts/data-quality)" "$ROOT/scripts/quality_report.sh" </dev/null || report_rc=$?
[ "$test_rc" -ne 0 ] && exit "$test_rc"
exit "$report_rc"
