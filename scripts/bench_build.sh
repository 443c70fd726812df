#!/usr/bin/env bash
# First contact (issue 24): what the README's two commands cost to build on
# this machine, and how big the binary is.
#
#   scripts/bench_build.sh        # ~25 min on 2 cores; nothing else may run
#   BENCH_DIST=1 scripts/bench_build.sh   # also the `dist` profile (thin LTO, stripped)
#
# 1. `cargo build --release --workspace --all-targets --timings` (what
#    scripts/demo.sh runs) into a fresh, empty target directory: the cold
#    build of the first command. Crates already downloaded are reused from
#    ~/.cargo/registry (a fresh machine downloads them first: ~1 min here).
# 2. The same command again (what scripts/test.sh runs): it must compile
#    nothing, which the script checks.
# 3. The sizes of the release binary, stripped, and (BENCH_DIST=1) of the
#    dist binary the Dockerfile ships.
#
# The figures go to docs/build-figures.txt (with the date and commit), which
# scripts/bench_all.sh puts in BENCHMARKS.md without rebuilding the world
# each time; the ten slowest crates and the time per crate family are
# printed from cargo's timings report.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
. scripts/env.sh
scripts/setup.sh > /dev/null
. scripts/env.sh
FRESH="${BENCH_BUILD_TARGET:-/var/tmp/dag-bench-build-target}"
rm -rf "$FRESH"
mkdir -p "$FRESH"
trap 'rm -rf "$FRESH"' EXIT
export CARGO_TARGET_DIR="$FRESH"
OUT="$ROOT/docs/build-figures.txt"
tmp="$(mktemp)"

echo "cold build (scripts/demo.sh's command) into $FRESH..."
t0=$(date +%s)
cargo build --release --workspace --all-targets --timings 2> "$FRESH/cold.log"
t1=$(date +%s)
units=$(grep -c '^ *Compiling ' "$FRESH/cold.log" || true)
echo "  $(( (t1 - t0) / 60 )) min $(( (t1 - t0) % 60 )) s, $units crates compiled"

echo "second command (scripts/test.sh's build)..."
t2=$(date +%s)
cargo build --release --workspace --all-targets 2> "$FRESH/second.log"
t3=$(date +%s)
again=$(grep -c '^ *Compiling ' "$FRESH/second.log" || true)
echo "  $((t3 - t2)) s, $again crates compiled"

bin="$FRESH/release/dag"
stripped="$FRESH/dag.stripped"
objcopy --strip-all "$bin" "$stripped"
size_mb() { echo $(( $(stat -c %s "$1") / 1048576 )); }
{
  echo "build.date $(date -u +%Y-%m-%d)"
  echo "build.commit $(git rev-parse --short HEAD)"
  echo "build.cold_s $((t1 - t0))"
  echo "build.cold_units $units"
  echo "build.second_s $((t3 - t2))"
  echo "build.second_units $again"
  echo "build.release_mb $(size_mb "$bin")"
  echo "build.stripped_mb $(size_mb "$stripped")"
} > "$tmp"
echo "  release binary $(size_mb "$bin") MB, stripped $(size_mb "$stripped") MB"

if [[ -n "${BENCH_DIST:-}" ]]; then
  echo "dist build (the Dockerfile's)..."
  t4=$(date +%s)
  cargo build --profile dist -p dag --bin dag 2> "$FRESH/dist.log"
  t5=$(date +%s)
  echo "build.dist_s $((t5 - t4))" >> "$tmp"
  echo "build.dist_mb $(size_mb "$FRESH/dist/dag")" >> "$tmp"
  echo "  $(( (t5 - t4) / 60 )) min, dist binary $(size_mb "$FRESH/dist/dag") MB"
fi

python3 scripts/build_timings.py "$FRESH"/cargo-timings/cargo-timing.html | tee -a "$tmp"
mv "$tmp" "$OUT"
echo "wrote $OUT"
[[ "$again" -eq 0 ]] || { echo "the second command compiled $again crates: the two commands' builds differ" >&2; exit 1; }
