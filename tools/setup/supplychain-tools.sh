#!/usr/bin/env bash
# Usage: tools/setup/supplychain-tools.sh [cosign|syft]...   (both when none is named)
#
# Puts cosign (signs the images `make image` builds) and syft (writes each image's SBOM) at .tools/bin/, built
# from tools/cosign/ and tools/syft/ at the versions their go.mod files require. Built once per machine and cached
# outside the clone in their own entries of the tools cache, like the other Go tools (cached_tool in lib.sh).
# Only `make image` and `make test` need them; plain `make` does not.
. "$(dirname "$0")/lib.sh"
root=$(repo_root)

# The versions are the ones tools/cosign/go.mod and tools/syft/go.mod require (`go get -tool MODULE/cmd/NAME@V`
# there to change one), not in tools/versions.env: that file is part of the CI cache key of the policy tools,
# and a new line there would rebuild Kyverno and conftest cold once.
COSIGN_MODULE=github.com/sigstore/cosign/v3
SYFT_MODULE=github.com/anchore/syft
required() { # required FOLDER MODULE: the version tools/FOLDER/go.mod requires of MODULE
  local version
  version=$(awk -v m="$2" '$1 == m { print $2; exit }' "$root/tools/$1/go.mod")
  [ -n "$version" ] || die "tools/$1/go.mod does not require $2; run: cd tools/$1 && go get -tool $2/cmd/$1@VERSION"
  printf '%s\n' "$version"
}
COSIGN_VERSION=$(required cosign "$COSIGN_MODULE")
SYFT_VERSION=$(required syft "$SYFT_MODULE")

cosign_version() { output_has "GitVersion: +$COSIGN_VERSION" "$1" version; }
build_cosign() { # build_cosign OUT
  say "Building cosign $COSIGN_VERSION from tools/cosign/ (minutes the first time; later clones reuse the cached binary)."
  cd "$root/tools/cosign"
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION" \
    -o "$1" "$COSIGN_MODULE/cmd/cosign"
}

syft_version() { output_has "Version: +${SYFT_VERSION#v}" "$1" version; }
build_syft() { # build_syft OUT
  say "Building syft $SYFT_VERSION from tools/syft/ (minutes the first time; later clones reuse the cached binary)."
  cd "$root/tools/syft"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${SYFT_VERSION#v}" -o "$1" "$SYFT_MODULE/cmd/syft"
}

for tool in "${@:-cosign syft}"; do
  for t in $tool; do
    case "$t" in
      cosign) cached_tool cosign "$(tools_cache)/cosign-$COSIGN_VERSION" cosign_version build_cosign ;;
      syft) cached_tool syft "$(tools_cache)/syft-$SYFT_VERSION" syft_version build_syft ;;
      *) die "unknown tool '$t' (expected cosign or syft)" ;;
    esac
  done
done
