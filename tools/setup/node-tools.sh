#!/usr/bin/env bash
# Usage: tools/setup/node-tools.sh
#
# Installs what the node test (make node-test) runs besides the control plane:
#   - from Debian's packages, when absent (it says what it installs): containerd, runc, the CNI plugins, iptables,
#     umoci (packs the pause image) and gcc (compiles it);
#   - built once per machine from the pinned Go modules and cached outside the clone (cached_tool): kubelet and
#     kube-proxy (tools/node/, the control plane's Kubernetes version in a module of its own, so the control
#     plane's cached build is untouched), CoreDNS built slim (tools/coredns/) and kube-network-policies
#     (tools/netpol/).
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)
k8s=$KUBERNETES_PATCH_VERSION
coredns=$COREDNS_VERSION
netpol=$KUBE_NETWORK_POLICIES_VERSION

# Debian package -> the command that shows it is installed.
declare -A packages=([containerd]=containerd [runc]=runc [containernetworking-plugins]=/usr/lib/cni/bridge
  [iptables]=iptables [umoci]=umoci [gcc]=gcc [libc6-dev]=/usr/include/stdio.h)
missing=()
for pkg in "${!packages[@]}"; do
  probe=${packages[$pkg]}
  if [[ $probe == /* ]]; then [ -e "$probe" ] || missing+=("$pkg")
  else command -v "$probe" >/dev/null 2>&1 || [ -x "/usr/sbin/$probe" ] || missing+=("$pkg"); fi
done
if [ "${#missing[@]}" != 0 ]; then
  say "Installing ${missing[*]} from Debian packages (the node test's container runtime, CNI and firewall)."
  apt_install "${missing[*]} missing and apt-get is not available; install containerd (1.6+), runc, the CNI plugins (in /usr/lib/cni), iptables, umoci and gcc." \
    "${missing[@]}"
fi

grep -q "k8s.io/kubernetes $k8s" "$root/tools/node/go.mod" \
  || die "tools/node/go.mod does not require k8s.io/kubernetes $k8s (tools/versions.env); update its require and replace lines, then run: cd tools/node && go mod tidy"
grep -q "github.com/coredns/coredns $coredns" "$root/tools/coredns/go.mod" \
  || die "tools/coredns/go.mod does not require github.com/coredns/coredns $coredns (tools/versions.env); run: cd tools/coredns && go get github.com/coredns/coredns@$coredns"
grep -q "sigs.k8s.io/kube-network-policies $netpol" "$root/tools/netpol/go.mod" \
  || die "tools/netpol/go.mod does not require sigs.k8s.io/kube-network-policies $netpol (tools/versions.env); run: cd tools/netpol && go get sigs.k8s.io/kube-network-policies@$netpol"

# The module version a Go binary was built from (`go version -m`), for the tools that print no version.
ver="k8s.io/component-base/version"
minor=${k8s#v1.}; minor=${minor%%.*}
k8s_ldflags="-s -w -X $ver.gitVersion=$k8s -X $ver.gitMajor=1 -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean"

k8s_reports_version() { output_has "Kubernetes $k8s" "$1" --version; }
k8s_build() { # k8s_build OUT (the binary named by $b)
  say "Building $b $k8s from tools/node/ (cold: about 4 minutes for the kubelet, 1 for kube-proxy, on 2 cores; later clones reuse the cached binaries)."
  cd "$root/tools/node"
  CGO_ENABLED=0 go build -trimpath -ldflags "$k8s_ldflags" -o "$1" "k8s.io/kubernetes/cmd/$b"
}
for b in kubelet kube-proxy; do
  cached_tool "$b" "$(tools_cache)/k8s-node-$k8s" k8s_reports_version k8s_build
done

coredns_reports_version() { built_from github.com/coredns/coredns "$coredns" "$1"; }
coredns_build() {
  say "Building CoreDNS $coredns (slim: tools/coredns/main.go) from tools/coredns/ (cold: about 5 minutes on 2 cores)."
  cd "$root/tools/coredns"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1" .
}
cached_tool coredns "$(tools_cache)/coredns-$coredns" coredns_reports_version coredns_build

netpol_reports_version() { built_from sigs.k8s.io/kube-network-policies "$netpol" "$1"; }
netpol_build() {
  say "Building kube-network-policies $netpol from tools/netpol/ (cold: about 7 minutes on 2 cores)."
  cd "$root/tools/netpol"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1" sigs.k8s.io/kube-network-policies/cmd
}
cached_tool kube-network-policies "$(tools_cache)/kube-network-policies-$netpol" netpol_reports_version netpol_build
