#!/usr/bin/env bash
# Keeps the shared target dir ($CARGO_TARGET_DIR) from filling the disk
# without a `cargo clean` (which would cost an hour of rebuild): removes
# stale outputs of this workspace's own crates only. Each change of a
# crate's dependencies or flags gives its binaries a new hash; the old
# ones (test binaries are ~2 GB each with line tables) stay behind. Per
# name, the 3 newest binaries and incremental caches are kept; dependency
# rlibs are never touched. scripts/test.sh runs this before building.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
. scripts/env.sh
REL="$CARGO_TARGET_DIR/release"
[ -d "$REL" ] || exit 0
rm -f "$REL/.pruned"
# keep_newest DIR REGEX: in DIR, per name before the hash, all but the three
# newest entries whose name matches REGEX go.
keep_newest() {
  local dir="$1" re="$2"
  [ -d "$dir" ] || return 0
  find "$dir" -maxdepth 1 -mindepth 1 -printf '%T@ %f\n' 2>/dev/null |
    grep -E " ($re)-[0-9a-z]+$" |
    sort -rn |
    awk '{ name = $2; sub(/-[0-9a-z]+$/, "", name); if (++seen[name] > 3) print $2 }' |
    while read -r stale; do
      # The MB freed so far live in a file: this loop is a subshell.
      local mb total
      mb=$(du -sm "$dir/$stale" | cut -f1)
      total=$(( $(cat "$REL/.pruned" 2>/dev/null || echo 0) + mb ))
      rm -rf "${dir:?}/$stale"
      echo "$total" > "$REL/.pruned"
    done
}
ours='it|dag|jobs|cli|testkit|dag_e2e|fill_bronze'
keep_newest "$REL/deps" "$ours"
keep_newest "$REL/examples" "$ours"
keep_newest "$REL/incremental" "$ours"
if [ -f "$REL/.pruned" ]; then
  echo "prune: removed stale outputs of our crates: $(cat "$REL/.pruned") MB"
  rm -f "$REL/.pruned"
fi
