#!/usr/bin/env bash
# The README's first command: `dag demo` on embedded defaults, after
# installing what a fresh machine lacks. Extra arguments go to `dag demo`
# (e.g. --events 20000 --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh
# Again after setup: it may have installed mold, which changes RUSTFLAGS.
# Without this a fresh machine's first build has no RUSTFLAGS and
# ./scripts/test.sh (which sources env.sh after setup) rebuilds every crate.
. scripts/env.sh
# The same cargo invocation as scripts/test.sh (one feature set, one target
# dir), so the README's second command compiles nothing this one built.
cargo build --release --workspace --all-targets
exec "$CARGO_TARGET_DIR/release/dag" demo "$@"
