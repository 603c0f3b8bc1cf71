#!/usr/bin/env bash
# Usage: tools/setup/oha.sh
#
# Puts oha (the open-loop HTTP load generator of bench/inference_bench.py --scaling: a fixed request rate with
# latency correction, so queueing shows up as latency instead of as a slower client) at .tools/bin/oha, built
# with `cargo install --locked` at OHA_VERSION (tools/versions.env) once per machine into the tools cache.
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)
prefix="$(tools_cache)/oha-$OHA_VERSION"
binary="$prefix/bin/oha"
reports_version() { "$1" --version 2>/dev/null | grep -qx "oha ${OHA_VERSION#v}"; }
if [ -x "$binary" ] && reports_version "$binary"; then
  say "Using cached oha $OHA_VERSION at $binary."
else
  command -v cargo >/dev/null 2>&1 || die "oha is missing and cargo is not installed; install Rust's cargo, then rerun $0"
  say "Building oha $OHA_VERSION with cargo (about 6.5 minutes the first time on 2 cores; later runs reuse it)."
  start=$(date +%s)
  cargo install --locked --quiet --version "${OHA_VERSION#v}" --root "$prefix" oha \
    || die "cargo install oha ${OHA_VERSION#v} failed; see the cargo output above"
  reports_version "$binary" || die "the freshly built $binary does not report oha ${OHA_VERSION#v}"
  say "Built oha in $(( $(date +%s) - start )) s; cached at $binary."
fi
mkdir -p "$root/.tools/bin"
ln -sfn "$binary" "$root/.tools/bin/oha"
