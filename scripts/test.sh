#!/usr/bin/env bash
# The README's test command. On a fresh machine or a warm one: installs what
# is missing (scripts/setup.sh), builds, starts the services the tests need
# (PostgreSQL, S3, the broker: scripts/services.sh), runs
# `cargo test --release --workspace` (extra arguments go to cargo test), and
# stops only the services it started. Exits with the tests' status.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh
# The broker service runs this binary.
cargo build --release --bin dag
started=()
for svc in postgres s3 broker; do
  scripts/services.sh status "$svc" >/dev/null 2>&1 || started+=("$svc")
done
stop_started() {
  for svc in "${started[@]}"; do scripts/services.sh stop "$svc" || true; done
}
trap stop_started EXIT
scripts/services.sh start all
. "$DAG_SERVICES_DIR/services.env"
cargo test --release --workspace "$@"
