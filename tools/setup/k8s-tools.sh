#!/usr/bin/env bash
# Usage: tools/setup/k8s-tools.sh
#
# Puts the control plane the cluster tests run at .tools/bin/: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler, all at the pinned versions (tools/versions.env), built from tools/k8s/ (a Go module that requires
# k8s.io/kubernetes and etcd's server module). Built once per machine and cached outside the clone, like Kyverno.
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)
k8s=$KUBERNETES_PATCH_VERSION
etcd=$ETCD_VERSION
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler)
cache="$(tools_cache)/k8s-$k8s-etcd-$etcd"

grep -q "k8s.io/kubernetes $k8s" "$root/tools/k8s/go.mod" \
  || die "tools/k8s/go.mod does not require k8s.io/kubernetes $k8s (tools/versions.env); update its require and replace lines, then run: cd tools/k8s && go mod tidy"
grep -q "go.etcd.io/etcd/server/v3 $etcd" "$root/tools/k8s/go.mod" \
  || die "tools/k8s/go.mod does not require go.etcd.io/etcd/server/v3 $etcd (tools/versions.env)"

reports_version() { # reports_version BINARY (the binary named by $b)
  case "$b" in
    etcd) output_has "etcd Version: ${etcd#v}" "$1" --version ;;
    *) output_has "Kubernetes $k8s" "$1" --version ;;
  esac
}

ver="k8s.io/component-base/version"
minor=${k8s#v1.}; minor=${minor%%.*}
ldflags="-s -w -X $ver.gitVersion=$k8s -X $ver.gitMajor=1 -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$k8s"
build() { # build OUT (the binary named by $b)
  local pkg
  case "$b" in
    etcd) pkg=go.etcd.io/etcd/server/v3 ;;
    *) pkg=k8s.io/kubernetes/cmd/$b ;;
  esac
  say "Building $b ($pkg) from tools/k8s/. The first control-plane build downloads the Kubernetes module tree and takes about 7 minutes for all four; later clones reuse the cached binaries."
  cd "$root/tools/k8s"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$1" "$pkg"
}

for b in "${binaries[@]}"; do
  cached_tool "$b" "$cache" reports_version build
done
