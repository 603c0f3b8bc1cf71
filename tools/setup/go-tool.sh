#!/usr/bin/env bash
# Usage: tools/setup/go-tool.sh kyverno|conftest
#
# Puts the pinned binary at .tools/bin/<name> (a link). In order of preference it uses:
#   1. a binary of that name on PATH that reports the pinned version,
#   2. a binary built earlier on this machine, in the tools cache outside the clone,
#   3. a fresh build from the tool's Go module at the pinned version (cached for next time; see cached_tool).
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)
name=${1:?usage: go-tool.sh kyverno|conftest}

case "$name" in
  kyverno)
    version=$KYVERNO_VERSION
    reports_version() { output_has "Version: $version" "$1" version; }
    build() { # build OUT
      grep -q "github.com/kyverno/kyverno $version" "$root/tools/kyverno/go.mod" \
        || die "tools/kyverno/go.mod does not require github.com/kyverno/kyverno $version (tools/versions.env); run: cd tools/kyverno && go get -tool github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno@$version"
      say "Building the Kyverno CLI $version from its Go module. The first build downloads a large module tree and takes about 16 minutes on 2 cores; later clones reuse the cached binary."
      cd "$root/tools/kyverno"
      go mod download github.com/kyverno/kyverno
      local src; src=$(patched_kyverno "$(go list -m -f '{{.Dir}}' github.com/kyverno/kyverno)")
      # A copy of this module's go.mod that replaces Kyverno by the patched copy (-modfile: tools/kyverno stays as is).
      cp go.mod "$src/build.mod"; cp go.sum "$src/build.sum"
      go mod edit -replace "github.com/kyverno/kyverno=$src/kyverno" "$src/build.mod"
      CGO_ENABLED=0 go build -trimpath -modfile "$src/build.mod" \
        -ldflags "-s -w -X github.com/kyverno/kyverno/pkg/version.BuildVersion=$version" \
        -o "$1" github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno
      rm -rf "$src"
    }
    # The patches in tools/kyverno/patches/ (see its README) are applied to a copy of the module (the module
    # cache stays as downloaded), and their hash names the cache entry: a changed patch is a new build.
    patched_kyverno() { # patched_kyverno MODULE_DIR: prints a folder holding kyverno/, the patched module
      local out pkg=cmd/cli/kubectl-kyverno/processor
      out=$(mktemp -d)
      cp -r "$1" "$out/kyverno"; chmod -R u+w "$out/kyverno"
      patch --quiet --no-backup-if-mismatch -d "$out/kyverno" -p1 \
        <"$root/tools/kyverno/patches/compile-validating-policies-once.patch" \
        || die "tools/kyverno/patches/compile-validating-policies-once.patch does not apply to Kyverno $version"
      cp "$root/tools/kyverno/patches/compiled_validating_policies.go" "$out/kyverno/$pkg/"
      echo "$out"
    }
    patches=$(cat "$root"/tools/kyverno/patches/*.patch "$root"/tools/kyverno/patches/*.go | sha256sum | cut -c1-12)
    cache_dir="$(tools_cache)/$name-$version-patched-$patches" ;;
  conftest)
    version=$CONFTEST_VERSION
    reports_version() { output_has "Conftest: ${version#v}" "$1" --version; }
    build() {
      say "Building conftest $version with go install (about 8 minutes the first time on 2 cores)."
      local gobin; gobin=$(mktemp -d)
      cd "$root"
      # Without -X the binary reports "Conftest: dev"; the release build stamps the version the same way.
      CGO_ENABLED=0 GOBIN="$gobin" go install -trimpath \
        -ldflags "-s -w -X github.com/open-policy-agent/conftest/internal/version.Version=${version#v}" \
        "github.com/open-policy-agent/conftest@$version"
      mv "$gobin/conftest" "$1"; rmdir "$gobin"
    } ;;
  *) die "unknown tool '$name' (expected kyverno or conftest)" ;;
esac

if onpath=$(command -v "$name" 2>/dev/null) && [ "$onpath" != "$root/.tools/bin/$name" ] && reports_version "$onpath"; then
  say "Using $name $version found on PATH at $onpath."
  mkdir -p "$root/.tools/bin"; ln -sfn "$onpath" "$root/.tools/bin/$name"; exit 0
fi

cached_tool "$name" "${cache_dir:-$(tools_cache)/$name-$version}" reports_version build
