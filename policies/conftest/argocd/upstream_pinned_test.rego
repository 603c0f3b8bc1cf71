package argocd

import data.fixtures

addon(revision) := {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "kyverno", "namespace": "argocd"}, "spec": {"source": {"repoURL": "https://kyverno.github.io/kyverno/", "chart": "kyverno", "targetRevision": revision}}}

pinned_findings(app) := {f |
	some f in findings with input as fixtures.combined([app])
		with data.mlplatform.repo_url as "https://github.com/example/gitops.git"
	f.rule == "argocd-upstream-pinned"
}

test_an_exact_release_passes if count(pinned_findings(addon("3.9.1"))) == 0

test_a_tag_with_v_passes if count(pinned_findings(addon("v2.21.0"))) == 0

test_a_range_fails if count(pinned_findings(addon("3.*"))) == 1

test_a_branch_fails if count(pinned_findings(addon("main"))) == 1

test_head_fails if count(pinned_findings(addon("HEAD"))) == 1

test_this_repository_is_not_judged if {
	own := json.patch(addon("main"), [{"op": "replace", "path": "/spec/source/repoURL", "value": "https://github.com/example/gitops.git"}])
	count(pinned_findings(own)) == 0
}
