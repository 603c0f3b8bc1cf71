#!/usr/bin/env bash
# Usage: tools/setup/argocd-tools.sh
#
# Puts what the Argo CD test (make argocd-test) runs at .tools/bin/: argocd (one binary for every Argo CD
# component; ARGOCD_BINARY_NAME picks argocd-repo-server or argocd-application-controller) built from tools/argocd/,
# and kwok (simulated nodes and pod status) built from tools/kwok/, both at the versions of tools/versions.env.
# Built once per machine and cached outside the clone, like the control plane (tools/setup/k8s-tools.sh).
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)
argocd=$ARGOCD_VERSION
kwok=$KWOK_VERSION

grep -q "github.com/argoproj/argo-cd/v3 $argocd" "$root/tools/argocd/go.mod" \
  || die "tools/argocd/go.mod does not require github.com/argoproj/argo-cd/v3 $argocd (tools/versions.env); update its require line and copy that version's replace block, then run: cd tools/argocd && go mod tidy"
grep -q "sigs.k8s.io/kwok $kwok" "$root/tools/kwok/go.mod" \
  || die "tools/kwok/go.mod does not require sigs.k8s.io/kwok $kwok (tools/versions.env); run: cd tools/kwok && go get -tool sigs.k8s.io/kwok/cmd/kwok@$kwok"

reports_version() { # reports_version BINARY (the tool named by $name)
  case "$name" in
    argocd) ARGOCD_BINARY_NAME=argocd output_has "argocd: ${argocd}(\+.*)?" "$1" version --client --short ;;
    kwok) output_has ".*kwok version ${kwok}.*" "$1" --version ;;
  esac
}

build() { # build OUT (the tool named by $name)
  local ldflags pkg dir
  case "$name" in
    argocd)
      dir=tools/argocd; pkg=github.com/argoproj/argo-cd/v3/cmd
      ldflags="-s -w -X github.com/argoproj/argo-cd/v3/common.version=${argocd#v} -X github.com/argoproj/argo-cd/v3/common.gitTreeState=clean"
      say "Building Argo CD $argocd from tools/argocd/ (about 4 minutes the first time, downloads included; later clones reuse the cached binary)." ;;
    kwok)
      dir=tools/kwok; pkg=sigs.k8s.io/kwok/cmd/kwok
      ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok#v}"
      say "Building kwok $kwok from tools/kwok/ (a minute or two the first time)." ;;
  esac
  cd "$root/$dir"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$1" "$pkg"
}

for name in argocd kwok; do
  case "$name" in argocd) version=$argocd ;; kwok) version=$kwok ;; esac
  cached_tool "$name" "$(tools_cache)/$name-$version" reports_version build
done
