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

reports_version() { # reports_version BINARY
  local out; out=$("$1" --version 2>/dev/null) || return 1  # captured first: grep -q would close the pipe early
  case "$(basename "$1")" in
    etcd|etcd.tmp) grep -qx "etcd Version: ${etcd#v}" <<<"$out" ;;
    *) grep -qx "Kubernetes $k8s" <<<"$out" ;;
  esac
}

all_cached() {
  local b
  for b in "${binaries[@]}"; do
    [ -x "$cache/$b" ] && reports_version "$cache/$b" || return 1
  done
}

if all_cached; then
  say "Using the cached control plane (Kubernetes $k8s, etcd $etcd) at $cache."
else
  mkdir -p "$cache"
  start=$(date +%s)
  say "Building the control plane (Kubernetes $k8s, etcd $etcd) from tools/k8s/. The first build downloads the Kubernetes module tree and takes about 7 minutes; later clones reuse the cached binaries."
  ver="k8s.io/component-base/version"
  minor=${k8s#v1.}; minor=${minor%%.*}
  ldflags="-s -w -X $ver.gitVersion=$k8s -X $ver.gitMajor=1 -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$k8s"
  for b in "${binaries[@]}"; do
    case "$b" in
      etcd) pkg=go.etcd.io/etcd/server/v3 ;;
      *) pkg=k8s.io/kubernetes/cmd/$b ;;
    esac
    if [ -x "$cache/$b" ] && reports_version "$cache/$b"; then continue; fi
    (cd "$root/tools/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$cache/$b.tmp" "$pkg") \
      || die "building $b ($pkg) failed; see the go output above"
    reports_version "$cache/$b.tmp" || die "the freshly built $b does not report the pinned version"
    mv -f "$cache/$b.tmp" "$cache/$b"
  done
  say "Built the control plane in $(( $(date +%s) - start )) s; cached at $cache."
fi
mkdir -p "$root/.tools/bin"
for b in "${binaries[@]}"; do ln -sfn "$cache/$b" "$root/.tools/bin/$b"; done
