# Helpers shared by the benchmark scripts (sourced, not run).
#
# timed LABEL CMD...: runs CMD under /usr/bin/time -v with its stdout and
# stderr in $WORK/LABEL.out / .err, and prints one line with the wall time
# and the peak RSS. Sets TIMED_WALL (h:mm:ss text) and TIMED_RSS_MB.
timed() {
  local label="$1"; shift
  /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err"
  local rss
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
  TIMED_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
  TIMED_RSS_MB=$((rss / 1024))
  printf '%-28s wall %8s  peak RSS %6d MB\n' "$label" "$TIMED_WALL" "$TIMED_RSS_MB"
}
