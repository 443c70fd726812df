#!/usr/bin/env bash
# Starts, stops and reports the services the end-to-end tests run against,
# on loopback, without Docker (see docs/services.md):
#
#   scripts/services.sh start|stop|status [postgres|s3|broker|all]   (default all)
#
#   postgres  private PostgreSQL 15 cluster   postgresql://postgres@127.0.0.1:54329/postgres
#   s3        SeaweedFS (`weed mini`), S3     http://127.0.0.1:8333, bucket lake,
#             keys minioadmin/minioadmin, path-style, region us-east-1
#   broker    `dag broker`: librdkafka's mock cluster in its own process,
#             bootstrap servers on a free loopback port
#
# State lives under $DAG_SERVICES_DIR/<service>/ (data, log, pid). start is
# "ensure running" and waits for readiness (DAG_SERVICES_TIMEOUT seconds,
# default 60), printing the log tail on failure; stop kills only the PID in
# the service's own PID file. After start and stop,
# $DAG_SERVICES_DIR/services.env exports DAG_TEST_DATABASE_URL,
# DAG_TEST_S3_ENDPOINT and DAG_TEST_KAFKA_BOOTSTRAP for the running services.
# status exits 0 only if every named service is running.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPTS_DIR")"
# shellcheck source=env.sh
. "$SCRIPTS_DIR/env.sh"

TIMEOUT="${DAG_SERVICES_TIMEOUT:-60}"
PG_BIN="${DAG_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT=54329
PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
S3_PORT=8333
S3_URL="http://127.0.0.1:$S3_PORT"
S3_BUCKET=lake
S3_KEY=minioadmin
S3_SECRET=minioadmin
VENV="$DAG_SERVICES_DIR/venv"
DAG_BIN="$CARGO_TARGET_DIR/release/dag"
BROKER_PARTITIONS="${DAG_BROKER_PARTITIONS:-3}"
ALL_SERVICES=(postgres s3 broker)

say() { echo "services: $*"; }
die() { echo "services: $*" >&2; exit 1; }

# log_tail SERVICE: the end of a service's log, for failure messages.
log_tail() {
  local log="$DAG_SERVICES_DIR/$1/log"
  if [ -s "$log" ]; then
    echo "---- last lines of $log ----" >&2
    tail -n 40 "$log" >&2
    echo "----" >&2
  else
    echo "(no log at $log)" >&2
  fi
}

# pid_of SERVICE: the PID from the service's PID file if that process is
# alive and is the program we started (guards against a recycled PID).
pid_of() {
  local svc="$1" pidfile="$DAG_SERVICES_DIR/$1/pid" pid exe
  [ -s "$pidfile" ] || return 1
  pid="$(head -n 1 "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  exe="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  case "$svc" in
    postgres) [[ "$exe" == *postgres* ]] || return 1 ;;
    s3) [[ "$exe" == *weed* ]] || return 1 ;;
    broker) [[ "$exe" == *dag*broker* ]] || return 1 ;;
  esac
  echo "$pid"
}

# port_open HOST PORT: a TCP connect succeeds.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_until SERVICE PID CMD...: polls CMD until it succeeds; fails (with the
# log tail) after $TIMEOUT seconds or as soon as PID dies.
wait_until() {
  local svc="$1" pid="$2"; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  while ! "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "services: $svc exited during start-up" >&2
      rm -f "$DAG_SERVICES_DIR/$svc/pid"
      log_tail "$svc"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "services: $svc not ready after ${TIMEOUT}s" >&2
      log_tail "$svc"
      return 1
    fi
    sleep 0.2
  done
}

# stop_pid SERVICE: SIGTERM to the PID in the service's PID file, SIGKILL
# if it has not exited after $TIMEOUT seconds; removes the PID file.
stop_pid() {
  local svc="$1" pid
  if pid="$(pid_of "$svc")"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "$svc (pid $pid) ignored SIGTERM for ${TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
        break
      fi
      sleep 0.2
    done
    say "$svc stopped (pid $pid)"
  else
    say "$svc not running"
  fi
  rm -f "$DAG_SERVICES_DIR/$svc/pid"
}

# --- postgres -----------------------------------------------------------

