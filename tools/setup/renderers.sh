#!/usr/bin/env bash
# Usage: tools/setup/renderers.sh
#
# Puts helm and kustomize at .tools/bin/, built from tools/renderers/ at HELM_VERSION and KUSTOMIZE_VERSION
# (tools/versions.env; tools/renderers/go.mod must require the same versions). They render the platform's
# add-ons (dist/infrastructure/) from their upstream charts and kustomizations for the add-ons' checks
# (tools/addons/): `make test` needs them, plain `make` does not. Built once per machine and cached outside the
# clone like the other Go tools (cached_tool in lib.sh): about 1.5 minutes the first time on 2 cores.
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)

require() { # require MODULE VERSION: tools/renderers/go.mod requires MODULE at VERSION
  grep -q "^[[:space:]]*$1 $2\b" "$root/tools/renderers/go.mod" \
    || die "tools/renderers/go.mod does not require $1 $2 (tools/versions.env); run: cd tools/renderers && go get -tool $1/cmd/...@$2 && go mod tidy"
}
require helm.sh/helm/v4 "$HELM_VERSION"
require sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"

helm_version() { output_has ".*Version:\"$HELM_VERSION\".*" "$1" version; }
build_helm() { # build_helm OUT
  say "Building helm $HELM_VERSION from tools/renderers/ (about a minute the first time; later clones reuse it)."
  cd "$root/tools/renderers"
  CGO_ENABLED=0 go build -trimpath -o "$1" \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" helm.sh/helm/v4/cmd/helm
}
cached_tool helm "$(tools_cache)/helm-$HELM_VERSION" helm_version build_helm

# kustomize reports the version of its module from the build info (no -X needed).
kustomize_version() { output_has "$KUSTOMIZE_VERSION" "$1" version; }
build_kustomize() { # build_kustomize OUT
  say "Building kustomize $KUSTOMIZE_VERSION from tools/renderers/ (about 30 s the first time)."
  cd "$root/tools/renderers"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1" sigs.k8s.io/kustomize/kustomize/v5
}
cached_tool kustomize "$(tools_cache)/kustomize-$KUSTOMIZE_VERSION" kustomize_version build_kustomize
