#!/usr/bin/env bash
# Usage: tools/setup/ghz.sh
#
# Puts ghz (the gRPC load generator of bench/inference_bench.py: out of process, like wrk for REST) at
# .tools/bin/ghz, built from tools/ghz/ at the version its go.mod requires (`go get -tool
# github.com/bojand/ghz/cmd/ghz@V` there to change it; not in tools/versions.env, which keys CI's cache of the
# policy tools). Built once per machine and cached outside the clone like the other Go tools (cached_tool in
# lib.sh). Only `make bench` needs it (`make bench-tools`); plain `make` and `make test` do not.
. "$(dirname "$0")/lib.sh"
root=$(repo_root)
module=github.com/bojand/ghz
version=$(awk -v m="$module" '$1 == m { print $2; exit }' "$root/tools/ghz/go.mod")
[ -n "$version" ] || die "tools/ghz/go.mod does not require $module; run: cd tools/ghz && go get -tool $module/cmd/ghz@VERSION"

# `ghz --version` prints the version the -X below stamps (without the v), on stderr (kingpin's way).
with_stderr() { "$@" 2>&1; }
reports_version() { output_has "${version#v}" with_stderr "$1" --version; }
build() { # build OUT
  say "Building ghz $version from tools/ghz/ (about a minute the first time; later clones reuse the cached binary)."
  cd "$root/tools/ghz"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${version#v}" -o "$1" "$module/cmd/ghz"
}
cached_tool ghz "$(tools_cache)/ghz-$version" reports_version build
