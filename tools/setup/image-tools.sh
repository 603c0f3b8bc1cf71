#!/usr/bin/env bash
# Makes sure the daemonless image tools `make image` uses are installed: mmdebstrap (the Debian base), umoci
# (the OCI image layouts) and skopeo (publishing a layout to a registry), from Debian's packages.
. "$(dirname "$0")/lib.sh"
missing=()
for tool in mmdebstrap umoci skopeo; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ "${#missing[@]}" = 0 ] && exit 0
say "Installing ${missing[*]} from Debian packages."
apt_install "${missing[*]} missing and apt-get is not available; install mmdebstrap (1.3+), umoci (0.4.7+) and skopeo so they are on PATH." \
  "${missing[@]}"
for tool in "${missing[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || die "installing $tool failed"
done