# PostgreSQL refuses to run as root: as root, run it as the postgres user.
pg_as() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_ready() {
  psql "$PG_URL" -Atqc 'select 1' 2>/dev/null | grep -qx 1
}

postgres_url() { echo "$PG_URL"; }

postgres_start() {
  local dir="$DAG_SERVICES_DIR/postgres"
  if pid_of postgres >/dev/null && pg_ready; then
    say "postgres already running ($PG_URL)"
    return 0
  fi
  [ -x "$PG_BIN/postgres" ] ||
    die "PostgreSQL 15 not found in $PG_BIN: run scripts/setup.sh (it installs the Debian package postgresql)"
  command -v psql >/dev/null 2>&1 ||
    die "psql not found: run scripts/setup.sh (it installs postgresql-client)"
  if [ "$(id -u)" -eq 0 ]; then
    install -d -o postgres -m 0700 "$dir"
    # pg_ctl (as postgres) appends to the same log the script writes to.
    [ -e "$dir/log" ] || install -o postgres -m 0644 /dev/null "$dir/log"
    runuser -u postgres -- test -w "$dir" ||
      die "user postgres cannot write $dir: DAG_SERVICES_DIR must be reachable by that user"
  else
    install -d -m 0700 "$dir"
  fi
  if [ ! -s "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    pg_as "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync \
      >>"$dir/log" 2>&1 9>&- || { echo "services: initdb failed" >&2; log_tail postgres; exit 1; }
    say "postgres: initialised a cluster in $dir/data"
  fi
  # Is the cluster already up (e.g. the PID file was lost)? Then adopt it.
  # pg_ctl status also says "running" for a postmaster that was killed and
  # is not yet reaped (a zombie): wait for such a one to go away.
  local _
  for _ in $(seq 1 50); do
    pg_as "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || break
    head -n 1 "$dir/data/postmaster.pid" >"$dir/pid" 2>/dev/null || true
    pid_of postgres >/dev/null && break
    sleep 0.2
  done
  if ! pid_of postgres >/dev/null && [ -e "$dir/data/postmaster.pid" ]; then
    # Still not a live postgres: the PID in postmaster.pid is stale (reused
    # by some other process after a machine restart). Not ours: drop the file.
    say "postgres: removing stale $dir/data/postmaster.pid"
    rm -f "$dir/data/postmaster.pid"
  fi
  if ! pg_as "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    if port_open 127.0.0.1 "$PG_PORT"; then
      die "port $PG_PORT is taken by another process; stop it, or it is not ours to use"
    fi
    echo "=== $(date -u +%FT%TZ) services.sh start postgres" >>"$dir/log"
    pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t "$TIMEOUT" \
      -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null 9>&- || { echo "services: pg_ctl start failed" >&2; log_tail postgres; exit 1; }
  fi
  head -n 1 "$dir/data/postmaster.pid" >"$dir/pid"
  wait_until postgres "$(head -n 1 "$dir/pid")" pg_ready || exit 1
  say "postgres running ($PG_URL)"
}

postgres_stop() {
  local dir="$DAG_SERVICES_DIR/postgres"
  if pid_of postgres >/dev/null; then
    pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -w -t "$TIMEOUT" stop -m fast >/dev/null 9>&- ||
      { echo "services: pg_ctl stop failed" >&2; log_tail postgres; exit 1; }
    say "postgres stopped"
  else
    say "postgres not running"
  fi
  rm -f "$dir/pid"
}

postgres_running() { pid_of postgres >/dev/null && pg_ready; }

# --- s3 (SeaweedFS) -----------------------------------------------------

s3_url() { echo "$S3_URL"; }

# Any HTTP answer (403 without credentials) means the S3 port is serving.
s3_http_answers() {
  local code
  code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$S3_URL/" 2>/dev/null || true)"
  [ -n "$code" ] && [ "$code" != "000" ]
}

# The bucket exists (created if missing), checked with boto3 and the keys.
s3_bucket_ready() {
  "$VENV/bin/python" - "$S3_URL" "$S3_BUCKET" "$S3_KEY" "$S3_SECRET" <<'PY'
import sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
url, bucket, key, secret = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id=key, aws_secret_access_key=secret,
                  config=Config(s3={"addressing_style": "path"},
                                retries={"max_attempts": 1},
                                connect_timeout=2, read_timeout=5))
try:
    s3.head_bucket(Bucket=bucket)
except ClientError as e:
    if e.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
        s3.create_bucket(Bucket=bucket)
        s3.head_bucket(Bucket=bucket)
    else:
        raise
PY
}

