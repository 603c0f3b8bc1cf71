#!/usr/bin/env bash
# Regenerates the typed custom-resource classes under imports/mlplatform_crds/ with `cdk8s import`.
#
# The CRD files come from the projects' own Go modules at the versions pinned in tools/versions.env; they are
# staged under build/crds/ (one file per API group), which is where cdk8s.yaml's `imports:` entries point, and
# `cdk8s import` (the pinned CLI in node_modules/.bin, or CDK8S=/path/to/cdk8s) runs on cdk8s.yaml in a
# scratch folder. The output is committed; synthesis never runs this.
#
#   imports/generate.sh           replace imports/mlplatform_crds/ with a fresh import
#   imports/generate.sh --check   only say whether the committed classes are what a fresh import gives
. "$(dirname "$0")/../tools/setup/lib.sh"
root=$(repo_root)
load_versions
check=false
[ "${1:-}" = "--check" ] && check=true
cdk8s=${CDK8S:-$root/node_modules/.bin/cdk8s}
[ -x "$cdk8s" ] || die "no cdk8s CLI at $cdk8s (run \`make setup\`, or set CDK8S)"
dir() { "$root/tools/setup/go-module-dir.sh" "$1" "$2"; }
gateway=$(dir "$GATEWAY_API_MODULE" "$GATEWAY_API_VERSION")
eso=$(dir "$EXTERNAL_SECRETS_MODULE" "$EXTERNAL_SECRETS_VERSION")
keda=$(dir "$KEDA_MODULE" "$KEDA_VERSION")
prom=$(dir "$PROMETHEUS_OPERATOR_MODULE" "$PROMETHEUS_OPERATOR_VERSION")
argocd=$(dir "$ARGOCD_MODULE" "$ARGOCD_VERSION")
kserve=$(dir "$KSERVE_MODULE" "$KSERVE_VERSION")
istio=$(dir "$ISTIO_API_MODULE" "$ISTIO_API_VERSION")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
staged="$scratch/build/crds"
mkdir -p "$staged"
# HTTPRoute and GRPCRoute are in API group gateway.networking.k8s.io: one file, so one module for the group.
{ cat "$gateway/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"; printf -- '---\n'; cat "$gateway/config/crd/standard/gateway.networking.k8s.io_grpcroutes.yaml"; } \
  > "$staged/gateway.networking.k8s.io.yaml"
cp "$eso/config/crds/bases/external-secrets.io_externalsecrets.yaml" "$staged/external-secrets.io.yaml"
# Both KEDA kinds are in API group keda.sh: one file, so cdk8s import makes one module for the group.
{ cat "$keda/config/crd/bases/keda.sh_scaledobjects.yaml"; printf -- '---\n'; cat "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml"; } \
  > "$staged/keda.sh.yaml"
cp "$kserve/config/crd/full/serving.kserve.io_inferenceservices.yaml" "$staged/serving.kserve.io.yaml"
cp "$prom/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$staged/monitoring.coreos.com.yaml"
# Both Argo CD kinds are in API group argoproj.io: one file, so cdk8s import makes one module for the group.
{ cat "$argocd/manifests/crds/application-crd.yaml"; printf -- '---\n'; cat "$argocd/manifests/crds/appproject-crd.yaml"; } \
  > "$staged/argoproj.io.yaml"
# PeerAuthentication and AuthorizationPolicy (API group security.istio.io) share istio.io/api's one generated
# file with every other Istio CRD: only their two documents are staged (as written there, split at `---`), so
# cdk8s import makes classes for what `mesh: istio` uses and none for the rest of Istio's API.
awk -v want="authorizationpolicies.security.istio.io peerauthentications.security.istio.io" '
  BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) keep[w[i]] = 1 }
  function flush() { if (name in keep) { printf "%s%s", (kept++ ? "---\n" : ""), doc } doc = ""; name = "" }
  /^---$/ { flush(); next }
  name == "" && /^  name: / { name = $2 }  # the first one is metadata.name (spec.names is `  names:`)
  { doc = doc $0 "\n" }
  END { flush(); if (kept != n) { print "found " kept + 0 " of the " n " CRDs: " want > "/dev/stderr"; exit 1 } }
' "$istio/kubernetes/customresourcedefinitions.gen.yaml" > "$staged/security.istio.io.yaml" \
  || die "$ISTIO_API_MODULE@$ISTIO_API_VERSION: kubernetes/customresourcedefinitions.gen.yaml lacks the security CRDs"
chmod u+w "$staged"/*.yaml
cp "$root/cdk8s.yaml" "$scratch/"
mkdir -p "$scratch/imports/mlplatform_crds"
cp "$root/imports/mlplatform_crds/__init__.py" "$scratch/imports/mlplatform_crds/"  # hand-written, kept
say "cdk8s import (every entry of cdk8s.yaml imports:)"
(cd "$scratch" && CDK8S_CHECK_UPGRADE=false "$cdk8s" import --language python --output imports >/dev/null)

out="$root/imports/mlplatform_crds"
if $check; then
  diff -rq -x __pycache__ "$scratch/imports/mlplatform_crds" "$out" \
    || die "imports/mlplatform_crds/ is not what cdk8s import makes from the pinned CRDs: run imports/generate.sh"
  say "imports/mlplatform_crds/ is up to date"
  exit 0
fi
rm -rf "$out"  # stale modules of a dropped group go too
cp -R "$scratch/imports/mlplatform_crds" "$out"
say "wrote $out"
