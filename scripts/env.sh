# Sourced by developers' shells, scripts and .ci/run: one build environment,
# so CI on this machine reuses the developer's build. Anything here that
# changes (RUSTFLAGS above all) rebuilds every crate: change it with care.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dag-target}"
export CARGO_TERM_PROGRESS_WHEN=never
# mold links the ~500-crate binary in seconds instead of a minute; setup.sh
# installs it, so the flag is the same on every machine that built once.
if command -v mold >/dev/null 2>&1; then
  export RUSTFLAGS="-C link-arg=-fuse-ld=mold"
fi
# Where scripts keep service state, logs and PID files.
export DAG_SERVICES_DIR="${DAG_SERVICES_DIR:-/var/tmp/dag-services}"
