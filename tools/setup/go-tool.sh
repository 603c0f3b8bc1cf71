#!/usr/bin/env bash
# Usage: tools/setup/go-tool.sh kyverno|conftest
#
# Puts the pinned binary at .tools/bin/<name> (a link). In order of preference it uses:
#   1. a binary of that name on PATH that reports the pinned version,
#   2. a binary built earlier on this machine, in the tools cache outside the clone,
#   3. a fresh build from the tool's Go module at the pinned version (cached for next time).
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)
name=${1:?usage: go-tool.sh kyverno|conftest}

case "$name" in
  kyverno)
    version=$KYVERNO_VERSION
    reports_version() { "$1" version 2>/dev/null | grep -qx "Version: $version"; }
    build() { # build OUT
      grep -q "github.com/kyverno/kyverno $version" "$root/tools/kyverno/go.mod" \
        || die "tools/kyverno/go.mod does not require github.com/kyverno/kyverno $version (tools/versions.env); run: cd tools/kyverno && go get -tool github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno@$version"
      say "Building the Kyverno CLI $version from its Go module. The first build downloads a large module tree and takes several minutes; later clones reuse the cached binary."
      (cd "$root/tools/kyverno" && CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X github.com/kyverno/kyverno/pkg/version.BuildVersion=$version" \
        -o "$1" github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno)
    } ;;
  conftest)
    version=$CONFTEST_VERSION
    reports_version() { "$1" --version 2>/dev/null | grep -qx "Conftest: ${version#v}"; }
    build() {
      say "Building conftest $version with go install (about a minute the first time)."
      local gobin; gobin=$(mktemp -d)
      # Without -X the binary reports "Conftest: dev"; the release build stamps the version the same way.
      (cd "$root" && CGO_ENABLED=0 GOBIN="$gobin" go install -trimpath \
        -ldflags "-s -w -X github.com/open-policy-agent/conftest/internal/version.Version=${version#v}" \
        "github.com/open-policy-agent/conftest@$version")
      mv "$gobin/conftest" "$1"; rmdir "$gobin"
    } ;;
  *) die "unknown tool '$name' (expected kyverno or conftest)" ;;
esac

link="$root/.tools/bin/$name"
mkdir -p "$(dirname "$link")"

if onpath=$(command -v "$name" 2>/dev/null) && [ "$onpath" != "$link" ] && reports_version "$onpath"; then
  say "Using $name $version found on PATH at $onpath."
  ln -sfn "$onpath" "$link"; exit 0
fi

cached="$(tools_cache)/$name-$version/$name"
if [ -x "$cached" ] && reports_version "$cached"; then
  say "Using cached $name $version at $cached."
else
  mkdir -p "$(dirname "$cached")"
  start=$(date +%s)
  build "$cached.tmp"
  reports_version "$cached.tmp" || die "the freshly built $name does not report version $version"
  mv -f "$cached.tmp" "$cached"
  say "Built $name $version in $(( $(date +%s) - start )) s; cached at $cached."
fi
ln -sfn "$cached" "$link"
