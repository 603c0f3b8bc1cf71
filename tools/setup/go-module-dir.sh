#!/usr/bin/env bash
# Usage: tools/setup/go-module-dir.sh MODULE VERSION
# Prints the folder of MODULE@VERSION in the Go module cache, downloading it first if needed.
# This is how CRDs and third-party install manifests reach the project: from the projects' own Go modules,
# at the versions pinned in tools/versions.env.
. "$(dirname "$0")/lib.sh"
module=${1:?usage: go-module-dir.sh MODULE VERSION}
version=${2:?usage: go-module-dir.sh MODULE VERSION}
command -v go >/dev/null 2>&1 || die "go is required to fetch $module@$version; install Go 1.26 or newer"
# Outside any module, so the project's own go.mod files play no part; GOFLAGS would otherwise leak in.
out=$(cd / && GOFLAGS=-mod=mod go mod download -json "$module@$version" 2>&1) \
  || die "cannot download $module@$version from the Go module proxy: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-300)"
dir=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or ""); sys.exit(1 if d.get("Error") else 0)') \
  || die "cannot download $module@$version: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-300)"
[ -d "$dir" ] || die "go mod download gave no folder for $module@$version"
printf '%s\n' "$dir"
