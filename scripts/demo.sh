#!/usr/bin/env bash
# The README's first command: `dag demo` on embedded defaults, after
# installing what a fresh machine lacks. Extra arguments go to `dag demo`
# (e.g. --events 20000 --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh
exec cargo run --release -- demo "$@"
