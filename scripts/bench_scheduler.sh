#!/usr/bin/env bash
# Benchmark: scheduler overhead. A synthetic pipeline of 200 nodes (one
# seed and 199 SQL models, each reading the one at (i-1)/2: a binary tree,
# so up to 100 tasks are ready at once), run by one `dag scheduler` with
# max_concurrency tasks at once (default 4). The first triggered run builds
# every table; the second has nothing to do (every model finds its inputs
# unchanged: near no-op tasks), so its time is the scheduler's overhead.
# Reports trigger-to-done wall time, and per task: the time inside the task
# and the wait between its last upstream finishing (or the trigger) and its
# start (claim, notification, database round trips). Not a test.
#
#   scripts/bench_scheduler.sh [NODES] [MAX_CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=env.sh
source scripts/env.sh
# shellcheck source=bench_lib.sh
. scripts/bench_lib.sh
build_release
NODES="${1:-200}"
CONC="${2:-4}"
BIN="$CARGO_TARGET_DIR/release/dag"
PSQL="${DAG_PG_BIN:-/usr/lib/postgresql/15/bin}/psql"
scripts/services.sh start postgres > /dev/null
# shellcheck disable=SC1091
source "$DAG_SERVICES_DIR/services.env"
ADMIN="$DAG_TEST_DATABASE_URL"
DB="bench_sched_$$"
WORK="$(mktemp -d /var/tmp/dag-bench-sched.XXXXXX)"
SCHED=""
cleanup() {
  [ -n "$SCHED" ] && kill "$SCHED" 2>/dev/null && wait "$SCHED" 2>/dev/null
  "$PSQL" -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$PSQL" -q "$ADMIN" -c "CREATE DATABASE $DB"
export DATABASE_URL="${ADMIN%/*}/$DB"

mkdir -p "$WORK/models/p/silver" "$WORK/models/p/gold" "$WORK/data"
printf 'id,v\n1,x\n2,y\n' > "$WORK/data/m0.csv"
cat > "$WORK/models/p/silver/m0.yml" <<YML
kind: seed
file: m0.csv
unique_key: [id]
columns:
  - {name: id, type: int, nullable: false}
  - {name: v, type: string}
YML
for i in $(seq 1 $((NODES - 1))); do
  cat > "$WORK/models/p/gold/m$i.yml" <<YML
kind: sql
materialized: table
columns:
  - {name: id, type: int, nullable: false}
  - {name: v, type: string}
YML
  echo "SELECT id, v FROM m$(((i - 1) / 2))" > "$WORK/models/p/gold/m$i.sql"
done
cat > "$WORK/dag.toml" <<TOML
pipeline = "p"
[lake]
uri = "file://$WORK/lake"
[warehouse]
enabled = false
[scheduler]
ingest = false
metrics_addr = "off"
max_concurrency = $CONC
TOML
cd "$WORK"
"$BIN" migrate > /dev/null
"$BIN" scheduler > "$WORK/scheduler.log" 2>&1 &
SCHED=$!
for _ in $(seq 1 100); do
  [ "$("$PSQL" -Atq "$DATABASE_URL" -c "SELECT count(*) FROM dag.schedulers" 2>/dev/null || echo 0)" -gt 0 ] && break
  sleep 0.1
done
elapsed() { # command...: runs it, prints the wall seconds
  local t0 t1
  t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
first=$(elapsed "$BIN" trigger silver gold --wait)
second=$(elapsed "$BIN" trigger silver gold --wait)
stats() { # run id
  "$PSQL" -Atq "$DATABASE_URL" -F ' ' -c "
    WITH t AS (
      SELECT t.node, t.started_at, t.finished_at, t.seconds,
        greatest(r.created_at, (SELECT max(u.finished_at) FROM dag.task_runs u
                                WHERE u.run_id = t.run_id AND u.node = ANY(t.upstream))) AS ready_at
      FROM dag.task_runs t JOIN dag.runs r ON r.id = t.run_id WHERE t.run_id = $1)
    SELECT count(*), round(avg(seconds)::numeric * 1000, 1),
      round(avg(extract(epoch FROM started_at - ready_at))::numeric * 1000, 1),
      round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - ready_at))::numeric * 1000, 1),
      round(sum(seconds)::numeric, 2)
    FROM t"
}
read -r n1 in1 wait1 p99w1 sum1 <<< "$(stats 1)"
read -r n2 in2 wait2 p99w2 sum2 <<< "$(stats 2)"
printf 'nodes %s, max_concurrency %s, %s cores\n' "$NODES" "$CONC" "$(nproc)"
printf '%-28s %8s s  tasks %s  in-task avg %s ms (sum %s s)  start wait avg %s ms, p99 %s ms\n' \
  "first run (builds tables)" "$first" "$n1" "$in1" "$sum1" "$wait1" "$p99w1"
printf '%-28s %8s s  tasks %s  in-task avg %s ms (sum %s s)  start wait avg %s ms, p99 %s ms\n' \
  "second run (nothing new)" "$second" "$n2" "$in2" "$sum2" "$wait2" "$p99w2"
printf 'per-task overhead, second run: %s ms of wall per task\n' "$(echo "scale=2; $second * 1000 / $n2" | bc)"
metric "scheduler.c$CONC.nodes" "$NODES"
metric "scheduler.c$CONC.first_s" "$(printf '%.2f' "$first")"
metric "scheduler.c$CONC.second_s" "$(printf '%.2f' "$second")"
metric "scheduler.c$CONC.in_task_sum_s" "$sum2"
metric "scheduler.c$CONC.wall_ms_per_task" "$(echo "scale=2; $second * 1000 / $n2" | bc)"
metric "scheduler.c$CONC.outside_ms_per_task" "$(echo "scale=2; ($second - $sum2) * 1000 / $n2" | bc)"
