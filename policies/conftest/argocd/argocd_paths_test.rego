package argocd

import data.fixtures

app(path) := {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "dev", "namespace": "argocd"}, "spec": {"source": {"path": path}}}

path_findings(path) := {f | some f in findings with input as fixtures.combined([app(path)]) with data.mlplatform.dist_paths as ["dist/dev"]; f.rule == "argocd-paths"}

test_existing_path_passes if count(path_findings("dist/dev")) == 0

test_missing_path_fails if count(path_findings("dist/qa")) == 1

upstream_app := {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "keda", "namespace": "argocd"}, "spec": {"source": {"repoURL": "https://github.com/kedacore/keda.git", "path": "config/default", "targetRevision": "v2.21.0"}}}

upstream_findings := {f |
	some f in findings with input as fixtures.combined([upstream_app])
		with data.mlplatform.dist_paths as ["dist/dev"]
		with data.mlplatform.repo_url as "https://github.com/example/gitops.git"
	f.rule == "argocd-paths"
}

test_an_upstream_source_is_not_a_dist_path if count(upstream_findings) == 0

own_missing_findings := {f |
	some f in findings with input as fixtures.combined([json.patch(upstream_app, [{"op": "replace", "path": "/spec/source/repoURL", "value": "https://github.com/example/gitops.git"}])])
		with data.mlplatform.dist_paths as ["dist/dev"]
		with data.mlplatform.repo_url as "https://github.com/example/gitops.git"
	f.rule == "argocd-paths"
}

test_this_repositorys_source_must_be_a_dist_path if count(own_missing_findings) == 1
