#!/usr/bin/env bash
# Usage: tools/fresh-check.sh [--test] [--warm] [--keep]
#
# What a new user gets: clones this repository's HEAD (committed work only) into a temporary folder, runs `make`
# there (and `make test` with --test), and checks that `git status --porcelain` is empty afterwards: the README's
# commands must neither fail nor rewrite a committed file. Prints the time each command took.
#
# By default every cache a fresh machine would lack starts empty: the project's tools cache
# (MLPLATFORM_TOOLS_CACHE), Go's module and build caches, pip's and npm's caches and jsii's package cache. Cold,
# that means building Kyverno and conftest from their Go modules (about 25 minutes on 2 cores; with --test, the
# control plane, Argo CD, kwok and the registry too). --warm keeps this machine's caches, to time a warm run.
# --keep leaves the temporary folder in place for inspection.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
run_test=0 warm=0 keep=0
for arg in "$@"; do
  case "$arg" in
    --test) run_test=1 ;;
    --warm) warm=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--test] [--warm] [--keep]" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fresh-check.XXXXXX")
cleanup() {
  if [ "$keep" = 1 ]; then echo "fresh-check: kept $work" >&2; return; fi
  chmod -R u+w "$work" 2>/dev/null || true  # Go's module cache is read-only
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$warm" = 0 ]; then
  export MLPLATFORM_TOOLS_CACHE="$work/cache/tools" GOMODCACHE="$work/cache/gomod" GOCACHE="$work/cache/gobuild" \
    PIP_CACHE_DIR="$work/cache/pip" npm_config_cache="$work/cache/npm" \
    JSII_RUNTIME_PACKAGE_CACHE_ROOT="$work/cache/jsii"
  mkdir -p "$work/cache"
  echo "fresh-check: empty caches under $work/cache" >&2
fi

git clone -q "$here" "$work/clone"
cd "$work/clone"
echo "fresh-check: cloned $(git rev-parse --short HEAD) into $work/clone" >&2

timed() { # timed LABEL CMD...
  local start=$SECONDS
  if "${@:2}"; then
    echo "fresh-check: $1 passed in $(( SECONDS - start )) s" >&2
  else
    echo "fresh-check: $1 FAILED after $(( SECONDS - start )) s" >&2
    exit 1
  fi
}

timed make make
[ "$run_test" = 0 ] || timed "make test" make test

dirty=$(git status --porcelain)
if [ -n "$dirty" ]; then
  echo "fresh-check: FAILED: the commands changed the clone (git status --porcelain):" >&2
  printf '%s\n' "$dirty" >&2
  exit 1
fi
echo "fresh-check: git status is clean" >&2
