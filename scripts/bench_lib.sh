# Helpers shared by the benchmark scripts (sourced, not run).
#
# timed LABEL CMD...: runs CMD under /usr/bin/time -v with its stdout and
# stderr in $WORK/LABEL.out / .err, and prints one line with the wall time
# and the peak RSS. Sets TIMED_WALL (h:mm:ss text), TIMED_SECS (seconds)
# and TIMED_RSS_MB.
timed() {
  local label="$1"; shift
  /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err"
  local rss
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
  TIMED_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
  TIMED_SECS=$(wall_seconds "$TIMED_WALL")
  TIMED_RSS_MB=$((rss / 1024))
  printf '%-28s wall %8s  peak RSS %6d MB\n' "$label" "$TIMED_WALL" "$TIMED_RSS_MB"
}

# wall_seconds H:MM:SS.ss|M:SS.ss: the seconds of /usr/bin/time's wall text.
wall_seconds() {
  awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f\n", s }' <<< "$1"
}

# metric KEY VALUE: one measured figure for scripts/bench_all.sh, which
# sets BENCH_METRICS to the file that collects them and builds
# BENCHMARKS.md's table from it. Without BENCH_METRICS it does nothing, so
# each benchmark also runs on its own.
metric() {
  [[ -n "${BENCH_METRICS:-}" ]] && printf '%s %s\n' "$1" "$2" >> "$BENCH_METRICS"
  return 0
}

# build_release: the release binary and the examples (fill_bronze,
# bench_commits), unless
# scripts/bench_all.sh built them already for the whole run (BENCH_BUILT).
build_release() {
  [[ -n "${BENCH_BUILT:-}" ]] && return 0
  # The README's test build (all targets): the same features, so nothing
  # is rebuilt after it (without --all-targets the dev-dependencies'
  # features drop out and much of the tree builds a second time).
  cargo build --release --workspace --all-targets --quiet
}
