#!/usr/bin/env bash
# Usage: tools/setup/oha.sh
#
# Puts oha (the open-loop HTTP load generator of bench/inference_bench.py --scaling: a fixed request rate with
# latency correction, so queueing shows up as latency instead of as a slower client) at .tools/bin/oha, built
# with `cargo install --locked` at OHA_VERSION (tools/versions.env) once per machine into the tools cache.
. "$(dirname "$0")/lib.sh"
load_versions
reports_version() { output_has "oha ${OHA_VERSION#v}" "$1" --version; }
build() { # build OUT
  command -v cargo >/dev/null 2>&1 || die "oha is missing and cargo is not installed; install Rust's cargo, then rerun $0"
  say "Building oha $OHA_VERSION with cargo (about 6.5 minutes the first time on 2 cores; later runs reuse it)."
  local prefix; prefix=$(mktemp -d)
  cargo install --locked --quiet --version "${OHA_VERSION#v}" --root "$prefix" oha
  mv "$prefix/bin/oha" "$1"; rm -rf "$prefix"
}
cached_tool oha "$(tools_cache)/oha-$OHA_VERSION" reports_version build
