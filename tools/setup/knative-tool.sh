#!/usr/bin/env bash
# Usage: tools/setup/knative-tool.sh
#
# Puts knative-validate at .tools/bin/: Knative Serving's own defaulting and validation (the code its admission
# webhook runs) of Knative Services, built from tools/knative/main.go against knative.dev/serving at
# KNATIVE_SERVING_VERSION (tools/versions.env; tools/knative/go.mod must require the same). The serverless test
# (tests/tools/testcluster/test_serverless_environment.py) validates with it what KServe makes of each
# Serverless InferenceService. `make test` needs it, plain `make` does not. Cached outside the clone like the
# other Go tools, keyed by the version and main.go's content: about 20 s to build when the modules are there.
. "$(dirname "$0")/lib.sh"
load_versions
root=$(repo_root)

grep -q "^[[:space:]]*knative.dev/serving $KNATIVE_SERVING_VERSION\$" "$root/tools/knative/go.mod" \
  || die "tools/knative/go.mod does not require knative.dev/serving $KNATIVE_SERVING_VERSION (tools/versions.env); run: cd tools/knative && go get knative.dev/serving@$KNATIVE_SERVING_VERSION && go mod tidy"
source_key=$(cat "$root/tools/knative/main.go" "$root/tools/knative/go.sum" | sha256sum | cut -c1-12)

knative_reports_version() { built_from knative.dev/serving "$KNATIVE_SERVING_VERSION" "$1"; }
knative_build() { # knative_build OUT
  say "Building knative-validate (knative.dev/serving $KNATIVE_SERVING_VERSION) from tools/knative/."
  cd "$root/tools/knative"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1" .
}
cached_tool knative-validate "$(tools_cache)/knative-$KNATIVE_SERVING_VERSION-$source_key" knative_reports_version knative_build