# Test buckets (`t-*`, one per test that uses S3) left by runs more than two
# hours old are deleted: each holds SeaweedFS volumes, and a machine that
# runs the suite day after day would otherwise run out of them ("No
# writable volumes and no free volumes left"). SeaweedFS deletes a bucket
# with its objects and frees its volumes.
s3_prune_test_buckets() {
  "$VENV/bin/python" - "$S3_URL" "$S3_KEY" "$S3_SECRET" <<'PY'
import datetime
import sys
import boto3
from botocore.config import Config
url, key, secret = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id=key, aws_secret_access_key=secret,
                  config=Config(s3={"addressing_style": "path"},
                                retries={"max_attempts": 1},
                                connect_timeout=2, read_timeout=30))
old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
gone = 0
for b in s3.list_buckets().get("Buckets", []):
    if b["Name"].startswith("t-") and b["CreationDate"] < old:
        try:
            s3.delete_bucket(Bucket=b["Name"])
            gone += 1
        except Exception as e:  # a bucket in use or already gone: next time
            print(f"s3: could not delete test bucket {b['Name']}: {e}", file=sys.stderr)
if gone:
    print(f"s3: deleted {gone} test bucket(s) older than 2 h")
PY
}

s3_start() {
  local dir="$DAG_SERVICES_DIR/s3" pid
  if pid="$(pid_of s3)" && s3_http_answers && s3_bucket_ready >/dev/null 2>&1; then
    say "s3 already running ($S3_URL, bucket $S3_BUCKET)"
    s3_prune_test_buckets || say "s3: pruning old test buckets failed (ignored)"
    return 0
  fi
  if [ -n "${pid:-}" ]; then
    # Ours and alive but not answering: wait for it rather than start twice.
    wait_until s3 "$pid" s3_http_answers || exit 1
  else
    if [ ! -x "$VENV/bin/weed" ] || [ ! -x "$VENV/bin/python" ]; then
      say "s3: $VENV lacks weed or boto3; running scripts/setup.sh's setup_venv"
      # shellcheck source=setup.sh
      . "$SCRIPTS_DIR/setup.sh"
      setup_venv || die "could not set up $VENV: run scripts/setup.sh"
    fi
    if port_open 127.0.0.1 "$S3_PORT"; then
      die "port $S3_PORT is taken by another process; stop it, or it is not ours to use"
    fi
    mkdir -p "$dir/data"
    rm -f "$dir/pid" "$dir"/*.sock
    echo "=== $(date -u +%FT%TZ) services.sh start s3 ($("$VENV/bin/weed" version 2>/dev/null | head -n 1))" >>"$dir/log"
    # Started through setsid (its own session: a terminal's ^C or the
    # caller's exit does not reach it) and nohup; both exec, so $! is weed.
    # Volume count is otherwise derived from free disk (1 GiB each) and every
    # test bucket takes several: small volumes, a fixed generous maximum
    # (volume files are created on use, so the maximum costs nothing).
    AWS_ACCESS_KEY_ID="$S3_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET" \
      setsid nohup "$VENV/bin/weed" mini -dir="$dir/data" \
      -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -webdav=false \
      -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
      -s3.port="$S3_PORT" -bucket="$S3_BUCKET" \
      -master.volumeSizeLimitMB=256 -volume.max=4000 \
      -s3.localSocket="$dir/s3.sock" -filer.localSocket="$dir/filer.sock" \
      </dev/null >>"$dir/log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$dir/pid"
    wait_until s3 "$pid" s3_http_answers || exit 1
  fi
  # -bucket creates `lake` during start-up; make sure, and fail loudly if
  # the keys are not accepted.
  wait_until s3 "$pid" s3_bucket_ready || { s3_bucket_ready || true; exit 1; }
  say "s3 running ($S3_URL, bucket $S3_BUCKET)"
}

s3_stop() { stop_pid s3; }

s3_running() { pid_of s3 >/dev/null && s3_http_answers; }

# --- broker (dag broker: librdkafka mock cluster) -----------------------

broker_bootstrap() { cat "$DAG_SERVICES_DIR/broker/bootstrap" 2>/dev/null; }

broker_url() { broker_bootstrap || true; }

# The bootstrap file exists and every host:port in it accepts TCP.
broker_ready() {
  local bs hp
  bs="$(broker_bootstrap)" || return 1
  [ -n "$bs" ] || return 1
  IFS=',' read -r -a hps <<<"$bs"
  for hp in "${hps[@]}"; do
    hp="${hp#*://}"
    port_open "${hp%:*}" "${hp##*:}" || return 1
  done
}

broker_start() {
  local dir="$DAG_SERVICES_DIR/broker" pid
  if pid="$(pid_of broker)" && broker_ready; then
    say "broker already running ($(broker_bootstrap))"
    return 0
  fi
  if [ -n "${pid:-}" ]; then
    wait_until broker "$pid" broker_ready || exit 1
  else
    [ -x "$DAG_BIN" ] || die "$DAG_BIN not found: build first (cargo build --release, after . scripts/env.sh)"
    mkdir -p "$dir"
    rm -f "$dir/pid" "$dir/bootstrap"
    echo "=== $(date -u +%FT%TZ) services.sh start broker" >>"$dir/log"
    # From the repository root, where dag finds dag.toml and the pipeline
    # whose source topics it creates; the subshell execs, so $! is dag.
    (cd "$REPO_ROOT" && exec setsid nohup "$DAG_BIN" broker --bootstrap-file "$dir/bootstrap" \
      --partitions "$BROKER_PARTITIONS") </dev/null >>"$dir/log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$dir/pid"
    wait_until broker "$pid" broker_ready || exit 1
  fi
  say "broker running ($(broker_bootstrap))"
}

broker_stop() {
  stop_pid broker
  rm -f "$DAG_SERVICES_DIR/broker/bootstrap"
}

broker_running() { pid_of broker >/dev/null && broker_ready; }

# --- services.env -------------------------------------------------------

write_env() {
  local f="$DAG_SERVICES_DIR/services.env" tmp
  tmp="$(mktemp "$DAG_SERVICES_DIR/.services.env.XXXXXX")"
  {
    echo "# Written by scripts/services.sh at $(date -u +%FT%TZ): the running services."
    if postgres_running; then echo "export DAG_TEST_DATABASE_URL=$(postgres_url)"; fi
    if s3_running; then echo "export DAG_TEST_S3_ENDPOINT=$(s3_url)"; fi
    if broker_running; then echo "export DAG_TEST_KAFKA_BOOTSTRAP=$(broker_bootstrap)"; fi
  } >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$f"
}

# --- main ---------------------------------------------------------------

usage() {
  echo "usage: $0 start|stop|status [postgres|s3|broker|all]" >&2
  exit 2
}

action="${1:-}"
target="${2:-all}"
case "$action" in start | stop | status) ;; *) usage ;; esac
case "$target" in
  all) services=("${ALL_SERVICES[@]}") ;;
  postgres | s3 | broker) services=("$target") ;;
  *) usage ;;
esac

mkdir -p "$DAG_SERVICES_DIR"

if [ "$action" = status ]; then
  rc=0
  for svc in "${services[@]}"; do
    if "${svc}_running"; then
      printf '%-9s running  %s\n' "$svc" "$("${svc}_url")"
    else
      printf '%-9s stopped\n' "$svc"
      rc=1
    fi
  done
  exit "$rc"
fi

# One start or stop at a time (fd 9; every service is started with 9>&- so
# none of them inherits, and holds, the lock).
exec 9>"$DAG_SERVICES_DIR/.lock"
flock -w "$((TIMEOUT * 3))" 9 || die "another services.sh holds $DAG_SERVICES_DIR/.lock"

rc=0
for svc in "${services[@]}"; do
  start_time=$SECONDS
  # Each in a subshell so one failure still lets the others run and the
  # env file be written.
  if ("${svc}_${action}"); then
    if [ "$action" = start ]; then say "$svc: ensured in $((SECONDS - start_time))s"; fi
  else
    rc=1
  fi
done
write_env
exit "$rc"
