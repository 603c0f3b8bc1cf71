#!/usr/bin/env bash
# Usage: tools/setup/registry-tool.sh
#
# Puts distribution's `registry` (a real OCI registry, for the model-source test of the oci kind:
# tests/apps/inference/model_build/test_fetch_oci.py) at .tools/bin/registry, built from tools/registry/ at the
# version of tools/versions.env. Built once per machine and cached outside the clone, like the other Go tools.
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)
module=$REGISTRY_MODULE
version=$REGISTRY_VERSION

grep -q "$module $version" "$root/tools/registry/go.mod" \
  || die "tools/registry/go.mod does not require $module $version (tools/versions.env); run: cd tools/registry && go get -tool $module/cmd/registry@$version"

# `registry --version` prints "<binary> <module> <version>"; the version is stamped by the -X below.
reports_version() { output_has ".* $module ${version}( .*)?" "$1" --version; }

build() { # build OUT
  say "Building the registry $version from tools/registry/ (a minute or two the first time; later clones reuse the cached binary)."
  cd "$root/tools/registry"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $module/version.version=$version" -o "$1" "$module/cmd/registry"
}

cached_tool registry "$(tools_cache)/registry-$version" reports_version build
