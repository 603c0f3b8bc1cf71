package argocd

import data.fixtures

app(path) := {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "dev", "namespace": "argocd"}, "spec": {"source": {"path": path}}}

path_findings(path) := {f | some f in findings with input as fixtures.combined([app(path)]) with data.mlplatform.dist_paths as ["dist/dev"]; f.rule == "argocd-paths"}

test_existing_path_passes if count(path_findings("dist/dev")) == 0

test_missing_path_fails if count(path_findings("dist/qa")) == 1
